"""Plackett-Luce rankings: Gumbel top-k sampling, exact log-probabilities, entropy estimates.

Shared by difficulty scoring (numpy in, numpy out, no gradients) and the trainer's RL (torch, with
gradients through `log_prob`). Randomness is drawn per query from (seed, query id, round), so a
query's rollouts do not depend on how queries are batched or which worker scores them.
"""
from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np
import torch

NEG = -1e30  # finite "minus infinity": keeps padded positions last without NaN gradients


def query_seed(seed: int, query_id: str, stream: int = 0) -> list[int]:
    """The seed sequence of one query's random stream (crc32: stable across processes)."""
    return [int(seed), zlib.crc32(query_id.encode("utf-8")), int(stream)]


def gumbel_noise(query_ids: Sequence[str], n_docs: np.ndarray, k: int, seed: int,
                 stream: int = 0, width: int | None = None) -> np.ndarray:
    """[B, k, D] standard Gumbel noise, each query's block drawn from its own stream."""
    width = int(n_docs.max()) if width is None else width
    noise = np.zeros((len(query_ids), k, width), dtype=np.float32)
    for i, qid in enumerate(query_ids):
        n = int(n_docs[i])
        rng = np.random.default_rng(query_seed(seed, qid, stream))
        noise[i, :, :n] = rng.gumbel(size=(k, n))
    return noise


def sample_rankings(scores, mask, noise, temperature: float = 1.0):
    """Samples rankings from Plackett-Luce(scores / temperature) by Gumbel top-k.

    Args:
      scores: [B, D] scores (numpy or torch).
      mask: [B, D] bool, True for real documents.
      noise: [B, k, D] Gumbel noise.
      temperature: > 0; lower is greedier.

    Returns:
      [B, k, D] int64 document indices, best first; padded documents come last.
    """
    scores_t = torch.as_tensor(scores).detach()
    mask_t = torch.as_tensor(mask)
    perturbed = scores_t.unsqueeze(1) / temperature + torch.as_tensor(noise)
    # -inf, not NEG: no gradients flow here, and a real score below NEG must still rank first
    pad = ~mask_t.unsqueeze(1)
    if pad.expand_as(perturbed).shape == perturbed.shape:
        perturbed.masked_fill_(pad, float("-inf"))  # a fresh tensor: fill it in place
    else:
        perturbed = perturbed.masked_fill(pad, float("-inf"))
    # stable: a tie (e.g. zero temperature noise) keeps document order, as trec-style ties do
    if (not isinstance(scores, torch.Tensor) and perturbed.dtype == torch.float32
            and perturbed.device.type == "cpu"):
        order = _stable_descending_argsort(perturbed.numpy())
        if order is not None:
            return order
    order = torch.sort(perturbed, dim=-1, descending=True, stable=True).indices
    return order if isinstance(scores, torch.Tensor) else order.numpy()


def _stable_descending_argsort(values: np.ndarray) -> np.ndarray | None:
    """torch.sort(values, -1, descending=True, stable=True).indices of float32 values, or None
    when a value is NaN (torch orders NaN first, whatever its sign).

    Each value becomes a uint64 key: its float bits mapped to a uint32 that grows as the value
    falls (-0.0 and 0.0 to the same one), above its position. Keys are distinct, so a plain
    (fast, unstable) sort of the keys gives values in descending order with ties in position
    order: exactly the stable descending permutation, several times faster than torch's.
    """
    if values.size == 0:
        return np.zeros(values.shape, dtype=np.int64)
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    negative = bits >> np.uint32(31)
    key = negative - np.uint32(1)  # 0 for negative values, all ones otherwise
    key &= np.uint32(0x7FFFFFFF)
    key ^= bits  # x >= 0: 0x7FFFFFFF - bits; x < 0: bits
    key -= negative  # -0.0 (0x80000000) lands on +0.0's 0x7FFFFFFF; order is kept
    # +inf is 0x007FFFFF and -inf 0xFF7FFFFF: anything beyond them is a NaN
    if key.min() < 0x007FFFFF or key.max() > 0xFF7FFFFF:
        return None
    keys = key.astype(np.uint64)
    keys <<= np.uint64(32)
    keys |= np.arange(values.shape[-1], dtype=np.uint64)
    keys.sort(axis=-1)
    keys &= np.uint64(0xFFFFFFFF)
    return keys.view(np.int64)


def log_prob(scores: torch.Tensor, rankings: torch.Tensor, mask: torch.Tensor,
             temperature: float = 1.0) -> torch.Tensor:
    """Exact Plackett-Luce log-probability of each ranking: [B, k].

    log p(pi) = sum_i [ s_pi(i) - logsumexp_{j >= i} s_pi(j) ] over real documents.
    """
    s = (scores / temperature).masked_fill(~mask, NEG)
    gathered = torch.gather(s.unsqueeze(1).expand(-1, rankings.shape[1], -1), 2, rankings)
    valid = torch.gather(mask.unsqueeze(1).expand(-1, rankings.shape[1], -1), 2, rankings)
    tail_lse = torch.logcumsumexp(gathered.flip(-1), dim=-1).flip(-1)
    terms = (gathered - tail_lse).masked_fill(~valid, 0.0)
    return terms.sum(-1)


def ranking_diversity(rankings: np.ndarray, n_docs: np.ndarray, top: int = 10) -> np.ndarray:
    """Per query, the fraction of distinct top-`top` prefixes among its k rankings."""
    out = np.zeros(rankings.shape[0])
    for i in range(rankings.shape[0]):
        cut = min(top, int(n_docs[i]))
        prefixes = {tuple(r[:cut]) for r in rankings[i]}
        out[i] = len(prefixes) / rankings.shape[1]
    return out
