"""A run killed with SIGKILL never leaves a half-written run where a complete one is expected."""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from curricula.staging import clean_stale
from data_contracts.errors import InputError
from data_contracts.manifest import MANIFEST_NAME, load_manifest
from pipelines.build_curriculum import run
from pipelines.config import CurriculumConfig
from tests.conftest import REPO
from tests.pipelines.helpers import manifest_bytes, tree_digest

pytestmark = pytest.mark.slow


def _start(input_path: str, out: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "pipelines.build_curriculum", "--input",
                             input_path, "--out", out], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    """SIGKILLs `proc` as soon as `ready()` holds; fails if the run ended first."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the run finished before it could be killed"
            if ready():
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                assert proc.returncode == -signal.SIGKILL
                return
            time.sleep(0.01)
        pytest.fail("the run never reached the point to kill it at")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _stagings(out: str) -> list[str]:
    parent, name = os.path.split(os.path.abspath(out))
    return glob.glob(os.path.join(parent, f".{name}.staging-*"))


def _shard_in_staging(out: str) -> bool:
    return any(glob.glob(os.path.join(s, "*", "**", "*.parquet"), recursive=True)
               for s in _stagings(out))


@pytest.fixture(scope="module")
def earlier_run(yahoo_train, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("kill") / "run")
    run(CurriculumConfig(inputs=[yahoo_train], out=out))
    return out


def _assert_is_earlier_run(out: str, digest: dict, manifest: bytes) -> None:
    assert manifest_bytes(out) == manifest
    load_manifest(out)  # every listed file present with its sha256
    assert tree_digest(out) == digest  # nothing added, removed or changed


def test_killed_rerun_leaves_the_earlier_run_intact(earlier_run, yahoo_train):
    digest, manifest = tree_digest(earlier_run), manifest_bytes(earlier_run)
    proc = _start(yahoo_train, earlier_run)
    _kill_when(proc, lambda: _shard_in_staging(earlier_run))  # midway: shards half written
    _assert_is_earlier_run(earlier_run, digest, manifest)
    leftovers = _stagings(earlier_run)
    assert leftovers, "a killed run leaves its staging folder (cleaned by the next run)"
    for staging in leftovers:  # the partial run is never published, nor complete-looking
        assert not os.path.exists(os.path.join(staging, MANIFEST_NAME))
    clean_stale(earlier_run)  # what the next run does first
    assert _stagings(earlier_run) == []
    _assert_is_earlier_run(earlier_run, digest, manifest)


def test_killed_first_run_leaves_no_manifest(yahoo_train, tmp_path):
    out = str(tmp_path / "fresh")
    proc = _start(yahoo_train, out)
    _kill_when(proc, lambda: _shard_in_staging(out))
    assert not os.path.exists(os.path.join(out, MANIFEST_NAME))
    with pytest.raises(InputError, match="manifest not found"):
        load_manifest(out)
    manifests = [folder for folder, _, files in os.walk(tmp_path) if MANIFEST_NAME in files]
    assert manifests == [], "no manifest anywhere (staging included): nothing looks complete"
