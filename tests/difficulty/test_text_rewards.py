"""Composite rewards (NDCG + recall + RBO) and NDCG against pytrec_eval on TREC runs."""
from __future__ import annotations

import numpy as np
import pytest

from difficulty.rewards import (evaluate, ndcg_of_run, parse_reward, rbo_of_rankings,
                                recall_of_rankings, reference_order, trec_order)

pytrec_eval = pytest.importorskip("pytrec_eval", reason="pytrec-eval-terrier not installed")


def _random_trec(seed: int, n_queries: int = 30, ties: bool = True):
    rng = np.random.default_rng(seed)
    run, qrels = {}, {}
    for q in range(n_queries):
        docs = [f"d{j:03d}" for j in range(int(rng.integers(5, 60)))]
        ranked = rng.choice(docs, size=max(1, int(len(docs) * 0.8)), replace=False)
        scale = 1 if ties else 6  # one decimal: many tied scores, as real runs have
        run[f"q{q}"] = {d: float(np.round(rng.normal(), scale)) for d in ranked}
        judged = rng.choice(docs, size=int(rng.integers(1, len(docs) + 1)), replace=False)
        qrels[f"q{q}"] = {d: int(rng.integers(0, 4)) for d in judged}
    run["unjudged"] = {"x": 1.0}
    return run, qrels


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 10, 20, 100])
def test_ndcg_of_run_equals_pytrec_eval(seed, k):
    run, qrels = _random_trec(seed)
    ref = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{k}"}).evaluate(run)
    ours = ndcg_of_run(run, qrels, k)
    assert set(ours) == set(ref)
    for qid, value in ours.items():
        assert value == pytest.approx(ref[qid][f"ndcg_cut_{k}"], abs=1e-6), qid


def test_trec_order_breaks_ties_by_docid_descending():
    assert trec_order({"a": 1.0, "b": 1.0, "c": 2.0}) == ["c", "b", "a"]


def _rbo_reference(ranked, reference, p, depth):
    """RBO_ext by its definition (Webber et al. 2010, eq. 32), one pair of lists."""
    k = min(depth, len(reference))
    x = [len(set(ranked[:d]) & set(reference[:d])) for d in range(1, k + 1)]
    return x[-1] / k * p ** k + (1 - p) / p * sum(x[d - 1] / d * p ** d for d in range(1, k + 1))


@pytest.mark.parametrize("depth", [1, 3, 10, 100])
def test_rbo_matches_definition(depth):
    rng = np.random.default_rng(3)
    n = 9
    mask = np.ones((4, n), bool)
    mask[2, 6:] = False  # a query with 6 documents (padded)
    labels = rng.integers(0, 4, (4, n)).astype(float)
    ref = reference_order(labels, mask)
    rankings = np.stack([np.stack([np.concatenate([rng.permutation(int(m.sum())),
                                                   np.arange(int(m.sum()), n)])
                                   for _ in range(3)]) for m in mask])
    got = rbo_of_rankings(rankings, ref, mask, p=0.8, depth=depth)
    for b in range(4):
        nb = int(mask[b].sum())
        for r in range(3):
            want = _rbo_reference(list(rankings[b, r, :nb]), list(ref[b, :nb]), 0.8, depth)
            assert got[b, r] == pytest.approx(want, abs=1e-12)
    assert np.allclose(rbo_of_rankings(ref[:, None, :], ref, mask), 1.0)


def test_recall_counts_relevant_in_top_k():
    labels = np.array([[0.0, 2.0, 0.0, 1.0, 0.0]])
    mask = np.ones_like(labels, bool)
    ranking = np.array([[[1, 0, 2, 3, 4], [3, 1, 0, 2, 4]]])
    assert recall_of_rankings(ranking, labels, mask, 2).tolist() == [[0.5, 1.0]]
    assert recall_of_rankings(ranking, np.zeros_like(labels), mask, 2).tolist() == [[0.0, 0.0]]


def test_composite_is_the_weighted_sum_and_passes_at_tau():
    spec = parse_reward("ndcg@3+0.2*recall@3+0.1*rbo>=1.3")
    assert spec.kind == "composite" and parse_reward(spec.name) == spec
    labels = np.array([[3.0, 0.0, 1.0, 2.0]])
    mask = np.ones_like(labels, bool)
    ideal = reference_order(labels, mask)[:, None, :]
    worse = np.array([[[1, 2, 0, 3]]])
    reward, passed = evaluate(spec, np.concatenate([ideal, worse], 1), labels, mask)
    assert reward[0, 0] == pytest.approx(1.3) and passed[0, 0]
    assert reward[0, 1] < 1.3 and not passed[0, 1]
    # the teacher's order as the RBO reference: the worse ranking is the teacher's here
    teacher = worse[:, 0, :]
    reward_t, _ = evaluate(spec, worse, labels, mask, reference=teacher)
    assert reward_t[0, 0] == pytest.approx(reward[0, 1] - 0.1 * rbo_of_rankings(
        worse, ideal[:, 0, :], mask)[0, 0] + 0.1)


def test_composite_without_relevant_documents_never_passes():
    spec = parse_reward("ndcg@10+0.1*rbo>=0")
    labels = np.zeros((1, 3))
    reward, passed = evaluate(spec, np.array([[[0, 1, 2]]]), labels, np.ones((1, 3), bool))
    assert not passed.any()


@pytest.mark.parametrize("text", ["ndcg+recall@10>=0.5", "2*ndcg@10>=3", "ndcg@10+rbo>=0.5,p=1",
                                  "ndcg@10+mrr@10>=0.5", "ndcg@10+rbo>=0.5,q=2"])
def test_composite_rejects(text):
    with pytest.raises(ValueError):
        parse_reward(text)
