"""An outside policy's rollout log (--rollouts): bad rows quarantined by reason, difficulty from the log."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401
import pytest

from data_contracts.readers import read_queries
from data_contracts.reasons import Reason
from pipelines.build_curriculum import main
from tests.pipelines.helpers import phase_table

pytestmark = pytest.mark.slow


def _ndcg(labels, order, k=10) -> float:
    gains = np.asarray(labels, float)
    dcg = sum(gains[d] / np.log2(i + 2) for i, d in enumerate(order[:k]))
    ideal = sorted(gains, reverse=True)
    idcg = sum(g / np.log2(i + 2) for i, g in enumerate(ideal[:k]))
    return dcg / idcg if idcg else 0.0


@pytest.fixture(scope="module")
def log_run(yahoo_train, tmp_path_factory):
    root = tmp_path_factory.mktemp("rollouts")
    queries = {}
    for batch in read_queries(yahoo_train):
        for row in batch.queries.select(["query_id", "doc_ids", "labels"]).to_pylist():
            queries[row["query_id"]] = row
    usable = [q for q, r in queries.items() if len(r["doc_ids"]) >= 5 and len(set(r["labels"])) > 2]
    best, worst, flags, rewards = usable[:4]
    docs = {q: queries[q]["doc_ids"] for q in (best, worst)}
    ideal = [docs[best][j] for j in np.argsort(-np.array(queries[best]["labels"]), kind="stable")]
    reverse_idx = np.argsort(np.array(queries[worst]["labels"]), kind="stable")
    reverse = [docs[worst][j] for j in reverse_idx]
    assert _ndcg(queries[worst]["labels"], list(reverse_idx)) < 0.7  # fails the default reward

    rows = []
    rows += [{"query_id": best, "rollout_id": f"b{i}", "ranking": ideal, "policy_id": "ext"}
             for i in range(6)]
    rows += [{"query_id": worst, "rollout_id": f"w{i}", "ranking": reverse, "policy_id": "ext"}
             for i in range(5)]
    rows += [{"query_id": flags, "rollout_id": f"f{i}", "passed": p, "policy_id": "ext"}
             for i, p in enumerate([True, False, True, True, False, True, True, False])]
    rows += [{"query_id": rewards, "rollout_id": f"r{i}", "reward": r, "policy_id": "ext"}
             for i, r in enumerate([0.9, 0.1, 0.8, 0.2, 0.95, 0.05])]
    bad = [
        {"query_id": "no-such-query", "rollout_id": "x1", "passed": True},
        {"query_id": best, "rollout_id": "x2", "ranking": [docs[best][0], "no-such-doc"]},
        {"query_id": best, "rollout_id": "x3", "ranking": [docs[best][0], docs[best][0]]},
        {"query_id": best, "rollout_id": "b0", "ranking": ideal[::-1]},  # repeats an id
        {"query_id": worst, "rollout_id": "x4"},  # no ranking, reward or passed
    ]
    path = root / "rollouts.jsonl"
    lines = [json.dumps(r) for r in rows + bad] + ["{this is not json"]
    order = np.random.default_rng(0).permutation(len(lines))  # the log's order must not matter
    path.write_text("\n".join(lines[i] for i in order) + "\n")
    out = root / "run"
    assert main(["--input", yahoo_train, "--rollouts", str(path), "--out", str(out)]) == 0
    return {"out": str(out), "best": best, "worst": worst, "flags": flags, "rewards": rewards,
            "n_queries": len(queries), "path": str(path)}


def test_bad_rollouts_are_quarantined_with_their_reasons(log_run):
    quarantine = phase_table(log_run["out"], "quarantine")
    unlogged = quarantine.filter(pa.compute.equal(quarantine.column("record_kind"), "query"))
    assert set(unlogged.column("reason").to_pylist()) == {Reason.NO_ROLLOUTS}
    quarantine = quarantine.filter(pa.compute.equal(quarantine.column("record_kind"), "rollout"))
    reasons = Counter(quarantine.column("reason").to_pylist())
    assert reasons == {Reason.UNKNOWN_QUERY: 1, Reason.UNKNOWN_DOCUMENT: 1,
                       Reason.REPEATED_DOCUMENT: 1, Reason.DUPLICATE_ROLLOUT_ID: 1,
                       Reason.ROLLOUT_WITHOUT_OUTCOME: 1, Reason.UNPARSEABLE_RECORD: 1}
    by_reason = {r["reason"]: r for r in quarantine.to_pylist()}
    assert by_reason[Reason.UNKNOWN_QUERY]["query_id"] == "no-such-query"
    assert by_reason[Reason.UNKNOWN_DOCUMENT]["query_id"] == log_run["best"]
    assert "no-such-doc" in by_reason[Reason.UNKNOWN_DOCUMENT]["detail"]
    assert by_reason[Reason.DUPLICATE_ROLLOUT_ID]["query_id"] == log_run["best"]
    assert by_reason[Reason.UNPARSEABLE_RECORD]["location"].startswith(log_run["path"] + ":")


def test_difficulty_comes_from_the_log(log_run):
    difficulty = {r["query_id"]: r for r in phase_table(log_run["out"], "difficulty").to_pylist()}
    assert len(difficulty) == 4  # only queries the log has rollouts for are scored
    expected = {log_run["best"]: (6, 6), log_run["worst"]: (0, 5), log_run["flags"]: (5, 8),
                log_run["rewards"]: (3, 6)}  # rewards: passed when >= 0.5
    for qid, (successes, trials) in expected.items():
        row = difficulty[qid]
        assert (row["successes"], row["trials"]) == (successes, trials), (qid, row)
        assert row["policy_id"] == "ext"
        assert row["pass_rate"] == pytest.approx((successes + 1) / (trials + 2))
        assert row["rule"].endswith("outside rollouts")
    rewards = difficulty[log_run["rewards"]]
    assert rewards["reward_mean"] == pytest.approx(np.mean([0.9, 0.1, 0.8, 0.2, 0.95, 0.05]))


def test_counts_reconcile_and_unlogged_queries_are_quarantined(log_run):
    from data_contracts.manifest import load_manifest

    manifest = load_manifest(log_run["out"])
    c = manifest["counts"]
    assert c["read"] == log_run["n_queries"] == c["scored"] + c["quarantined"]
    assert c["quarantined"] == log_run["n_queries"] - 4 and c["rollouts_quarantined"] == 6
    assert c["scored"] == 4 == c["imitation"] + c["rl"] + c["dropped"]
    assert manifest["quarantine_reasons"][Reason.NO_ROLLOUTS] == log_run["n_queries"] - 4
    assert manifest["inputs"][-1]["format"] == "rollouts"
