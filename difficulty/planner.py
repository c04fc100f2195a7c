"""Rollout budget planner: how many more samples each query needs, round by round.

For an outside policy (the requests/results loop) the build cannot sample on its own: it asks for
samples in rounds. After each round it pools every query's results over all rounds so far,
decides the band from the Beta posterior (difficulty.estimate's band rule, with an optional
per-query prior from difficulty.prior) and plans the next round:

- round 1 asks `k0` samples per query (fewer for a query whose prior already says fewer are
  needed, by the rule below; never fewer than 1: a prior alone decides nothing);
- a decided query (band probability >= `confidence`) is never asked again;
- an undecided query is asked `next_k` more samples, the preposterior rule below, bounded by
  `k_max - trials` and at least 1; a query at `k_max` that is still undecided is `exhausted`;
- optionally (`stable_level`), an undecided query stops as `stable` once the samples left under
  `k_max` would most likely not change its most probable band (see PlanConfig).

Next-k rule (Beta-Binomial preposterior analysis; Raiffa & Schlaifer 1961, ch. 7; the same
predictive is the "expected decision" look-ahead of sequential designs). With the posterior
Beta(a, b), a = alpha + s, b = beta + n - s, the x successes among m further samples follow the
posterior predictive Beta-Binomial(m, a, b):

    P(x | m) = C(m, x) B(a + x, b + m - x) / B(a, b),
    P_decide(m) = sum_x P(x | m) * [max_band P(band | Beta(a + x, b + m - x)) >= confidence],

and `next_k` is the smallest m in 1..k_max - n with P_decide(m) >= `decide_target` (default
0.5: "more likely than not decided after this round"), or k_max - n when no m reaches it. A
posterior nearly decided asks few samples; one near a threshold asks many. Related work: PETS
(arXiv 2602.16745) allocates samples per prompt from a posterior, Reinforce-Ada stops sampling a
prompt once it has enough signal; this rule is their offline, band-decision analogue.

Priors: a per-query prior is a mixture of J Beta components, sum_j w_j Beta(alpha_j, beta_j)
(`MixturePrior`; a single Beta is J = 1; difficulty.prior fits an empirical-Bayes mixture with
components near 0 and near 1, because a Beta prior cannot express a population with atoms at 0
and 1). The planner adds the robust component: the prior used is (1 - w) x that mixture + w
Beta(1, 1), w = `robust_weight` (the robust meta-analytic-predictive prior of Schmidli et al.
2014, Biometrics 70:1023; Berger's epsilon-contamination). By conjugacy its posterior after s
of n is the mixture of Beta(alpha_j + s, beta_j + n - s) with weights proportional to each
component's prior weight times its Beta-Binomial marginal likelihood B(alpha_j + s, beta_j +
n - s) / B(alpha_j, beta_j) (`mixture_posterior`), so when the samples contradict the
prediction (4/4 successes against a prior near 0) the weight moves to the components that
explain them, Beta(1, 1) at least, and the samples decide. Band probabilities are the
weighted sums of the components' (`mixture_band_probabilities`); the preposterior rule uses the
same mixture (its predictive is the weighted sum of the components' Beta-Binomials, and after x
successes each weight is updated by Bayes' rule). Where the prior is Beta(1, 1) the band is
exactly estimate.decide's.

Plans are deterministic: the same tallies, priors and config give the same table, byte for byte.
Cost: for each distinct undecided posterior, sum over m of (m + 1) J Beta CDF pairs up to the
first m that reaches the target (at most (k_max + 1)(k_max + 2) / 2); queries sharing a
posterior (all tallies under the uniform prior) are solved once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy import special

from difficulty.estimate import BAND_NAMES, BandConfig, band_probabilities, decide

PLAN_SCHEMA = pa.schema([
    pa.field("query_id", pa.string(), nullable=False),
    pa.field("round", pa.int32(), nullable=False),       # rounds whose results are pooled
    pa.field("asked", pa.int64(), nullable=False),       # samples asked so far, all rounds
    pa.field("trials", pa.int64(), nullable=False),      # samples answered so far
    pa.field("successes", pa.int64(), nullable=False),
    pa.field("prior_alpha", pa.float64(), nullable=False),
    pa.field("prior_beta", pa.float64(), nullable=False),
    # posterior weight of the informative prior component (0 where the prior is Beta(1, 1))
    pa.field("prior_weight", pa.float64(), nullable=False),
    pa.field("band", pa.string(), nullable=False),       # the most probable band
    pa.field("band_probability", pa.float64(), nullable=False),
    pa.field("decided", pa.bool_(), nullable=False),
    # decided | open (asked next_k more) | exhausted (undecided at k_max) | predicted (decided
    # by the prior alone, only with skip_predicted) | stable (undecided, but k_max samples would
    # most likely give the same band: only with stable_level)
    pa.field("status", pa.string(), nullable=False),
    pa.field("next_k", pa.int32(), nullable=False),
    # the query's prior before the robust Beta(1, 1) component: [weight, alpha, beta] per
    # component of weight > 0 (one [1, alpha, beta] for a single Beta prior); prior_alpha and
    # prior_beta are that Beta, or for a mixture the Beta of its mean and variance
    pa.field("prior_components", pa.list_(pa.list_(pa.float64())), nullable=False),
])
STATUSES = ("decided", "open", "exhausted", "predicted", "stable")


@dataclass(frozen=True)
class PlanConfig:
    """Round sizes of the planner (see the module docstring).

    Attributes:
      k0: samples of round 1 per query (>= 1).
      k_max: the most samples a query is ever asked, all rounds together (>= k0).
      decide_target: P_decide(m) the next round must reach (0 < target <= 1).
      skip_predicted: a query with no samples whose prior alone decides its band is not asked
        and is labelled `predicted` (off by default: the prior never decides a band alone).
        The prior alone means the robust mixture: with weight w on Beta(1, 1) a band's prior
        probability is at most 1 - w + w * (its Beta(1, 1) probability).
      robust_weight: the weight w of Beta(1, 1) in a per-query prior's robust mixture (see the
        module docstring); 1 ignores priors.
      stable_level: 0 (default) is off. Otherwise an undecided query with samples stops
        (`stable`, decided false) once the posterior predictive probability that its most
        probable band after all k_max - n remaining samples equals today's is >= stable_level:
        the full budget would most likely not change the answer (the stopping criterion of
        PETS and Reinforce-Ada, put as a band). Such a query is never asked again.
    """

    k0: int = 4
    k_max: int = 64
    decide_target: float = 0.5
    skip_predicted: bool = False
    robust_weight: float = 0.2
    stable_level: float = 0.0

    def __post_init__(self):
        if self.k0 < 1 or self.k_max < self.k0:
            raise ValueError(f"need 1 <= k0 <= k_max, got k0={self.k0}, k_max={self.k_max}")
        if not 0.0 < self.decide_target <= 1.0:
            raise ValueError(f"decide_target must be in (0, 1], got {self.decide_target}")
        if not 0.0 <= self.robust_weight <= 1.0:
            raise ValueError(f"robust_weight must be in [0, 1], got {self.robust_weight}")
        if not 0.0 <= self.stable_level <= 1.0:
            raise ValueError(f"stable_level must be in [0, 1], got {self.stable_level}")


@dataclass(frozen=True)
class MixturePrior:
    """Per-query mixture priors sum_j weight[i, j] Beta(alpha[i, j], beta[i, j]), arrays [N, J].

    A single Beta prior is the case J = 1 (`MixturePrior.single`). Rows may hold components of
    weight 0 (padding, so queries with fewer components share one J). The planner adds the
    robust Beta(1, 1) component of weight `robust_weight` on top (see the module docstring).
    """

    alpha: np.ndarray
    beta: np.ndarray
    weight: np.ndarray

    def __post_init__(self):
        shapes = {np.shape(self.alpha), np.shape(self.beta), np.shape(self.weight)}
        if len(shapes) != 1 or np.ndim(self.alpha) != 2 or np.shape(self.alpha)[1] < 1:
            raise ValueError(f"a mixture prior needs alpha, beta, weight of one shape [N, J], "
                             f"got {sorted(shapes)}")
        for name, arr in (("alpha", self.alpha), ("beta", self.beta)):
            if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
                raise ValueError(f"{name} must be finite and > 0")
        w = np.asarray(self.weight, float)
        if not np.all(np.isfinite(w)) or np.any(w < 0) or (
                len(w) and not np.allclose(w.sum(1), 1.0, rtol=0, atol=1e-9)):
            raise ValueError("mixture weights must be >= 0 and sum to 1 per query")

    @classmethod
    def single(cls, alpha, beta) -> "MixturePrior":
        """One Beta(alpha, beta) per query (arrays [N])."""
        a = np.asarray(alpha, float).reshape(-1, 1)
        b = np.asarray(beta, float).reshape(-1, 1)
        return cls(a, b, np.ones_like(a))

    @classmethod
    def from_rows(cls, rows: list) -> "MixturePrior":
        """From per-query lists of [weight, alpha, beta] (the recorded form; lists of different
        lengths are padded with weight-0 Beta(1, 1) components)."""
        j = max((len(r) for r in rows), default=1)
        out = np.zeros((len(rows), j, 3))
        out[:, :, 1:] = 1.0
        for i, row in enumerate(rows):
            if not row:
                raise ValueError("a mixture prior needs at least one component")
            out[i, :len(row)] = np.asarray(row, float).reshape(-1, 3)
        return cls(out[:, :, 1].copy(), out[:, :, 2].copy(), out[:, :, 0].copy())

    def rows(self, digits: int | None = None) -> list[list[list[float]]]:
        """Per query the [weight, alpha, beta] of its components of weight > 0 (rounded to
        `digits` when given: the form requests.json records)."""
        fix = (lambda v: float(v)) if digits is None else (lambda v: round(float(v), digits))
        out = []
        for ws, al, be in zip(self.weight, self.alpha, self.beta):
            row = [[fix(w), fix(a), fix(b)] for w, a, b in zip(ws, al, be) if fix(w) > 0]
            out.append(row or [[1.0, 1.0, 1.0]])
        return out

    def take(self, rows) -> "MixturePrior":
        return MixturePrior(self.alpha[rows], self.beta[rows], self.weight[rows])

    def informative(self) -> np.ndarray:
        """[N] whether a query's prior differs from Beta(1, 1)."""
        flat = (self.alpha == 1.0) & (self.beta == 1.0)
        return ~np.all(flat | (self.weight == 0), axis=1)

    def mean_beta(self) -> tuple[np.ndarray, np.ndarray]:
        """([N], [N]) the Beta with the mixture's mean and variance (method of moments; a
        summary for the plan table), Beta(1, 1) where the prior is Beta(1, 1)."""
        mean_j = self.alpha / (self.alpha + self.beta)
        second_j = mean_j * (self.alpha + 1.0) / (self.alpha + self.beta + 1.0)
        mean = (self.weight * mean_j).sum(1)
        var = np.maximum((self.weight * second_j).sum(1) - mean ** 2, 1e-12)
        size = np.maximum(mean * (1.0 - mean) / var - 1.0, 1e-6)
        single = self.alpha.shape[1] == 1
        a = self.alpha[:, 0] if single else np.maximum(mean * size, 1e-6)
        b = self.beta[:, 0] if single else np.maximum((1.0 - mean) * size, 1e-6)
        keep = ~self.informative()
        return np.where(keep, 1.0, a), np.where(keep, 1.0, b)

    def robust(self, weight: float) -> "MixturePrior":
        """(1 - weight) x this prior + weight x Beta(1, 1): the robust mixture (Schmidli et al.
        2014), its Beta(1, 1) component last. Rows whose prior is Beta(1, 1) keep weight 1 on
        their own components (the same prior, and the same bits as estimate.decide)."""
        n = len(self.alpha)
        informative = self.informative()[:, None]
        w = np.where(informative, (1.0 - weight) * self.weight, self.weight)
        return MixturePrior(np.concatenate([self.alpha, np.ones((n, 1))], 1),
                            np.concatenate([self.beta, np.ones((n, 1))], 1),
                            np.concatenate([w, np.where(informative, weight, 0.0)], 1))


@dataclass(frozen=True)
class Posterior:
    """Per-query mixture posteriors sum_j w[..., j] Beta(a[..., j], b[..., j]), arrays [N, J]
    (or [..., J]); the weights sum to 1 over the last axis."""

    a: np.ndarray
    b: np.ndarray
    w: np.ndarray

    @classmethod
    def beta(cls, a, b) -> "Posterior":
        """Plain Beta(a, b) posteriors (J = 1); a and b broadcast to one 1-D shape."""
        a, b = np.broadcast_arrays(np.atleast_1d(np.asarray(a, float)),
                                   np.atleast_1d(np.asarray(b, float)))
        return cls(a[:, None], b[:, None], np.ones((len(a), 1)))

    def take(self, rows) -> "Posterior":
        return Posterior(self.a[rows], self.b[rows], self.w[rows])


def beta_binomial_loglik(successes: np.ndarray, trials: np.ndarray, alpha: np.ndarray,
                         beta: np.ndarray) -> np.ndarray:
    """log P(successes | trials) under the Beta(alpha, beta) prior, without the binomial
    coefficient (constant in the prior): log B(alpha + s, beta + n - s) - log B(alpha, beta).
    The same for any stopping rule (the likelihood principle), so adaptive tallies can be used."""
    return (special.betaln(alpha + successes, beta + trials - successes)
            - special.betaln(alpha, beta))


def mixture_posterior(successes, trials, prior: MixturePrior) -> Posterior:
    """The posterior of a mixture prior after `successes` of `trials` ([N] each).

    Each component updates by conjugacy to Beta(alpha_j + s, beta_j + n - s); its weight
    becomes proportional to its prior weight times its Beta-Binomial marginal likelihood
    B(alpha_j + s, beta_j + n - s) / B(alpha_j, beta_j) (the binomial coefficient is common to
    all components and cancels). Exact for any stopping rule that depends on the tallies only.
    """
    s = np.asarray(successes, float)[:, None]
    n = np.asarray(trials, float)[:, None]
    a, b, w = prior.alpha, prior.beta, prior.weight
    log_ml = beta_binomial_loglik(s, n, a, b)
    with np.errstate(divide="ignore"):
        lw = np.log(w) + log_ml
    top = lw.max(1, keepdims=True)
    post_w = np.exp(lw - top)
    post_w = post_w / post_w.sum(1, keepdims=True)
    return Posterior(a + s, b + n - s, post_w)


def robust_posterior(successes, trials, alpha, beta, weight: float) -> Posterior:
    """The posterior of the robust prior (1 - weight) Beta(alpha, beta) + weight Beta(1, 1)
    after `successes` of `trials` (see the module docstring); arrays [N], components
    [informative, Beta(1, 1)] (J = 2; the second has weight 0 where the prior is Beta(1, 1))."""
    n = len(np.atleast_1d(np.asarray(successes)))
    prior = MixturePrior.single(np.broadcast_to(np.asarray(alpha, float), (n,)),
                                np.broadcast_to(np.asarray(beta, float), (n,)))
    return mixture_posterior(successes, trials, prior.robust(weight))


def mixture_band_probabilities(post: Posterior, cfg: BandConfig) -> np.ndarray:
    """[..., 3] band probabilities of mixture posteriors: the weighted sum over components of
    each Beta's band probabilities (post arrays [..., J])."""
    zero = np.zeros_like(post.a)
    probs = band_probabilities(zero, zero, cfg, post.a, post.b)  # [..., J, 3]
    return (np.asarray(post.w)[..., None] * probs).sum(-2)


def _log_betabinom(x, m, a, b):
    return (special.gammaln(m + 1.0) - special.gammaln(x + 1.0) - special.gammaln(m - x + 1.0)
            + special.betaln(a + x, b + m - x) - special.betaln(a, b))


def _predictive(post: Posterior, m: int, cfg: BandConfig) -> tuple[np.ndarray, np.ndarray]:
    """(pmf [N, m + 1], band probabilities [N, m + 1, 3]): the posterior predictive of the
    successes x = 0..m among m more samples (the weighted sum of the components'
    Beta-Binomials), and the band probabilities after each x (components updated by
    conjugacy, weights by Bayes' rule: w_j' = w_j P_j(x) / P(x))."""
    a, b, w = (np.asarray(v, float)[:, None, :] for v in (post.a, post.b, post.w))
    x = np.arange(m + 1, dtype=float)[None, :, None]
    pmf_j = np.exp(_log_betabinom(x, m, a, b))  # [N, m + 1, J]
    joint = w * pmf_j
    pmf = joint.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        w_next = np.where(pmf[..., None] > 0, joint / np.where(pmf > 0, pmf, 1.0)[..., None],
                          np.broadcast_to(w, joint.shape))
    after = Posterior(a + x, b + m - x, w_next)
    return pmf, mixture_band_probabilities(after, cfg)


def decide_probability(post: Posterior, m: int, cfg: BandConfig) -> np.ndarray:
    """P_decide(m): the posterior-predictive probability that the band is decided after m more
    samples, for the posteriors `post` ([N] each).

    Returns:
      [N] probabilities in [0, 1].
    """
    pmf, probs = _predictive(post, m, cfg)
    return np.clip((pmf * (probs.max(-1) >= cfg.confidence)).sum(-1), 0.0, 1.0)


def stable_probability(post: Posterior, m: int, band: np.ndarray, cfg: BandConfig
                       ) -> np.ndarray:
    """The posterior-predictive probability that after m more samples the most probable band
    is still `band` ([N] band indices): how surely the full budget would give today's band.

    Returns:
      [N] probabilities in [0, 1].
    """
    pmf, probs = _predictive(post, m, cfg)
    same = probs.argmax(-1) == np.asarray(band)[:, None]
    return np.clip((pmf * same).sum(-1), 0.0, 1.0)


def needed_samples(post: Posterior, remaining: np.ndarray, cfg: BandConfig,
                   target: float = 0.5) -> np.ndarray:
    """The next-k rule: smallest m in 1..remaining with P_decide(m) >= target, else remaining.

    Args:
      post: [N] posteriors (`Posterior.beta(a, b)` for plain Beta posteriors).
      remaining: [N] samples left under k_max (a query with remaining <= 0 gets 0).
      cfg: the band rule.
      target: the decision probability to reach.

    Returns:
      [N] int64 sample counts.
    """
    remaining = np.asarray(remaining, np.int64)
    # identical posteriors get identical answers: solve each distinct one once (with the
    # uniform prior a batch holds at most (k_max + 1)^2 of them)
    key = np.concatenate([post.a, post.b, post.w, remaining.astype(float)[:, None]], axis=1)
    if len(key) > 1:
        distinct, first, inverse = np.unique(key, axis=0, return_index=True,
                                             return_inverse=True)
        if len(distinct) < len(key):
            solved = needed_samples(post.take(first), remaining[first], cfg, target)
            return solved[inverse.reshape(-1)]
    out = np.maximum(remaining, 0)
    active = np.flatnonzero(remaining > 0)
    m = 1
    while active.size:
        reached = decide_probability(post.take(active), m, cfg) >= target
        out[active[reached]] = m
        active = active[~reached & (remaining[active] > m)]
        m += 1
    return out


def _as_prior(value, n: int, name: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, float), (n,)).copy()
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0")
    return arr


def prior_band(successes, trials, cfg: BandConfig, prior: MixturePrior, robust_weight: float,
               prior_alone: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Posterior]:
    """Each query's band under its prior: the planner's decision, and the build's for a query
    whose samples were planned under a recorded prior (difficulty.scoring.score_from_log).

    An informative prior's band is that of the posterior of the robust mixture (1 - w) x prior
    + w Beta(1, 1), w = `robust_weight` (`mixture_posterior`, `mixture_band_probabilities`;
    see the module docstring); a query whose prior is Beta(1, 1) keeps estimate.decide's band,
    probability and decided flag bit for bit. The prior never decides a band alone: a query
    with 0 trials is not decided unless `prior_alone` (the planner's `skip_predicted`).

    Args:
      successes, trials: [N] pooled tallies (0 <= successes <= trials).
      cfg: the band rule (`hard_below`, `easy_above`, `confidence`).
      prior: [N] per-query mixture priors (without the robust component).
      robust_weight: w in [0, 1] (PlanConfig.robust_weight).
      prior_alone: whether a query with no samples may be decided by its prior.

    Returns:
      (band index [N] into BAND_NAMES, band probability [N], decided [N] bool, the robust
      mixture posterior [N, J + 1]).
    """
    s = np.asarray(successes, np.int64).reshape(-1)
    t = np.asarray(trials, np.int64).reshape(-1)
    post = mixture_posterior(s, t, prior.robust(robust_weight))
    informative = prior.informative()
    band, prob, decided = decide(s, t, cfg)  # Beta(1, 1): estimate.decide's bands exactly
    if informative.any():
        probs = mixture_band_probabilities(post.take(informative), cfg)
        band[informative] = probs.argmax(-1)
        prob[informative] = probs.max(-1)
        decided[informative] = prob[informative] >= cfg.confidence
    if not prior_alone:
        decided = decided & (t > 0)  # the prior never decides a band alone
    return band, prob, decided, post


def plan_round(query_ids, successes, trials, cfg: BandConfig, plan: PlanConfig,
               round_index: int, alpha=1.0, beta=1.0, asked=None,
               previous: pa.Table | None = None, prior: MixturePrior | None = None) -> pa.Table:
    """Decides every query's band from its pooled tallies and plans the next round.

    Args:
      query_ids: [N] unique query ids (output rows keep this order).
      successes, trials: [N] tallies pooled over every round so far (0, 0 before round 1).
      cfg: the band rule (`hard_below`, `easy_above`, `confidence`).
      plan: round sizes (`k0`, `k_max`, `decide_target`, `skip_predicted`).
      round_index: rounds whose results are pooled (0 before any sample).
      alpha, beta: the Beta prior, scalars or [N] (default Beta(1, 1): bands equal
        estimate.decide's exactly); ignored when `prior` is given.
      asked: [N] samples asked so far (default: `trials`).
      previous: the last round's plan table; a query decided (or predicted) there is never
        asked again, and a query found there keeps its stored prior (`prior_components`, or
        `prior_alpha`/`prior_beta` of a table written before mixtures), so a query's prior never
        changes between rounds.
      prior: per-query mixture priors (difficulty.prior.PassRatePrior.mixture_prior), [N]
        rows; the planner adds the robust Beta(1, 1) component of `plan.robust_weight`.

    Returns:
      A table in PLAN_SCHEMA, one row per query.

    Raises:
      ValueError: duplicate ids, lengths that differ, negative tallies, successes > trials, or a
        prior that is not finite and > 0.
    """
    ids = [str(q) for q in query_ids]
    n = len(ids)
    if len(set(ids)) != n:
        raise ValueError("query ids must be unique")
    s = np.asarray(successes, np.int64).reshape(-1)
    t = np.asarray(trials, np.int64).reshape(-1)
    asked_arr = t.copy() if asked is None else np.asarray(asked, np.int64).reshape(-1)
    if not (len(s) == len(t) == len(asked_arr) == n):
        raise ValueError("query_ids, successes, trials and asked must have one length")
    if np.any(s < 0) or np.any(s > t):
        raise ValueError("need 0 <= successes <= trials")
    if prior is None:
        prior = MixturePrior.single(_as_prior(alpha, n, "alpha"), _as_prior(beta, n, "beta"))
    elif len(prior.alpha) != n:
        raise ValueError("the mixture prior must have one row per query")
    sticky = np.zeros(n, bool)
    stopped = np.zeros(n, bool)
    if previous is not None and previous.num_rows:
        row = {q: i for i, q in enumerate(previous.column("query_id").to_pylist())}
        where = np.array([row.get(q, -1) for q in ids], np.int64)
        known = where >= 0
        if "prior_components" in previous.column_names:
            stored = previous.column("prior_components").to_pylist()
        else:
            stored = [[[1.0, a, b]] for a, b in zip(previous.column("prior_alpha").to_pylist(),
                                                    previous.column("prior_beta").to_pylist())]
        if known.any():
            rows = prior.rows()
            for i in np.flatnonzero(known):
                rows[i] = stored[where[i]]
            prior = MixturePrior.from_rows(rows)
        prev_status = np.array(previous.column("status").to_pylist(), object)
        sticky[known] = np.isin(prev_status[where[known]], ("decided", "predicted"))
        stopped[known] = prev_status[where[known]] == "stable"

    band, prob, decided, post = prior_band(s, t, cfg, prior, plan.robust_weight,
                                           prior_alone=plan.skip_predicted)
    informative = prior.informative()
    status = np.where(decided, "decided", "open").astype(object)
    unsampled = t == 0
    if plan.skip_predicted:
        status[unsampled & decided] = "predicted"
    status[sticky & (status == "open")] = "decided"  # asked no more, whatever arrived since
    decided = decided | sticky
    status[stopped & (status == "open")] = "stable"
    if plan.stable_level > 0:
        candidates = np.flatnonzero((status == "open") & ~unsampled & (t < plan.k_max))
        for left in np.unique(plan.k_max - t[candidates]):  # one predictive size at a time
            rows = candidates[plan.k_max - t[candidates] == left]
            same = stable_probability(post.take(rows), int(left), band[rows], cfg)
            status[rows[same >= plan.stable_level]] = "stable"

    next_k = np.zeros(n, np.int64)
    open_rows = np.flatnonzero(status == "open")
    remaining = plan.k_max - t[open_rows]
    need = needed_samples(post.take(open_rows), remaining, cfg, plan.decide_target)
    first = unsampled[open_rows]
    need[first] = np.minimum(need[first], plan.k0)  # round 1: k0 at most
    need = np.where(remaining > 0, np.maximum(need, 1), 0)
    next_k[open_rows] = need
    status[open_rows[remaining <= 0]] = "exhausted"
    prior_a, prior_b = prior.mean_beta()
    return pa.Table.from_arrays([
        pa.array(ids, pa.string()), pa.array(np.full(n, round_index, np.int32)),
        pa.array(asked_arr), pa.array(t), pa.array(s), pa.array(prior_a), pa.array(prior_b),
        pa.array(np.where(informative, 1.0 - post.w[:, -1], 0.0)),
        pa.array(BAND_NAMES[band].tolist(), pa.string()), pa.array(prob, pa.float64()),
        pa.array(decided), pa.array(status.tolist(), pa.string()),
        pa.array(next_k.astype(np.int32)),
        pa.array(prior.rows(), PLAN_SCHEMA.field("prior_components").type),
    ], schema=PLAN_SCHEMA)


def round_record(plan_table: pa.Table, previous: pa.Table | None = None) -> dict:
    """The manifest's record of one round: what was asked, answered and decided.

    Args:
      plan_table: this round's `plan_round` table.
      previous: the previous round's table (None for the first).

    Returns:
      {"round", "queries", "asked", "answered", "decided", "newly_decided", "predicted",
       "open", "stable", "exhausted", "next_asked", "next_queries"}: plain ints; `asked` is what the
      previous plan asked (sum of its next_k), `answered` the samples that arrived since.
    """
    status = plan_table.column("status").to_pylist()
    decided_ids = {q for q, st in zip(plan_table.column("query_id").to_pylist(), status)
                   if st in ("decided", "predicted")}
    trials = int(np.sum(plan_table.column("trials").to_numpy()))
    next_k = plan_table.column("next_k").to_numpy()
    if previous is None:
        asked, answered, before = 0, trials, set()
    else:
        asked = int(np.sum(previous.column("next_k").to_numpy()))
        answered = trials - int(np.sum(previous.column("trials").to_numpy()))
        before = {q for q, st in zip(previous.column("query_id").to_pylist(),
                                     previous.column("status").to_pylist())
                  if st in ("decided", "predicted")}
    return {
        "round": int(plan_table.column("round")[0].as_py()) if plan_table.num_rows else 0,
        "queries": plan_table.num_rows, "asked": asked, "answered": answered,
        "decided": sum(st == "decided" for st in status),
        "newly_decided": len(decided_ids - before),
        "predicted": sum(st == "predicted" for st in status),
        "open": sum(st == "open" for st in status),
        "stable": sum(st == "stable" for st in status),
        "exhausted": sum(st == "exhausted" for st in status),
        "next_asked": int(next_k.sum()), "next_queries": int((next_k > 0).sum()),
    }
