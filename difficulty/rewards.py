"""Rewards that verify a ranking: `ndcg@K>=TAU`, composites, `hit@1`, or `log` (the log's own).

A composite is a weighted sum of terms with a pass threshold, e.g. ReasonRank's
`ndcg@10+0.2*recall@10+0.1*rbo>=0.8`. Terms: `ndcg@K` (as below), `recall@K` (relevant documents,
label > 0, in the top K over the query's relevant documents; 0 without any) and `rbo` or `rbo@D`
(rank-biased overlap with the reference order, Webber, Moffat & Zobel 2010, the extrapolated
RBO_ext of their eq. 32, persistence `p` = 0.9 unless `,p=P` is given, evaluated at depth D or the
query's document count, whichever is smaller; 1 for the reference order itself). The reference
order is the teacher's (`teacher_order`/`teacher_scores`) where the query has one, else the
labels' ideal order (ties in input order). NDCG and recall are against the labels, normalised
by the ideal the `ideal` option names (below).
A composite passes when its value is at least TAU; when it has an NDCG or recall term a query
without relevant documents never passes.

NDCG follows trec_eval's ndcg_cut conventions: gain = the graded label (linear; `gain=exp` gives
2^label - 1), discount 1/log2(rank + 1) for ranks 1..K, ideal DCG from labels sorted descending
and cut at K. Which labels the ideal ranks is the reward's `ideal` option:

- `ideal=window` (the default): the candidates' own labels, the best ranking of the documents the
  reranker was given. A first stage that missed the relevant passages is not the reranker's fault,
  so the reward (and the pass rate) measures only what reordering can reach: the best order of
  the window scores 1.
- `ideal=qrels`: every judged document of the query (the query record's `judged_labels`, filled
  from the qrels by the text readers, candidates outside the window included), as trec_eval's and
  pytrec_eval's `ndcg_cut` normalise: the number papers report. A query whose relevant passages
  lie outside the window cannot reach 1. Where a query has no `judged_labels` (feature inputs,
  whose listed documents are all the judged documents) the two ideals are the same.

Recall@K follows the same option: its denominator is the query's relevant documents among the
candidates (`window`) or among all judged documents (`qrels`, trec_eval's `recall_K`).
The ideal's gains are the judged labels merged with the candidates' (each rank of the sorted
lists takes the larger), so an ideal is never below what some ranking of the window reaches and
NDCG stays within [0, 1] even for a `judged_labels` that leaves some candidates out.

A query without relevant documents (ideal DCG 0) has NDCG 0, so it never passes an NDCG
threshold. Rankings here are permutations, so there are no score ties to break; where a
deterministic ranking is made from scores (evaluation), ties keep input document order. A ranking
that lists only some documents (an outside reranker's top-k) gains nothing from the rest.

Spec grammar (`parse_reward`; spaces are ignored):

    SPEC      := NDCG | COMPOSITE | "hit@1" | "log"
    NDCG      := "ndcg@" K ">=" TAU OPTIONS            options: gain, ideal
    COMPOSITE := TERM ("+" TERM)* ">=" TAU OPTIONS     options: gain, p, ideal
    TERM      := [W "*"] ("ndcg@" K | "recall@" K | "rbo" ["@" D])
    OPTIONS   := ("," ("gain=" ("linear"|"exp") | "p=" P | "ideal=" ("window"|"qrels")))*
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_NDCG = re.compile(r"^ndcg@(\d+)>=([0-9.]+)(?P<opts>(?:,(?:gain|ideal)=[a-z]+)*)$")
_COMPOSITE = re.compile(r"^(?P<terms>[^>]+)>=(?P<tau>[0-9.]+)(?P<opts>(?:,[a-z]+=[a-z0-9.]+)*)$")
_TERM = re.compile(r"^(?:(?P<w>[0-9.]+)\*)?(?P<metric>ndcg|recall|rbo)(?:@(?P<k>\d+))?$")
METRICS = ("ndcg", "recall", "rbo")
IDEALS = ("window", "qrels")


@dataclass(frozen=True)
class RewardSpec:
    """A parsed reward: `kind` in {ndcg, composite, hit, log}.

    Attributes:
      k, tau, gain: NDCG's cutoff, the pass threshold and the gain (`linear` or `exp`).
      terms: for `composite`, (weight, metric, cutoff or None) per term, metric in METRICS.
      rbo_p: RBO's persistence.
      ideal: which labels NDCG's ideal DCG and recall's denominator count: `window` (the
        candidates') or `qrels` (every judged document's; see the module docstring).
    """

    kind: str
    k: int = 10
    tau: float = 0.7
    gain: str = "linear"
    log_pass_threshold: float = 0.5
    terms: tuple = ()
    rbo_p: float = 0.9
    ideal: str = "window"

    @property
    def max_reward(self) -> float:
        """The largest reward this spec gives (1, or a composite's sum of weights)."""
        if self.kind == "composite":
            return float(sum(w for w, _, _ in self.terms))
        return 1.0

    @property
    def name(self) -> str:
        if self.kind == "composite":
            parts = [("" if w == 1 else f"{w:g}*") + m + ("" if c is None else f"@{c}")
                     for w, m, c in self.terms]
            opts = (",gain=exp" if self.gain == "exp" else "") + (
                f",p={self.rbo_p:g}" if self.rbo_p != 0.9 else "") + self._ideal_suffix
            return "+".join(parts) + f">={self.tau:g}" + opts
        if self.kind == "ndcg":
            suffix = (",gain=exp" if self.gain == "exp" else "") + self._ideal_suffix
            return f"ndcg@{self.k}>={self.tau:g}{suffix}"
        return "hit@1" if self.kind == "hit" else "log"

    @property
    def _ideal_suffix(self) -> str:
        return "" if self.ideal == "window" else f",ideal={self.ideal}"


def parse_reward(spec: str) -> RewardSpec:
    """Parses `ndcg@K>=TAU[,gain=linear|exp][,ideal=window|qrels]`, a composite, `hit@1` or `log`.

    A composite is `TERM+TERM...>=TAU[,gain=exp][,p=P][,ideal=window|qrels]`, TERM =
    `[W*]ndcg@K | [W*]recall@K | [W*]rbo[@D]` (the grammar is in the module docstring).

    Raises:
      ValueError: the spec is none of these.
    """
    text = spec.strip().replace(" ", "")
    match = _NDCG.match(text)
    if match:
        opts = _options(spec, match.group("opts"), ("gain", "ideal"))
        k, tau = int(match.group(1)), _number(spec, match.group(2))
        if k < 1 or not 0.0 <= tau <= 1.0:
            raise ValueError(f"reward {spec!r}: need K >= 1 and 0 <= TAU <= 1")
        return RewardSpec("ndcg", k=k, tau=tau, gain=opts.get("gain", "linear"),
                          ideal=opts.get("ideal", "window"))
    if text == "hit@1":
        return RewardSpec("hit")
    if text == "log":
        return RewardSpec("log")
    match = _COMPOSITE.match(text)
    if match:
        return _parse_composite(spec, match)
    raise ValueError(f"unknown reward {spec!r} (expected ndcg@K>=TAU[,gain=exp][,ideal=qrels], "
                     "a composite like ndcg@10+0.2*recall@10+0.1*rbo>=0.8, hit@1 or log)")


def _number(spec: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"reward {spec!r}: {text!r} is not a number") from None


def _options(spec: str, text: str, allowed: tuple) -> dict:
    """`,name=value` options of a spec: each at most once, names in `allowed`, values checked."""
    opts: dict = {}
    for option in (o for o in text.split(",") if o):
        name, _, value = option.partition("=")
        if name not in allowed or name in opts:
            raise ValueError(f"reward {spec!r}: options are "
                             + ", ".join(f"{a}=..." for a in allowed) + ", each at most once")
        opts[name] = value
    if opts.get("gain", "linear") not in ("linear", "exp"):
        raise ValueError(f"reward {spec!r}: gain=linear|exp")
    if opts.get("ideal", "window") not in IDEALS:
        raise ValueError(f"reward {spec!r}: ideal=window|qrels (the candidates' labels or every "
                         "judged document's)")
    return opts


def _parse_composite(spec: str, match: re.Match) -> RewardSpec:
    terms = []
    for part in match.group("terms").split("+"):
        term = _TERM.match(part)
        if not term:
            raise ValueError(f"reward {spec!r}: bad term {part!r} (expected [W*]ndcg@K, "
                             "[W*]recall@K or [W*]rbo[@D])")
        weight = _number(spec, term.group("w")) if term.group("w") else 1.0
        metric, cut = term.group("metric"), term.group("k")
        if metric != "rbo" and cut is None:
            raise ValueError(f"reward {spec!r}: {metric} needs a cutoff ({metric}@K)")
        if cut is not None and int(cut) < 1:
            raise ValueError(f"reward {spec!r}: cutoffs must be at least 1")
        terms.append((weight, metric, None if cut is None else int(cut)))
    opts = _options(spec, match.group("opts"), ("gain", "p", "ideal"))
    p = _number(spec, opts.get("p", "0.9"))
    tau = _number(spec, match.group("tau"))
    if not 0.0 < p < 1.0 or not 0.0 <= tau <= sum(w for w, _, _ in terms):
        raise ValueError(f"reward {spec!r}: need 0 < p < 1 and 0 <= TAU <= the sum of weights")
    ndcg_cuts = [c for _, m, c in terms if m == "ndcg"]
    return RewardSpec("composite", k=ndcg_cuts[0] if ndcg_cuts else 10, tau=tau,
                      gain=opts.get("gain", "linear"), terms=tuple(terms), rbo_p=p,
                      ideal=opts.get("ideal", "window"))


def _gains(labels: np.ndarray, gain: str) -> np.ndarray:
    labels = np.maximum(labels, 0.0)
    return np.power(2.0, labels) - 1.0 if gain == "exp" else labels.astype(np.float64)


def ideal_labels(labels: np.ndarray, mask: np.ndarray, judged: np.ndarray | None = None
                 ) -> np.ndarray:
    """[B, M] the labels an ideal ranking orders, sorted descending (0-padded).

    Without `judged` (ideal=window) these are the candidates' labels. With `judged` (ideal=qrels:
    [B, J] the labels of every judged document of each query, 0-padded, any order; a row of
    zeros for a query that has none) the two sorted lists are merged rank by rank, each rank
    taking the larger label, so the ideal is never below the window's own.

    Non-finite labels count as 0 (no gain), so the ideal is always finite.
    """
    window = np.where(mask, labels, 0.0).astype(np.float64)
    window = -np.sort(-np.nan_to_num(window, nan=0.0, posinf=0.0, neginf=0.0), axis=-1)
    if judged is None:
        return window
    judged = np.nan_to_num(np.asarray(judged, dtype=np.float64), nan=0.0, posinf=0.0,
                           neginf=0.0)
    judged = -np.sort(-judged.reshape(window.shape[0], -1), axis=-1)
    width = max(window.shape[1], judged.shape[1])
    pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1])))  # noqa: E731
    return np.maximum(pad(window), pad(judged))


def ideal_dcg(labels: np.ndarray, mask: np.ndarray, k: int, gain: str = "linear",
              judged: np.ndarray | None = None) -> np.ndarray:
    """[B] ideal DCG@k of each query: of its candidates' labels, or with `judged` ([B, J]) of
    every judged document's (see `ideal_labels`)."""
    top = _gains(ideal_labels(labels, mask, judged), gain)[..., :k]
    discount = 1.0 / np.log2(np.arange(2, top.shape[-1] + 2))
    return (top * discount).sum(-1)


def relevant_count(labels: np.ndarray, mask: np.ndarray, judged: np.ndarray | None = None
                   ) -> np.ndarray:
    """[B] relevant documents (label > 0) of each query: among the candidates, or with `judged`
    among every judged document (the larger of the two counts, as `ideal_labels` merges)."""
    return (ideal_labels(labels, mask, judged) > 0).sum(-1).astype(np.float64)


def ndcg_of_rankings(rankings: np.ndarray, labels: np.ndarray, mask: np.ndarray, k: int,
                     gain: str = "linear", valid: np.ndarray | None = None,
                     judged: np.ndarray | None = None) -> np.ndarray:
    """NDCG@k of sampled rankings.

    Args:
      rankings: [B, R, D] document indices, best first.
      labels: [B, D] graded labels.
      mask: [B, D] real documents.
      k: cutoff.
      gain: `linear` or `exp`.
      valid: optional [B, R, D] bool, False for ranking slots that name no document (partial
        rankings from logs).
      judged: optional [B, J] labels of every judged document (ideal=qrels); None normalises by
        the candidates' own ideal (ideal=window).

    Returns:
      [B, R] float64 NDCG in [0, 1]; 0 where the ideal DCG is 0.
    """
    g = np.where(mask, _gains(np.nan_to_num(labels, nan=0.0, posinf=0.0, neginf=0.0), gain), 0.0)
    cut = min(k, rankings.shape[-1])
    picked = np.take_along_axis(g[:, None, :], rankings[..., :cut], axis=-1)
    if valid is not None:
        picked = np.where(valid[..., :cut], picked, 0.0)
    discount = 1.0 / np.log2(np.arange(2, cut + 2))
    dcg = (picked * discount).sum(-1)
    idcg = ideal_dcg(labels, mask, k, gain, judged)[:, None]
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def ndcg_of_scores(scores: np.ndarray, labels: np.ndarray, mask: np.ndarray, k: int = 10,
                   gain: str = "linear", judged: np.ndarray | None = None) -> np.ndarray:
    """[B] NDCG@k of the deterministic ranking by descending score (ties: input order); `judged`
    as in `ndcg_of_rankings`."""
    masked = np.where(mask, scores, -np.inf)
    order = np.argsort(-masked, axis=-1, kind="stable")
    return ndcg_of_rankings(order[:, None, :], labels, mask, k, gain, judged=judged)[:, 0]


def ndcg_passes(reward: np.ndarray, idcg: np.ndarray, tau: float) -> np.ndarray:
    """Whether NDCG values pass `tau`: an NDCG equal to TAU up to float rounding passes, and a
    query without relevant documents (ideal DCG 0) never passes, even at TAU = 0."""
    return (reward >= tau - 1e-12) & (idcg > 0)


def recall_of_rankings(rankings: np.ndarray, labels: np.ndarray, mask: np.ndarray, k: int,
                       valid: np.ndarray | None = None, judged: np.ndarray | None = None
                       ) -> np.ndarray:
    """[B, R] Recall@k: relevant documents (label > 0) in the top k over the query's relevant
    documents (the candidates', or with `judged` every judged document's: trec_eval's
    `recall_K`); 0 for a query without relevant documents. Shapes as in `ndcg_of_rankings`."""
    rel = (mask & (labels > 0)).astype(np.float64)
    cut = min(k, rankings.shape[-1])
    picked = np.take_along_axis(rel[:, None, :], rankings[..., :cut], axis=-1)
    if valid is not None:
        picked = np.where(valid[..., :cut], picked, 0.0)
    total = relevant_count(labels, mask, judged)[:, None]
    hits = picked.sum(-1)
    return np.divide(hits, total, out=np.zeros_like(hits), where=total > 0)


def reference_order(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[B, D] the labels' ideal order (document indices, best first; ties in input order,
    padding last)."""
    return np.argsort(-np.where(mask, labels, -np.inf), axis=-1, kind="stable")


def rbo_of_rankings(rankings: np.ndarray, reference: np.ndarray, mask: np.ndarray,
                    p: float = 0.9, depth: int | None = None,
                    valid: np.ndarray | None = None) -> np.ndarray:
    """[B, R] extrapolated rank-biased overlap RBO_ext (Webber et al. 2010, eq. 32) with a
    reference order.

    RBO_ext@k = X_k / k * p^k + (1 - p) / p * sum_{d=1..k} X_d / d * p^d, X_d = |A_d & B_d| the
    overlap of the two top-d prefixes, k = min(depth, documents of the query). Identical orders
    give 1, disjoint prefixes 0.

    Args:
      rankings: [B, R, D] document indices, best first.
      reference: [B, D] the reference order (document indices, best first).
      mask: [B, D] real documents.
      p: persistence in (0, 1).
      depth: evaluation depth (default: every document).
      valid: optional [B, R, D], False for slots that name no document.
    """
    b, r, d = rankings.shape
    width = mask.shape[1]
    n = mask.sum(-1)
    k = np.minimum(n, depth) if depth is not None else n  # [B]
    big = width  # the position of a document a list does not hold
    ref_pos = np.full((b, width), big, dtype=np.int64)
    np.put_along_axis(ref_pos, reference, np.arange(width)[None, :].repeat(b, 0), axis=-1)
    ref_pos = np.where(mask, ref_pos, big)
    slots = np.broadcast_to(np.arange(d), rankings.shape)
    if valid is not None:
        slots = np.where(valid, slots, big)
    rank_pos = np.full((b, r, width), big, dtype=np.int64)
    np.put_along_axis(rank_pos, rankings, slots, axis=-1)
    both = np.maximum(rank_pos, ref_pos[:, None, :])  # depth at which the doc is in both prefixes
    both = np.where(mask[:, None, :], np.minimum(both, big), big)
    flat = (np.arange(b * r)[:, None] * (big + 1) + both.reshape(b * r, width)).ravel()
    x = np.bincount(flat, minlength=b * r * (big + 1)).reshape(b, r, big + 1)[..., :big]
    x = np.cumsum(x, axis=-1).astype(np.float64)  # [B, R, width]: X_d for d = 1..width
    depths = np.arange(1, big + 1, dtype=np.float64)
    inside = depths[None, :] <= k[:, None]  # [B, width]
    terms = np.where(inside[:, None, :], x / depths * p ** depths, 0.0).sum(-1)
    kk = np.maximum(k, 1)
    xk = np.take_along_axis(x, (kk - 1)[:, None, None].repeat(r, 1), axis=-1)[..., 0]
    out = xk / kk[:, None] * p ** kk[:, None] + (1 - p) / p * terms
    return np.where((k > 0)[:, None], out, 0.0)


def composite_of_rankings(spec: RewardSpec, rankings: np.ndarray, labels: np.ndarray,
                          mask: np.ndarray, valid: np.ndarray | None = None,
                          reference: np.ndarray | None = None,
                          judged: np.ndarray | None = None) -> np.ndarray:
    """[B, R] the weighted sum of a composite reward's terms (see the module docstring);
    `judged` is used as given (`evaluate` passes it only for ideal=qrels)."""
    total = np.zeros(rankings.shape[:2])
    for weight, metric, cut in spec.terms:
        if metric == "ndcg":
            value = ndcg_of_rankings(rankings, labels, mask, cut, spec.gain, valid, judged)
        elif metric == "recall":
            value = recall_of_rankings(rankings, labels, mask, cut, valid, judged)
        else:
            ref = reference if reference is not None else reference_order(labels, mask)
            value = rbo_of_rankings(rankings, ref, mask, spec.rbo_p, cut, valid)
        total += weight * value
    return total


def evaluate(spec: RewardSpec, rankings: np.ndarray, labels: np.ndarray, mask: np.ndarray,
             valid: np.ndarray | None = None, reference: np.ndarray | None = None,
             judged: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(continuous reward [B, R], pass [B, R]) of rankings under `spec`.

    Args:
      valid: optional [B, R, D], False for slots that name no document (partial rankings from a
        log); such a slot gains nothing, and an empty top slot is not a hit.
      reference: optional [B, D] reference order for `rbo` terms (the teacher's); default the
        labels' ideal order.
      judged: optional [B, J] labels of every judged document of each query (0-padded; a zero
        row where a query has none). Read only when `spec.ideal == "qrels"`; without it the
        qrels ideal is the window's (the candidates are all the judged documents).
    """
    judged = judged if spec.ideal == "qrels" else None
    if spec.kind == "composite":
        reward = composite_of_rankings(spec, rankings, labels, mask, valid, reference, judged)
        passed = reward >= spec.tau - 1e-12
        if any(m != "rbo" for _, m, _ in spec.terms):
            passed &= (relevant_count(labels, mask, judged) > 0)[:, None]
        return reward, passed
    if spec.kind == "ndcg":
        reward = ndcg_of_rankings(rankings, labels, mask, spec.k, spec.gain, valid, judged)
        return reward, ndcg_passes(
            reward, ideal_dcg(labels, mask, spec.k, spec.gain, judged)[:, None], spec.tau)
    if spec.kind == "hit":
        top = np.take_along_axis(labels[:, None, :], rankings[..., :1], axis=-1)[..., 0]
        passed = top > 0
        if valid is not None:
            passed &= valid[..., 0]
        return passed.astype(np.float64), passed
    raise ValueError("the `log` reward comes from a rollout log, not from sampled rankings")


def trec_order(scores: dict) -> list:
    """Document ids of one query's run in trec_eval's order: score descending, ties by document
    id descending (trec_eval sorts by score, then docno, both decreasing)."""
    return sorted(scores, key=lambda doc: (scores[doc], doc), reverse=True)


def judged_matrix(rows: list) -> np.ndarray:
    """[B, J] float64 from per-query lists of judged labels (None: a zero row), 0-padded."""
    width = max([len(r) for r in rows if r is not None] + [1])
    out = np.zeros((len(rows), width))
    for i, values in enumerate(rows):
        if values:
            out[i, :len(values)] = np.asarray(values, dtype=np.float64)
    return out


def ndcg_of_run(run: dict, qrels: dict, k: int, gain: str = "linear",
                ideal: str = "qrels", depth: int | None = None) -> dict:
    """NDCG@k of a TREC run, per query, with this module's NDCG: the run's first `depth`
    documents (all by default) in `trec_order` are the candidates, labelled from the qrels.

    With `ideal="qrels"` (trec_eval's `ndcg_cut_K`) the ideal DCG comes from every judged
    document of the query, ranked or not (its `judged_labels_of`); with `ideal="window"` from
    the candidates' labels only (what pytrec_eval gives when handed only the window's qrels).
    Queries without judgments are left out (as trec_eval does).

    Args:
      run: query id -> {document id: score}.
      qrels: query id -> {document id: graded relevance}.
      k: cutoff.
      gain: `linear` (trec_eval's) or `exp`.
      ideal: `qrels` or `window`.
      depth: candidates kept per query (the window), None for all.

    Returns:
      query id -> NDCG@k.
    """
    from data_contracts.schema import judged_labels_of

    out = {}
    for qid in sorted(set(run) & set(qrels)):
        ranked = trec_order(run[qid])[:depth]
        labels = np.array([[float(qrels[qid].get(doc, 0)) for doc in ranked]])
        mask = np.ones_like(labels, dtype=bool)
        ranking = np.arange(len(ranked))[None, None, :]
        judged = judged_matrix([judged_labels_of(qrels[qid])]) if ideal == "qrels" else None
        out[qid] = float(ndcg_of_rankings(ranking, labels, mask, k, gain, judged=judged)[0, 0])
    return out
