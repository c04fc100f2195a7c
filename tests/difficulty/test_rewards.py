"""NDCG and the pass rule against reference implementations.

References: `sklearn.metrics.ndcg_score` (linear gain, log2 discount) fed a strictly decreasing
score per ranking position, so it never breaks ties; and a small hand-written trec_eval-style
NDCG (`reference_ndcg`) for the exponential gain 2^rel - 1 and for partial rankings.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from difficulty.rewards import (RewardSpec, evaluate, ideal_dcg, ndcg_of_rankings,
                                ndcg_of_scores, parse_reward)

CUTOFFS = (1, 2, 3, 5, 10, 40)  # smaller and larger than the queries' document counts


def reference_ndcg(ranked_labels, all_labels, k: int, gain: str = "linear") -> float:
    """trec_eval ndcg_cut style NDCG@k of one ranking.

    Args:
      ranked_labels: labels of the ranked documents, best first (may list only some of them).
      all_labels: labels of every document of the query (for the ideal DCG).
      k: cutoff.
      gain: `linear` (the label) or `exp` (2^label - 1).

    Returns:
      DCG@k / ideal DCG@k, or 0 when the ideal DCG is 0.
    """
    def g(label: float) -> float:
        return 2.0 ** float(label) - 1.0 if gain == "exp" else float(label)

    dcg = sum(g(lab) / math.log2(rank + 2) for rank, lab in enumerate(list(ranked_labels)[:k]))
    ideal = sorted(all_labels, reverse=True)[:k]
    idcg = sum(g(lab) / math.log2(rank + 2) for rank, lab in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def random_batch(rng: np.random.Generator, batch: int, max_docs: int, rankings: int,
                 min_docs: int = 1):
    """Padded random queries with graded labels 0..4 and random full rankings.

    Returns:
      (rankings [B, R, D] with padded documents last, labels [B, D], mask [B, D], n_docs [B]).
    """
    n_docs = rng.integers(min_docs, max_docs + 1, size=batch)
    d = int(n_docs.max())
    mask = np.arange(d)[None, :] < n_docs[:, None]
    labels = np.where(mask, rng.integers(0, 5, size=(batch, d)), 0).astype(np.float32)
    zero = rng.random(batch) < 0.15  # some queries without relevant documents
    labels[zero] = 0.0
    ranks = np.zeros((batch, rankings, d), dtype=np.int64)
    for i, n in enumerate(n_docs):
        for r in range(rankings):
            ranks[i, r] = np.concatenate([rng.permutation(n), np.arange(n, d)])
    return ranks, labels, mask, n_docs


@pytest.mark.parametrize("k", CUTOFFS)
def test_linear_ndcg_matches_sklearn(k):
    rng = np.random.default_rng(k)
    ranks, labels, mask, n_docs = random_batch(rng, 60, 12, 4, min_docs=2)
    got = ndcg_of_rankings(ranks, labels, mask, k)
    assert got.shape == (60, 4) and got.dtype == np.float64
    for i, n in enumerate(n_docs):
        for r in range(ranks.shape[1]):
            y_score = np.empty(n)
            y_score[ranks[i, r, :n]] = np.arange(n, 0, -1)  # strictly decreasing by position
            want = ndcg_score(labels[i:i + 1, :n], y_score[None, :], k=k)
            assert got[i, r] == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("k", CUTOFFS)
@pytest.mark.parametrize("gain", ["linear", "exp"])
def test_ndcg_matches_trec_style_reference(k, gain):
    rng = np.random.default_rng(100 + k)
    ranks, labels, mask, n_docs = random_batch(rng, 60, 15, 3)  # includes single documents
    got = ndcg_of_rankings(ranks, labels, mask, k, gain)
    for i, n in enumerate(n_docs):
        for r in range(ranks.shape[1]):
            want = reference_ndcg(labels[i, ranks[i, r, :n]], labels[i, :n], k, gain)
            assert got[i, r] == pytest.approx(want, abs=1e-6)


def test_exp_gain_differs_from_linear():
    labels = np.array([[4.0, 1.0, 0.0]], dtype=np.float32)
    mask = np.ones((1, 3), dtype=bool)
    ranking = np.array([[[1, 0, 2]]])
    lin = ndcg_of_rankings(ranking, labels, mask, 3, "linear")[0, 0]
    exp = ndcg_of_rankings(ranking, labels, mask, 3, "exp")[0, 0]
    assert lin == pytest.approx((1 + 4 / math.log2(3)) / (4 + 1 / math.log2(3)), abs=1e-12)
    assert exp == pytest.approx((1 + 15 / math.log2(3)) / (15 + 1 / math.log2(3)), abs=1e-12)


@pytest.mark.parametrize("k", CUTOFFS)
def test_ndcg_of_scores_matches_sklearn(k):
    rng = np.random.default_rng(200 + k)
    _, labels, mask, n_docs = random_batch(rng, 50, 12, 1, min_docs=2)
    scores = rng.normal(size=labels.shape).astype(np.float32)  # continuous: no ties
    scores[~mask] = 1e6  # padded scores must not matter
    got = ndcg_of_scores(scores, labels, mask, k)
    for i, n in enumerate(n_docs):
        want = ndcg_score(labels[i:i + 1, :n], scores[i:i + 1, :n], k=k)
        assert got[i] == pytest.approx(want, abs=1e-6)


def test_ndcg_of_scores_ties_keep_input_order():
    labels = np.array([[0.0, 2.0, 1.0, 3.0]], dtype=np.float32)
    mask = np.ones((1, 4), dtype=bool)
    scores = np.zeros((1, 4), dtype=np.float32)  # all tied: ranking is 0, 1, 2, 3
    want = reference_ndcg([0.0, 2.0, 1.0, 3.0], labels[0], 4)
    assert ndcg_of_scores(scores, labels, mask, 4)[0] == pytest.approx(want, abs=1e-12)


def test_all_zero_labels_give_zero_and_never_pass():
    labels = np.zeros((2, 5), dtype=np.float32)
    mask = np.array([[True] * 5, [True] * 3 + [False] * 2])
    ranks = np.tile(np.arange(5), (2, 4, 1))
    for gain in ("linear", "exp"):
        assert np.all(ideal_dcg(labels, mask, 10, gain) == 0.0)
        assert np.all(ndcg_of_rankings(ranks, labels, mask, 10, gain) == 0.0)
    assert np.all(ndcg_of_scores(np.ones((2, 5)), labels, mask, 10) == 0.0)
    for tau in (0.0, 0.5, 1.0):  # not even at TAU = 0
        reward, passed = evaluate(RewardSpec("ndcg", k=10, tau=tau), ranks, labels, mask)
        assert np.all(reward == 0.0) and not passed.any()


@pytest.mark.parametrize("gain", ["linear", "exp"])
def test_partial_rankings_count_missing_documents_as_no_gain(gain):
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        d = n + int(rng.integers(0, 3))  # some padding
        labels = np.zeros((1, d), dtype=np.float32)
        labels[0, :n] = rng.integers(0, 5, size=n)
        mask = np.arange(d)[None, :] < n
        listed = rng.permutation(n)[: int(rng.integers(0, n + 1))]
        ranking = np.zeros((1, 1, d), dtype=np.int64)
        valid = np.zeros((1, 1, d), dtype=bool)
        ranking[0, 0, :len(listed)] = listed
        valid[0, 0, :len(listed)] = True
        k = int(rng.choice(CUTOFFS))
        got = ndcg_of_rankings(ranking, labels, mask, k, gain, valid)[0, 0]
        want = reference_ndcg(labels[0, listed], labels[0, :n], k, gain)
        assert got == pytest.approx(want, abs=1e-9)
        # the same documents first in a full ranking can only score at least as much
        rest = np.setdiff1d(np.arange(n), listed)
        full = np.concatenate([listed, rest, np.arange(n, d)])[None, None, :]
        assert ndcg_of_rankings(full, labels, mask, k, gain)[0, 0] >= got - 1e-12


def test_ideal_ranking_scores_one_and_threshold_passes_at_equality():
    labels = np.array([[3.0, 0.0, 2.0, 1.0]], dtype=np.float32)
    mask = np.ones((1, 4), dtype=bool)
    ideal = np.array([[[0, 2, 3, 1]]])
    worse = np.array([[[2, 0, 3, 1]]])
    reward, passed = evaluate(parse_reward("ndcg@3>=1"), np.concatenate([ideal, worse], 1),
                              labels, mask)
    assert reward[0, 0] == pytest.approx(1.0) and passed.tolist() == [[True, False]]
    value = reward[0, 1]
    _, at_tau = evaluate(RewardSpec("ndcg", k=3, tau=float(value)), worse, labels, mask)
    assert at_tau.all()


def test_hit_at_1():
    labels = np.array([[0.0, 2.0, 0.0]], dtype=np.float32)
    mask = np.ones((1, 3), dtype=bool)
    ranks = np.array([[[1, 0, 2], [0, 1, 2], [2, 1, 0]]])
    reward, passed = evaluate(parse_reward("hit@1"), ranks, labels, mask)
    assert passed.tolist() == [[True, False, False]] and reward.tolist() == [[1.0, 0.0, 0.0]]


@pytest.mark.parametrize("text,name", [("ndcg@10>=0.7", "ndcg@10>=0.7"),
                                       (" ndcg@5 >= 0.5, gain=exp", "ndcg@5>=0.5,gain=exp"),
                                       ("hit@1", "hit@1"), ("log", "log")])
def test_parse_reward_round_trip(text, name):
    spec = parse_reward(text)
    assert spec.name == name and parse_reward(spec.name) == spec


@pytest.mark.parametrize("text", ["ndcg@0>=0.5", "ndcg@10>=1.5", "mrr", "ndcg@10", ""])
def test_parse_reward_rejects(text):
    with pytest.raises(ValueError):
        parse_reward(text)
