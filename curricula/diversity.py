"""Behavioral diversity of demonstrations: describe, cluster, select with per-cluster quotas.

A demonstration's behavior is described by *which features its teacher order follows*: the rank
correlation, within the query, between the teacher's scores and each feature (features are
averaged in contiguous groups when there are more than `max_dims`). Two demonstrations that rank by
the same evidence look alike; a rare behaviour (ranking by an unusual feature group) stands apart.
The signature is the group followed most strongly, with its sign (e.g. `g03+`).

Clusters are fit with scikit-learn's KMeans on a sample that fits in memory, then assigned in the
pipeline. Selection keeps at most `cap` demonstrations per cluster, with `cap` chosen by
water-filling so the total is `budget` x eligible: common behaviours are thinned, rare ones kept
whole. Which rows are kept is a per-query hash draw, so selection needs only the global cluster
counts, never all rows on one worker.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_contracts.arrays import PaddedQueries
from curricula.hashing import uniform


@dataclass(frozen=True)
class DiversityConfig:
    """Attributes:
      enabled: select with quotas; when off every eligible demonstration is kept.
      n_clusters: KMeans clusters.
      budget: fraction of eligible demonstrations kept when enabled.
      max_dims: descriptor width (features are grouped beyond it).
      fit_sample: at most this many descriptors are used to fit the clusters.
    """

    enabled: bool = True
    n_clusters: int = 8
    budget: float = 0.75
    max_dims: int = 32
    fit_sample: int = 20000


def _ranks(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Ranks of the real documents' scores (ties share their average rank, as in Spearman's rho,
    so a descriptor never depends on the input order of tied documents); 0 where padded."""
    ranks = np.zeros(scores.shape, dtype=np.float64)
    for i in range(len(scores)):
        valid = np.flatnonzero(mask[i])
        if valid.size:
            ranks[i, valid] = average_ranks(scores[i, valid]) - 1.0
    return ranks


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank: `scipy.stats.rankdata(method="average")`
    (the same algorithm; here so the workers need not import scipy.stats, about 1 s).

    Args:
      values: [n] numbers (no NaN).
    Returns:
      [n] float64 ranks.
    """
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    first = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    group = np.cumsum(first)  # 1-based tie group of each sorted position
    bounds = np.concatenate([np.flatnonzero(first), [len(values)]])
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = 0.5 * (bounds[group] + bounds[group - 1] + 1)
    return ranks


def descriptors(batch: PaddedQueries, teacher: np.ndarray, max_dims: int = 32
                ) -> tuple[np.ndarray, list[str]]:
    """([B, G] rank correlations of the teacher's order with each feature group, signatures)."""
    b, d, f = batch.features.shape
    groups = np.array_split(np.arange(f), min(f, max_dims)) if f else []
    x = np.stack([batch.features[..., g].mean(-1) for g in groups], axis=-1) if f else \
        np.zeros((b, d, 0))
    m = batch.mask[..., None].astype(np.float64)
    n = np.maximum(m.sum(1), 1.0)
    r = _ranks(teacher, batch.mask)[..., None]
    r_mean = (r * m).sum(1) / n
    x_mean = (x * m).sum(1) / n
    rc = (r - r_mean[:, None, :]) * m
    xc = (x - x_mean[:, None, :]) * m
    cov = (rc * xc).sum(1)
    denom = np.sqrt((rc ** 2).sum(1) * (xc ** 2).sum(1))
    corr = np.divide(cov, denom, out=np.zeros_like(cov), where=denom > 1e-12)
    top = np.abs(corr).argmax(-1) if corr.shape[1] else np.zeros(b, int)
    signs = np.sign(corr[np.arange(b), top]) if corr.shape[1] else np.zeros(b)
    signatures = [f"g{int(t):02d}{'+' if s >= 0 else '-'}" for t, s in zip(top, signs)]
    return corr.astype(np.float32), signatures


def fit_centers(sample: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """KMeans centers for a descriptor sample (fewer clusters when the sample is small)."""
    if len(sample) == 0:
        return np.zeros((1, sample.shape[1] if sample.ndim == 2 else 0), np.float32)
    distinct = len(np.unique(sample, axis=0))
    k = max(1, min(n_clusters, distinct))
    from sklearn.cluster import KMeans  # imported where used: ~1.5 s for every process

    from threadpoolctl import threadpool_limits

    # one thread: the sample is small, and OpenMP threads that spin-wait for a core another
    # process holds made this fit 0.02 s on a quiet machine and 6.7 s on a busy one (a 1M-
    # generation log build); the centers do not depend on the thread count (a 2-worker build,
    # pinned to 1 thread, gives the same bytes as an in-process one)
    with threadpool_limits(1):
        model = KMeans(n_clusters=k, random_state=seed, n_init=4).fit(sample.astype(np.float64))
    centers = model.cluster_centers_
    # a canonical order (lexicographic) so cluster ids do not depend on KMeans internals
    return centers[np.lexsort(centers.T[::-1])].astype(np.float32)


def assign(desc: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Nearest center per descriptor, as int32 cluster ids."""
    if len(desc) == 0:
        return np.zeros(0, np.int32)
    dist = ((desc[:, None, :].astype(np.float64) - centers[None].astype(np.float64)) ** 2).sum(-1)
    return dist.argmin(-1).astype(np.int32)


def water_fill_cap(counts: np.ndarray, budget_rows: float) -> float:
    """The per-cluster cap c with sum(min(counts, c)) == budget_rows (continuous)."""
    counts = np.sort(np.asarray(counts, float))
    if budget_rows >= counts.sum():
        return float(counts.max(initial=0.0))
    remaining, left = budget_rows, len(counts)
    for c in counts:
        if c * left >= remaining:
            return remaining / left
        remaining -= c
        left -= 1
    return float(counts.max(initial=0.0))


def keep_probabilities(counts: np.ndarray, cfg: DiversityConfig) -> np.ndarray:
    """Per-cluster probability of keeping a demonstration (1 everywhere when disabled)."""
    counts = np.asarray(counts, float)
    if not cfg.enabled or counts.sum() == 0:
        return np.ones(len(counts))
    cap = water_fill_cap(counts, cfg.budget * counts.sum())
    return np.minimum(1.0, np.divide(cap, counts, out=np.ones_like(counts), where=counts > 0))


def select(query_ids: list, clusters: np.ndarray, probabilities: np.ndarray, seed: int
           ) -> np.ndarray:
    """Which demonstrations are kept: a stable per-query draw below its cluster's probability."""
    return uniform(query_ids, seed, "diversity") < probabilities[clusters]


def entropy_bits(counts) -> float:
    """Shannon entropy (bits) of a cluster-count distribution."""
    counts = np.asarray(list(counts), float)
    p = counts[counts > 0] / max(counts.sum(), 1.0)
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0: one cluster gives 0.0, not -0.0
