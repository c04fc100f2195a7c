"""bench_budget's oracle bounds (the Bayes-optimal sequential rule by dynamic programming):
checked against quantities computed another way, since the README's verdict rests on them."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import bench_budget  # noqa: E402
from difficulty.estimate import BandConfig, band_of_rate, decide  # noqa: E402


def population(regime: str, n: int = 200_000, seed: int = 0) -> np.ndarray:
    u = np.random.default_rng(seed).uniform(size=n)
    return bench_budget.regime_quantile(u, regime)


@pytest.mark.parametrize("regime", ["mixed", "mostly-failing"])
def test_fixed16_expected_agreement_matches_a_simulation(regime):
    cfg = BandConfig()
    fixed, _, _ = bench_budget.oracle_bound(np.zeros(1), 0.0, regime, cfg, 16)
    p = population(regime)
    s = np.random.default_rng(1).binomial(16, p)
    simulated = float((decide(s, np.full(len(p), 16), cfg)[0] == band_of_rate(p, cfg)).mean())
    assert fixed == pytest.approx(simulated, abs=0.004)


def test_with_a_budget_of_one_sample_the_ceiling_is_the_one_sample_bayes_rule():
    """Every rule takes at least one sample, so at a budget of one the best agreement is the
    Bayes rule after one sample: for x in {0, 1}, the band most probable given x."""
    cfg = BandConfig()
    _, _, ceiling = bench_budget.oracle_bound(np.zeros(1), 0.0, "mixed", cfg, 16, budget=1.0)
    p = population("mixed")
    band = band_of_rate(p, cfg)
    joint = np.array([[np.mean((1 - p) * (band == b)), np.mean(p * (band == b))]
                      for b in range(3)])  # P(band, x)
    assert ceiling == pytest.approx(float(joint.max(0).sum()), abs=0.004)


def test_the_floor_lies_between_one_sample_and_k_max_and_features_lower_it():
    cfg = BandConfig()
    g = np.linspace(-2.0, 2.0, 41)
    _, none, _ = bench_budget.oracle_bound(g, 0.0, "mixed", cfg, 16)
    _, partly, _ = bench_budget.oracle_bound(g, 0.5, "mixed", cfg, 16)
    assert 1.0 <= partly < none <= 16.0
