"""Pass-rate estimates with honest uncertainty, bands, and the adaptive sampling budget.

Estimator: a Beta posterior under a uniform Beta(1, 1) prior, Beta(1 + s, 1 + n - s) after s
successes in n trials. `pass_rate` is the posterior mean (s + 1) / (n + 2); the interval is the
equal-tailed credible interval at `interval_level`. `band_probabilities` and `decide` also take a
per-query Beta(alpha, beta) prior (the budget planner's learned prior, difficulty.prior and
difficulty.planner); their default Beta(1, 1) gives the same bits as before.

Band rule: the band of the true pass rate p is too_hard when p < `hard_below`, too_easy when
p > `easy_above`, learnable otherwise. The band is the one with the highest posterior
probability; it is *decided* when that probability is at least `confidence`. Adaptive sampling
stops a query once decided; a query still undecided at `k_max` keeps its most probable band and is
marked `decided = false`. Because the posterior is calibrated under its prior whatever the stopping
rule, decided bands are wrong at most 1 - confidence of the time when pass rates follow the prior
(tested by simulation in tests/difficulty/test_estimate.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special  # the Beta CDF and its inverses (lighter to import than scipy.stats)


@dataclass(frozen=True)
class BandConfig:
    """Thresholds and confidence of the band rule (see the module docstring)."""

    hard_below: float = 0.1
    easy_above: float = 0.9
    confidence: float = 0.9
    interval_level: float = 0.9
    zero_variance_tol: float = 1e-9
    pass_k: int = 8

    def rule(self) -> str:
        return (f"beta(1,1) posterior: P(band)>={self.confidence:g}, "
                f"too_hard<{self.hard_below:g}, too_easy>{self.easy_above:g}")


BAND_NAMES = np.array(["too_hard", "learnable", "too_easy"], dtype=object)


def band_probabilities(successes: np.ndarray, trials: np.ndarray, cfg: BandConfig,
                       alpha: np.ndarray | float = 1.0, beta: np.ndarray | float = 1.0
                       ) -> np.ndarray:
    """[N, 3] posterior probabilities of (too_hard, learnable, too_easy).

    Args:
      successes, trials: [N] tallies.
      cfg: the band thresholds.
      alpha, beta: the Beta prior, scalars or [N] (default Beta(1, 1), the module's uniform
        prior; a per-query prior comes from difficulty.prior). The posterior is
        Beta(alpha + successes, beta + trials - successes).
    """
    a = alpha + successes
    b = beta + trials - successes
    p_hard = special.betainc(a, b, cfg.hard_below)  # Beta(a, b) CDF at hard_below
    p_easy = special.betaincc(a, b, cfg.easy_above)  # its survival function at easy_above
    return np.stack([p_hard, np.clip(1.0 - p_hard - p_easy, 0.0, 1.0), p_easy], axis=-1)


def decide(successes: np.ndarray, trials: np.ndarray, cfg: BandConfig,
           alpha: np.ndarray | float = 1.0, beta: np.ndarray | float = 1.0
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(band index [N], band probability [N], decided [N]) under the band rule, with the Beta
    prior (alpha, beta) of `band_probabilities` (default Beta(1, 1))."""
    probs = band_probabilities(np.asarray(successes, float), np.asarray(trials, float), cfg,
                               alpha, beta)
    index = probs.argmax(-1)
    confidence = probs[np.arange(len(index)), index]
    return index, confidence, confidence >= cfg.confidence


def interval(successes: np.ndarray, trials: np.ndarray, level: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed Beta(1 + s, 1 + n - s) credible interval."""
    a = 1.0 + np.asarray(successes, float)
    b = 1.0 + np.asarray(trials, float) - np.asarray(successes, float)
    tail = (1.0 - level) / 2.0
    return special.betaincinv(a, b, tail), special.betainccinv(a, b, tail)  # ppf, isf


def pass_at_k(successes: np.ndarray, trials: np.ndarray, k: int) -> np.ndarray:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n - c, k) / C(n, k), per query.

    Computed as 1 - prod_{i = n - c + 1}^{n} (1 - k / i) for numerical stability; k is capped at n.
    """
    out = np.zeros(len(successes))
    if not len(out):
        return out
    # computed once per distinct (successes, trials) pair: a batch holds few of them
    pairs, inverse = np.unique(np.stack([np.asarray(successes, int), np.asarray(trials, int)],
                                        axis=1), axis=0, return_inverse=True)
    values = np.zeros(len(pairs))
    for j, (c, n) in enumerate(pairs):
        kk = min(k, n)
        if n - c < kk:
            values[j] = 1.0
        else:
            values[j] = 1.0 - np.prod(1.0 - kk / np.arange(n - c + 1, n + 1))
    out[:] = values[inverse.reshape(-1)]
    return out


_VARIANCE_ROUNDING = 1e-12  # relative: far above float64 rounding, far below real spread


def band_of_rate(pass_rate: np.ndarray, cfg: BandConfig) -> np.ndarray:
    """Band index (into BAND_NAMES) of known pass rates: too_hard below `hard_below`, too_easy
    above `easy_above`, learnable otherwise (the rule the posterior bands estimate)."""
    p = np.asarray(pass_rate, float)
    return np.where(p < cfg.hard_below, 0, np.where(p > cfg.easy_above, 2, 1))


BUDGET_RULES = ("rounds", "planned")
PRIOR_KINDS = ("none", "learned")


@dataclass(frozen=True)
class Budget:
    """Rollouts per query: `k` per round, up to `k_max` when `adaptive`.

    Attributes:
      k, k_max, adaptive: the first round's samples, the most a query gets, more rounds or not.
      rule: `rounds`: every undecided query gets `k` more each round; `planned`: after the first
        round each undecided query gets the budget planner's next k (difficulty.planner: the
        Beta-Binomial preposterior rule, fewer where a band is nearly decided), bounded by
        `k_max` (only when `adaptive`).
      prior: with `planned`, `learned` fits difficulty.prior on the batch's first round (its
        queries' cheap summaries) and plans later rounds with those priors (never deciding a
        band without the query's own samples); `none`: Beta(1, 1).
    """

    k: int = 16
    k_max: int = 64
    adaptive: bool = True
    rule: str = "rounds"
    prior: str = "none"

    def __post_init__(self):
        if self.rule not in BUDGET_RULES:
            raise ValueError(f"budget rule must be one of {BUDGET_RULES}, got {self.rule!r}")
        if self.prior not in PRIOR_KINDS:
            raise ValueError(f"prior must be one of {PRIOR_KINDS}, got {self.prior!r}")

    @property
    def rounds(self) -> int:
        return max(1, -(-self.k_max // self.k)) if self.adaptive else 1

    def round_sizes(self) -> list[int]:
        """Rollouts of each round: `k` each, the last one cut so the total is at most `k_max`
        (but at least one round of `k` when `k_max < k`, or when not adaptive)."""
        if not self.adaptive or self.k_max <= self.k:
            return [self.k]
        return [min(self.k, self.k_max - r * self.k) for r in range(self.rounds)]


def summarize(successes: np.ndarray, trials: np.ndarray, reward_sum: np.ndarray,
              reward_sq_sum: np.ndarray, cfg: BandConfig) -> dict:
    """The difficulty columns (but query_id, policy_id, rule) for per-query tallies."""
    successes = np.asarray(successes, np.int64)
    trials = np.asarray(trials, np.int64)
    band, confidence, decided = decide(successes, trials, cfg)
    low, high = interval(successes, trials, cfg.interval_level)
    safe = np.maximum(trials, 1)
    mean = reward_sum / safe
    second = reward_sq_sum / safe
    var = second - mean ** 2
    # E[r^2] - E[r]^2 of a constant reward is rounding noise (~1e-16 * E[r^2]), whose square
    # root (~1e-8) would pass `zero_variance_tol`: treat a variance that small as exactly 0.
    var = np.where(var <= _VARIANCE_ROUNDING * second, 0.0, var)
    std = np.sqrt(var)
    return {
        "trials": trials.astype(np.int32), "successes": successes.astype(np.int32),
        "pass_rate": (successes + 1.0) / (trials + 2.0),
        "interval_low": low, "interval_high": high,
        "pass_at_k": pass_at_k(successes, trials, cfg.pass_k),
        "reward_mean": mean, "reward_std": std, "zero_variance": std <= cfg.zero_variance_tol,
        "band": BAND_NAMES[band], "band_confidence": confidence, "decided": decided,
    }
