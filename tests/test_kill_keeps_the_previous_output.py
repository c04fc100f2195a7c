"""#25 "Done when": killing a build, a training or an export (SIGKILL, the real process) at
several moments leaves the previous good output whole: the same bytes, and still loadable (a
build's manifest with its files' sha256s, a training's summary and weights, an export's
`export.json` with its files' sha256s). A command that finished before its kill must have
published a whole new output instead; at least one kill per command lands mid-run.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from data_contracts.manifest import load_manifest
from pipelines.build_curriculum import main as build_main
from tests.conftest import REPO
from tests.pipelines.helpers import tree_digest

pytestmark = pytest.mark.slow

DELAYS = (0.5, 2.0, "staging", 5.0)  # seconds after the start, or when a work folder appears


def _kill(args: list[str], parent: str, out: str, when) -> bool:
    """Runs `python -m ...args` and SIGKILLs it at `when`; True when it was killed mid-run."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    before = set(os.listdir(parent))
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    started = time.monotonic()
    while proc.poll() is None and time.monotonic() - started < 120:
        if when == "staging":
            if set(os.listdir(parent)) - before:
                break
        elif time.monotonic() - started >= when:
            break
        time.sleep(0.02)
    alive = proc.poll() is None
    if alive:
        os.killpg(proc.pid, signal.SIGKILL)  # the command and any workers it started
    proc.wait()
    for name in set(os.listdir(parent)) - before - {os.path.basename(out)}:
        shutil.rmtree(os.path.join(parent, name), ignore_errors=True)  # the killed run's work
    return alive


def _check_kills(args: list[str], parent: str, out: str, loadable) -> None:
    """Kills `args` at every DELAYS point over the good output at `out`; after each, `out` is
    the earlier output byte for byte, or (a run that published before its kill landed) a whole
    new one: loadable, every file accounted for."""
    mid_run = 0
    for when in DELAYS:
        before = tree_digest(out)
        killed = _kill(args, parent, out, when)
        loadable(out)  # old or new, never a mix: the listed sha256s hold, nothing stray
        mid_run += killed and tree_digest(out) == before
    assert mid_run >= 1, "every run ended before its kill: the test killed nothing mid-run"


def _build_loads(out: str) -> None:
    manifest = load_manifest(out)  # verifies every listed file's sha256
    listed = {e["path"] for e in manifest["files"]} | {"manifest.json"}
    assert set(tree_digest(out)) <= listed, "files of another run beside this one's"


def _training_loads(out: str) -> None:
    with open(os.path.join(out, "summary.json")) as handle:
        summary = json.load(handle)
    assert summary["steps"] > 0
    torch.load(os.path.join(out, "final.pt"), weights_only=True)


def _export_loads(out: str) -> None:
    with open(os.path.join(out, "export.json")) as handle:
        record = json.load(handle)
    for entry in record["files"]:
        with open(os.path.join(out, entry["path"]), "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == entry["sha256"], entry["path"]
    listed = {e["path"] for e in record["files"]} | {"export.json", "val.parquet"}
    verl = record["reward_function"]["verl"]  # `reward_fn.py:compute_score` of a verl export
    listed |= {verl.split(":")[0]} if verl else set()
    assert set(tree_digest(out)) <= listed, "files of another export beside this one's"


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("kill") / "run")
    assert build_main(["--synthetic", "text", "--synthetic-queries", "40", "--k", "4",
                       "--k-max", "8", "--out", out]) == 0
    return out


def test_a_killed_build_leaves_the_earlier_run_whole(tmp_path):
    out = str(tmp_path / "run")
    assert build_main(["--synthetic-queries", "60", "--out", out]) == 0
    _check_kills(["pipelines.build_curriculum", "--synthetic-queries", "400", "--seed", "3",
                  "--out", out], str(tmp_path), out, _build_loads)


def test_a_killed_training_leaves_the_earlier_training_whole(text_run, tmp_path):
    out = str(tmp_path / "trained")
    manifest = os.path.join(text_run, "manifest.json")
    small = ["trainers.train", "--manifest", manifest, "--out", out, "--batch-queries", "8"]
    done = subprocess.run([sys.executable, "-m", *small, "--bc-steps", "2", "--rl-steps", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert done.returncode == 0, done.stderr
    _training_loads(out)
    _check_kills(small + ["--bc-steps", "40", "--rl-steps", "40", "--checkpoint-every", "5"],
                 str(tmp_path), out, _training_loads)


def test_a_killed_export_leaves_the_earlier_export_whole(text_run, tmp_path):
    from pipelines.export import main as export_main

    out = str(tmp_path / "export")
    assert export_main([text_run, "--to", "verl", "--out", out]) == 0
    _export_loads(out)
    _check_kills(["pipelines.export", text_run, "--to", "trl", "--out", out], str(tmp_path), out,
                 _export_loads)
