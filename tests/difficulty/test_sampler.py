"""Plackett-Luce sampling and log-probabilities against brute force, and per-query randomness."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from difficulty.sampler import (gumbel_noise, log_prob, query_seed, ranking_diversity,
                                sample_rankings)


def brute_force_pl(scores, ranking) -> float:
    """Plackett-Luce probability of `ranking` (real documents only) under `scores`, in float64.

    Args:
      scores: the real documents' scores (already divided by the temperature).
      ranking: a permutation of range(len(scores)), best first.
    """
    prob = 1.0
    remaining = list(ranking)
    for doc in ranking:
        prob *= math.exp(scores[doc]) / sum(math.exp(scores[j]) for j in remaining)
        remaining.remove(doc)
    return prob


def all_rankings(n: int, width: int) -> np.ndarray:
    """[n!, width] every permutation of the n real documents, padded documents last."""
    pad = list(range(n, width))
    return np.array([list(p) + pad for p in itertools.permutations(range(n))], dtype=np.int64)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("pad", [0, 2])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_log_prob_matches_brute_force(n, pad, temperature):
    rng = np.random.default_rng(n * 100 + pad * 10 + int(temperature * 4))
    width = n + pad
    real = rng.normal(scale=2.0, size=n)
    scores = np.concatenate([real, rng.normal(scale=50.0, size=pad)])  # padded: arbitrary
    mask = np.arange(width) < n
    rankings = all_rankings(n, width)
    got = log_prob(torch.tensor(scores[None, :], dtype=torch.float64),
                   torch.from_numpy(rankings[None]), torch.from_numpy(mask[None]),
                   temperature)[0].numpy()
    want = np.array([brute_force_pl(real / temperature, r[:n]) for r in rankings])
    np.testing.assert_allclose(np.exp(got), want, rtol=1e-9, atol=1e-12)
    assert np.exp(got).sum() == pytest.approx(1.0, abs=1e-9)


def test_log_prob_batched_float32_with_mixed_lengths():
    """Queries of different lengths in one padded float32 batch, each against brute force."""
    rng = np.random.default_rng(3)
    sizes = [1, 3, 5, 4]
    width = max(sizes)
    per_query = [all_rankings(n, width) for n in sizes]
    r = max(len(p) for p in per_query)
    rankings = np.stack([np.concatenate([p, np.repeat(p[:1], r - len(p), 0)]) for p in per_query])
    scores = rng.normal(size=(len(sizes), width)).astype(np.float32)
    mask = np.arange(width)[None, :] < np.array(sizes)[:, None]
    got = log_prob(torch.from_numpy(scores), torch.from_numpy(rankings),
                   torch.from_numpy(mask)).numpy()
    for i, n in enumerate(sizes):
        count = len(per_query[i])
        want = [brute_force_pl(scores[i, :n].astype(float), p[:n]) for p in per_query[i]]
        np.testing.assert_allclose(np.exp(got[i, :count]), want, rtol=1e-5)
        assert np.exp(got[i, :count]).sum() == pytest.approx(1.0, abs=1e-5)


def test_log_prob_gradients_are_finite_and_ignore_padding():
    scores = torch.tensor([[0.3, -1.0, 2.0, 0.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[True, True, True, False, False]])
    rankings = torch.tensor([[[2, 0, 1, 3, 4], [1, 2, 0, 4, 3]]])
    log_prob(scores, rankings, mask).sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert torch.all(scores.grad[0, 3:] == 0)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sample_frequencies_match_exact_probabilities(temperature):
    n, width, draws = 3, 5, 30000
    scores = np.array([[1.2, 0.0, -0.7, 9.0, 9.0]], dtype=np.float32)  # 2 padded documents
    mask = np.arange(width)[None, :] < n
    noise = gumbel_noise(["q-freq"], np.array([n]), draws, seed=11, width=width)
    rankings = sample_rankings(scores, mask, noise, temperature)[0]
    perms = all_rankings(n, width)
    observed = np.array([np.all(rankings == p, axis=1).sum() for p in perms])
    assert observed.sum() == draws  # every sample is one of the permutations, padding last
    probs = np.exp(log_prob(torch.from_numpy(scores), torch.from_numpy(perms[None]),
                            torch.from_numpy(mask), temperature)[0].numpy().astype(float))
    expected = probs / probs.sum() * draws
    chi2 = stats.chisquare(observed, expected)
    assert chi2.pvalue > 1e-3, (observed, expected)
    np.testing.assert_allclose(observed / draws, probs, atol=0.015)


def test_padded_documents_always_come_last():
    rng = np.random.default_rng(5)
    n_docs = rng.integers(1, 9, size=40)
    width = int(n_docs.max()) + 2
    mask = np.arange(width)[None, :] < n_docs[:, None]
    scores = rng.normal(scale=5.0, size=(40, width)).astype(np.float32)
    scores[~mask] = 1e20  # even with huge padded scores
    ids = [f"q{i}" for i in range(40)]
    for temperature in (1.0, 0.05, 20.0):
        noise = gumbel_noise(ids, n_docs, 16, seed=1, width=width)
        rankings = sample_rankings(scores, mask, noise, temperature)
        assert rankings.shape == (40, 16, width) and rankings.dtype == np.int64
        for i, n in enumerate(n_docs):
            head = np.sort(rankings[i, :, :n], axis=-1)
            assert np.all(head == np.arange(n))
            assert np.all(np.sort(rankings[i, :, n:], axis=-1) == np.arange(n, width))


def test_sample_rankings_accepts_torch_and_matches_numpy():
    rng = np.random.default_rng(9)
    scores = rng.normal(size=(3, 6)).astype(np.float32)
    mask = np.ones((3, 6), dtype=bool)
    noise = gumbel_noise(["a", "b", "c"], np.full(3, 6), 4, seed=0)
    from_numpy = sample_rankings(scores, mask, noise)
    from_torch = sample_rankings(torch.from_numpy(scores).requires_grad_(), torch.from_numpy(mask),
                                 torch.from_numpy(noise))
    assert isinstance(from_torch, torch.Tensor)
    assert np.array_equal(from_torch.numpy(), from_numpy)


def test_gumbel_noise_is_independent_of_batching():
    rng = np.random.default_rng(0)
    ids = [f"query-{i}" for i in range(25)]
    n_docs = rng.integers(1, 30, size=25)
    batch = gumbel_noise(ids, n_docs, 8, seed=4, stream=2, width=40)
    assert batch.shape == (25, 8, 40) and batch.dtype == np.float32
    for i, (qid, n) in enumerate(zip(ids, n_docs)):
        alone = gumbel_noise([qid], np.array([n]), 8, seed=4, stream=2)
        assert alone.shape == (1, 8, n)
        assert np.array_equal(alone[0], batch[i, :, :n])
        assert np.all(batch[i, :, n:] == 0.0)
    # reordered and re-split batches give each query the same block
    order = rng.permutation(25)
    shuffled = gumbel_noise([ids[j] for j in order], n_docs[order], 8, seed=4, stream=2, width=40)
    assert np.array_equal(shuffled, batch[order])


def test_gumbel_noise_differs_by_seed_stream_and_query():
    n = np.array([12])
    base = gumbel_noise(["q"], n, 8, seed=0, stream=0)
    assert np.array_equal(base, gumbel_noise(["q"], n, 8, seed=0, stream=0))
    for other in (gumbel_noise(["q"], n, 8, seed=1, stream=0),
                  gumbel_noise(["q"], n, 8, seed=0, stream=1),
                  gumbel_noise(["r"], n, 8, seed=0, stream=0)):
        assert not np.array_equal(base, other)
    assert query_seed(0, "q", 1) == query_seed(0, "q", 1) != query_seed(0, "q", 2)


def test_gumbel_noise_is_standard_gumbel():
    noise = gumbel_noise(["g"], np.array([500]), 200, seed=3)[0].ravel().astype(float)
    assert stats.kstest(noise, stats.gumbel_r.cdf).pvalue > 1e-3


def test_ranking_diversity():
    rankings = np.array([[[0, 1, 2], [0, 1, 2], [1, 0, 2], [2, 1, 0]]])
    assert ranking_diversity(rankings, np.array([3]), top=2)[0] == pytest.approx(3 / 4)
    assert ranking_diversity(rankings, np.array([3]), top=1)[0] == pytest.approx(3 / 4)
    assert ranking_diversity(rankings[:, :2], np.array([3]))[0] == pytest.approx(1 / 2)


def test_ties_keep_document_order_on_numpy_and_torch_paths():
    """Tied perturbed scores (zero noise, -0.0 vs 0.0, huge values) rank in document order."""
    rng = np.random.default_rng(12)
    scores = rng.choice(np.array([-1.0, -0.0, 0.0, 2.5, 3e38, -3e38], np.float32), size=(50, 9))
    mask = rng.random((50, 9)) < 0.8
    mask[:, 0] = True
    noise = np.zeros((50, 3, 9), dtype=np.float32)
    from_numpy = sample_rankings(scores, mask, noise)
    from_torch = sample_rankings(torch.from_numpy(scores), torch.from_numpy(mask),
                                 torch.from_numpy(noise)).numpy()
    assert np.array_equal(from_numpy, from_torch)
    for i in range(50):
        key = np.where(mask[i], scores[i].astype(float), -np.inf)
        want = sorted(range(9), key=lambda j: (-key[j], j))  # stable descending
        assert from_numpy[i, 0].tolist() == want
