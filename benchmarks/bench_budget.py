"""Benchmark: rollouts a band costs under fixed k, adaptive rounds and adaptive + learned prior.

A simulation where each query's true pass rate p is known and every rollout is a Bernoulli(p)
draw. Each query has one stream of draws that every method reads from its start (common random
numbers), so methods differ only in how many draws they take and how they read them.

Queries and their cheap features (difficulty.prior.query_summaries):
  text: the synthetic text set (data_contracts.synthetic_text, --text-queries queries);
  ltr:  a real LTR file (--ltr, default the Yahoo sample's rank.train, via read_queries).

Truth (a simulated policy): a latent z = sqrt(rho) g + sqrt(1 - rho) e, where g is a seeded
standardized sum of 5 of the query's summary features and e ~ N(0, 1); p = Q^-1(Phi(z)) for the
regime's pass-rate distribution Q (so p's marginal is exactly Q):
  mostly-failing: 60% at 0, 5% at 1, the rest Beta(1, 4);
  mixed:          35% at 0, 25% at 1, the rest uniform (difficulty maps of public RL sets: a
                  large share never solved, a large share always solved);
  mostly-passing: 5% at 0, 60% at 1, the rest Beta(4, 1).
Variants: `partly` (rho = --rho, default 0.5) and `none` (rho = 0: the features say nothing, and
the prior must not hurt). The table states R2 = Var(E[p | features]) / Var(p), by Monte Carlo.

Methods (bands from estimate.decide's rule, --confidence, thresholds 0.1 / 0.9):
  fixed-16, fixed-8: k samples per query, Beta(1, 1) posterior;
  adaptive:          difficulty.planner rounds, k0 = 4, k_max = 16, no prior;
  adaptive+prior:    queries in a seeded order; the first --first-slice share asks k0 of each
                     query (round 1: nothing is measured yet), then plans its later rounds with
                     the prior fitted on those tallies (the requests loop's order: fit after the
                     first round, keep it); the rest in --slices slices, each planned from its
                     first round with a prior fitted on every query measured before it. The
                     prior is the empirical-Bayes mixture of difficulty.prior
                     (`PassRatePrior.mixture_prior`: near-0, near-1, the learned Beta of
                     strength <= --prior-strength, Beta(1, 1), weights by EM per bin of the
                     calibrated prediction) under the planner's robust Beta(1, 1) floor;
                     all rollouts counted;
  +stable:           the same with the planner's stable rule at --stable.
Reported per method: rollouts per query and as a share of fixed-16, band agreement with the
truth and with fixed-16's bands; medians over --seeds seeds with [min, max].

Oracle (`oracle_bound`): the Bayes-optimal sequential rule that knows each query's true law of p
given its features (the simulation's own), by dynamic programming and Lagrangian duality: a
lower bound on the rollouts any planner (with any prior, learned or not) needs to match
fixed-16's expected agreement, and an upper bound on the agreement any planner reaches at the
target's share. Both under k_max = --k-max and at least one sample per query.

Target (issue 28, PETS arXiv 2602.16745's offline figure): adaptive+prior spends <= 25% of
fixed-16's rollouts with agreement with the truth >= fixed-16's; reported for every row.

Usage: python benchmarks/bench_budget.py [--seeds 5] [--text-queries 1000] [--plot out.png]
         [--out runs/bench/budget]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
from scipy import special  # noqa: E402

import bench_out  # noqa: E402
from difficulty.estimate import BAND_NAMES, BandConfig, band_of_rate, decide  # noqa: E402
from difficulty.planner import PlanConfig, plan_round  # noqa: E402
from difficulty.prior import fit_prior, query_summaries  # noqa: E402

LTR_DEFAULT = os.path.join(os.path.dirname(REPO), "shared", "data", "ltr-yahoo-sample",
                           "rank.train")
# (share at 0, share at 1, Beta(a, b) of the rest)
REGIMES = {"mostly-failing": (0.60, 0.05, (1.0, 4.0)),
           "mixed": (0.35, 0.25, (1.0, 1.0)),
           "mostly-passing": (0.05, 0.60, (4.0, 1.0))}
METHODS = ("fixed-16", "fixed-8", "adaptive", "adaptive+prior", "adaptive+stable",
           "adaptive+prior+stable")


def regime_quantile(u: np.ndarray, regime: str) -> np.ndarray:
    """Q^-1(u) of the regime's pass-rate distribution (atoms at 0 and 1, a Beta between)."""
    w0, w1, (a, b) = REGIMES[regime]
    inner = np.clip((u - w0) / (1.0 - w0 - w1), 0.0, 1.0)
    return np.where(u < w0, 0.0, np.where(u > 1.0 - w1, 1.0, special.betaincinv(a, b, inner)))


def feature_index(x: np.ndarray, seed: int) -> np.ndarray:
    """g: a standardized sum of 5 seeded, standardized, non-constant summary columns."""
    rng = np.random.default_rng([seed, 7])
    std = x.std(0)
    usable = np.flatnonzero(std > 0)
    cols = rng.choice(usable, size=min(5, len(usable)), replace=False)
    z = (x[:, cols] - x[:, cols].mean(0)) / std[cols]
    g = z @ rng.choice([-1.0, 1.0], size=len(cols))
    return (g - g.mean()) / (g.std() or 1.0)


def truth(g: np.ndarray, rho: float, regime: str, seed: int) -> tuple[np.ndarray, float]:
    """(p [N], R2 = Var(E[p | g]) / Var(p)) of the simulated policy."""
    rng = np.random.default_rng([seed, 11])
    e = rng.normal(size=len(g))
    p = regime_quantile(special.ndtr(np.sqrt(rho) * g + np.sqrt(1 - rho) * e), regime)
    grid = np.random.default_rng([seed, 13]).normal(size=400)
    cond = regime_quantile(special.ndtr(np.sqrt(rho) * g[:, None]
                                        + np.sqrt(1 - rho) * grid[None, :]), regime)
    total = cond.var(1).mean() + cond.mean(1).var()  # the law of total variance
    return p, float(cond.mean(1).var() / total) if total > 0 else 0.0


def run_adaptive(ids, draws, cfg, plan, alpha=1.0, beta=1.0, prior=None, tallies=None):
    """Planner rounds over the draws [N, k_max]; (successes, trials, band index of the last
    plan). `prior`: a MixturePrior (else the Beta(alpha, beta)); `tallies`: (successes, trials)
    already drawn (the first columns of `draws`)."""
    n = len(ids)
    s, t = ((np.zeros(n, np.int64), np.zeros(n, np.int64)) if tallies is None
            else (tallies[0].copy(), tallies[1].copy()))
    cum = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(draws, 1)], axis=1)
    previous = None
    for r in range(plan.k_max + 1):
        table = plan_round(ids, s, t, cfg, plan, r, alpha, beta, previous=previous, prior=prior)
        next_k = table.column("next_k").to_numpy().astype(np.int64)
        if not next_k.any():
            break
        t = t + next_k
        s = cum[np.arange(n), t]
        previous = table
    index = {name: i for i, name in enumerate(BAND_NAMES)}
    return s, t, np.array([index[b] for b in table.column("band").to_pylist()])


def run_with_prior(ids, x, draws, cfg, plan, order, first, slices, strength, seed):
    """adaptive+prior (see the module docstring): the first slice's round 1 asks k0 of each
    query under Beta(1, 1); every later round, and every later slice, plans with the mixture
    prior (difficulty.prior.PassRatePrior.mixture_prior) fitted on every query measured before
    it, kept for the slice's rounds."""
    n = len(ids)
    s = np.zeros(n, np.int64)
    t = np.zeros(n, np.int64)
    band = np.zeros(n, np.int64)
    cut = max(1, int(round(first * n)))
    parts = [order[:cut]] + [p for p in np.array_split(order[cut:], slices) if len(p)]
    measured = np.zeros(n, bool)
    for k, part in enumerate(parts):
        if k == 0:  # round 1 of the first slice: nothing measured yet, Beta(1, 1) asks k0
            t[part] = plan.k0
            s[part] = draws[part, :plan.k0].sum(1)
            measured[part] = True
        prior = fit_prior(x[measured], s[measured], t[measured], max_strength=strength,
                          seed=seed).mixture_prior(x[part])
        ps, pt, pb = run_adaptive([ids[i] for i in part], draws[part], cfg, plan, prior=prior,
                                  tallies=(s[part], t[part]))
        s[part], t[part], band[part] = ps, pt, pb
        measured[part] = True
    return s, t, band


TARGET_SHARE = 0.25  # issue 28: at most a quarter of fixed-16's rollouts
ORACLE_GRID = 128  # equal-probability points of the latent noise e in the oracle's prior


def oracle_rates(g: np.ndarray, rho: float, regime: str) -> np.ndarray:
    """[N, ORACLE_GRID] pass rates, each of probability 1 / ORACLE_GRID: the true law of a
    query's p given its feature index g (the simulation's own, see `truth`)."""
    e = special.ndtri((np.arange(ORACLE_GRID) + 0.5) / ORACLE_GRID)
    return regime_quantile(special.ndtr(np.sqrt(rho) * np.asarray(g)[:, None]
                                        + np.sqrt(1 - rho) * e[None, :]), regime)


def oracle_bound(g: np.ndarray, rho: float, regime: str, cfg: BandConfig, k_max: int,
                 fixed_k: int = 16, budget: float = 4.0) -> tuple[float, float, float]:
    """(fixed-k's expected agreement with the truth, a lower bound on the rollouts per query
    any planner needs to match it, an upper bound on the agreement any planner reaches with
    `budget` rollouts per query): the Bayes-optimal sequential rule (one sample at a time, at
    least 1 and at most k_max per query) that knows each query's true law of p given g.

    Dynamic programming over the states (s, n) of each query (DeGroot 1970, ch. 12; Wald &
    Wolfowitz's Bayes sequential test): stopping is worth the posterior probability of the
    most probable band (the expected agreement), sampling costs lambda. For every lambda,
    lambda E[n] - E[agreement] is at least its minimum over rules, so any rule reaching
    fixed-k's agreement A spends E[n] >= n_lambda + (A - agreement_lambda) / lambda; the
    bound is the largest of these over a lambda grid (Lagrangian duality); likewise any rule
    spending `budget` reaches at most agreement_lambda + lambda (budget - n_lambda). Expected values
    under the model (not one draw): compare to the table's medians as a floor, not a row.
    """
    rates, weight = np.unique(oracle_rates(g, rho, regime), axis=0, return_counts=True)
    weight = weight / weight.sum()
    truth_band = band_of_rate(rates, cfg)  # [D, G]
    x = np.arange(fixed_k + 1)
    pmf = special.comb(fixed_k, x)[None, None, :] * rates[..., None] ** x * \
        (1 - rates[..., None]) ** (fixed_k - x)
    fixed_band = decide(x, np.full(len(x), fixed_k), cfg)[0]
    fixed = float((weight * (pmf * (fixed_band[None, None, :]
                                    == truth_band[..., None])).sum(-1).mean(1)).sum())
    # per state (n, s): the posterior over the grid, its stop value and P(next passes)
    stop = np.zeros((k_max + 1, k_max + 1, len(rates)))
    q1 = np.zeros_like(stop)
    onehot = np.stack([truth_band == b for b in range(3)], -1)  # [D, G, 3]
    for n in range(k_max + 1):
        for s in range(n + 1):
            like = rates ** s * (1 - rates) ** (n - s)  # 0 ** 0 = 1
            total = like.sum(1)
            post = like / np.where(total > 0, total, 1.0)[:, None]
            stop[n, s] = (post[..., None] * onehot).sum(1).max(-1)
            q1[n, s] = (post * rates).sum(1)
    best, ceiling = 0.0, 1.0
    for lam in np.geomspace(1e-5, 0.2, 120):
        value = stop[k_max].copy()
        go = np.zeros((k_max + 1, k_max + 1, len(rates)), bool)
        for n in range(k_max - 1, -1, -1):
            cont = -lam + q1[n, :n + 1] * value[1:n + 2] + (1 - q1[n, :n + 1]) * value[:n + 1]
            go[n, :n + 1] = (cont > stop[n, :n + 1]) | (n == 0)  # the prior never decides alone
            value = np.where(go[n, :n + 1], cont, stop[n, :n + 1])
        reach = np.zeros((k_max + 1, len(rates)))
        reach[0] = 1.0
        samples = agreement = 0.0
        for n in range(k_max + 1):
            here = reach[:n + 1]
            moving = here * go[n, :n + 1] if n < k_max else np.zeros_like(here)
            agreement = agreement + ((here - moving) * stop[n, :n + 1]).sum(0)
            samples = samples + moving.sum(0)
            if n < k_max:
                nxt = np.zeros((k_max + 1, len(rates)))
                nxt[1:n + 2] += moving * q1[n, :n + 1]
                nxt[:n + 1] += moving * (1 - q1[n, :n + 1])
                reach = nxt
        samples_l = float((weight * samples).sum())
        agreement_l = float((weight * agreement).sum())
        best = max(best, samples_l + (fixed - agreement_l) / lam)
        ceiling = min(ceiling, agreement_l + lam * (budget - samples_l))
    return fixed, float(best), float(ceiling)


def one(ids, x, regime, rho, seed, cfg, plan, args, strength=None, fixed=True) -> dict:
    """One simulation: every method's rollouts and band agreement (see the module docstring)."""
    g = feature_index(x, seed)
    p, r2 = truth(g, rho, regime, seed)
    draws = (np.random.default_rng([seed, 17]).uniform(size=(len(p), max(16, plan.k_max)))
             < p[:, None]).astype(np.int64)
    true_band = band_of_rate(p, cfg)
    fixed_expected, floor, ceiling = oracle_bound(g, rho, regime, cfg, plan.k_max,
                                                  budget=TARGET_SHARE * 16)
    out = {"r2": r2, "oracle": {"share": floor / 16.0, "agreement_at_target": ceiling,
                                "fixed16_expected": fixed_expected}}
    bands = {}
    for k in (16, 8) if fixed else (16,):
        s = draws[:, :k].sum(1)
        bands[f"fixed-{k}"] = (decide(s, np.full(len(p), k), cfg)[0], k * len(p))
    order = np.random.default_rng([seed, 19]).permutation(len(p))
    stable = replace(plan, stable_level=args.stable)
    for name, rule, with_prior in (("adaptive", plan, False), ("adaptive+prior", plan, True),
                                   ("adaptive+stable", stable, False),
                                   ("adaptive+prior+stable", stable, True)):
        if with_prior:
            _, t, b = run_with_prior(ids, x, draws[:, :rule.k_max], cfg, rule, order,
                                     args.first_slice, args.slices,
                                     args.prior_strength if strength is None else strength, seed)
        else:
            _, t, b = run_adaptive(ids, draws[:, :rule.k_max], cfg, rule)
        bands[name] = (b, int(t.sum()))
    base = bands["fixed-16"]
    for name, (b, spent) in bands.items():
        out[name] = {"per_query": spent / len(p), "share": spent / base[1],
                     "truth": float((b == true_band).mean()), "vs16": float((b == base[0]).mean())}
    return out


def med(values) -> str:
    v = np.asarray(values, float)
    return f"{np.median(v):.3f} [{v.min():.3f},{v.max():.3f}]"


def load_sets(args) -> dict:
    from data_contracts.synthetic_text import SyntheticTextConfig, generate_text_table

    sets = {}
    text = generate_text_table(SyntheticTextConfig(n_queries=args.text_queries))
    sets["text"] = text
    if args.ltr and os.path.exists(args.ltr):
        import pyarrow as pa

        from data_contracts.readers import read_queries
        sets["ltr"] = pa.concat_tables([b.queries for b in read_queries(args.ltr)])
        if args.smoke:
            sets["ltr"] = sets["ltr"].slice(0, args.text_queries)
    else:
        print(f"(no LTR file at {args.ltr!r}: the ltr rows are left out)")
    return sets


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--text-queries", type=int, default=1000)
    parser.add_argument("--ltr", default=LTR_DEFAULT)
    parser.add_argument("--rho", type=float, default=0.5)
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--k0", type=int, default=4)
    parser.add_argument("--k-max", type=int, default=16)
    parser.add_argument("--prior-strength", type=float, default=4.0)
    parser.add_argument("--first-slice", type=float, default=0.2)
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--stable", type=float, default=0.95,
                        help="the stable rule's level for the +stable methods")
    parser.add_argument("--plot", default=None)
    parser.add_argument("--sweep", action="store_true",
                        help="also the mixed regime (partly) under other confidences and prior "
                             "strengths")
    bench_out.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.text_queries = 1, 40
    facts = bench_out.machine()
    cfg = BandConfig(confidence=args.confidence)
    plan = PlanConfig(k0=args.k0, k_max=args.k_max)
    started = time.time()
    sets = load_sets(args)
    print(f"cores {os.cpu_count()}; bands: {cfg.rule()}; planner k0={plan.k0} "
          f"k_max={plan.k_max} decide_target={plan.decide_target}; prior strength <= "
          f"{args.prior_strength:g}, first slice {args.first_slice:g} then {args.slices} "
          f"slices; {args.seeds} seeds; medians [min,max]")
    header = (f"{'set':5} {'truth':6} {'regime':15} {'R2':>5} {'method':22} "
              f"{'rollouts/q':>22} {'share of fixed-16':>22} {'agree truth':>22} "
              f"{'agree fixed-16':>22}")
    print(header)
    results = {}
    for set_name, table in sets.items():
        x, _ = query_summaries(table)
        ids = table.column("query_id").to_pylist()
        for variant, rho in (("partly", args.rho), ("none", 0.0)):
            for regime in REGIMES:
                runs = [one(ids, x, regime, rho, seed, cfg, plan, args)
                        for seed in range(args.seeds)]
                r2 = float(np.median([r["r2"] for r in runs]))
                results[(set_name, variant, regime)] = runs
                for m in METHODS:
                    print(f"{set_name:5} {variant:6} {regime:15} {r2:5.2f} {m:22} "
                          f"{med([r[m]['per_query'] for r in runs]):>22} "
                          f"{med([r[m]['share'] for r in runs]):>22} "
                          f"{med([r[m]['truth'] for r in runs]):>22} "
                          f"{med([r[m]['vs16'] for r in runs]):>22}")
    print(f"target (adaptive+prior <= {TARGET_SHARE:g} of fixed-16's rollouts, agreement with "
          f"the truth >= fixed-16's; medians), and the oracle's bounds:")
    for (set_name, variant, regime), v in target_rows(results).items():
        print(f"  {set_name:5} {variant:6} {regime:15} share {v['share']:.3f}, agreement minus "
              f"fixed-16's {v['gap']:+.3f}: {'met' if v['met'] else 'not met'}; oracle needs "
              f"{v['oracle_share']:.3f}, reaches {v['oracle_agreement']:.3f} at "
              f"{TARGET_SHARE:g} (fixed-16 expected {v['fixed16_expected']:.3f})")
    if args.sweep:
        sweep(sets, args)
    if args.plot:
        plot(results, args.plot)
        print(f"plot: {args.plot}")
    print(f"({time.time() - started:.1f}s)")
    write_out(args, facts, cfg, results)
    return 0


def target_rows(results: dict) -> dict:
    """Per (set, truth, regime): adaptive+prior's median share and median agreement minus
    fixed-16's, whether the target is met, and the oracle's medians."""
    out = {}
    for key, runs in results.items():
        share = float(np.median([r["adaptive+prior"]["share"] for r in runs]))
        gap = float(np.median([r["adaptive+prior"]["truth"] - r["fixed-16"]["truth"]
                               for r in runs]))
        out[key] = {"share": share, "gap": gap, "met": share <= TARGET_SHARE and gap >= 0,
                    "oracle_share": float(np.median([r["oracle"]["share"] for r in runs])),
                    "oracle_agreement": float(np.median([r["oracle"]["agreement_at_target"]
                                                         for r in runs])),
                    "fixed16_expected": float(np.median([r["oracle"]["fixed16_expected"]
                                                         for r in runs]))}
    return out


def write_out(args, facts: dict, cfg: BandConfig, results: dict) -> None:
    """results.md: per set, truth variant and regime, the shares of fixed-16's rollouts and the
    band agreement with the truth (medians over seeds, [min, max]), adaptive+prior's distance
    to the target and the oracle's bounds; results.json: every run."""
    def cell(runs, method, key):
        v = np.asarray([r[method][key] for r in runs], float)
        return f"{np.median(v):.3f} [{v.min():.3f}, {v.max():.3f}]"

    verdict = target_rows(results)
    rows = [[set_name, variant, regime, f"{np.median([r['r2'] for r in runs]):.2f}",
             cell(runs, "adaptive", "share"), cell(runs, "adaptive+prior", "share"),
             cell(runs, "fixed-16", "truth"), cell(runs, "adaptive", "truth"),
             cell(runs, "adaptive+prior", "truth"), f"{verdict[key]['gap']:+.3f}",
             f"{verdict[key]['oracle_share']:.3f}", f"{verdict[key]['oracle_agreement']:.3f}",
             "met" if verdict[key]["met"] else "not met"]
            for key, runs in results.items() for set_name, variant, regime in [key]]
    met = sum(v["met"] for v in verdict.values())
    shares = [v["share"] for v in verdict.values()]
    gaps = [v["gap"] for v in verdict.values()]
    floors = [v["oracle_share"] for v in verdict.values()]
    ceilings = [v["oracle_agreement"] for v in verdict.values()]
    expected = [v["fixed16_expected"] for v in verdict.values()]
    bench_out.write(args.out, "bench_budget.py", args, facts, [
        f"Rollouts a band costs for a simulated outside policy (bands at confidence "
        f"{args.confidence:g}, adaptive k0={args.k0}, k_max={args.k_max}; adaptive+prior plans "
        f"with the empirical-Bayes mixture prior, learned strength at most "
        f"{args.prior_strength:g}; `truth` says whether the query features carry the pass rate "
        f"(`partly`, rho={args.rho:g}) or not (`none`)); medians of {args.seeds} seeds "
        f"[min, max]. `oracle` columns: the Bayes-optimal sequential rule that knows each "
        f"query's true law of p (medians of its bounds): the share of fixed-16's rollouts any "
        f"planner needs to match fixed-16's expected agreement, and the most agreement any "
        f"planner reaches at a share of {TARGET_SHARE:g}:",
        "",
        *bench_out.table(["set", "truth", "regime", "R2", "adaptive: share of fixed-16",
                          "adaptive+prior: share", "agreement with truth: fixed-16",
                          "adaptive", "adaptive+prior", "adaptive+prior minus fixed-16",
                          "oracle: share needed", f"oracle: agreement at {TARGET_SHARE:g}",
                          "target"], rows),
        "",
        f"Target (adaptive+prior at most {TARGET_SHARE:g} of fixed-16's rollouts at agreement "
        f"with the truth at least fixed-16's): met in {met} of {len(verdict)} rows. "
        f"adaptive+prior spends {min(shares):.3f} to {max(shares):.3f} of fixed-16's rollouts, "
        f"at agreement {min(gaps):+.3f} to {max(gaps):+.3f} against fixed-16's. No planner meets "
        f"it here in expectation: the oracle needs {min(floors):.3f} to {max(floors):.3f} of fixed-16's "
        f"rollouts to match fixed-16's expected agreement ({min(expected):.3f} to "
        f"{max(expected):.3f}), and at {TARGET_SHARE:g} it reaches at most {min(ceilings):.3f} "
        f"to {max(ceilings):.3f}.",
    ], {"runs": [{"set": s, "truth": v, "regime": g, "seeds": runs}
                 for (s, v, g), runs in results.items()]})


SWEEP = (16.0, 64.0)  # prior strength caps (the band rule's confidence stays; at <= 0.8 the
# uniform prior's P(learnable) = 0.8 lets a single sample decide "learnable")


def sweep(sets: dict, args) -> None:
    """The mixed regime, truth `partly`: what a larger cap on the prior's strength buys."""
    print(f"sweep: mixed regime, truth partly (rho={args.rho:g}), prior strength caps "
          f"{SWEEP}; medians over {args.seeds} seeds")
    print(f"{'set':5} {'S':>4} {'method':22} {'share of fixed-16':>22} {'agree truth':>22} "
          f"{'agree fixed-16':>22}")
    cfg = BandConfig(confidence=args.confidence)
    plan = PlanConfig(k0=args.k0, k_max=args.k_max)
    for set_name, table in sets.items():
        x, _ = query_summaries(table)
        ids = table.column("query_id").to_pylist()
        for strength in SWEEP:
            runs = [one(ids, x, "mixed", args.rho, seed, cfg, plan, args, strength, False)
                    for seed in range(args.seeds)]
            for m in ("adaptive+prior", "adaptive+prior+stable"):
                print(f"{set_name:5} {strength:4g} {m:22} "
                      f"{med([r[m]['share'] for r in runs]):>22} "
                      f"{med([r[m]['truth'] for r in runs]):>22} "
                      f"{med([r[m]['vs16'] for r in runs]):>22}")


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = dict(zip(METHODS, ("s", "D", "o", "*", "^", "P")))
    fig, axes = plt.subplots(1, len(REGIMES), figsize=(5 * len(REGIMES), 4), sharey=True)
    keys = sorted({(s, v) for s, v, _ in results})
    colors = dict(zip(keys, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, regime in zip(axes, REGIMES):
        for (set_name, variant) in keys:
            runs = results[(set_name, variant, regime)]
            for m in METHODS:
                ax.scatter(np.median([r[m]["share"] for r in runs]),
                           np.median([r[m]["truth"] for r in runs]), marker=markers[m],
                           color=colors[(set_name, variant)], s=60,
                           label=f"{set_name}/{variant} {m}")
        ax.axvline(0.25, color="grey", lw=0.8, ls="--")
        ax.set_title(regime)
        ax.set_xlabel("rollouts / fixed-16's")
    axes[0].set_ylabel("band agreement with the truth")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    sys.exit(main())
