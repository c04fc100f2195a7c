"""The rollout join per partition of the query ids (`ScoreFromLog`, `_ScorePartitionFn`): the
vectorized path gives the bytes of the per-query path; the partition count changes no byte;
what is shuffled is Arrow tables, one per (read batch, partition)."""
from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pytest
from apache_beam.pvalue import TaggedOutput

import difficulty.scoring as scoring
from curricula.staging import read_spilled
from data_contracts.manifest import load_manifest
from data_contracts.readers import read_queries
from data_contracts.schema import QUERY_SCHEMA, ROLLOUT_SCHEMA
from difficulty.rewards import parse_reward
from difficulty.scoring import ScoringConfig, score_fast_permutations, score_from_log
from pipelines import score_log as score_module
from pipelines.build_curriculum import main
from pipelines.config import CurriculumConfig
from tests.pipelines.helpers import phase_table

pytestmark = pytest.mark.slow

_ODD = ["I cannot rank these.", "<think>hmm</think> [2] > [1]", "<answer>[1, 2]</answer>",
        "[0] > [1]", "[1] > [1]", "2 > 1.", "[٣] > [1]", "[1]  >[2]> [ 3 ]", "", "[007] > [1]"]


def _queries(path):
    out = {}
    for batch in read_queries(path):
        for row in batch.queries.to_pylist():
            out[row["query_id"]] = row
    return out


def _log(queries: dict, seed: int) -> list[dict]:
    """Generations of every kind (well-formed, missing, out of range, repeated, prose, other
    shapes), a few policy ids, duplicate rollout ids, an unknown query; shuffled."""
    rng = np.random.default_rng(seed)
    rows = []
    for q, query in list(queries.items())[: int(len(queries) * 0.9)]:
        n = len(query["doc_ids"])
        for s in range(int(rng.integers(1, 6))):
            perm = rng.permutation(n) + 1
            kind = rng.uniform()
            if kind < 0.6:
                text = " > ".join(f"[{k}]" for k in perm)
            elif kind < 0.7:
                text = " > ".join(f"[{k}]" for k in perm[:-1])
            elif kind < 0.8:
                text = " > ".join(f"[{k}]" for k in np.append(perm, n + 3))
            else:
                text = str(rng.choice(_ODD))
            row = {"query_id": q, "rollout_id": f"{q}-{s}", "generation": text}
            if rng.uniform() < 0.2:
                row["policy_id"] = "other"
            rows.append(row)
    rows += [dict(rows[3], generation="[1] > [2]"), {"query_id": "nope", "rollout_id": "x",
                                                      "generation": "[1]"}]
    return [rows[i] for i in rng.permutation(len(rows))]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _files(run) -> dict:
    return {f["path"]: f["sha256"] for f in load_manifest(str(run))["files"]}


@pytest.fixture(scope="module")
def logs(yahoo_train, tmp_path_factory):
    root = tmp_path_factory.mktemp("logjoin")
    rows = _log(_queries(yahoo_train), 0)
    # one row of every query also gives a (valid, unused) reward: every query takes the
    # per-query path, with the same verdicts (not the queries with a quarantined rollout,
    # which take it anyway and whose quarantine rows show the raw row)
    ids = [(r["query_id"], r["rollout_id"]) for r in rows]
    seen = {q for q, r in ids if ids.count((q, r)) > 1} | {"nope"}
    slow = []
    for row in rows:
        if row["query_id"] not in seen:
            seen.add(row["query_id"])
            row = {**row, "reward": 0.5}
        slow.append(row)
    return {"fast": _write(root / "fast.jsonl", rows), "slow": _write(root / "slow.jsonl", slow),
            "root": root}


def _build(yahoo_train, log, out, *extra):
    assert main(["--input", yahoo_train, "--rollouts", log, "--out", str(out), *extra]) == 0
    return _files(out)


@pytest.mark.parametrize("malformed", ["fail", "repair"])
def test_vectorized_path_gives_the_per_query_bytes(yahoo_train, logs, monkeypatch, malformed):
    calls = []
    real = scoring.score_fast_permutations
    monkeypatch.setattr(scoring, "score_fast_permutations",
                        lambda *a, **k: calls.append(a[0].num_rows) or real(*a, **k))
    fast = _build(yahoo_train, logs["fast"], logs["root"] / f"fast-{malformed}",
                  "--malformed", malformed)
    assert sum(calls) > 50  # most queries took the vectorized path
    calls.clear()
    slow = _build(yahoo_train, logs["slow"], logs["root"] / f"slow-{malformed}",
                  "--malformed", malformed)
    assert not calls  # every query took the per-query path
    quarantine = [p for p in fast if p.startswith("quarantine/")]
    assert quarantine and {p: h for p, h in fast.items() if p not in quarantine} == {
        p: h for p, h in slow.items() if p not in quarantine}
    # the quarantine rows name their log's path (the two logs differ): the rest is equal
    tables = [phase_table(str(logs["root"] / f"{kind}-{malformed}"), "quarantine").to_pylist()
              for kind in ("fast", "slow")]
    assert sorted(tables[0], key=repr) == sorted(
        [{**row, "location": row["location"].replace(logs["slow"], logs["fast"])}
         for row in tables[1]], key=repr)


def test_partition_count_changes_no_byte(yahoo_train, logs, monkeypatch):
    monkeypatch.setattr(score_module, "JOIN_PARTITIONS", 1)
    one = _build(yahoo_train, logs["fast"], logs["root"] / "p1")
    monkeypatch.setattr(score_module, "JOIN_PARTITIONS", 7)
    seven = _build(yahoo_train, logs["fast"], logs["root"] / "p7")
    assert one == seven


def test_score_fast_permutations_is_score_from_log(yahoo_train):
    """The same table, bit for bit, on queries of one document count, every malformation."""
    from difficulty.generations import permutation_id_lists

    queries = _queries(yahoo_train)
    by_n: dict = {}
    for q in queries.values():
        by_n.setdefault(len(q["doc_ids"]), []).append(q)
    n, group = max(by_n.items(), key=lambda item: len(item[1]))
    rows = [r for r in _log({q["query_id"]: q for q in group}, 1) if r["query_id"] != "nope"]
    for malformed in ("fail", "repair"):
        cfg = ScoringConfig(reward=parse_reward("ndcg@10>=0.7"), malformed=malformed)
        table = pa.Table.from_pylist(group, schema=QUERY_SCHEMA)
        per_query = {q["query_id"]: [] for q in group}
        for r in rows:
            per_query[r["query_id"]].append({"query_id": r["query_id"],
                                             "rollout_id": r["rollout_id"],
                                             "generation": r["generation"]})
        lists = [sorted(per_query[q["query_id"]], key=lambda r: r["rollout_id"]) for q in group]
        keep = [i for i, x in enumerate(lists) if x]
        table = table.take(pa.array(keep))
        lists = [lists[i] for i in keep]
        expected = score_from_log(table, lists, "log", cfg)
        owner = np.repeat(np.arange(len(lists)), [len(x) for x in lists])
        counts, ids = permutation_id_lists(pa.array([r["generation"] for x in lists for r in x]))
        assert score_fast_permutations(table, owner, counts, ids, "log", cfg).equals(expected)
        assert n > 1


def test_the_log_is_shuffled_as_arrow_files_per_partition(logs, tmp_path):
    config = CurriculumConfig(rollouts=logs["fast"])
    out = list(score_module._rollout_rows((0, logs["fast"]), config, str(tmp_path)))
    keyed = [o for o in out if isinstance(o, tuple)]
    assert keyed and all(kind == score_module.TABLE for _, (kind, _) in keyed)
    parts = [p for p, _ in keyed]
    assert len(parts) == len(set(parts)) <= score_module.JOIN_PARTITIONS  # one read batch
    paths = [path for _, (_, path) in keyed]
    assert all(p.startswith(str(tmp_path / "_tmp" / "join")) for p in paths)
    tables = [read_spilled(path) for path in paths]
    for part, table in zip(parts, tables):
        assert {score_module.partition_of(q) for q in table.column("query_id").to_pylist()} == {
            part}


def test_the_join_spills_under_the_run_and_leaves_nothing(yahoo_train, logs, monkeypatch):
    """Both sides of the join go through files under the staging run's `_tmp/join/`; the
    published run holds no `_tmp/` and nothing its manifest does not list."""
    from curricula.staging import unlisted_files

    spilled = []
    real = score_module.spill_partition
    monkeypatch.setattr(score_module, "spill_partition",
                        lambda *a: spilled.append(real(*a)) or spilled[-1])
    out = logs["root"] / "spilled"
    _build(yahoo_train, logs["fast"], out, "--batch-size", "16")  # many reader batches
    names = [p.split("/_tmp/join/")[1] for p in spilled]
    assert {n.split("/")[1].split("-")[0] for n in names} == {"queries", "rollouts"}
    assert len(set(names)) == len(names)  # one file per (read batch, partition)
    # the featureless queries of a split are gathered (up to QUERY_SPILL_ROWS) before they are
    # spilled, not one file per reader batch and partition: one small split (201 queries in
    # batches of 16), one name
    assert len({n.split("/")[1] for n in names if "/queries-" in n}) == 1
    assert all(".staging-" in p for p in spilled)  # written inside the run being built
    assert not any(os.path.exists(p) for p in spilled)
    assert not (out / "_tmp").exists() and unlisted_files(str(out)) == []


def _featureless_rows(yahoo_train, queries: list[dict]) -> pa.Table:
    """`queries` (Yahoo rows) as `ReadForLogFn` hands them to the join: featureless, with their
    input position and location, no descriptor."""
    table = score_module._featureless(pa.Table.from_pylist(queries, schema=QUERY_SCHEMA))
    n = table.num_rows
    return (table.append_column("_position", pa.array([[0, 0, i] for i in range(n)],
                                                      pa.list_(pa.int64())))
            .append_column("_location", pa.array([f"{yahoo_train}:{i}" for i in range(n)]))
            .append_column("_descriptor", pa.nulls(n, pa.list_(pa.float32())))
            .append_column("_signature", pa.nulls(n, pa.string())))


def _partition(folder, table: pa.Table, rollouts: list[dict]) -> tuple:
    """A join element of one partition: featureless query rows and their rollouts, each side
    spilled under `folder` as `ReadForLogFn` and `_rollout_rows` do."""
    element = {"query": [(score_module.QUERIES, score_module.spill_partition(
        table, str(folder), 0, "queries-0"))], "rollouts": []}
    if rollouts:
        log = pa.Table.from_pylist(rollouts, schema=ROLLOUT_SCHEMA)
        element["rollouts"].append((score_module.TABLE, score_module.spill_partition(
            log, str(folder), 0, "rollouts-0")))
    return 0, element


def _split(out: list) -> tuple[list, list]:
    """(untagged tables, quarantine tables) of a DoFn's outputs."""
    tagged = [o for o in out if isinstance(o, TaggedOutput)]
    return ([o for o in out if not isinstance(o, TaggedOutput)],
            [o.value for o in tagged if o.tag == "quarantine"])


@pytest.mark.parametrize("policy", ["log", "none"])
def test_rollout_less_queries_of_a_partition_come_out_as_one_table(yahoo_train, tmp_path,
                                                                   policy):
    """Many queries without rollouts (or all pending, `--policy none`): one quarantine (or
    pending) table for the partition, whose rows are those `_query` gives each query alone
    (from its row dicts, one element per query)."""
    queries = list(_queries(yahoo_train).values())[:60]
    rollouts = [{"query_id": q["query_id"], "rollout_id": f"{q['query_id']}-{s}",
                 "generation": " > ".join(f"[{k + 1}]" for k in range(len(q["doc_ids"])))}
                for q in queries[:3] for s in range(2)]
    log = _write(tmp_path / "log.jsonl", rollouts)
    fn = score_module._ScorePartitionFn(CurriculumConfig(rollouts=log, policy=policy))
    table = _featureless_rows(yahoo_train, queries)
    fn.start_bundle()
    small, quarantine = _split(list(fn.process(_partition(tmp_path, table, rollouts))))
    alone_small, alone_quarantine = [], []
    for row in table.to_pylist():
        mine = [{f.name: r.get(f.name) for f in ROLLOUT_SCHEMA} for r in rollouts
                if r["query_id"] == row["query_id"]]
        fn.start_bundle()
        out = list(fn._query(row["query_id"], {"query": [score_module._occurrence(row)],
                                               "rollouts": mine}))
        got = _split(out + list(fn._flush_unscored()))
        alone_small += got[0]
        alone_quarantine += got[1]
    if policy == "none":
        assert not quarantine and len(small) == 1 and small[0].num_rows == 60
        expected, batched = alone_small, small
    else:
        assert len(quarantine) == 1 and quarantine[0].num_rows == 57
        expected, batched = alone_quarantine, quarantine
    assert len(expected) == (60 if policy == "none" else 57)  # alone: one element each
    assert _sorted(pa.concat_tables(batched)).equals(_sorted(pa.concat_tables(expected)))


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("query_id", "ascending")])
