"""The reward's NDCG/recall ideal: `window` (the candidates' labels) or `qrels` (every judged
document's), against pytrec_eval, through the text reader, scoring and the exported reward."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from data_contracts.readers.text import TextOptions, read_text_queries
from data_contracts.schema import QUERY_SCHEMA, judged_labels_of
from difficulty.rewards import (evaluate, judged_matrix, ndcg_of_rankings, ndcg_of_run,
                                parse_reward, recall_of_rankings, trec_order)
from difficulty.scoring import ScoringConfig, score_from_log, score_with_policy
from exports.rewards import compute_score, ground_truth_record

pytrec_eval = pytest.importorskip("pytrec_eval", reason="pytrec-eval-terrier not installed")

DEPTH = 20  # the window: a listwise reranker's first-stage top 20


@pytest.mark.parametrize("text,kind,ideal,name", [
    ("ndcg@10>=0.7", "ndcg", "window", "ndcg@10>=0.7"),
    ("ndcg@10>=0.7,ideal=window", "ndcg", "window", "ndcg@10>=0.7"),
    ("ndcg@10>=0.7,ideal=qrels", "ndcg", "qrels", "ndcg@10>=0.7,ideal=qrels"),
    ("ndcg@5>=0.5,ideal=qrels,gain=exp", "ndcg", "qrels", "ndcg@5>=0.5,gain=exp,ideal=qrels"),
    ("ndcg@10+0.2*recall@10+0.1*rbo>=0.8,ideal=qrels", "composite", "qrels",
     "ndcg@10+0.2*recall@10+0.1*rbo>=0.8,ideal=qrels"),
    ("ndcg@10 + 0.1*rbo >= 0.8, p=0.8, ideal=qrels", "composite", "qrels",
     "ndcg@10+0.1*rbo>=0.8,p=0.8,ideal=qrels"),
])
def test_the_spec_names_its_ideal(text, kind, ideal, name):
    spec = parse_reward(text)
    assert (spec.kind, spec.ideal, spec.name) == (kind, ideal, name)
    assert parse_reward(spec.name) == spec


@pytest.mark.parametrize("text", ["ndcg@10>=0.7,ideal=judged",
                                  "ndcg@10>=0.7,ideal=qrels,ideal=qrels", "hit@1,ideal=qrels", "log,ideal=window",
                                  "ndcg@10+rbo>=0.5,ideal=all", "ndcg@10>=0.7,gain=exp,gain=exp"])
def test_bad_ideal_options_are_refused(text):
    with pytest.raises(ValueError):
        parse_reward(text)


def _runs_with_relevant_outside_the_window(seed: int, n_queries: int = 25):
    """Runs of 40 ranked documents whose qrels judge documents past rank DEPTH and documents the
    run never retrieved, many of them relevant."""
    rng = np.random.default_rng(seed)
    run, qrels = {}, {}
    for q in range(n_queries):
        ranked = [f"d{j:03d}" for j in range(40)]
        run[f"q{q}"] = {d: float(40 - j + np.round(rng.normal(), 1)) for j, d in enumerate(ranked)}
        judged = list(rng.choice(ranked, size=15, replace=False)) + [f"missed{j}"
                                                                    for j in range(5)]
        qrels[f"q{q}"] = {str(d): int(rng.integers(0, 4)) for d in judged}
    return run, qrels


def _window(run: dict) -> dict:
    return {q: {d: docs[d] for d in trec_order(docs)[:DEPTH]} for q, docs in run.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_qrels_ideal_equals_pytrec_eval_ndcg_cut_and_window_its_window_qrels(seed):
    run, qrels = _runs_with_relevant_outside_the_window(seed)
    window = _window(run)
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(window)
    ours = ndcg_of_run(run, qrels, 10, ideal="qrels", depth=DEPTH)
    assert set(ours) == set(ref)
    for qid, value in ours.items():
        assert value == pytest.approx(ref[qid]["ndcg_cut_10"], abs=1e-6), qid
    window_qrels = {q: {d: g for d, g in judged.items() if d in window[q]}
                    for q, judged in qrels.items()}
    ref_w = pytrec_eval.RelevanceEvaluator(window_qrels, {"ndcg_cut.10"}).evaluate(window)
    ours_w = ndcg_of_run(run, qrels, 10, ideal="window", depth=DEPTH)
    for qid, value in ours_w.items():
        want = ref_w[qid]["ndcg_cut_10"] if qid in ref_w else 0.0
        assert value == pytest.approx(want, abs=1e-6), qid
    # the two ideals differ on these runs: the test compares two different numbers
    assert sum(abs(ours[q] - ours_w[q]) > 1e-3 for q in ours) > len(ours) // 2
    assert all(ours[q] <= ours_w[q] + 1e-12 for q in ours)


def test_qrels_recall_equals_pytrec_eval_recall():
    run, qrels = _runs_with_relevant_outside_the_window(3)
    window = _window(run)
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"recall.10"}).evaluate(window)
    for qid, docs in window.items():
        ranked = trec_order(docs)
        labels = np.array([[float(qrels[qid].get(d, 0)) for d in ranked]])
        mask = np.ones_like(labels, bool)
        judged = judged_matrix([judged_labels_of(qrels[qid])])
        got = recall_of_rankings(np.arange(len(ranked))[None, None, :], labels, mask, 10,
                                 judged=judged)[0, 0]
        assert got == pytest.approx(ref[qid]["recall_10"], abs=1e-9), qid


def test_evaluate_reads_judged_only_for_ideal_qrels():
    labels = np.array([[0.0, 1.0, 0.0]])
    mask = np.ones_like(labels, bool)
    judged = np.array([[3.0, 1.0]])  # a grade-3 document outside the window
    ideal = np.array([[[1, 0, 2]]])
    window_reward, window_pass = evaluate(parse_reward("ndcg@3>=0.9"), ideal, labels, mask,
                                          judged=judged)
    qrels_reward, qrels_pass = evaluate(parse_reward("ndcg@3>=0.9,ideal=qrels"), ideal, labels,
                                        mask, judged=judged)
    assert window_reward[0, 0] == pytest.approx(1.0) and window_pass[0, 0]
    assert qrels_reward[0, 0] == pytest.approx(1.0 / (3.0 + 1.0 / np.log2(3)))
    assert not qrels_pass[0, 0]
    composite = parse_reward("ndcg@3+recall@3>=1.5,ideal=qrels")
    value, _ = evaluate(composite, ideal, labels, mask, judged=judged)
    assert value[0, 0] == pytest.approx(qrels_reward[0, 0] + 0.5)
    # no judged_labels (a feature input): qrels is the window's ideal
    same, _ = evaluate(parse_reward("ndcg@3>=0.9,ideal=qrels"), ideal, labels, mask)
    assert same[0, 0] == pytest.approx(1.0)


def test_an_ideal_is_never_below_the_windows():
    """judged_labels that leave a candidate out still keep NDCG within [0, 1]."""
    labels = np.array([[2.0, 2.0, 1.0]])
    mask = np.ones_like(labels, bool)
    value = ndcg_of_rankings(np.array([[[0, 1, 2]]]), labels, mask, 3,
                             judged=np.array([[2.0]]))
    assert value[0, 0] == pytest.approx(1.0)


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_text_reader_fills_judged_labels_and_the_pipeline_scores_with_them(tmp_path):
    """Judged documents past the candidate depth reach the ideal: scoring and the exported
    reward give pytrec_eval's ndcg_cut on the window."""
    run = _write(tmp_path / "run.trec", [f"q1 Q0 d{j} {j + 1} {10 - j} bm25" for j in range(6)]
                 + [f"q2 Q0 e{j} {j + 1} {10 - j} bm25" for j in range(6)])
    qrels = _write(tmp_path / "qrels.txt", ["q1 0 d1 1", "q1 0 d5 2", "q1 0 x9 3", "q1 0 d0 0",
                                            "q2 0 e0 1"])
    options = TextOptions(qrels=qrels, depth=4)
    table = pa.concat_tables(b.queries for b in read_text_queries(run, "trec", options))
    assert table.schema.equals(QUERY_SCHEMA)
    rows = {r["query_id"]: r for r in table.to_pylist()}
    assert rows["q1"]["judged_labels"] == [3.0, 2.0, 1.0]  # d5 (rank 6) and x9 (unretrieved)
    assert rows["q1"]["labels"] == [0.0, 1.0, 0.0, 0.0]
    assert rows["q2"]["judged_labels"] == [1.0]
    window = {"q1": {"d1": 4.0, "d0": 3.0, "d2": 2.0, "d3": 1.0},  # the generation's order
              "q2": {f"e{j}": 10.0 - j for j in range(4)}}
    qrels_dict = {"q1": {"d1": 1, "d5": 2, "x9": 3, "d0": 0}, "q2": {"e0": 1}}
    ref = pytrec_eval.RelevanceEvaluator(qrels_dict, {"ndcg_cut.10"}).evaluate(window)
    generation = "<answer>[2, 1, 3, 4]</answer>"  # d1 first
    for spec, want in (("ndcg@10>=0.5,ideal=qrels", ref["q1"]["ndcg_cut_10"]),
                       ("ndcg@10>=0.5", 1.0)):
        cfg = ScoringConfig(reward=parse_reward(spec))
        q1 = table.filter(pa.compute.equal(table.column("query_id"), "q1"))
        scored = score_from_log(q1, [[{"query_id": "q1", "rollout_id": "r",
                                       "generation": generation}]], "llm", cfg).to_pylist()[0]
        assert scored["reward_mean"] == pytest.approx(want, abs=1e-6)
        truth = ground_truth_record(rows["q1"]["doc_ids"], rows["q1"]["labels"], None, spec,
                                    "permutation", "fail",
                                    judged_labels=(rows["q1"]["judged_labels"]
                                                   if "qrels" in spec else None))
        assert compute_score("s", generation, json.dumps(truth)) == pytest.approx(want, abs=1e-6)
    assert ref["q1"]["ndcg_cut_10"] < 0.5  # the window holds little of the judged gain


def test_policy_scoring_passes_fewer_queries_under_the_qrels_ideal(tmp_path):
    run = _write(tmp_path / "run.trec", [f"q{q} Q0 d{j} {j + 1} {10 - j} bm25"
                                         for q in range(3) for j in range(8)])
    qrels = _write(tmp_path / "qrels.txt", [f"q{q} 0 d{j} 1" for q in range(3) for j in (0, 6)])
    table = pa.concat_tables(b.queries for b in read_text_queries(
        run, "trec", TextOptions(qrels=qrels, depth=5)))
    from difficulty.policy import PolicyScorer, PolicySpec

    scorer = PolicyScorer(PolicySpec("base"))
    out = {}
    for ideal in ("window", "qrels"):
        cfg = ScoringConfig(reward=parse_reward(f"ndcg@10>=0.99,ideal={ideal}"))
        scored, _ = score_with_policy(table, scorer, cfg)
        out[ideal] = scored.column("reward_mean").to_pylist()
    assert all(w > q for w, q in zip(out["window"], out["qrels"]))
