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
    perturbed = perturbed.masked_fill(~mask_t.unsqueeze(1), NEG)
    # stable: a tie (e.g. zero temperature noise) keeps document order, as trec-style ties do
    order = torch.sort(perturbed, dim=-1, descending=True, stable=True).indices
    return order if isinstance(scores, torch.Tensor) else order.numpy()


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
