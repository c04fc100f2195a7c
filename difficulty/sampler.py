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


MAX_SEED = 2**32 - 1  # a seed is one uint32 word of each query's seed sequence (query_seed)
TEMPERATURE_RANGE = (1e-3, 1e3)  # scores / T stay finite in float32 at both ends


def query_seed(seed: int, query_id: str, stream: int = 0) -> list[int]:
    """The seed sequence of one query's random stream (crc32: stable across processes)."""
    return [int(seed), zlib.crc32(query_id.encode("utf-8")), int(stream)]


def gumbel_noise(query_ids: Sequence[str], n_docs: np.ndarray, k: int, seed: int,
                 stream: int = 0, width: int | None = None) -> np.ndarray:
    """[B, k, D] standard Gumbel noise, each query's block drawn from its own stream.

    Query i's block is `np.random.default_rng(query_seed(seed, query_ids[i], stream))
    .gumbel(size=(k, n_docs[i]))`. Seeding a generator per query costs more than the draws, so
    the batch's PCG64 states are computed at once (`_pcg64_states`) and loaded into one reused
    generator: the same streams, bit for bit.
    """
    width = int(n_docs.max()) if width is None else width
    noise = np.zeros((len(query_ids), k, width), dtype=np.float32)
    crcs = [zlib.crc32(qid.encode("utf-8")) for qid in query_ids]
    states = _pcg64_states(seed, crcs, stream)
    if states is None:  # a seed outside what _pcg64_states covers: numpy seeds each query
        for i, qid in enumerate(query_ids):
            rng = np.random.default_rng(query_seed(seed, qid, stream))
            noise[i, :, :int(n_docs[i])] = rng.gumbel(size=(k, int(n_docs[i])))
        return noise
    bit_generator = np.random.PCG64(0)
    rng = np.random.Generator(bit_generator)
    state = {"bit_generator": "PCG64", "state": {"state": 0, "inc": 0},
             "has_uint32": 0, "uinteger": 0}
    for i, (pcg_state, pcg_inc) in enumerate(states):
        state["state"]["state"], state["state"]["inc"] = pcg_state, pcg_inc
        bit_generator.state = state
        noise[i, :, :int(n_docs[i])] = rng.gumbel(size=(k, int(n_docs[i])))
    return noise


# numpy's SeedSequence (NEP 19: its output is fixed for reproducibility) and PCG64 seeding
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_PCG_MULT = (2549297995355413924 << 64) + 4865540595714422341
_M32, _M128 = (1 << 32) - 1, (1 << 128) - 1
_FAST_SEEDING: bool | None = None  # checked against numpy on first use


def _seed_words(entropy: list) -> np.ndarray:
    """[B, 4] uint64 words SeedSequence(entropy[i]).generate_state(4, uint64) gives, for entropy
    of at most 4 uint32 words per query (columns), computed for the whole batch at once."""
    u32 = np.uint32
    cols = [np.asarray(c, dtype=np.uint32) for c in entropy]
    hash_const = _INIT_A

    def hashmix(value: np.ndarray) -> np.ndarray:
        nonlocal hash_const
        value = value ^ u32(hash_const)
        hash_const = (hash_const * _MULT_A) & _M32
        value = value * u32(hash_const)
        return value ^ (value >> u32(16))

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        result = u32(_MIX_L) * x - u32(_MIX_R) * y
        return result ^ (result >> u32(16))

    with np.errstate(over="ignore"):
        pool = [hashmix(cols[i] if i < len(cols) else np.zeros_like(cols[0])) for i in range(4)]
        for src in range(4):
            for dst in range(4):
                if src != dst:
                    pool[dst] = mix(pool[dst], hashmix(pool[src]))
        words, hash_const = [], _INIT_B
        for i in range(8):
            value = pool[i % 4] ^ u32(hash_const)
            hash_const = (hash_const * _MULT_B) & _M32
            value = value * u32(hash_const)
            words.append(value ^ (value >> u32(16)))
    w = np.stack(words, axis=1).astype(np.uint64)
    return w[:, 0::2] | (w[:, 1::2] << np.uint64(32))  # little-endian pairs of uint32


def _pcg64_states(seed, crcs: list[int], stream) -> list[tuple[int, int]] | None:
    """(state, inc) of np.random.PCG64(SeedSequence([seed, crc, stream])) for each crc, or None
    when the seed or stream is not one uint32 word (numpy then seeds per query) or when this
    numpy's seeding differs (checked once per process)."""
    global _FAST_SEEDING
    seed, stream = int(seed), int(stream)
    if not (0 <= seed <= _M32 and 0 <= stream <= _M32) or not crcs:
        return None
    if _FAST_SEEDING is None:
        probe = [(0, 0, 0), (7, 123456789, 3), (_M32, _M32, _M32)]
        want = [np.random.PCG64(np.random.SeedSequence(list(e))).state["state"] for e in probe]
        got = _pcg64_from_words(_seed_words([list(c) for c in zip(*probe)]))
        _FAST_SEEDING = [{"state": s, "inc": i} for s, i in got] == want
    if not _FAST_SEEDING:
        return None
    n = len(crcs)
    return _pcg64_from_words(_seed_words([[seed] * n, crcs, [stream] * n]))


def _pcg64_from_words(words: np.ndarray) -> list[tuple[int, int]]:
    """PCG64's seeding (pcg_setseq_128_srandom_r) of each row of 4 uint64 SeedSequence words."""
    out = []
    for w0, w1, w2, w3 in words.tolist():
        inc = ((((w2 << 64) | w3) << 1) | 1) & _M128
        out.append(((((inc + ((w0 << 64) | w1)) & _M128) * _PCG_MULT + inc) & _M128, inc))
    return out


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
    if torch.broadcast_shapes(pad.shape, perturbed.shape) != perturbed.shape:
        perturbed = perturbed.masked_fill(pad, float("-inf"))
    elif pad.any():  # a fresh tensor: fill it in place, and only where there is padding
        perturbed.masked_fill_(pad, float("-inf"))
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


ROLLOUT_REWARDS = ("pass", "graded")  # what a rollout's reward is for RL's advantage


def rollout_reward(value: np.ndarray, passed: np.ndarray, kind: str = "pass") -> np.ndarray:
    """[B, R] float32 reward of each rollout for a group-relative advantage.

    Args:
      value: [B, R] the reward's metric value of each ranking (`difficulty.rewards.evaluate`'s
        first output: NDCG@K for `ndcg@K>=TAU`, the weighted sum for a composite).
      passed: [B, R] whether each ranking passes the reward's threshold (its second output).
      kind: `pass` (1 for a passing ranking, else 0: the outcome reward the curriculum's bands
        are defined on) or `graded` (the metric value itself, so rankings of a group that all
        fail, or all pass, still differ).

    Raises:
      ValueError: an unknown kind.
    """
    if kind == "pass":
        return passed.astype(np.float32)
    if kind == "graded":
        return np.asarray(value, dtype=np.float32)
    raise ValueError(f"rollout reward {kind!r}: expected one of {ROLLOUT_REWARDS}")


def group_advantage(rewards: torch.Tensor) -> torch.Tensor:
    """[B, R] group-relative advantage: each rollout's reward minus its group's (query's) mean,
    divided by the group's standard deviation (unbiased) + 1e-6 (GRPO, Shao et al. 2024, eq. 3).

    A group whose R rewards are all equal gets advantage 0 everywhere (it teaches nothing).
    """
    return (rewards - rewards.mean(-1, keepdim=True)) / (rewards.std(-1, keepdim=True) + 1e-6)


def informative_groups(rewards) -> np.ndarray | torch.Tensor:
    """[B] bool: groups whose rewards are not all equal (a non-zero advantage; numpy or torch)."""
    if isinstance(rewards, torch.Tensor):
        return rewards.min(-1).values != rewards.max(-1).values
    return rewards.min(-1) != rewards.max(-1)
