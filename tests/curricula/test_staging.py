"""Deterministic shards, publish-by-rename and cleaning up after killed runs."""
from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pytest

from curricula import staging as staging_module
from curricula.staging import (check_output_path, clean_stale, discard, new_staging, publish,
                               shard_path, write_shard)
from data_contracts.errors import InputError
from data_contracts.manifest import sha256_file
from data_contracts.schema import QUARANTINE_SCHEMA, RL_SCHEMA


def _rl_rows(n: int = 40) -> pa.Table:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        rate = float(rng.choice([0.2, 0.5, 0.8]))
        for replay in (False, True) if i % 5 == 0 else (False,):
            rows.append({"query_id": f"q{i:03d}", "doc_ids": ["a", "b"],
                         "features": [[1.0, float(i)], [0.0, 1.0]], "labels": [1.0, 0.0],
                         "teacher_scores": None, "teacher_order": None, "source": "t",
                         "split": "train", "pass_rate": rate, "band": "learnable",
                         "stage": 1, "order_key": round(1 - rate, 9), "replay": replay})
    return pa.Table.from_pylist(rows, schema=RL_SCHEMA)


def test_write_shard_bytes_do_not_depend_on_row_order(tmp_path):
    table = _rl_rows()
    perm = np.random.default_rng(1).permutation(table.num_rows)
    shuffled = table.take(pa.array(perm))
    a = write_shard([table], "rl", 1, 0, str(tmp_path / "a"), RL_SCHEMA)
    b = write_shard([shuffled.slice(0, 17), shuffled.slice(17)], "rl", 1, 0, str(tmp_path / "b"),
                    RL_SCHEMA)
    assert a == b  # same relative path, rows and sha256
    assert a["path"] == shard_path("rl", 1, 0) == os.path.join("rl", "stage-01",
                                                                "part-00000.parquet")
    assert a["rows"] == table.num_rows
    assert sha256_file(tmp_path / "a" / a["path"]) == sha256_file(tmp_path / "b" / b["path"])


def test_write_shard_quarantine_with_null_ids_is_order_independent(tmp_path):
    rows = [{"query_id": None if i % 3 == 0 else f"q{i % 4}", "record_kind": "query",
             "step": "validate", "reason": "r", "location": f"f:{i % 5}", "detail": "",
             "raw": str(i)} for i in range(20)]
    table = pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA)
    a = write_shard([table], "quarantine", None, 3, str(tmp_path / "a"), QUARANTINE_SCHEMA)
    b = write_shard([table.take(pa.array(list(range(19, -1, -1))))], "quarantine", None, 3,
                    str(tmp_path / "b"), QUARANTINE_SCHEMA)
    assert a["sha256"] == b["sha256"]


def _fake_run(folder, files: dict) -> None:
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)


def _tree(folder) -> dict:
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = open(path).read()
    return out


def test_publish_replaces_an_old_run_whole(tmp_path):
    out = str(tmp_path / "run")
    old_manifest = json.dumps({"files": [{"path": "rl/stage-02/part-00000.parquet"},
                                         {"path": "old-only.txt"}]})
    _fake_run(out, {"manifest.json": old_manifest, "rl/stage-02/part-00000.parquet": "old",
                    "old-only.txt": "x"})
    staging = new_staging(out)
    assert os.path.basename(staging).startswith(".run.staging-")
    _fake_run(staging, {"manifest.json": "new", "rl/stage-00/part-00000.parquet": "new"})
    publish(staging, out)
    assert _tree(out) == {"manifest.json": "new", "rl/stage-00/part-00000.parquet": "new"}
    assert sorted(os.listdir(tmp_path)) == ["run"]  # no staging or aside folder left


def test_publish_into_a_new_location(tmp_path):
    out = str(tmp_path / "deep" / "run")
    staging = new_staging(out)
    _fake_run(staging, {"manifest.json": "new"})
    publish(staging, out)
    assert _tree(out) == {"manifest.json": "new"}


def test_clean_stale_restores_an_aside_run_when_the_output_is_missing(tmp_path):
    # a publish killed after renaming the old run aside, before renaming the new one in
    out = str(tmp_path / "run")
    _fake_run(tmp_path / ".run.old-0123456789ab", {"manifest.json": "old", "a.parquet": "old"})
    _fake_run(tmp_path / ".run.staging-ba9876543210", {"manifest.json": "new"})
    _fake_run(tmp_path / "other", {"keep.txt": "untouched"})
    clean_stale(out)
    assert _tree(out) == {"manifest.json": "old", "a.parquet": "old"}
    assert sorted(os.listdir(tmp_path)) == ["other", "run"]


def test_clean_stale_removes_leftovers_when_the_output_is_there(tmp_path):
    out = str(tmp_path / "run")
    _fake_run(out, {"manifest.json": "current"})
    _fake_run(tmp_path / ".run.old-0123456789ab", {"manifest.json": "older"})
    _fake_run(tmp_path / ".run.staging-0123456789ab", {"rl/part-00000.parquet": "partial"})
    _fake_run(tmp_path / ".runner.staging-0123456789ab", {"x": "another output's staging"})
    clean_stale(out)
    assert _tree(out) == {"manifest.json": "current"}
    assert sorted(os.listdir(tmp_path)) == [".runner.staging-0123456789ab", "run"]
    clean_stale(str(tmp_path / "missing-parent" / "run"))  # nothing to clean: no error


def test_check_output_path(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(InputError, match="output path is a file"):
        check_output_path(str(afile))
    with pytest.raises(InputError, match="parent of the output path is a file"):
        check_output_path(str(afile / "run"))
    # a folder of other files would be deleted by a publish: refused
    _fake_run(tmp_path / "data", {"precious.txt": "keep me"})
    with pytest.raises(InputError, match="not a run folder"):
        check_output_path(str(tmp_path / "data"))
    (tmp_path / "empty").mkdir()
    check_output_path(str(tmp_path / "empty"))
    _fake_run(tmp_path / "run", {"manifest.json": json.dumps({})})
    check_output_path(str(tmp_path / "run"))
    check_output_path(str(tmp_path / "new"))


def test_clean_stale_spares_the_staging_folder_of_a_run_in_progress(tmp_path):
    out = str(tmp_path / "run")
    live = new_staging(out)  # locked by this (live) process until published or discarded
    _fake_run(live, {"difficulty/part-00000.parquet": "being written"})
    _fake_run(tmp_path / ".run.staging-deadbeef0000", {"x": "left by a killed run"})
    clean_stale(out)  # what a second run of the same output does first
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(live)]
    assert _tree(live) == {"difficulty/part-00000.parquet": "being written"}
    discard(live)
    assert os.listdir(tmp_path) == []
    live = new_staging(out)
    _fake_run(live, {"manifest.json": "new"})
    publish(live, out)
    assert not staging_module._HELD  # the lock went with the publish
    clean_stale(out)
    assert _tree(out) == {"manifest.json": "new"}


@pytest.mark.parametrize("fan_in", [2, 16])
def test_merged_pieces_have_the_bytes_of_one_write(tmp_path, monkeypatch, fan_in):
    monkeypatch.setattr(staging_module, "MERGE_FAN_IN", fan_in)  # 2: merges in levels
    table = _rl_rows(60)
    perm = np.random.default_rng(2).permutation(table.num_rows)
    shuffled = table.take(pa.array(perm))
    root = str(tmp_path / "merged")
    pieces = [staging_module.write_piece(shuffled.slice(a, 11), "rl", 1, 0, root)
              for a in range(0, shuffled.num_rows, 11)]
    assert len(pieces) > 4
    merged = staging_module.merge_pieces(pieces, "rl", 1, 0, root, RL_SCHEMA)
    whole = write_shard([table], "rl", 1, 0, str(tmp_path / "whole"), RL_SCHEMA)
    assert merged == whole
    assert not any(files for _, _, files in os.walk(os.path.join(root, "_tmp")))
