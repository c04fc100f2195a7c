"""A learned prior: predict each query's pass rate from cheap query-level features, calibrated,
as a Beta prior of bounded strength, and the empirical-Bayes mixture around it that the budget
planner (difficulty.planner) plans with.

Model (`fit_prior`): standardized features -> their first `MAX_COMPONENTS` principal components
(PCA, exact SVD) -> ridge regression (RidgeCV over a fixed grid) of the
observed pass rate s / n, weighted by trials n -> isotonic regression (scikit-learn
IsotonicRegression, clipped to [0, 1]) fitted on out-of-fold ridge scores, so the calibration map
is learned on queries the ridge did not see.

Honest error: calibrated predictions mu_i are cross-fitted twice (the ridge and the isotonic map
both fitted without query i's fold). They are binned (quantile bins, at least 20 queries each);
per bin the reliability table reports the mean prediction against the pooled observed rate, and
the residual variance of the *true* pass rate about the prediction with the binomial noise out,

    v = mean_i [ (r_i - mu_i)^2 - r_i (1 - r_i) / (n_i - 1) ]   over queries with n_i >= 2,

since E[r (1 - r)] = p (1 - p)(1 - 1/n) for r = s / n (floored at `MIN_VARIANCE`).

Prior (`PassRatePrior.beta_prior`): Beta(1 + s mu, 1 + s (1 - mu)), the uniform prior plus s
pseudo-samples at the predicted rate. Per bin, s is chosen by type-II maximum likelihood
(empirical Bayes): the s on a grid over [0, max_strength] that maximizes the Beta-Binomial
marginal likelihood of the bin's measured tallies given their cross-fitted predictions,

    s* = argmax_s sum_i log B(1 + s mu_i + s_i, 1 + s (1 - mu_i) + n_i - s_i)
                        - log B(1 + s mu_i, 1 + s (1 - mu_i)),

the smallest s on ties. s = 0 (Beta(1, 1), estimate.decide's own prior) is on the grid, so a
prediction that does not explain the samples better than the uniform prior gets no weight: with
an uninformative feature s shrinks toward 0. The likelihood is the same whatever the stopping
rule, so tallies from adaptive rounds are valid input. With s <= max_strength (default 4) a
prior counts as at most that many samples, so samples override a wrong prediction; the planner
never lets a prior decide a band alone (unless skip_predicted).

Mixture prior (`PassRatePrior.mixture_prior`): a Beta prior cannot express a population with
atoms at 0 and 1 (public difficulty maps of RL prompt sets put a large share at each), so a query
that never passes costs as many failures under it as under Beta(1, 1). The planner's prior is
therefore an empirical-Bayes mixture over a fixed dictionary of Beta components,

    pi_0 Beta(1, c) + pi_1 Beta(c, 1) + sum_k pi_k Beta(c m_k, c (1 - m_k))
        + pi_L Beta(1 + s mu, 1 + s (1 - mu)) + pi_U Beta(1, 1),

c = `ATOM_CONCENTRATION`: near-0 (P(p < 0.1) = 1 - 0.9^c) and near-1 atoms, narrow components at
the grid means m_k = `GRID_MEANS` (so mass near a band threshold, e.g. a policy that passes 15%
of the time, is not mistaken for an atom: a dictionary of atoms and broad Betas alone would put
it on the near-0 atom and decide too_hard after a few failures), the learned Beta above, and
the uniform. The weights pi are fitted per quantile bin of the cross-fitted calibrated
prediction (at least MIXTURE_MIN_BIN queries a bin, so the features move them; with
uninformative features every bin sees the population's shape) by EM for mixture proportions on
the bin's measured tallies: type-II maximum likelihood of the Beta-Binomial marginal
likelihood with the dictionary fixed, i.e. the NPMLE of the mixing distribution restricted to
a grid (Kiefer & Wolfowitz 1956; Koenker & Mizera 2014, JASA 109:674; EM: Laird 1978). The
planner's robust Beta(1, 1) component of weight `robust_weight` is held fixed in that
likelihood, so the weights fitted are those of the prior the planner uses, (1 - w) sum_j pi_j
Beta_j + w Beta(1, 1) (Schmidli et al. 2014); that floor keeps every sample able to override
the prior. Weights below `PRUNE_WEIGHT` are set to 0 (the NPMLE is sparse; fewer components
plan faster) and the rest renormalized. The likelihood holds whatever the stopping rule, so
tallies from adaptive rounds are valid input.

Deterministic: the same features, tallies and seed give the same prior, byte for byte.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from difficulty.planner import MixturePrior, PlanConfig, beta_binomial_loglik

MIN_VARIANCE = 1e-4  # floor of the residual variance (a pass rate known to +-0.01)
MAX_COMPONENTS = 32  # features are standardized and reduced to this many principal components
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 13))
ATOM_CONCENTRATION = 64.0  # c of the near-0 Beta(1, c), near-1 Beta(c, 1) and grid components
GRID_MEANS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 .. 0.95
MIXTURE_COMPONENTS = ("near_0", "near_1", *(f"p~{m:g}" for m in GRID_MEANS), "learned",
                      "uniform")
PRUNE_WEIGHT = 1e-4  # mixture weights below this are set to 0
SMOOTHING = 1.0  # pseudo-count per component: EM's M-step is the MAP under Dirichlet(1 + it)
EM_ITERATIONS = 1000  # at most; EM stops earlier once no weight moves by more than EM_TOLERANCE
EM_TOLERANCE = 1e-10
MIXTURE_MIN_BIN = 10  # queries per bin of the mixture's weights (at least)
DEFAULT_ROBUST_WEIGHT = PlanConfig.robust_weight  # the planner's default robust weight


@dataclass
class PassRatePrior:
    """A fitted pass-rate model and its calibrated error (see the module docstring).

    Attributes:
      max_strength: the cap on s.
      reliability: per bin of the cross-fitted calibrated prediction {"bin", "queries",
        "predicted" (mean prediction), "observed" (pooled s / n), "residual_var" (of the true
        pass rate about the prediction, binomial noise out), "strength" (the bin's s)}.
      calibrated_mse: the cross-fitted residual variance over all queries (binomial noise out).
      fitted: False when too few measured queries: the prior is then Beta(1, 1).
      mixture_bins: per bin of the mixture (quantile bins of the calibrated prediction, at
        least MIXTURE_MIN_BIN queries each, but an empty one, which gets the weights fitted on all
        queries) {"bin", "queries", "predicted" (None when empty), and its weight of each of
        MIXTURE_COMPONENTS}.
    """

    max_strength: float
    reliability: list = field(default_factory=list)
    calibrated_mse: float = float("nan")
    fitted: bool = False
    _scaler: object = None
    _ridge: object = None
    _isotonic: object = None
    _edges: np.ndarray = None     # inner quantile edges of the calibrated predictions
    _strength: np.ndarray = None  # s per bin
    mixture_bins: list = field(default_factory=list)
    _mix_edges: np.ndarray = None  # inner quantile edges of the mixture's bins
    _weights: np.ndarray = None   # [bins, J] mixture weights per bin (MIXTURE_COMPONENTS)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """[N] calibrated pass-rate predictions in [0, 1] (0.5 when not fitted)."""
        x = _clean(features)
        if not self.fitted:
            return np.full(len(x), 0.5)
        score = self._ridge.predict(self._scaler.transform(x))
        return np.clip(self._isotonic.predict(score), 0.0, 1.0)

    def strength(self, mu: np.ndarray) -> np.ndarray:
        """[N] the strength s of the bin each calibrated prediction falls in."""
        return self._strength[np.searchsorted(self._edges, mu, side="right")]

    def beta_prior(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                         np.ndarray]:
        """(alpha [N], beta [N], mu [N], strength [N]) of the Beta prior for these queries."""
        mu = self.predict(features)
        if not self.fitted:
            ones = np.ones(len(mu))
            return ones, ones.copy(), mu, np.zeros(len(mu))
        s = self.strength(mu)
        return 1.0 + s * mu, 1.0 + s * (1.0 - mu), mu, s

    def mixture_prior(self, features: np.ndarray):
        """The per-query mixture prior (see the module docstring): a
        difficulty.planner.MixturePrior with the components MIXTURE_COMPONENTS, weighted by
        the bin of each query's calibrated prediction; Beta(1, 1) when not fitted."""
        alpha, beta, mu, _ = self.beta_prior(features)
        if not self.fitted:
            return MixturePrior.single(alpha, beta)
        a, b = mixture_dictionary(alpha, beta)
        weights = self._weights[np.searchsorted(self._mix_edges, mu, side="right")]
        used = weights.any(0)  # components of weight 0 in every row cost planning time only
        return MixturePrior(a[:, used], b[:, used], weights[:, used])


def _clean(features) -> np.ndarray:
    x = np.asarray(features, np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be [N, F], got shape {x.shape}")
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


STRENGTH_GRID_POINTS = 33  # s is chosen on linspace(0, max_strength, this many points)


def select_strength(mu: np.ndarray, successes: np.ndarray, trials: np.ndarray,
                    max_strength: float) -> float:
    """The strength s in [0, max_strength] that maximizes the summed Beta-Binomial likelihood
    of these tallies under Beta(1 + s mu, 1 + s (1 - mu)) (type-II maximum likelihood on a grid;
    the smallest s on ties, so s = 0, the uniform prior, unless the prediction helps)."""
    grid = np.linspace(0.0, float(max_strength), STRENGTH_GRID_POINTS)[:, None]
    total = beta_binomial_loglik(successes[None, :], trials[None, :], 1.0 + grid * mu[None, :],
                                 1.0 + grid * (1.0 - mu[None, :])).sum(1)
    return float(grid[int(np.argmax(total)), 0])


def mixture_dictionary(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([N, J], [N, J]) the mixture's components per query, in MIXTURE_COMPONENTS order: near-0
    Beta(1, c), near-1 Beta(c, 1), Beta(c m, c (1 - m)) for m in GRID_MEANS, the learned
    Beta(alpha, beta), Beta(1, 1)."""
    n = len(alpha)
    c = ATOM_CONCENTRATION
    means = np.asarray(GRID_MEANS)
    fixed_a = np.concatenate([[1.0, c], c * means])
    fixed_b = np.concatenate([[c, 1.0], c * (1.0 - means)])
    one = np.ones((n, 1))
    return (np.concatenate([np.tile(fixed_a, (n, 1)), np.asarray(alpha, float)[:, None], one], 1),
            np.concatenate([np.tile(fixed_b, (n, 1)), np.asarray(beta, float)[:, None], one], 1))


def em_weights(log_lik: np.ndarray, fixed_log_lik: np.ndarray | None = None,
               fixed_weight: float = 0.0) -> np.ndarray:
    """Mixture proportions by EM (type-II maximum likelihood with the components fixed).

    Maximizes sum_i log((1 - fixed_weight) sum_j pi_j L_ij + fixed_weight F_i)
    + SMOOTHING sum_j log pi_j over the simplex: E-step r_ij = (1 - fixed_weight) pi_j L_ij /
    (that sum), M-step pi_j = (sum_i r_ij + SMOOTHING) / (sum_ij r_ij + J SMOOTHING) (Dempster,
    Laird & Rubin 1977; the MAP step under a symmetric Dirichlet(1 + SMOOTHING) prior on pi; the
    fixed component is held at its weight). The smoothing matters: with few samples per query
    the unpenalized NPMLE collapses onto one or two narrow components (4 samples cannot tell a
    point mass from a spread), and a prior that narrow decides bands after 4 samples that
    more samples would overturn (measured: agreement with the reference fell to 0.07-0.39 on
    three of the in-pipeline policies of bench_planned). Starts
    from equal weights; at most EM_ITERATIONS steps, stopping once no weight moves by more than
    EM_TOLERANCE. Deterministic.

    Args:
      log_lik: [N, J] log-likelihood of each query's tallies under each component.
      fixed_log_lik: [N] the fixed component's (None: no fixed component).
      fixed_weight: its weight in [0, 1).

    Returns:
      [J] weights summing to 1 (equal weights when N = 0).
    """
    n, j = log_lik.shape
    pi = np.full(j, 1.0 / j)
    if n == 0:
        return pi
    fixed = fixed_log_lik is not None and fixed_weight > 0
    top = log_lik.max(1, keepdims=True)
    if fixed:
        top = np.maximum(top, np.asarray(fixed_log_lik, float)[:, None])
    lik = np.exp(log_lik - top)  # scaled per query; the scale cancels in r_ij
    rest = fixed_weight * np.exp(np.asarray(fixed_log_lik, float) - top[:, 0]) if fixed else 0.0
    scale = 1.0 - fixed_weight if fixed else 1.0
    for _ in range(EM_ITERATIONS):
        joint = scale * pi * lik
        r = joint / (joint.sum(1) + rest)[:, None]
        new = r.sum(0) + SMOOTHING  # the MAP step under a symmetric Dirichlet prior
        new = new / new.sum()
        done = np.max(np.abs(new - pi)) <= EM_TOLERANCE
        pi = new
        if done:
            break
    pi = np.where(pi < PRUNE_WEIGHT, 0.0, pi)
    return pi / pi.sum()


def fit_prior(features: np.ndarray, successes: np.ndarray, trials: np.ndarray, *,
              max_strength: float = 4.0, folds: int = 5, seed: int = 0,
              max_bins: int = 10, robust_weight: float = DEFAULT_ROBUST_WEIGHT
              ) -> PassRatePrior:
    """Fits the pass-rate model on measured queries (see the module docstring).

    Args:
      features: [N, F] cheap query-level features (e.g. `query_summaries`).
      successes, trials: [N] the measured tallies; queries with 0 trials are ignored.
      max_strength: the cap on the prior's strength s (pseudo-samples), >= 0.
      folds: cross-fitting folds (>= 2).
      seed: the fold shuffle's seed.
      max_bins: at most this many quantile bins (at least 20 queries each).
      robust_weight: the planner's robust Beta(1, 1) weight, held fixed in the mixture's EM.

    Returns:
      A PassRatePrior; unfitted (Beta(1, 1) everywhere) when fewer than 2 * folds queries have
      trials.

    Raises:
      ValueError: shapes that disagree, successes outside [0, trials], max_strength < 0.
    """
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = _clean(features)
    s = np.asarray(successes, float).reshape(-1)
    n = np.asarray(trials, float).reshape(-1)
    if not (len(x) == len(s) == len(n)):
        raise ValueError("features, successes and trials must have one length")
    if np.any(s < 0) or np.any(s > n):
        raise ValueError("need 0 <= successes <= trials")
    if max_strength < 0:
        raise ValueError("max_strength must be >= 0")
    keep = n > 0
    x, s, n = x[keep], s[keep], n[keep]
    prior = PassRatePrior(max_strength=float(max_strength))
    if len(x) < 2 * folds:
        return prior
    r = s / n

    def ridge_fit(rows):
        components = min(MAX_COMPONENTS, len(rows) - 1, x.shape[1])
        scaler = make_pipeline(StandardScaler(), PCA(components, svd_solver="full")).fit(x[rows])
        model = RidgeCV(alphas=RIDGE_ALPHAS).fit(scaler.transform(x[rows]), r[rows],
                                                 sample_weight=n[rows])
        return scaler, model

    def isotonic_fit(score, rate, weight):
        return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
            score, rate, sample_weight=weight)

    splits = list(KFold(folds, shuffle=True, random_state=seed).split(x))
    score = np.zeros(len(x))
    for train, test in splits:
        scaler, model = ridge_fit(train)
        score[test] = model.predict(scaler.transform(x[test]))
    mu = np.zeros(len(x))
    for train, test in splits:  # the calibration map, cross-fitted too
        mu[test] = np.clip(isotonic_fit(score[train], r[train], n[train]).predict(score[test]),
                           0.0, 1.0)

    bins = max(1, min(max_bins, len(x) // 20))
    edges = np.unique(np.quantile(mu, np.linspace(0, 1, bins + 1)[1:-1]))
    which = np.searchsorted(edges, mu, side="right")
    noise = np.where(n >= 2, r * (1.0 - r) / np.maximum(n - 1.0, 1.0), 0.0)
    excess = (r - mu) ** 2 - noise
    strength = np.zeros(len(edges) + 1)
    reliability = []
    for j in range(len(edges) + 1):
        rows = which == j
        usable = rows & (n >= 2)
        variance = max(MIN_VARIANCE, float(excess[usable].mean()) if usable.any()
                       else float(((r - mu) ** 2)[rows].mean()) if rows.any() else 0.25)
        strength[j] = select_strength(mu[rows], s[rows], n[rows], max_strength)
        reliability.append({
            "bin": j, "queries": int(rows.sum()),
            "predicted": float(mu[rows].mean()) if rows.any() else float("nan"),
            "observed": float(s[rows].sum() / n[rows].sum()) if rows.any() else float("nan"),
            "residual_var": variance, "strength": float(strength[j])})
    # the mixture's weights, per finer quantile bin (at least MIXTURE_MIN_BIN queries each)
    mix_bins = max(1, min(max_bins, len(x) // MIXTURE_MIN_BIN))
    mix_edges = np.unique(np.quantile(mu, np.linspace(0, 1, mix_bins + 1)[1:-1]))
    mix_which = np.searchsorted(mix_edges, mu, side="right")
    s_all = strength[which]
    comp_a, comp_b = mixture_dictionary(1.0 + s_all * mu, 1.0 + s_all * (1.0 - mu))
    log_lik = beta_binomial_loglik(s[:, None], n[:, None], comp_a, comp_b)
    flat = beta_binomial_loglik(s, n, 1.0, 1.0)
    every = em_weights(log_lik, flat, robust_weight)  # an empty bin gets the population's
    weights = np.stack([em_weights(log_lik[mix_which == j], flat[mix_which == j], robust_weight)
                        if (mix_which == j).any() else every
                        for j in range(len(mix_edges) + 1)])
    mixture_bins = [{"bin": j, "queries": int((mix_which == j).sum()),
                     "predicted": float(mu[mix_which == j].mean()) if (mix_which == j).any()
                     else None,
                     **{name: float(w) for name, w in zip(MIXTURE_COMPONENTS, weights[j])}}
                    for j in range(len(mix_edges) + 1)]
    usable = n >= 2
    prior.calibrated_mse = max(MIN_VARIANCE, float(excess[usable].mean()) if usable.any()
                               else float(((r - mu) ** 2).mean()))
    prior._scaler, prior._ridge = ridge_fit(np.arange(len(x)))
    prior._isotonic = isotonic_fit(score, r, n)
    prior._edges, prior._strength = edges, strength
    prior._mix_edges, prior._weights = mix_edges, weights
    prior.mixture_bins = mixture_bins
    prior.reliability = reliability
    prior.fitted = True
    return prior


# --- cheap query-level features of a QUERY_SCHEMA table ---------------------------------------

TEXT_SUMMARY_NAMES = (
    "log_docs", "log_query_tokens", "mean_log_passage_tokens", "has_first_stage",
    "first_stage_std", "first_stage_gap_1_2", "first_stage_gap_1_mean", "first_stage_gap_top5",
    "has_teacher", "teacher_first_stage_spearman", "teacher_first_stage_top5_overlap",
    "has_labels", "label_max", "label_relevant_share",
)


def _ranks_of(order: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(order), float)
    ranks[order] = np.arange(len(order), dtype=float)
    return ranks


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _text_summary(row: dict) -> list[float]:
    from data_contracts.text_features import tokenize

    docs = row.get("doc_ids") or []
    d = len(docs)
    out = [np.log1p(d), np.log1p(len(tokenize(row.get("query_text"))))]
    texts = row.get("doc_texts")
    out.append(float(np.mean([np.log1p(len(tokenize(t))) for t in texts])) if texts else 0.0)
    scores = row.get("first_stage_scores")
    ranks = row.get("first_stage_ranks")
    fs_order = None
    if scores is not None and d and all(v is not None for v in scores):
        sc = np.asarray(scores, float)
        top = np.sort(sc)[::-1]
        out += [1.0, float(sc.std()), float(top[0] - top[1]) if d > 1 else 0.0,
                float(top[0] - sc.mean()), float(top[0] - top[min(4, d - 1)])]
        fs_order = np.argsort(-sc, kind="stable")
    else:
        out += [0.0, 0.0, 0.0, 0.0, 0.0]
    if fs_order is None and ranks is not None and d and all(v is not None for v in ranks):
        fs_order = np.argsort(np.asarray(ranks, float), kind="stable")
    teacher = row.get("teacher_order")
    if teacher is None and row.get("teacher_scores") is not None:
        teacher = list(np.argsort(-np.asarray(row["teacher_scores"], float), kind="stable"))
    if teacher is not None and fs_order is not None and len(teacher) == d and d:
        t_order = np.asarray(teacher, int)
        out += [1.0, _spearman(_ranks_of(t_order), _ranks_of(fs_order)),
                len(set(t_order[:5].tolist()) & set(fs_order[:5].tolist())) / min(5, d)]
    else:
        out += [0.0, 0.0, 0.0]
    labels = row.get("labels")
    if labels is not None and d:
        lab = np.asarray(labels, float)
        out += [1.0, float(lab.max()), float((lab > 0).mean())]
    else:
        out += [0.0, 0.0, 0.0]
    return out


def query_summaries(table: pa.Table) -> tuple[np.ndarray, list[str]]:
    """[N, F] cheap query-level features of a QUERY_SCHEMA table, and their names.

    Per query: the `TEXT_SUMMARY_NAMES` (candidate count; query and passage lengths; the
    first-stage score spread and gaps; teacher-vs-first-stage agreement as the Spearman
    correlation of their orders and top-5 overlap; label summaries where labels are given),
    each 0 with its `has_*` indicator 0 where the column is null; then per feature column j of
    the candidates' feature matrix its mean, standard deviation and max - mean over the
    candidates (for text inputs these are the BM25 / TF-IDF / coverage summaries of
    data_contracts.text_features). Queries of different feature widths are padded with 0.

    A table without a `features` column (an export's view of a run, whose shards are read
    without it) gives the `TEXT_SUMMARY_NAMES` only.

    Raises:
      KeyError: the table lacks `doc_ids`.
    """
    rows = table.to_pylist()
    if rows and "doc_ids" not in rows[0]:
        raise KeyError("a QUERY_SCHEMA table needs doc_ids")
    width = max((len(r["features"][0]) for r in rows if r.get("features")), default=0)
    out = np.zeros((len(rows), len(TEXT_SUMMARY_NAMES) + 3 * width))
    for i, row in enumerate(rows):
        out[i, :len(TEXT_SUMMARY_NAMES)] = _text_summary(row)
        feats = row.get("features")
        if feats:
            m = np.asarray(feats, float)
            j = len(TEXT_SUMMARY_NAMES)
            f = m.shape[1]
            mean = m.mean(0)
            out[i, j:j + f] = mean
            out[i, j + width:j + width + f] = m.std(0)
            out[i, j + 2 * width:j + 2 * width + f] = m.max(0) - mean
    names = list(TEXT_SUMMARY_NAMES) + [f"{k}_f{j}" for k in ("mean", "std", "maxgap")
                                        for j in range(width)]
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0), names
