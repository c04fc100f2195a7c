"""End to end on the real Yahoo LTR sample: counts, fates, stage order, bytes, loaders, edge queries."""
from __future__ import annotations

import glob
import os
from collections import Counter
from dataclasses import replace

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from data_contracts.manifest import check_counts, load_manifest
from data_contracts.readers import read_queries
from pipelines.build_curriculum import run
from pipelines.config import CurriculumConfig
from tests.pipelines.helpers import manifest_bytes, phase_table, tree_digest

pytestmark = pytest.mark.slow

YAHOO_QUERIES = 201


def _config(path: str, out: str, **order) -> CurriculumConfig:
    config = CurriculumConfig(inputs=[path], out=out)
    return replace(config, order=replace(config.order, **order)) if order else config


@pytest.fixture(scope="module")
def yahoo_queries(yahoo_train):
    """query id -> labels, straight from the reader (before validation)."""
    out = {}
    for batch in read_queries(yahoo_train):
        for qid, labels in zip(batch.queries.column("query_id").to_pylist(),
                               batch.queries.column("labels").to_pylist()):
            out[qid] = labels
        for qid in batch.quarantine.column("query_id").to_pylist():
            out.setdefault(qid, None)
    return out


@pytest.fixture(scope="module")
def staged(yahoo_train, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("yahoo") / "staged")
    result = run(_config(yahoo_train, out))
    return result, tree_digest(out), manifest_bytes(out)


@pytest.fixture(scope="module")
def target(yahoo_train, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("yahoo") / "target")
    return run(_config(yahoo_train, out, strategy="target", target=0.5, replay=0.3))


def _fates(out: str) -> Counter:
    seen = Counter()
    for phase in ("imitation", "rl", "dropped", "quarantine"):
        table = phase_table(out, phase)
        if phase == "rl":
            table = table.filter(~np.array(table.column("replay").to_pylist(), bool))
        seen.update(table.column("query_id").to_pylist())
    return seen


@pytest.mark.parametrize("which", ["staged", "target"])
def test_counts_reconcile(which, staged, target):
    result = staged[0] if which == "staged" else target
    c = result.manifest["counts"]
    assert check_counts(c) == []
    assert c["read"] == YAHOO_QUERIES == c["quarantined"] + c["scored"]
    assert c["scored"] == c["too_hard"] + c["learnable"] + c["too_easy"]
    assert c["scored"] == c["imitation"] + c["rl"] + c["dropped"]
    assert min(c["too_hard"], c["learnable"], c["too_easy"]) > 0  # a real mix of bands
    rows = Counter()
    for entry in result.manifest["files"]:
        rows[entry["phase"]] += entry["rows"]
    assert rows["difficulty"] == c["scored"]
    assert rows["imitation"] == c["imitation"]
    assert rows["rl"] == c["rl_rows"] == c["rl"] + c["rl_replayed"]
    assert rows["dropped"] == c["dropped"]


def test_difficulty_table_has_one_row_per_query(staged, yahoo_queries):
    table = phase_table(staged[0].out, "difficulty")
    assert table.num_rows == YAHOO_QUERIES
    assert sorted(table.column("query_id").to_pylist()) == sorted(yahoo_queries)
    rate = np.array(table.column("pass_rate").to_pylist())
    assert np.all((rate > 0) & (rate < 1))
    assert set(table.column("policy_id").to_pylist()) == {"base"}


@pytest.mark.parametrize("which", ["staged", "target"])
def test_every_input_query_has_exactly_one_fate(which, staged, target, yahoo_queries):
    out = staged[0].out if which == "staged" else target.out
    seen = _fates(out)
    assert sorted(seen) == sorted(yahoo_queries)
    assert set(seen.values()) == {1}, [q for q, n in seen.items() if n != 1]


def _stage_rates(out: str) -> dict[int, np.ndarray]:
    rl = phase_table(out, "rl")
    own = ~np.array(rl.column("replay").to_pylist(), bool)
    stage = np.array(rl.column("stage").to_pylist())[own]
    rate = np.array(rl.column("pass_rate").to_pylist())[own]
    return {int(s): rate[stage == s] for s in np.unique(stage)}


def test_staged_stages_go_from_easy_to_hard(staged):
    rates = _stage_rates(staged[0].out)
    assert sorted(rates) == [0, 1, 2]
    for s in range(2):
        assert rates[s].min() >= rates[s + 1].max(), (s, rates[s].min(), rates[s + 1].max())
        # a tie may sit inside a stage, never across a boundary
        assert not set(np.round(rates[s], 9)) & set(np.round(rates[s + 1], 9))
    stages = staged[0].manifest["curriculum"]
    assert [s["phase"] for s in stages] == ["imitation", "rl", "rl", "rl"]


def test_target_stages_go_from_near_to_far(target):
    distance = {s: np.abs(r - 0.5) for s, r in _stage_rates(target.out).items()}
    assert sorted(distance) == [0, 1, 2]
    for s in range(2):
        assert distance[s].max() <= distance[s + 1].min() + 1e-9


def test_replay_copies_only_go_to_later_stages(target):
    rl = phase_table(target.out, "rl")
    first = {}
    for qid, stage, replay in zip(rl.column("query_id").to_pylist(),
                                  rl.column("stage").to_pylist(), rl.column("replay").to_pylist()):
        if not replay:
            first[qid] = stage
    copies = [(q, s) for q, s, r in zip(rl.column("query_id").to_pylist(),
                                        rl.column("stage").to_pylist(),
                                        rl.column("replay").to_pylist()) if r]
    assert copies
    assert all(s > first[q] for q, s in copies)
    assert target.manifest["counts"]["rl_replayed"] == len(copies)


def test_a_second_run_into_the_same_folder_is_byte_identical(staged, yahoo_train):
    result, digest, manifest = staged
    again = run(_config(yahoo_train, result.out))
    assert manifest_bytes(again.out) == manifest
    assert tree_digest(again.out) == digest


def test_outputs_load_with_duckdb_pyarrow_and_datasets(staged, tmp_path):
    out = staged[0].out
    counts = staged[0].manifest["counts"]
    con = duckdb.connect()
    n, stages = con.execute(
        f"SELECT count(*), count(DISTINCT stage) FROM read_parquet('{out}/rl/*/*.parquet') "
        "WHERE NOT replay").fetchall()[0]
    assert (n, stages) == (counts["rl"], 3)
    bands = dict(con.execute(f"SELECT band, count(*) FROM read_parquet('{out}/difficulty/*.parquet')"
                             " GROUP BY band").fetchall())
    assert bands == {b: counts[b] for b in ("too_hard", "learnable", "too_easy")}

    imitation = pq.read_table(os.path.join(out, "imitation"))
    assert imitation.num_rows == counts["imitation"]
    assert imitation.column("teacher_order")[0].as_py() is not None

    datasets = pytest.importorskip("datasets")
    files = sorted(glob.glob(os.path.join(out, "rl", "*", "*.parquet")))
    loaded = datasets.load_dataset("parquet", data_files={"train": files},
                                   cache_dir=str(tmp_path / "hf"))["train"]
    assert len(loaded) == counts["rl_rows"]
    assert {"query_id", "features", "pass_rate", "stage"} <= set(loaded.column_names)


def test_degenerate_queries_get_a_decided_band_and_leave_rl(staged, yahoo_queries):
    all_zero = [q for q, lab in yahoo_queries.items() if lab and len(lab) > 1 and max(lab) == 0]
    single = [q for q, lab in yahoo_queries.items() if lab and len(lab) == 1]
    assert all_zero and single, "the sample has both kinds (see its README)"
    out = staged[0].out
    difficulty = {r["query_id"]: r for r in phase_table(out, "difficulty").to_pylist()}
    dropped = {r["query_id"]: r["reason"] for r in phase_table(out, "dropped").to_pylist()}
    for qid in all_zero + single:
        row = difficulty[qid]
        assert row["decided"] and row["rule"].startswith("deterministic:"), row
        assert row["zero_variance"]
        if qid in all_zero:  # NDCG is 0 for any ranking: never passes
            assert row["rule"] == "deterministic:no_relevant_documents"
            assert row["band"] == "too_hard"
        # no RL signal, and the labels order nothing: not a demonstration either
        assert "uninformative demonstration" in dropped[qid], (qid, dropped.get(qid))


def test_teacher_policy_passes_far_more_often_than_base(staged, yahoo_train, tmp_path):
    base = phase_table(staged[0].out, "difficulty")
    teacher_run = run(replace(_config(yahoo_train, str(tmp_path / "teacher")), policy="teacher"))
    teacher = phase_table(teacher_run.out, "difficulty")
    assert set(teacher.column("policy_id").to_pylist()) == {"teacher"}
    base_mean = float(np.mean(base.column("pass_rate").to_pylist()))
    teacher_mean = float(np.mean(teacher.column("pass_rate").to_pylist()))
    assert teacher_mean > base_mean + 0.2, (teacher_mean, base_mean)
    assert teacher_run.manifest["policy"]["fingerprint"].startswith("teacher:")
