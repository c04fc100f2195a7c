"""Rewards that verify a ranking: `ndcg@K>=TAU`, `hit@1`, or `log` (the log's own reward).

NDCG follows trec_eval's ndcg_cut conventions: gain = the graded label (linear; `gain=exp` gives
2^label - 1), discount 1/log2(rank + 1) for ranks 1..K, ideal DCG from the query's own labels sorted
descending and cut at K. A query without relevant documents (ideal DCG 0) has NDCG 0, so it never
passes an NDCG threshold. Rankings here are permutations, so there are no score ties to break;
where a deterministic ranking is made from scores (evaluation), ties keep input document order.
A ranking that lists only some documents (an outside reranker's top-k) gains nothing from the rest.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_NDCG = re.compile(r"^ndcg@(\d+)>=([0-9.]+)(?:,gain=(linear|exp))?$")


@dataclass(frozen=True)
class RewardSpec:
    """A parsed reward: `kind` in {ndcg, hit, log}, with NDCG's cutoff, threshold and gain."""

    kind: str
    k: int = 10
    tau: float = 0.7
    gain: str = "linear"
    log_pass_threshold: float = 0.5

    @property
    def name(self) -> str:
        if self.kind == "ndcg":
            suffix = ",gain=exp" if self.gain == "exp" else ""
            return f"ndcg@{self.k}>={self.tau:g}{suffix}"
        return "hit@1" if self.kind == "hit" else "log"


def parse_reward(spec: str) -> RewardSpec:
    """Parses `ndcg@K>=TAU[,gain=linear|exp]`, `hit@1` or `log`.

    Raises:
      ValueError: the spec is none of these.
    """
    text = spec.strip().replace(" ", "")
    match = _NDCG.match(text)
    if match:
        k, tau, gain = int(match.group(1)), float(match.group(2)), match.group(3) or "linear"
        if k < 1 or not 0.0 <= tau <= 1.0:
            raise ValueError(f"reward {spec!r}: need K >= 1 and 0 <= TAU <= 1")
        return RewardSpec("ndcg", k=k, tau=tau, gain=gain)
    if text == "hit@1":
        return RewardSpec("hit")
    if text == "log":
        return RewardSpec("log")
    raise ValueError(f"unknown reward {spec!r} (expected ndcg@K>=TAU[,gain=exp], hit@1 or log)")


def _gains(labels: np.ndarray, gain: str) -> np.ndarray:
    labels = np.maximum(labels, 0.0)
    return np.power(2.0, labels) - 1.0 if gain == "exp" else labels.astype(np.float64)


def ideal_dcg(labels: np.ndarray, mask: np.ndarray, k: int, gain: str = "linear") -> np.ndarray:
    """[B] ideal DCG@k from each query's labels."""
    g = np.where(mask, _gains(labels, gain), 0.0)
    top = -np.sort(-g, axis=-1)[..., :k]
    discount = 1.0 / np.log2(np.arange(2, top.shape[-1] + 2))
    return (top * discount).sum(-1)


def ndcg_of_rankings(rankings: np.ndarray, labels: np.ndarray, mask: np.ndarray, k: int,
                     gain: str = "linear", valid: np.ndarray | None = None) -> np.ndarray:
    """NDCG@k of sampled rankings.

    Args:
      rankings: [B, R, D] document indices, best first.
      labels: [B, D] graded labels.
      mask: [B, D] real documents.
      k: cutoff.
      gain: `linear` or `exp`.
      valid: optional [B, R, D] bool, False for ranking slots that name no document (partial
        rankings from logs).

    Returns:
      [B, R] float64 NDCG; 0 where the ideal DCG is 0.
    """
    g = np.where(mask, _gains(labels, gain), 0.0)
    cut = min(k, rankings.shape[-1])
    picked = np.take_along_axis(g[:, None, :], rankings[..., :cut], axis=-1)
    if valid is not None:
        picked = np.where(valid[..., :cut], picked, 0.0)
    discount = 1.0 / np.log2(np.arange(2, cut + 2))
    dcg = (picked * discount).sum(-1)
    idcg = ideal_dcg(labels, mask, k, gain)[:, None]
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def ndcg_of_scores(scores: np.ndarray, labels: np.ndarray, mask: np.ndarray, k: int = 10,
                   gain: str = "linear") -> np.ndarray:
    """[B] NDCG@k of the deterministic ranking by descending score (ties: input order)."""
    masked = np.where(mask, scores, -np.inf)
    order = np.argsort(-masked, axis=-1, kind="stable")
    return ndcg_of_rankings(order[:, None, :], labels, mask, k, gain)[:, 0]


def ndcg_passes(reward: np.ndarray, idcg: np.ndarray, tau: float) -> np.ndarray:
    """Whether NDCG values pass `tau`: an NDCG equal to TAU up to float rounding passes, and a
    query without relevant documents (ideal DCG 0) never passes, even at TAU = 0."""
    return (reward >= tau - 1e-12) & (idcg > 0)


def evaluate(spec: RewardSpec, rankings: np.ndarray, labels: np.ndarray, mask: np.ndarray,
             valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(continuous reward [B, R], pass [B, R]) of rankings under `spec`.

    Args:
      valid: optional [B, R, D], False for slots that name no document (partial rankings from a
        log); such a slot gains nothing, and an empty top slot is not a hit.
    """
    if spec.kind == "ndcg":
        reward = ndcg_of_rankings(rankings, labels, mask, spec.k, spec.gain, valid)
        return reward, ndcg_passes(reward, ideal_dcg(labels, mask, spec.k, spec.gain)[:, None],
                                   spec.tau)
    if spec.kind == "hit":
        top = np.take_along_axis(labels[:, None, :], rankings[..., :1], axis=-1)[..., 0]
        passed = top > 0
        if valid is not None:
            passed &= valid[..., 0]
        return passed.astype(np.float64), passed
    raise ValueError("the `log` reward comes from a rollout log, not from sampled rankings")
