"""End to end: a text run with `--reward ...,ideal=qrels` over a candidate window that misses
relevant passages, from an LLM rollout log holding the shapes rerankers write and adversarial
outputs (ids of 5,000 digits, `<answer>` 5,000 times): the build counts those as malformed
rollouts, the manifest and export.json carry the ideal, and the exported reward equals
pytrec_eval's ndcg_cut_10 over the full qrels."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from exports.build import export_run
from exports.rewards import compute_score
from pipelines.build_curriculum import run
from pipelines.config import CurriculumConfig
from tests.text_fixture import make_text_fixture

pytestmark = pytest.mark.slow
pytrec_eval = pytest.importorskip("pytrec_eval", reason="pytrec-eval-terrier not installed")

DEPTH = 5
GENERATIONS = {"list": "<answer>[2, 1, 3, 4, 5]</answer>", "bare": "2 > 1 > 3 > 4 > 5",
               "huge": "[" + "7" * 5000 + "] > [1] > [2] > [3] > [4]", "tags": "<answer>" * 5000}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("ideal")
    fx = make_text_fixture(str(root / "fx"))
    rollouts = root / "rollouts.jsonl"
    with open(rollouts, "w") as f:
        for qid in fx["data"]["run"]:
            for name, text in GENERATIONS.items():
                f.write(json.dumps({"query_id": qid, "rollout_id": name, "generation": text})
                        + "\n")
    result = run(CurriculumConfig(inputs=[fx["beir"]], input_format="beir",
                                  candidates=fx["run"], candidate_depth=DEPTH,
                                  rollouts=str(rollouts), reward="ndcg@10>=0.5,ideal=qrels",
                                  k=8, k_max=16, out=str(root / "run")))
    return fx, result, root


def test_adversarial_rollouts_are_counted_malformed_not_a_failed_build(built):
    fx, result, _ = built
    counts = result.manifest["counts"]
    n = len(fx["data"]["run"])
    assert counts["scored"] == n and counts["quarantined"] == 0
    assert counts["rollouts_malformed"] == 2 * n
    assert result.manifest["malformed_reasons"] == {"id_out_of_range": n, "no_ranking": n}
    assert result.manifest["config"]["reward"] == "ndcg@10>=0.5,ideal=qrels"


def test_the_exported_reward_equals_pytrec_eval_over_the_full_qrels(built):
    fx, result, root = built
    record = export_run(result.out, "verl", str(root / "verl"), output="value")  # graded
    assert record["reward_ideal"] == "qrels"
    qrels_all = fx["data"]["qrels"]
    outside = 0
    for entry in record["files"]:
        if entry["phase"] != "rl":  # verl's SFT rows hold messages, not a reward's ground truth
            continue
        for row in pq.read_table(str(root / "verl" / entry["path"])).to_pylist():
            truth = json.loads(row["reward_model"]["ground_truth"])
            qid, docs = row["extra_info"]["query_id"], truth["doc_ids"]
            assert len(docs) == DEPTH and truth["judged_labels"] is not None
            qrels = {qid: {d: int(g) for d, g in qrels_all[qid].items()}}
            outside += any(g > 0 and d not in docs for d, g in qrels[qid].items())
            order = [1, 0, 2, 3, 4]
            ranked = {qid: {docs[j]: float(DEPTH - r) for r, j in enumerate(order)}}
            want = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(ranked)
            for name in ("list", "bare"):
                got = compute_score("s", GENERATIONS[name], row["reward_model"]["ground_truth"])
                assert got == pytest.approx(want[qid]["ndcg_cut_10"], abs=1e-6), (qid, name)
            for name in ("huge", "tags"):
                assert compute_score("s", GENERATIONS[name],
                                     row["reward_model"]["ground_truth"]) == 0.0
    assert outside > 0  # some queries have relevant passages the window missed
