"""The rollout budget planner: rounds, the next-k rule, priors that never decide alone."""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from difficulty.estimate import BAND_NAMES, BandConfig, band_probabilities, decide
from difficulty.planner import (PLAN_SCHEMA, PlanConfig, Posterior, decide_probability,
                                needed_samples, plan_round, robust_posterior, round_record,
                                stable_probability)
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
