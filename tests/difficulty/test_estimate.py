"""Pass-rate estimates: credible intervals, pass@k, band calibration under adaptive stopping."""
from __future__ import annotations

import math

import numpy as np
import pytest

from difficulty.estimate import (BAND_NAMES, BandConfig, Budget, band_of_rate,
                                 band_probabilities, decide, interval, pass_at_k, summarize)

SIM_QUERIES = 20000
SIM_SEED = 20240601


def grid(max_trials: int = 64):
    """Every (successes, trials) with trials <= max_trials, as two int arrays."""
    pairs = [(s, n) for n in range(max_trials + 1) for s in range(n + 1)]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


@pytest.mark.parametrize("level", [0.5, 0.8, 0.9, 0.95, 0.99])
def test_interval_contains_posterior_mean(level):
    s, n = grid()
    low, high = interval(s, n, level)
    mean = (s + 1.0) / (n + 2.0)
    assert np.all(low <= mean) and np.all(mean <= high)
    assert np.all(low >= 0.0) and np.all(high <= 1.0) and np.all(low < high)


def test_interval_narrows_with_trials_and_widens_with_level():
    low, high = interval(np.array([2, 8, 32]), np.array([4, 16, 64]), 0.9)
    assert np.all(np.diff(high - low) < 0)
    low99, high99 = interval(np.array([8]), np.array([16]), 0.99)
    assert high99[0] - low99[0] > high[1] - low[1]


def test_pass_at_k_matches_combinatorial_formula():
    s, n = grid(40)
    for k in (1, 2, 5, 8, 16, 40):
        got = pass_at_k(s, n, k)
        for c, trials, value in zip(s, n, got):
            if k > trials:
                continue
            want = 1.0 - math.comb(trials - c, k) / math.comb(trials, k)
            assert value == pytest.approx(want, abs=1e-12), (c, trials, k)


def test_pass_at_k_caps_k_at_trials():
    s, n = grid(12)
    got = pass_at_k(s, n, 100)
    assert np.array_equal(got, np.where(s > 0, 1.0, 0.0))  # pass@n: any success
    assert pass_at_k(np.array([0]), np.array([0]), 8)[0] == 0.0  # no trials


def test_band_probabilities_sum_to_one_and_decide_picks_the_largest():
    s, n = grid()
    cfg = BandConfig()
    probs = band_probabilities(s.astype(float), n.astype(float), cfg)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-12)
    band, conf, decided = decide(s, n, cfg)
    assert np.array_equal(band, probs.argmax(-1))
    np.testing.assert_allclose(conf, probs.max(-1))
    assert np.array_equal(decided, conf >= cfg.confidence)
    # the uniform prior alone decides nothing
    assert not decide(np.array([0]), np.array([0]), cfg)[2][0]
    # 0/64 and 64/64 are confidently too_hard / too_easy; 32/64 confidently learnable
    b, _, d = decide(np.array([0, 64, 32]), np.array([64, 64, 64]), cfg)
    assert list(BAND_NAMES[b]) == ["too_hard", "too_easy", "learnable"] and d.all()


def test_band_of_rate_follows_the_rule():
    cfg = BandConfig(hard_below=0.1, easy_above=0.9)
    got = BAND_NAMES[band_of_rate(np.array([0.0, 0.0999, 0.1, 0.5, 0.9, 0.9001, 1.0]), cfg)]
    assert list(got) == ["too_hard", "too_hard", "learnable", "learnable", "learnable",
                         "too_easy", "too_easy"]


def test_summarize_columns_and_constant_rewards_have_zero_variance():
    rng = np.random.default_rng(1)
    values = rng.uniform(0.0, 1.0, size=400)
    trials = rng.choice([16, 32, 48, 64], size=400)
    sums = np.array([np.full(t, v).sum() for v, t in zip(values, trials)])
    squares = np.array([(np.full(t, v) ** 2).sum() for v, t in zip(values, trials)])
    out = summarize(np.zeros(400, int), trials, sums, squares, BandConfig())
    assert out["zero_variance"].all()  # rounding noise of E[r^2] - E[r]^2 is not variance
    np.testing.assert_allclose(out["reward_mean"], values, rtol=1e-12)
    # a real spread is kept, however small relative to rewards in [0, 1]
    spread = np.array([0.5, 0.5 + 1e-3] * 8)
    one = summarize(np.array([8]), np.array([16]), np.array([spread.sum()]),
                    np.array([(spread ** 2).sum()]), BandConfig())
    assert not one["zero_variance"][0]
    assert one["reward_std"][0] == pytest.approx(spread.std(), rel=1e-6)
    assert one["pass_rate"][0] == pytest.approx(9 / 18)


def test_budget_round_sizes_never_exceed_k_max():
    assert Budget(16, 64).round_sizes() == [16, 16, 16, 16]
    assert Budget(16, 40).round_sizes() == [16, 16, 8]
    assert Budget(16, 8).round_sizes() == [16]  # at least one round of k
    assert Budget(16, 64, adaptive=False).round_sizes() == [16]
    for k in range(1, 20):
        for k_max in range(k, 70):
            sizes = Budget(k, k_max).round_sizes()
            assert sum(sizes) == k_max and len(sizes) == Budget(k, k_max).rounds


def simulate(rng: np.random.Generator, p: np.ndarray, cfg: BandConfig, k: int, k_max: int):
    """The adaptive loop: rounds of `k` Bernoulli(p) rollouts until decided or `k_max`.

    Returns:
      (successes, trials, band index, decided) per query.
    """
    n = len(p)
    successes = np.zeros(n, int)
    trials = np.zeros(n, int)
    band = np.zeros(n, int)
    decided = np.zeros(n, bool)
    open_rows = np.arange(n)
    for size in Budget(k, k_max).round_sizes():
        successes[open_rows] += rng.binomial(size, p[open_rows])
        trials[open_rows] += size
        b, _, d = decide(successes[open_rows], trials[open_rows], cfg)
        band[open_rows], decided[open_rows] = b, d
        open_rows = open_rows[~d]
        if open_rows.size == 0:
            break
    return successes, trials, band, decided


def test_adaptive_decided_bands_are_calibrated_under_the_prior():
    """Pass rates drawn from the prior: decided bands are wrong at most 1 - confidence."""
    cfg = BandConfig()
    k, k_max = 16, 64
    rng = np.random.default_rng(SIM_SEED)
    p = rng.uniform(0.0, 1.0, size=SIM_QUERIES)
    _, trials, band, decided = simulate(rng, p, cfg, k, k_max)
    truth = band_of_rate(p, cfg)
    wrong = (band != truth) & decided
    m = int(decided.sum())
    error = wrong.sum() / m
    bound = 1.0 - cfg.confidence
    slack = 3.0 * math.sqrt(bound * (1.0 - bound) / m)
    adaptive, fixed = int(trials.sum()), k_max * SIM_QUERIES
    print(f"\n[estimate simulation] queries={SIM_QUERIES} decided={m} ({m / SIM_QUERIES:.1%}) "
          f"wrong among decided={wrong.sum()} ({error:.4f}, bound {bound:g} + {slack:.4f}); "
          f"rollouts adaptive={adaptive} ({adaptive / SIM_QUERIES:.1f}/query) "
          f"vs fixed k_max={fixed} ({k_max}/query), saving {1 - adaptive / fixed:.1%}")
    assert error <= bound + slack
    assert adaptive < fixed
    # per decided band, too (each is a posterior event of probability >= confidence)
    for b in range(3):
        in_band = decided & (band == b)
        if in_band.sum() > 200:
            assert wrong[in_band].mean() <= bound + 3.0 * math.sqrt(
                bound * (1 - bound) / in_band.sum())
    # the queries still undecided at k_max sit near a threshold
    near = np.minimum(np.abs(p - cfg.hard_below), np.abs(p - cfg.easy_above))
    assert np.median(near[~decided]) < np.median(near[decided])


def test_fixed_budget_is_calibrated_too():
    cfg = BandConfig()
    rng = np.random.default_rng(SIM_SEED + 1)
    p = rng.uniform(0.0, 1.0, size=5000)
    s = rng.binomial(64, p)
    band, _, decided = decide(s, np.full(5000, 64), cfg)
    wrong = (band != band_of_rate(p, cfg)) & decided
    assert wrong.sum() / decided.sum() <= 0.1 + 3 * math.sqrt(0.09 / decided.sum())


def test_beta_posterior_functions_equal_scipy_stats_beta():
    from scipy import stats

    from difficulty.estimate import band_probabilities, interval

    successes = np.array([0, 1, 3, 8, 16, 5])
    trials = np.array([16, 16, 8, 8, 16, 64])
    cfg = BandConfig()
    a, b = 1.0 + successes, 1.0 + trials - successes
    probs = band_probabilities(successes.astype(float), trials.astype(float), cfg)
    np.testing.assert_allclose(probs[:, 0], stats.beta.cdf(cfg.hard_below, a, b), rtol=1e-12)
    np.testing.assert_allclose(probs[:, 2], stats.beta.sf(cfg.easy_above, a, b), rtol=1e-12)
    low, high = interval(successes, trials, 0.9)
    np.testing.assert_allclose(low, stats.beta.ppf(0.05, a, b), rtol=1e-10)
    np.testing.assert_allclose(high, stats.beta.isf(0.05, a, b), rtol=1e-10)
