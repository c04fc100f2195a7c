"""The learned pass-rate prior: calibration, strength, determinism, query summaries."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from data_contracts.schema import QUERY_SCHEMA
from data_contracts.synthetic_text import SyntheticTextConfig, generate_text_table
from difficulty.prior import (MIXTURE_COMPONENTS, SMOOTHING, TEXT_SUMMARY_NAMES,
                              beta_binomial_loglik, em_weights, fit_prior, mixture_dictionary,
                              query_summaries, select_strength)


def measured(n_queries: int, informative: bool, seed: int = 0, trials: int = 8):
    """Features [N, 3] and Bernoulli tallies; p depends on feature 0 only when informative."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_queries, 3))
    p = 1.0 / (1.0 + np.exp(-2.5 * x[:, 0])) if informative else rng.uniform(size=n_queries)
    n = np.full(n_queries, trials)
    return x, rng.binomial(n, p), n, p


def test_calibration_is_monotone_and_reliable():
    x, s, n, _ = measured(600, True)
    prior = fit_prior(x, s, n, seed=1)
    assert prior.fitted
    line = np.zeros((101, 3))
    line[:, 0] = np.linspace(-3, 3, 101)
    mu = prior.predict(line)
    assert np.all(np.diff(mu) >= 0) and mu[0] < 0.1 and mu[-1] > 0.9
    bins = prior.reliability
    assert len(bins) >= 5 and sum(b["queries"] for b in bins) == 600
    predicted = np.array([b["predicted"] for b in bins])
    observed = np.array([b["observed"] for b in bins])
    assert np.all(np.diff(predicted) > 0)
    assert np.max(np.abs(predicted - observed)) < 0.1  # held-out reliability


def test_strength_shrinks_toward_zero_with_an_uninformative_feature():
    x, s, n, _ = measured(600, False)
    flat = fit_prior(x, s, n, max_strength=8.0)
    alpha, beta, _, strength = flat.beta_prior(x)
    assert np.max(strength) <= 1.0  # of a cap of 8
    assert np.mean(strength) < 0.5
    x, s, n, _ = measured(600, True)
    sharp = fit_prior(x, s, n, max_strength=8.0)
    assert np.median(sharp.beta_prior(x)[3]) >= 4.0
    # the prior is Beta(1 + s mu, 1 + s (1 - mu))
    a, b, mu, st = sharp.beta_prior(x[:5])
    np.testing.assert_allclose(a, 1 + st * mu)
    np.testing.assert_allclose(b, 1 + st * (1 - mu))


def test_strength_never_exceeds_the_cap_and_zero_is_uniform():
    x, s, n, _ = measured(300, True)
    for cap in (0.0, 2.0, 4.0):
        _, _, _, strength = fit_prior(x, s, n, max_strength=cap).beta_prior(x)
        assert np.all(strength <= cap) and np.all(strength >= 0)
    alpha, beta, _, _ = fit_prior(x, s, n, max_strength=0.0).beta_prior(x)
    assert np.all(alpha == 1.0) and np.all(beta == 1.0)


def test_select_strength_is_type_ii_maximum_likelihood():
    rng = np.random.default_rng(4)
    mu = np.full(500, 0.3)
    p = rng.beta(1 + 10 * 0.3, 1 + 10 * 0.7, size=500)  # the truth is Beta(1 + 10 mu, ...)
    n = np.full(500, 12)
    s = rng.binomial(n, p).astype(float)
    assert 5.0 <= select_strength(mu, s, n.astype(float), 40.0) <= 20.0
    assert select_strength(mu, s, n.astype(float), 4.0) == 4.0  # capped
    # the log-likelihood is the Beta-Binomial pmf without its binomial coefficient
    from scipy import stats
    from scipy.special import comb
    got = beta_binomial_loglik(3.0, 8.0, 2.0, 5.0) + np.log(comb(8, 3))
    assert got == pytest.approx(stats.betabinom.logpmf(3, 8, 2.0, 5.0))


def test_same_seed_same_prior():
    x, s, n, _ = measured(300, True)
    a1 = fit_prior(x, s, n, seed=3).beta_prior(x)
    a2 = fit_prior(x, s, n, seed=3).beta_prior(x)
    for u, v in zip(a1, a2):
        assert u.tobytes() == v.tobytes()


def test_too_few_queries_give_the_uniform_prior():
    x, s, n, _ = measured(8, True)
    prior = fit_prior(x, s, n)
    assert not prior.fitted
    alpha, beta, _, strength = prior.beta_prior(x)
    assert np.all(alpha == 1) and np.all(beta == 1) and np.all(strength == 0)
    unmeasured = fit_prior(x, np.zeros(8), np.zeros(8))  # no trials at all
    assert not unmeasured.fitted


def test_fit_prior_refuses_bad_input():
    x, s, n, _ = measured(50, True)
    with pytest.raises(ValueError):
        fit_prior(x, s + 100, n)
    with pytest.raises(ValueError):
        fit_prior(x[:10], s, n)
    with pytest.raises(ValueError):
        fit_prior(x[:, 0], s, n)


def test_query_summaries_of_text_queries():
    table = generate_text_table(SyntheticTextConfig(n_queries=12, candidates=8))
    x, names = query_summaries(table)
    assert x.shape == (12, len(names)) and np.all(np.isfinite(x))
    col = {name: j for j, name in enumerate(names)}
    assert np.all(x[:, col["has_first_stage"]] == 1) and np.all(x[:, col["has_teacher"]] == 1)
    assert np.all(x[:, col["log_docs"]] == np.log1p(8))
    assert np.all(np.abs(x[:, col["teacher_first_stage_spearman"]]) <= 1)
    assert np.all(x[:, col["first_stage_std"]] > 0)
    assert "mean_f0" in names and "maxgap_f7" in names  # summaries of the 8 text features


def test_query_summaries_with_null_text_columns():
    rows = [{"query_id": "a", "doc_ids": ["d1", "d2"], "features": [[1.0, 2.0], [3.0, 5.0]]},
            {"query_id": "b", "doc_ids": ["d1"], "features": [[0.5, 0.5]],
             "first_stage_scores": [1.0], "labels": [2.0]}]
    table = pa.Table.from_pylist(rows, schema=QUERY_SCHEMA)
    x, names = query_summaries(table)
    col = {name: j for j, name in enumerate(names)}
    assert x.shape == (2, len(TEXT_SUMMARY_NAMES) + 6)
    assert x[0, col["has_first_stage"]] == 0 and x[1, col["has_first_stage"]] == 1
    assert x[1, col["label_max"]] == 2 and x[0, col["has_labels"]] == 0
    np.testing.assert_allclose(x[0, col["mean_f1"]], 3.5)
    np.testing.assert_allclose(x[0, col["std_f1"]], 1.5)
    np.testing.assert_allclose(x[0, col["maxgap_f1"]], 1.5)


def test_query_summaries_of_the_real_ltr_sample(yahoo_train_table):
    x, names = query_summaries(yahoo_train_table)
    assert x.shape[0] == yahoo_train_table.num_rows and np.all(np.isfinite(x))
    assert len(names) == len(TEXT_SUMMARY_NAMES) + 3 * 300


# --- the empirical-Bayes mixture prior ------------------------------------------------------

def test_em_recovers_the_weights_of_a_population_with_atoms():
    rng = np.random.default_rng(2)
    n_queries, trials = 4000, 40
    u = rng.uniform(size=n_queries)
    p = np.where(u < 0.35, 0.0, np.where(u < 0.6, 1.0, rng.uniform(size=n_queries)))
    n = np.full(n_queries, trials)
    s = rng.binomial(n, p)
    a, b = mixture_dictionary(np.ones(n_queries), np.ones(n_queries))
    log_lik = beta_binomial_loglik(s[:, None], n[:, None], a, b)
    weights = em_weights(log_lik)
    named = dict(zip(MIXTURE_COMPONENTS, weights))
    # the near-0 component stands for p below ~0.1 at this resolution: the atom (0.35) and the
    # uniform part's share there; likewise near 1
    assert named["near_0"] == pytest.approx(float((p < 0.1).mean()), abs=0.03)
    assert named["near_1"] == pytest.approx(float((p > 0.9).mean()), abs=0.03)
    assert named["near_0"] > 0.33 and named["near_1"] > 0.23
    # the held-fixed robust component: the rest is fitted around it, atoms still found
    flat = beta_binomial_loglik(s, n, 1.0, 1.0)
    robust = dict(zip(MIXTURE_COMPONENTS, em_weights(log_lik, flat, 0.2)))
    assert 0.8 * robust["near_0"] + 0.2 * 0.1 == pytest.approx(float((p < 0.1).mean()), abs=0.03)


def test_em_maximizes_the_penalized_likelihood():
    rng = np.random.default_rng(3)
    log_lik = np.log(rng.uniform(0.01, 1.0, size=(50, 4)))

    def objective(pi):
        return np.log(np.exp(log_lik) @ pi).sum() + SMOOTHING * np.log(pi).sum()

    best = em_weights(log_lik)
    assert best.sum() == pytest.approx(1.0)
    for _ in range(200):  # no random point of the simplex does better
        other = rng.dirichlet(np.ones(4))
        assert objective(other) <= objective(best) + 1e-9


def test_mixture_weights_follow_the_features():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(800, 3))
    p = np.where(x[:, 0] < -0.3, 0.0, np.where(x[:, 0] > 0.3, 1.0, 0.5))
    n = np.full(800, 8)
    prior = fit_prior(x, rng.binomial(n, p), n, seed=0)
    line = np.zeros((2, 3))
    line[:, 0] = [-2.0, 2.0]
    mix = prior.mixture_prior(line)
    bins = sorted((b for b in prior.mixture_bins if b["queries"]), key=lambda b: b["predicted"])
    assert bins[0]["near_0"] > 0.8 and bins[-1]["near_1"] > 0.8
    assert max(b["near_0"] + b["near_1"] for b in bins if 0.3 < b["predicted"] < 0.7) < 0.1
    mean = (mix.weight * mix.alpha / (mix.alpha + mix.beta)).sum(1)
    assert mean[0] < 0.1 < 0.9 < mean[1]


def simulate_bands(p, x, prior_rows, seed):
    """Planner rounds (k0 4, k_max 16) on Bernoulli(p), a prior fitted on `prior_rows`' first 16
    samples planning the other queries; agreement of their bands with the truth."""
    from difficulty.estimate import BandConfig, band_of_rate
    from difficulty.planner import PlanConfig, plan_round

    cfg, plan = BandConfig(), PlanConfig(k0=4, k_max=16)
    rng = np.random.default_rng(seed)
    draws = (rng.uniform(size=(len(p), 16)) < p[:, None]).astype(np.int64)
    rest = np.setdiff1d(np.arange(len(p)), prior_rows)
    out = {}
    for name in ("none", "mixture"):
        prior = None
        if name == "mixture":
            fitted = fit_prior(x[prior_rows], draws[prior_rows].sum(1), np.full(len(prior_rows),
                                                                                 16), seed=0)
            prior = fitted.mixture_prior(x[rest])
        cum = np.concatenate([np.zeros((len(rest), 1), np.int64),
                              np.cumsum(draws[rest], 1)], 1)
        s = np.zeros(len(rest), np.int64)
        t = np.zeros(len(rest), np.int64)
        previous = None
        for r in range(17):
            table = plan_round([str(i) for i in rest], s, t, cfg, plan, r, previous=previous,
                               prior=prior)
            next_k = table.column("next_k").to_numpy().astype(np.int64)
            if not next_k.any():
                break
            t = t + next_k
            s = cum[np.arange(len(rest)), t]
            previous = table
        band = np.array([{"too_hard": 0, "learnable": 1, "too_easy": 2}[b]
                         for b in table.column("band").to_pylist()])
        out[name] = (float((band == band_of_rate(p[rest], cfg)).mean()), int(t.sum()))
    return out


def test_with_atom_free_truth_the_mixture_prior_does_not_lower_agreement():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1200, 3))
    p = rng.beta(2.0, 5.0, size=1200)  # no atoms, much mass near the 0.1 threshold
    result = simulate_bands(p, x, np.arange(400), seed=1)
    assert result["mixture"][0] >= result["none"][0] - 0.01, result


def test_with_atoms_the_mixture_prior_spends_fewer_rollouts():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(1200, 3))
    u = rng.uniform(size=1200)
    p = np.where(u < 0.35, 0.0, np.where(u < 0.6, 1.0, rng.uniform(size=1200)))
    result = simulate_bands(p, x, np.arange(400), seed=2)
    assert result["mixture"][1] < 0.8 * result["none"][1], result


def test_same_seed_same_mixture_prior():
    x, s, n, _ = measured(300, True)
    one = fit_prior(x, s, n, seed=4).mixture_prior(x)
    two = fit_prior(x, s, n, seed=4).mixture_prior(x)
    for a, b in ((one.alpha, two.alpha), (one.beta, two.beta), (one.weight, two.weight)):
        assert a.tobytes() == b.tobytes()
    unfitted = fit_prior(x[:5], s[:5], n[:5]).mixture_prior(x)
    assert not unfitted.informative().any()
