"""gs:// runs against a local GCS emulator, and the Dataflow job graph built offline (dry run)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.manifest import MANIFEST_NAME, files_of, load_manifest
from pipelines.build_curriculum import main
from tests.conftest import REPO
from tests.pipelines.helpers import tree_digest

pytestmark = pytest.mark.slow

BUCKET = "rerank-curriculum-emulated-test-bucket"
DATAFLOW = ["--runner", "DataflowRunner", "--dry_run=True", "--no_auth", "--project", "rerank-test-project",
            "--region", "us-central1", "--temp_location",
            "gs://a-long-enough-bucket-name-for-beam-offline-checks/tmp"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def emulator():
    pytest.importorskip("gcp_storage_emulator")
    pytest.importorskip("google.cloud.storage")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gcp_storage_emulator", "start", "--host",
                             "127.0.0.1", "--port", str(port), "--in-memory"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{host}/storage/v1/b", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("the GCS emulator did not start")
            time.sleep(0.2)
    old = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = host
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    storage.Client(project="test", credentials=AnonymousCredentials()).create_bucket(BUCKET)
    yield host
    if old is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = old
    proc.terminate()
    proc.wait(timeout=30)


def _rollout_log(yahoo_train: str, path: str) -> None:
    """A small log for the first queries of the sample (the rest get no_rollouts)."""
    from data_contracts.readers import read_queries

    batch = next(iter(read_queries(yahoo_train, batch_size=80)))
    lines = []
    for qid, docs in zip(batch.queries.column("query_id").to_pylist(),
                         batch.queries.column("doc_ids").to_pylist()):
        for i in range(4):
            order = docs if i % 2 == 0 else docs[::-1]
            lines.append(json.dumps({"query_id": qid, "rollout_id": f"{qid}-{i}",
                                     "ranking": order, "policy_id": "ext"}))
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def inputs(emulator, yahoo_train, tmp_path_factory):
    local = tmp_path_factory.mktemp("inputs")
    log = str(local / "rollouts.jsonl")
    _rollout_log(yahoo_train, log)
    remote = f"gs://{BUCKET}/inputs"
    for src, name in ((yahoo_train, "rank.train"), (yahoo_train + ".query", "rank.train.query"),
                      (log, "rollouts.jsonl")):
        fs.copy(src, f"{remote}/{name}")
    return {"local_train": yahoo_train, "local_log": log, "train": f"{remote}/rank.train",
            "log": f"{remote}/rollouts.jsonl"}


def _shards(files: dict[str, bytes]) -> dict[str, bytes]:
    """Shard bytes by their path inside the run (the run-<id>/ prefix of a gs:// run removed);
    quarantine shards name their input's location, so they are left out."""
    out = {}
    for path, data in files.items():
        parts = path.split("/")
        if parts[0].startswith("run-"):
            parts = parts[1:]
        if parts[-1].endswith(".parquet") and parts[0] != "quarantine":
            out["/".join(parts)] = data
    return out


def _remote_files(out: str) -> dict[str, bytes]:
    return {f[len(out) + 1:]: fs.read_bytes(f) for f in fs.list_files(out)}


def _local_files(out: str) -> dict[str, bytes]:
    result = {}
    for path in tree_digest(out):
        with open(os.path.join(out, path), "rb") as handle:
            result[path] = handle.read()
    return result


MULTI = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]


@pytest.fixture(scope="module")
def gs_run(inputs, tmp_path_factory):
    out = f"gs://{BUCKET}/runs/yahoo"
    assert main(["--input", inputs["train"], "--rollouts", inputs["log"], "--out", out,
                 *MULTI]) == 0
    local = str(tmp_path_factory.mktemp("local") / "run")
    assert main(["--input", inputs["local_train"], "--rollouts", inputs["local_log"], "--out",
                 local]) == 0
    return out, local


def test_gs_run_has_the_shard_bytes_of_a_local_run(gs_run):
    out, local = gs_run
    remote, here = _remote_files(out), _local_files(local)
    assert _shards(remote) and _shards(remote) == _shards(here)
    manifest = json.loads(remote[MANIFEST_NAME])
    listed = {f["path"] for f in manifest["files"]}
    assert listed == {p for p in remote if p != MANIFEST_NAME}  # nothing else left behind
    assert all(p.startswith("run-") and ".." not in p for p in listed)
    for entry in manifest["files"]:
        assert fs.sha256(f"{out}/{entry['path']}") == entry["sha256"]
    # what the trainer and the inspector load: the gs:// run, every file verified
    loaded = load_manifest(out)
    assert files_of(loaded, "imitation") == [f"{out}/{f['path']}" for f in manifest["files"]
                                              if f["phase"] == "imitation"]


def test_gs_rebuild_replaces_the_prefix_after_the_manifest(gs_run, inputs):
    out, _ = gs_run
    before = json.loads(fs.read_bytes(f"{out}/{MANIFEST_NAME}"))
    assert main(["--input", inputs["train"], "--rollouts", inputs["log"], "--out", out]) == 0
    after = json.loads(fs.read_bytes(f"{out}/{MANIFEST_NAME}"))
    old_prefix = before["files"][0]["path"].split("/")[0]
    new_prefix = after["files"][0]["path"].split("/")[0]
    assert old_prefix != new_prefix
    remaining = _remote_files(out)
    assert not any(p.startswith(old_prefix + "/") for p in remaining)  # old run cleaned up
    assert {f["path"] for f in after["files"]} == {p for p in remaining if p != MANIFEST_NAME}


def test_gs_run_refuses_to_delete_files_it_does_not_own(gs_run, inputs, capsys):
    out, _ = gs_run
    fs.write_bytes(f"{out}/training/metrics.jsonl", b"{}\n")
    try:
        assert main(["--input", inputs["train"], "--out", out]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "training/metrics.jsonl" in err[0]
    finally:
        fs.delete([f"{out}/training/metrics.jsonl"])


def test_killed_gs_run_leaves_the_earlier_manifest_and_its_files(gs_run, inputs, emulator):
    out, _ = gs_run
    manifest = fs.read_bytes(f"{out}/{MANIFEST_NAME}")
    listed = {f["path"]: f["sha256"] for f in json.loads(manifest)["files"]}
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               STORAGE_EMULATOR_HOST=emulator)
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.build_curriculum", "--input",
                             inputs["train"], "--rollouts", inputs["log"], "--out", out], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # kill once the new run has written something
            assert proc.poll() is None, "the run finished before it could be killed"
            names = [f for f in fs.list_files(out) if "/run-" in f
                     and f[len(out) + 1:] not in listed]
            if names:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert fs.read_bytes(f"{out}/{MANIFEST_NAME}") == manifest
    for path, digest in listed.items():
        assert fs.sha256(f"{out}/{path}") == digest


def test_dataflow_job_graph_builds_offline_for_a_local_input(yahoo_train, tmp_path, capsys,
                                                              monkeypatch):
    # no emulator and a bucket that does not exist: the dry run must not contact the store
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    out = "gs://a-long-enough-bucket-name-for-beam-offline-checks/runs/dry"
    pytest.importorskip("build")  # --setup_file pyproject.toml builds the workers' sdist
    setup = ["--setup_file", os.path.join(REPO, "pyproject.toml")]
    started = time.monotonic()
    assert main(["--input", yahoo_train, "--out", out, *DATAFLOW, *setup]) == 0
    assert capsys.readouterr().out.strip() == "dry run: job graph built, nothing written"
    assert time.monotonic() - started < 60  # not a credentials search with retries


def test_a_dataflow_dry_run_refuses_a_local_out_as_the_real_job_would(yahoo_train, tmp_path,
                                                                       capsys):
    out = str(tmp_path / "run")
    assert main(["--input", yahoo_train, "--out", out, *DATAFLOW]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write a local --out" in err[0], err
    assert not os.path.exists(out)


def test_dataflow_job_graph_builds_offline_for_a_gs_input(inputs, capsys):
    out = f"gs://{BUCKET}/runs/dry"
    assert main(["--input", inputs["train"], "--out", out, *DATAFLOW]) == 0
    assert capsys.readouterr().out.strip() == "dry run: job graph built, nothing written"
    assert fs.list_files(out) == []


def test_a_policy_checkpoint_on_the_store_scores_like_the_local_one(emulator, tmp_path):
    """`--policy gs://...` goes through the file-system layer: same weights, same fingerprint."""
    import torch

    from difficulty.policy import PolicySpec, base_policy, load_policy_checkpoint, save_policy

    local = str(tmp_path / "policy.pt")
    save_policy(base_policy(5, 3), local)
    remote = f"gs://{BUCKET}/policies/policy.pt"
    fs.copy(local, remote)
    a, b = load_policy_checkpoint(local), load_policy_checkpoint(remote)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    assert PolicySpec(name=remote).fingerprint() == PolicySpec(name=local).fingerprint()
    PolicySpec(name=remote).validate()


def test_the_trainer_trains_on_a_gs_run(gs_run, tmp_path):
    """The trainer reads the shards of a gs:// run through the file-system layer."""
    from trainers.train import TrainConfig, train

    out, _ = gs_run
    summary = train(TrainConfig(manifest=out, out=str(tmp_path / "train"), bc_steps=2,
                                rl_steps=2, batch_queries=8))
    assert summary["steps"] >= 2


def test_the_trainer_writes_its_folder_to_the_store(gs_run, tmp_path):
    """--out gs://... : trained locally, uploaded (summary.json last); nothing local is left
    named after the URL, and a prefix holding other files is refused."""
    from trainers.train import TrainConfig, train

    out, _ = gs_run
    target = f"gs://{BUCKET}/training/t1"
    summary = train(TrainConfig(manifest=out, out=target, bc_steps=2, rl_steps=2,
                                batch_queries=8))
    names = {fs.basename(f) for f in fs.list_files(target)}
    assert {"bc.pt", "final.pt", "metrics.jsonl", "summary.json"} <= names
    stored = json.loads(fs.read_bytes(fs.join(target, "summary.json")))
    assert stored["steps"] == summary["steps"]
    assert not os.path.exists("gs:") and not os.path.exists(str(tmp_path / "gs:"))
    foreign = f"gs://{BUCKET}/training/foreign"
    fs.write_bytes(fs.join(foreign, "notes.txt"), b"keep me")
    with pytest.raises(InputError, match="a trainer does not write"):
        train(TrainConfig(manifest=out, out=foreign, bc_steps=1, rl_steps=1))
    assert fs.read_bytes(fs.join(foreign, "notes.txt")) == b"keep me"
