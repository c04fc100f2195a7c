"""Same config, same bytes: in-process and multi-process runners, and repeated runs."""
from __future__ import annotations

import os
from dataclasses import replace

import pyarrow.parquet as pq
import pytest

from data_contracts.manifest import load_manifest
from data_contracts.synthetic import SyntheticConfig
from pipelines.build_curriculum import run
from pipelines.config import CurriculumConfig
from tests.pipelines.helpers import manifest_bytes, phase_table, tree_digest

pytestmark = pytest.mark.slow

IN_MEMORY = ["--direct_running_mode=in_memory"]
MULTI_PROCESS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def _config(out: str) -> CurriculumConfig:
    # small batches, so the 120 queries travel as 8 bundles that two workers can split
    base = CurriculumConfig(synthetic=replace(SyntheticConfig(), n_queries=120), batch_size=16,
                            shards=2, k=8, k_max=32)
    return replace(base, order=replace(base.order, replay=0.3), out=out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("determinism")
    out = {}
    for name, args in (("memory", IN_MEMORY), ("memory_again", IN_MEMORY),
                       ("processes", MULTI_PROCESS)):
        out[name] = run(_config(str(root / name)), args)
    out["batch_of_3"] = run(replace(_config(str(root / "batch_of_3")), batch_size=3), IN_MEMORY)
    return out


def test_runs_complete_and_reconcile(runs):
    for result in runs.values():
        manifest = load_manifest(result.out)  # every listed file present, sha256 matching
        counts = manifest["counts"]
        assert counts["read"] == 120 == counts["scored"] + counts["quarantined"]
        assert counts["rl_replayed"] > 0


def test_multi_processing_matches_in_memory_byte_for_byte(runs):
    a, b = runs["memory"].out, runs["processes"].out
    assert manifest_bytes(a) == manifest_bytes(b)  # whole manifest: files, sha256s, counts
    assert tree_digest(a) == tree_digest(b)
    assert phase_table(a, "difficulty").equals(phase_table(b, "difficulty"))


def test_two_in_memory_runs_are_byte_identical(runs):
    a, b = runs["memory"].out, runs["memory_again"].out
    assert manifest_bytes(a) == manifest_bytes(b)
    assert tree_digest(a) == tree_digest(b)


def test_the_batch_size_does_not_change_a_byte_of_the_shards(runs):
    # batches of 3 queries instead of 16: other padding widths, other chunks of the forward
    a, b = load_manifest(runs["memory"].out), load_manifest(runs["batch_of_3"].out)
    assert [(f["path"], f["sha256"]) for f in a["files"]] == \
        [(f["path"], f["sha256"]) for f in b["files"]]
    assert a["counts"] == b["counts"] and a["curriculum"] == b["curriculum"]


def test_manifest_lists_exactly_the_files_written(runs):
    out = runs["processes"].out
    manifest = load_manifest(out)
    listed = sorted(f["path"] for f in manifest["files"])
    assert listed == sorted(p for p in tree_digest(out) if p != "manifest.json")
    for entry in manifest["files"]:
        assert pq.read_metadata(os.path.join(out, entry["path"])).num_rows == entry["rows"]


def test_a_learned_prior_run_is_the_same_in_processes_and_in_memory(tmp_path):
    """The learned prior is fitted per batch (the batch's first round), so it depends on the
    batch size, but never on the runner: batches are cut where the input is read."""
    config = replace(_config(""), budget_rule="planned", prior="learned")
    a = run(replace(config, out=str(tmp_path / "memory")), IN_MEMORY).out
    b = run(replace(config, out=str(tmp_path / "processes")), MULTI_PROCESS).out
    assert manifest_bytes(a) == manifest_bytes(b)
    assert tree_digest(a) == tree_digest(b)
    rules = set(phase_table(a, "difficulty").column("rule").to_pylist())
    assert any(r.endswith("planned k=8..32, learned prior") for r in rules)
