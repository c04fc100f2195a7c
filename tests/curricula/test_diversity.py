"""Diversity: water-filling quotas, keep probabilities, selection, entropy, descriptors."""
from __future__ import annotations

import numpy as np
import pytest

from curricula import diversity as div
from curricula.diversity import DiversityConfig
from data_contracts.arrays import PaddedQueries


@pytest.mark.parametrize("seed", range(5))
def test_water_fill_cap_sums_to_the_budget(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 500, size=rng.integers(1, 12)).astype(float)
    for fraction in (0.1, 0.5, 0.9):
        budget = fraction * counts.sum()
        cap = div.water_fill_cap(counts, budget)
        assert np.minimum(counts, cap).sum() == pytest.approx(budget)


def test_water_fill_cap_edges():
    counts = np.array([1.0, 10.0, 100.0])
    assert div.water_fill_cap(counts, 50) == pytest.approx(39.0)  # 1 + 10 + 39
    assert div.water_fill_cap(counts, 1000) == 100.0  # budget above the total: keep all
    assert div.water_fill_cap(counts, 0) == 0.0


def test_keep_probabilities_thin_big_clusters_and_keep_small_whole():
    counts = np.array([800.0, 300.0, 30.0, 5.0, 0.0])
    cfg = DiversityConfig(budget=0.5)
    p = div.keep_probabilities(counts, cfg)
    assert p[0] < 0.5 and p[1] < 1.0
    assert p[2] == 1.0 and p[3] == 1.0
    assert np.all((p >= 0) & (p <= 1))
    assert (p * counts).sum() == pytest.approx(0.5 * counts.sum())
    assert np.array_equal(div.keep_probabilities(counts, DiversityConfig(enabled=False)),
                          np.ones(5))


def _imbalanced(n_per_cluster=(600, 150, 40, 10)):
    clusters = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_cluster)]).astype(int)
    qids = [f"q{i:05d}" for i in range(len(clusters))]
    return qids, clusters, np.bincount(clusters).astype(float)


def test_selection_with_diversity_off_keeps_everything():
    qids, clusters, counts = _imbalanced()
    p = div.keep_probabilities(counts, DiversityConfig(enabled=False))
    assert div.select(qids, clusters, p, seed=0).all()


def test_selection_raises_entropy_and_meets_the_budget():
    qids, clusters, counts = _imbalanced()
    cfg = DiversityConfig(budget=0.5)
    keep = div.select(qids, clusters, div.keep_probabilities(counts, cfg), seed=0)
    after = np.bincount(clusters[keep], minlength=len(counts))
    assert div.entropy_bits(after) > div.entropy_bits(counts) + 0.2
    assert keep.sum() == pytest.approx(0.5 * len(qids), rel=0.08)
    assert after[3] == counts[3] and after[2] == counts[2]  # rare behaviours kept whole


def test_selection_is_a_per_query_draw():
    qids, clusters, counts = _imbalanced()
    p = div.keep_probabilities(counts, DiversityConfig(budget=0.4))
    whole = div.select(qids, clusters, p, seed=7)
    part = np.concatenate([div.select(qids[:333], clusters[:333], p, seed=7),
                           div.select(qids[333:], clusters[333:], p, seed=7)])
    assert np.array_equal(whole, part)


def test_entropy_bits():
    assert div.entropy_bits([5, 5, 5, 5]) == pytest.approx(2.0)
    assert div.entropy_bits([10, 0]) == 0.0
    assert div.entropy_bits([]) == 0.0


def _padded(features, teacher):
    features = np.asarray(features, np.float32)[None]
    n = features.shape[1]
    return PaddedQueries(["q"], features, np.ones((1, n), bool), np.zeros((1, n), np.float32),
                         np.ones(1, bool), np.array([n])), np.asarray(teacher, np.float32)[None]


def test_descriptor_follows_the_feature_the_teacher_ranks_by():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 6))
    x[:, 4] = rng.permutation(12)  # evenly spaced, so its correlation with ranks can be exact
    batch, teacher = _padded(x, -x[:, 4])  # the teacher ranks by feature 4, reversed
    desc, signatures = div.descriptors(batch, teacher, max_dims=6)
    assert desc.shape == (1, 6)
    assert desc[0, 4] == pytest.approx(-1.0)
    assert signatures == ["g04-"]


def test_descriptor_does_not_depend_on_document_order_even_with_ties():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 5))
    teacher = np.array([2, 2, 1, 1, 1, 0, 0, 0, 0, 3], float)  # graded labels: many ties
    perm = rng.permutation(10)
    a, _ = div.descriptors(*_padded(x, teacher), max_dims=5)
    b, _ = div.descriptors(*_padded(x[perm], teacher[perm]), max_dims=5)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_fit_centers_is_deterministic_and_canonical():
    rng = np.random.default_rng(2)
    sample = np.concatenate([rng.normal(c, 0.05, size=(50, 3)) for c in (-1, 0, 1)])
    a = div.fit_centers(sample, 3, seed=0)
    b = div.fit_centers(sample[rng.permutation(len(sample))], 3, seed=0)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.all(np.diff(a[:, 0]) > 0)  # lexicographic order of centers
    assert len(div.fit_centers(np.ones((5, 3)), 8, seed=0)) == 1  # one distinct point
    assert div.assign(np.zeros((0, 3)), a).shape == (0,)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_ranks_equal_scipy_rankdata_with_ties(seed):
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    for n in (1, 2, 7, 50):
        values = rng.integers(0, 4, n).astype(np.float32)  # many ties
        np.testing.assert_array_equal(div.average_ranks(values),
                                      rankdata(values, method="average"))
        values = rng.normal(size=n)
        np.testing.assert_array_equal(div.average_ranks(values),
                                      rankdata(values, method="average"))
