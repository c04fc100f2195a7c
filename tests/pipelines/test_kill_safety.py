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


def _start(input_path: str, out: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "pipelines.build_curriculum", "--input",
                             input_path, "--out", out, *extra], cwd=REPO, env=env,
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


def _in_staging(out: str, pattern: str) -> bool:
    return any(glob.glob(os.path.join(s, pattern), recursive=True) for s in _stagings(out))


def _shard_in_staging(out: str) -> bool:
    return _in_staging(out, os.path.join("*", "**", "*.parquet"))


KILL_POINTS = {  # the moments a rerun is killed at
    "pass 1 split read": lambda out: _in_staging(out, os.path.join("_progress", "p1-*")),
    "pass 2 pieces spilled": lambda out: _in_staging(out, os.path.join("_tmp", "**",
                                                                       "*.arrow")),
    "final shards written": lambda out: _in_staging(out, os.path.join("difficulty",
                                                                      "*.parquet")),
}


@pytest.fixture(scope="module")
def earlier_run(yahoo_train, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("kill") / "run")
    run(CurriculumConfig(inputs=[yahoo_train], out=out))
    return out


def _assert_is_earlier_run(out: str, digest: dict, manifest: bytes) -> None:
    assert manifest_bytes(out) == manifest
    load_manifest(out)  # every listed file present with its sha256
    assert tree_digest(out) == digest  # nothing added, removed or changed


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_killed_rerun_leaves_the_earlier_run_intact(earlier_run, yahoo_train, point):
    digest, manifest = tree_digest(earlier_run), manifest_bytes(earlier_run)
    proc = _start(yahoo_train, earlier_run)
    _kill_when(proc, lambda: KILL_POINTS[point](earlier_run))
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


def _children(pid: int) -> set[int]:
    """Every live descendant of `pid` (from /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find worker processes")
def test_beam_workers_end_with_their_killed_launcher(earlier_run, yahoo_train):
    digest, manifest = tree_digest(earlier_run), manifest_bytes(earlier_run)
    proc = _start(yahoo_train, earlier_run, "--direct_running_mode=multi_processing",
                  "--direct_num_workers=2")
    workers: set[int] = set()

    def ready() -> bool:
        workers.update(_children(proc.pid))
        return KILL_POINTS["pass 1 split read"](earlier_run) and len(workers) >= 2

    _kill_when(proc, ready)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.2)
    left = [w for w in workers if _alive(w)]
    for w in left:  # do not leave them running whatever the outcome
        os.kill(w, signal.SIGKILL)
    assert not left, f"worker processes {left} outlived their launcher"
    _assert_is_earlier_run(earlier_run, digest, manifest)
    clean_stale(earlier_run)


def test_rebuild_refuses_to_delete_files_its_manifest_does_not_list(earlier_run, yahoo_train,
                                                                   capsys):
    from pipelines.build_curriculum import main

    extra = os.path.join(earlier_run, "training", "metrics.jsonl")
    os.makedirs(os.path.dirname(extra))
    with open(extra, "w") as handle:
        handle.write("{}\n")
    try:
        assert main(["--input", yahoo_train, "--out", earlier_run]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and os.path.join("training", "metrics.jsonl") in err[0]
        assert os.path.exists(extra)
    finally:
        os.remove(extra)
        os.rmdir(os.path.dirname(extra))


def test_every_phase_folder_has_a_parquet_file_even_without_rows(earlier_run):
    import pyarrow.parquet as pq

    manifest = load_manifest(earlier_run)
    for phase in ("difficulty", "imitation", "rl", "dropped", "quarantine"):
        files = glob.glob(os.path.join(earlier_run, phase, "**", "*.parquet"), recursive=True)
        assert files, phase
        for path in files:
            pq.read_table(path)  # readable, in its schema, rows or not
    assert {f["phase"] for f in manifest["files"]} == {"difficulty", "imitation", "rl",
                                                        "dropped", "quarantine"}
