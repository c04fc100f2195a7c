"""The rollout budget planner: rounds, the next-k rule, priors that never decide alone."""
from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from difficulty.estimate import BAND_NAMES, BandConfig, band_probabilities, decide
from difficulty.planner import (PLAN_SCHEMA, MixturePrior, PlanConfig, Posterior,
                                decide_probability, mixture_band_probabilities,
                                mixture_posterior, needed_samples, plan_round, robust_posterior,
                                round_record, stable_probability)
from difficulty.prior import fit_prior


def grid(max_trials: int = 40):
    pairs = [(s, n) for n in range(max_trials + 1) for s in range(n + 1)]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def ids(n: int) -> list[str]:
    return [f"q{i:04d}" for i in range(n)]


def table_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def test_uniform_prior_reproduces_estimate_decide_exactly():
    s, n = grid()
    cfg = BandConfig()
    want = decide(s, n, cfg)
    got = decide(s, n, cfg, 1.0, 1.0)
    got_arrays = decide(s, n, cfg, np.ones(len(s)), np.ones(len(s)))
    for w, g, ga in zip(want, got, got_arrays):
        assert np.array_equal(w, g) and np.array_equal(w, ga)
    plan = plan_round(ids(len(s)), s, n, cfg, PlanConfig(k_max=64), 1)
    assert plan.column("band").to_pylist() == list(BAND_NAMES[want[0]])
    assert np.array_equal(plan.column("band_probability").to_numpy(), want[1])  # bit for bit
    decided = plan.column("decided").to_numpy(zero_copy_only=False)
    assert np.array_equal(decided, want[2] & (n > 0))
    assert np.all(plan.column("prior_weight").to_numpy() == 0.0)


def test_band_probabilities_with_a_prior_equal_scipy():
    s = np.array([0.0, 3.0, 10.0])
    n = np.array([4.0, 8.0, 12.0])
    alpha, beta = np.array([0.5, 2.0, 7.0]), np.array([3.0, 2.0, 1.5])
    cfg = BandConfig()
    probs = band_probabilities(s, n, cfg, alpha, beta)
    np.testing.assert_allclose(probs[:, 0], stats.beta.cdf(0.1, alpha + s, beta + n - s),
                               rtol=1e-12)
    np.testing.assert_allclose(probs[:, 2], stats.beta.sf(0.9, alpha + s, beta + n - s),
                               rtol=1e-12)


def test_decide_probability_equals_the_explicit_beta_binomial_sum():
    cfg = BandConfig()
    a = np.array([1.0, 2.0, 1.0, 5.0])
    b = np.array([5.0, 3.0, 17.0, 2.0])
    for m in (1, 3, 8, 13):
        got = decide_probability(Posterior.beta(a, b), m, cfg)
        for i in range(len(a)):
            x = np.arange(m + 1)
            pmf = stats.betabinom.pmf(x, m, a[i], b[i])
            _, conf, _ = decide(x, np.full(m + 1, m), cfg, a[i], b[i])
            assert got[i] == pytest.approx(float((pmf * (conf >= cfg.confidence)).sum()),
                                           abs=1e-10)


def test_next_k_asks_fewer_when_the_posterior_is_nearly_decided():
    cfg = BandConfig()
    zeros = np.arange(4, 21)  # 0 successes of n: too_hard grows more probable with n
    need = needed_samples(Posterior.beta(1.0, 1.0 + zeros), np.full(len(zeros), 100), cfg)
    assert np.all(np.diff(need) <= 0) and need[0] > need[-1] >= 1
    _, conf, decided = decide(np.zeros(len(zeros)), zeros, cfg)
    assert not decided.any()  # all still undecided
    assert need[np.argmax(conf)] == need.min()
    # the rule's m reaches the target where a smaller m does not
    for n, m in zip(zeros, need):
        post = Posterior.beta(np.array([1.0]), np.array([1.0 + n]))
        assert decide_probability(post, int(m), cfg)[0] >= 0.5
        assert m == 1 or all(decide_probability(post, k, cfg)[0] < 0.5 for k in range(1, m))


def test_next_k_is_bounded_and_exhausted_at_k_max():
    cfg = BandConfig()
    plan = PlanConfig(k0=4, k_max=16)
    s = np.array([0, 0, 1, 0, 8])
    n = np.array([0, 4, 12, 16, 16])
    table = plan_round(ids(5), s, n, cfg, plan, 2)
    next_k = table.column("next_k").to_numpy()
    status = table.column("status").to_pylist()
    assert next_k[0] == 4  # round 1: k0
    assert 1 <= next_k[1] <= 12 and 1 <= next_k[2] <= 4
    assert status[3] == "exhausted" and next_k[3] == 0  # 0/16 is undecided under the rule
    assert status[4] == "decided" and next_k[4] == 0  # 8/16 is surely learnable


def simulate_rounds(p, cfg, plan, alpha=1.0, beta=1.0, extra=0, seed=0):
    """Planner rounds on Bernoulli(p); `extra` unasked samples arrive for decided queries."""
    rng = np.random.default_rng(seed)
    n = len(p)
    s = np.zeros(n, np.int64)
    t = np.zeros(n, np.int64)
    tables, previous = [], None
    for r in range(plan.k_max + 1):
        table = plan_round(ids(n), s, t, cfg, plan, r, alpha, beta, previous=previous)
        tables.append(table)
        next_k = table.column("next_k").to_numpy().astype(np.int64)
        if not next_k.any():
            break
        decided = table.column("decided").to_numpy(zero_copy_only=False)
        ask = next_k + np.where(decided, extra, 0)
        s = s + rng.binomial(ask, p)
        t = t + ask
        previous = table
    return tables


@pytest.mark.parametrize("with_prior", [False, True])
def test_a_query_decided_in_round_1_is_never_asked_again(with_prior):
    cfg = BandConfig()
    plan = PlanConfig(k0=8, k_max=48)
    rng = np.random.default_rng(3)
    p = rng.uniform(size=300)
    alpha = 1.0 + 4.0 * p if with_prior else 1.0
    beta = 1.0 + 4.0 * (1.0 - p) if with_prior else 1.0
    tables = simulate_rounds(p, cfg, plan, alpha, beta, extra=3)  # unasked samples arrive too
    first = tables[1]
    decided_r1 = first.column("decided").to_numpy(zero_copy_only=False)
    assert decided_r1.any() and not decided_r1.all()
    assert np.all(first.column("next_k").to_numpy()[decided_r1] == 0)
    for later in tables[2:]:
        assert np.all(later.column("next_k").to_numpy()[decided_r1] == 0)
        assert np.all(later.column("decided").to_numpy(zero_copy_only=False)[decided_r1])
    last = tables[-1]
    assert set(last.column("status").to_pylist()) <= {"decided", "exhausted"}
    assert last.column("trials").to_numpy().max() <= plan.k_max + 3 * len(tables)


def test_the_prior_never_decides_a_band_alone():
    cfg = BandConfig()
    strong = dict(alpha=np.array([1.0, 1000.0]), beta=np.array([1000.0, 1.0]))
    assert decide(np.zeros(2), np.zeros(2), cfg, **strong)[2].all()  # it would, if allowed
    table = plan_round(["a", "b"], [0, 0], [0, 0], cfg, PlanConfig(k0=4), 0, **strong)
    assert not any(table.column("decided").to_pylist())
    assert table.column("status").to_pylist() == ["open", "open"]
    assert all(1 <= k <= 4 for k in table.column("next_k").to_pylist())
    # the robust mixture keeps 0.2 on Beta(1, 1): P(too_hard) <= 0.8 + 0.2 * 0.1 before samples
    robust = plan_round(["a", "b"], [0, 0], [0, 0], cfg, PlanConfig(skip_predicted=True), 0,
                        **strong)
    assert robust.column("status").to_pylist() == ["open", "open"]
    skipped = plan_round(["a", "b"], [0, 0], [0, 0], cfg,
                         PlanConfig(k0=4, skip_predicted=True, robust_weight=0.0), 0, **strong)
    assert skipped.column("status").to_pylist() == ["predicted", "predicted"]
    assert skipped.column("band").to_pylist() == ["too_hard", "too_easy"]
    assert skipped.column("next_k").to_pylist() == [0, 0]
    assert round_record(skipped)["predicted"] == 2


def test_samples_override_a_wrong_prediction():
    cfg = BandConfig()
    # a prior of strength 4 predicting 0.05, then 8 successes of 8
    alpha, beta = 1.0 + 4 * 0.05, 1.0 + 4 * 0.95
    post = robust_posterior(np.array([8.0, 0.0]), np.array([8.0, 8.0]), alpha, beta, 0.2)
    assert post.w[0, 1] > 0.5 > post.w[1, 1]  # the uniform component takes over where they conflict
    table = plan_round(["a", "b"], [8, 0], [8, 8], cfg, PlanConfig(k_max=64), 2, alpha, beta)
    assert table.column("band").to_pylist()[0] != "too_hard"
    assert table.column("status").to_pylist()[0] == "open"


def test_same_seed_same_plan_bytes():
    cfg = BandConfig()
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 4))
    p = 1.0 / (1.0 + np.exp(-2.0 * x[:, 0]))
    n = np.full(200, 8)
    s = rng.binomial(n, p)

    def run(seed):
        prior = fit_prior(x[:120], s[:120], n[:120], seed=seed)
        alpha, beta, _, _ = prior.beta_prior(x[120:])
        first = plan_round(ids(80), np.zeros(80), np.zeros(80), cfg, PlanConfig(), 0, alpha, beta)
        second = plan_round(ids(80), s[120:] // 2, n[120:] // 2, cfg, PlanConfig(), 1,
                            previous=first)
        assert first.schema == second.schema == PLAN_SCHEMA
        assert any(a != 1.0 for a in first.column("prior_alpha").to_pylist())  # a real prior
        return table_bytes(first) + table_bytes(second)

    assert run(7) == run(7)


def test_previous_plan_keeps_each_query_prior():
    cfg = BandConfig()
    first = plan_round(["a", "b"], [0, 0], [0, 0], cfg, PlanConfig(), 0, [2.0, 1.0], [5.0, 1.0])
    second = plan_round(["a", "b", "c"], [0, 1, 0], [4, 4, 0], cfg, PlanConfig(), 1,
                        alpha=3.0, beta=3.0, previous=first)
    assert second.column("prior_alpha").to_pylist() == [2.0, 1.0, 3.0]
    assert second.column("prior_beta").to_pylist() == [5.0, 1.0, 3.0]


def test_round_record_counts():
    cfg = BandConfig()
    plan = PlanConfig(k0=4, k_max=16)
    first = plan_round(ids(3), [0, 0, 0], [0, 0, 0], cfg, plan, 0)
    second = plan_round(ids(3), [2, 0, 3], [4, 4, 3], cfg, plan, 1, previous=first)
    record = round_record(second, first)
    assert record["round"] == 1 and record["queries"] == 3
    assert record["asked"] == 12 and record["answered"] == 11
    assert record["decided"] == record["newly_decided"] == 1  # 2/4 is learnable at 0.9
    assert record["open"] == 2 and record["exhausted"] == 0
    assert record["next_asked"] == int(second.column("next_k").to_numpy().sum())
    assert round_record(first)["asked"] == 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(query_ids=["a", "a"]), "unique"),
    (dict(successes=[3, 0]), "successes <= trials"),
    (dict(trials=[2]), "one length"),
    (dict(alpha=0.0), "alpha"),
])
def test_bad_input_is_refused(kwargs, message):
    args = dict(query_ids=["a", "b"], successes=[0, 1], trials=[2, 2])
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        plan_round(args["query_ids"], args["successes"], args["trials"], BandConfig(),
                   PlanConfig(), 1, alpha=kwargs.get("alpha", 1.0))


def test_plan_config_is_checked():
    with pytest.raises(ValueError):
        PlanConfig(k0=0)
    with pytest.raises(ValueError):
        PlanConfig(k0=8, k_max=4)
    with pytest.raises(ValueError):
        PlanConfig(decide_target=0.0)
    with pytest.raises(ValueError):
        PlanConfig(robust_weight=1.5)


def test_stable_probability_equals_the_explicit_sum():
    cfg = BandConfig()
    a, b = np.array([1.0, 3.0]), np.array([9.0, 2.0])
    for m in (4, 12):
        got = stable_probability(Posterior.beta(a, b), m, np.array([0, 2]), cfg)
        for i, band in enumerate((0, 2)):
            x = np.arange(m + 1)
            pmf = stats.betabinom.pmf(x, m, a[i], b[i])
            after, _, _ = decide(x, np.full(m + 1, m), cfg, a[i], b[i])
            assert got[i] == pytest.approx(float((pmf * (after == band)).sum()), abs=1e-10)


def test_stable_rule_stops_queries_whose_band_k_max_would_not_change():
    cfg = BandConfig()
    s, n = np.array([0, 0, 1]), np.array([12, 4, 6])
    off = plan_round(ids(3), s, n, cfg, PlanConfig(k_max=16), 1)
    assert off.column("status").to_pylist() == ["open", "open", "open"]
    on = plan_round(ids(3), s, n, cfg, PlanConfig(k_max=16, stable_level=0.9), 1)
    status = on.column("status").to_pylist()
    # 0/12: 4 more samples leave too_hard the most probable band unless 2+ pass
    assert status[0] == "stable" and on.column("band").to_pylist()[0] == "too_hard"
    assert status[1] == "open"  # 0/4: the band is still in play
    assert on.column("next_k").to_pylist()[0] == 0
    assert not on.column("decided").to_pylist()[0]
    later = plan_round(ids(3), s + np.array([1, 0, 0]), n + np.array([1, 0, 0]), cfg,
                       PlanConfig(k_max=16, stable_level=0.9), 2, previous=on)
    assert later.column("next_k").to_pylist()[0] == 0  # never asked again
    assert round_record(later, on)["stable"] >= 1
    with pytest.raises(ValueError):
        PlanConfig(stable_level=2.0)


# --- mixture priors (J components) --------------------------------------------------------

def mixture_band_by_quadrature(s, n, weights, alphas, betas, cfg):
    """The band probabilities of a mixture prior's posterior, by numerical integration of
    prior density x binomial likelihood over p (independent of the conjugate algebra)."""
    from scipy import integrate

    def density(p):
        return sum(w * stats.beta.pdf(p, a, b) for w, a, b in zip(weights, alphas, betas)) * \
            p ** s * (1 - p) ** (n - s)

    cuts = (0.0, cfg.hard_below, cfg.easy_above, 1.0)
    mass = [integrate.quad(density, lo, hi, epsabs=1e-13, epsrel=1e-11, limit=200)[0]
            for lo, hi in zip(cuts[:-1], cuts[1:])]
    return np.array(mass) / sum(mass)


def test_a_mixture_posterior_equals_the_closed_form_by_quadrature():
    cfg = BandConfig()
    weights, alphas, betas = [0.5, 0.3, 0.2], [1.0, 8.0, 1.0], [12.0, 1.5, 1.0]
    cases = [(0, 0), (0, 3), (1, 4), (3, 3), (2, 7)]
    s = np.array([c[0] for c in cases])
    n = np.array([c[1] for c in cases])
    prior = MixturePrior(np.tile(alphas, (len(cases), 1)), np.tile(betas, (len(cases), 1)),
                         np.tile(weights, (len(cases), 1)))
    post = mixture_posterior(s, n, prior)
    got = mixture_band_probabilities(post, cfg)
    for i, (si, ni) in enumerate(cases):
        want = mixture_band_by_quadrature(si, ni, weights, alphas, betas, cfg)
        np.testing.assert_allclose(got[i], want, atol=1e-8)
    np.testing.assert_allclose(post.w.sum(1), 1.0, atol=1e-12)
    # a single-component mixture is the plain Beta posterior
    single = mixture_band_probabilities(
        mixture_posterior(s, n, MixturePrior.single(np.full(5, 2.0), np.full(5, 3.0))), cfg)
    np.testing.assert_allclose(single, band_probabilities(s, n, cfg, 2.0, 3.0), rtol=1e-12)


def test_mixture_decide_probability_equals_the_explicit_predictive_sum():
    cfg = BandConfig()
    weights, alphas, betas = [0.6, 0.4], [1.0, 3.0], [20.0, 3.0]
    prior = MixturePrior(np.array([alphas]), np.array([betas]), np.array([weights]))
    s, n = 0, 2
    post = mixture_posterior([s], [n], prior)
    for m in (1, 4, 9):
        x = np.arange(m + 1)
        # the predictive: sum_j w_j' BetaBinomial(m, a_j + s, b_j + n - s)
        pmf = sum(post.w[0, j] * stats.betabinom.pmf(x, m, post.a[0, j], post.b[0, j])
                  for j in range(2))
        decided = [mixture_band_by_quadrature(s + xi, n + m, weights, alphas, betas, cfg).max()
                   >= cfg.confidence for xi in x]
        want = float((pmf * np.array(decided)).sum())
        assert decide_probability(post, m, cfg)[0] == pytest.approx(want, abs=1e-8)


def atom_prior(n, near_zero=0.9):
    """A mixture that puts `near_zero` on Beta(1, 64) and the rest on Beta(64, 1)."""
    return MixturePrior(np.tile([1.0, 64.0], (n, 1)), np.tile([64.0, 1.0], (n, 1)),
                        np.tile([near_zero, 1.0 - near_zero], (n, 1)))


def test_a_mixture_prior_alone_decides_nothing():
    cfg = BandConfig()
    prior = atom_prior(3, near_zero=0.999)
    table = plan_round(ids(3), [0, 0, 0], [0, 0, 0], cfg, PlanConfig(k0=4), 0, prior=prior)
    assert table.column("status").to_pylist() == ["open"] * 3
    assert not any(table.column("decided").to_pylist())
    assert all(1 <= k <= 4 for k in table.column("next_k").to_pylist())
    # even without the robust component, only skip_predicted lets the prior decide alone
    bare = PlanConfig(k0=4, robust_weight=0.0)
    assert plan_round(ids(3), [0] * 3, [0] * 3, cfg, bare, 0,
                      prior=prior).column("status").to_pylist() == ["open"] * 3
    skipped = plan_round(ids(3), [0] * 3, [0] * 3, cfg, replace(bare, skip_predicted=True), 0,
                         prior=prior)
    assert skipped.column("status").to_pylist() == ["predicted"] * 3


def test_an_atom_prior_decides_with_fewer_failures_and_samples_override_it():
    cfg = BandConfig()
    plan = PlanConfig(k_max=64)
    prior = atom_prior(2, near_zero=0.6)
    # 0 of 6: Beta(1, 1) needs 21 failures; the atoms (robust floor 0.2 kept) decide sooner
    table = plan_round(ids(2), [0, 6], [6, 6], cfg, plan, 1, prior=prior)
    assert table.column("status").to_pylist() == ["decided", "decided"]
    assert table.column("band").to_pylist() == ["too_hard", "too_easy"]
    assert not decide(np.array([0]), np.array([6]), cfg)[2][0]
    # 3 of 6 contradicts both atoms: the robust Beta(1, 1) takes over, the band is learnable
    mixed = plan_round(ids(1), [3], [6], cfg, plan, 1, prior=atom_prior(1, 0.6))
    assert mixed.column("band").to_pylist() == ["learnable"]
    assert mixed.column("prior_weight").to_pylist()[0] < 0.05  # the atoms keep little


def test_a_query_decided_under_a_mixture_prior_is_never_asked_again():
    cfg = BandConfig()
    plan = PlanConfig(k0=4, k_max=32)
    rng = np.random.default_rng(4)
    n = 200
    p = np.where(rng.uniform(size=n) < 0.5, 0.0, rng.uniform(size=n))
    prior = atom_prior(n, near_zero=0.5)
    s = np.zeros(n, np.int64)
    t = np.zeros(n, np.int64)
    previous, decided_at = None, {}
    for r in range(plan.k_max + 1):
        table = plan_round(ids(n), s, t, cfg, plan, r, previous=previous, prior=prior)
        status = table.column("status").to_pylist()
        next_k = table.column("next_k").to_numpy().astype(np.int64)
        for i, st in enumerate(status):
            if st == "decided":
                decided_at.setdefault(i, r)
                assert next_k[i] == 0
        assert all(status[i] == "decided" for i in decided_at)
        if not next_k.any():
            break
        extra = np.where(np.isin(np.arange(n), list(decided_at)), 2, 0)  # unasked samples
        s = s + rng.binomial(next_k + extra, p)
        t = t + next_k + extra
        previous = table
    assert decided_at and min(decided_at.values()) == 1


def test_a_previous_plan_keeps_a_mixture_prior_and_reads_old_tables():
    cfg = BandConfig()
    first = plan_round(ids(2), [0, 0], [0, 0], cfg, PlanConfig(), 0, prior=atom_prior(2, 0.7))
    second = plan_round(ids(2), [0, 0], [4, 4], cfg, PlanConfig(), 1, prior=atom_prior(2, 0.1),
                        previous=first)
    assert second.column("prior_components").to_pylist() == \
        first.column("prior_components").to_pylist()
    assert second.column("prior_components").to_pylist()[0][0][0] == pytest.approx(0.7)
    # a plan table written before mixtures (no prior_components) reads as its single Beta
    old = first.drop_columns(["prior_components"]).set_column(
        5, "prior_alpha", pa.array([2.0, 1.0])).set_column(6, "prior_beta", pa.array([5.0, 1.0]))
    third = plan_round(ids(2), [0, 0], [4, 4], cfg, PlanConfig(), 1, previous=old)
    assert third.column("prior_components").to_pylist() == [[[1.0, 2.0, 5.0]],
                                                             [[1.0, 1.0, 1.0]]]


def test_mixture_plans_are_the_same_bytes_for_the_same_tallies():
    cfg = BandConfig()
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 4))
    p = np.where(x[:, 0] < -0.5, 0.0, np.where(x[:, 0] > 0.5, 1.0, rng.uniform(size=300)))
    n = np.full(300, 6)
    s = rng.binomial(n, p)

    def run():
        prior = fit_prior(x[:200], s[:200], n[:200], seed=3).mixture_prior(x[200:])
        first = plan_round(ids(100), np.zeros(100), np.zeros(100), cfg, PlanConfig(), 0,
                           prior=prior)
        second = plan_round(ids(100), s[200:] // 2, n[200:] // 2, cfg, PlanConfig(), 1,
                            previous=first)
        assert prior.alpha.shape[1] > 2  # a real mixture
        return table_bytes(first) + table_bytes(second)

    assert run() == run()


def test_mixture_prior_rows_round_trip():
    prior = atom_prior(2, 0.25)
    rows = prior.rows()
    assert rows == [[[0.25, 1.0, 64.0], [0.75, 64.0, 1.0]]] * 2
    back = MixturePrior.from_rows(rows + [[[1.0, 2.0, 3.0]]])
    assert back.alpha.shape == (3, 2) and back.weight[2].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="sum to 1"):
        MixturePrior(np.ones((1, 2)), np.ones((1, 2)), np.array([[0.5, 0.4]]))


@pytest.mark.parametrize("skip_predicted", [False, True])
def test_prior_band_is_plan_rounds_band_for_every_tally_and_prior(skip_predicted):
    """prior_band (the build's band for results planned under a recorded prior) equals
    plan_round's band, probability and decided flag, bit for bit: informative mixtures,
    single Betas and Beta(1, 1) rows mixed, every tally up to 12 trials, 0 trials included."""
    from difficulty.planner import prior_band

    s, t = grid(12)
    n = len(s)
    rng = np.random.default_rng(7)
    rows = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            rows.append([[1.0, 1.0, 1.0]])
        elif kind == 1:
            rows.append([[1.0, float(rng.uniform(0.3, 5)), float(rng.uniform(0.3, 5))]])
        else:
            w = float(rng.uniform(0.1, 0.9))
            rows.append([[w, 0.2, 40.0], [1.0 - w, 40.0, 0.2]])
    prior = MixturePrior.from_rows(rows)
    cfg = BandConfig(confidence=0.8)
    plan = PlanConfig(k0=4, k_max=16, skip_predicted=skip_predicted)
    table = plan_round(ids(n), s, t, cfg, plan, 1, prior=prior)
    band, prob, decided, _ = prior_band(s, t, cfg, prior, plan.robust_weight,
                                        prior_alone=skip_predicted)
    assert BAND_NAMES[band].tolist() == table.column("band").to_pylist()
    assert prob.tolist() == table.column("band_probability").to_pylist()
    assert decided.tolist() == table.column("decided").to_pylist()
    status = np.array(table.column("status").to_pylist())
    assert np.array_equal(decided, np.isin(status, ("decided", "predicted")))
    flat = np.arange(n) % 3 == 0  # Beta(1, 1) rows: estimate.decide's bits
    b11, p11, d11 = decide(s[flat], t[flat], cfg)
    assert np.array_equal(band[flat], b11) and np.array_equal(prob[flat], p11)
    assert np.array_equal(decided[flat], d11 & ((t[flat] > 0) | skip_predicted))
    assert skip_predicted or not decided[t == 0].any()  # the prior never decides alone
    # the priors matter: some informative rows are decided where Beta(1, 1) is not
    assert (decided[~flat] & ~decide(s[~flat], t[~flat], cfg)[2]).any()
