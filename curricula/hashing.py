"""Stable per-query hashes: shard keys and uniform draws that do not depend on batching or process."""
from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np


def stable_hash(query_id: str, salt: str = "") -> int:
    """crc32 of salt + query id (Python's `hash` is salted per process, so never that)."""
    return zlib.crc32((salt + "\x1f" + query_id).encode("utf-8"))


def uniform(query_ids: Sequence[str], seed: int, salt: str) -> np.ndarray:
    """A deterministic draw in [0, 1) per query for (seed, salt): hash-based selection."""
    return np.array([stable_hash(q, f"{seed}:{salt}") / 2.0 ** 32 for q in query_ids])


def shard_of(query_ids: Sequence[str], n_shards: int) -> np.ndarray:
    return np.array([stable_hash(q, "shard") % n_shards for q in query_ids], dtype=np.int64)


VAL_FRACTION = 0.2  # the trainer's default validation share (exports hold out the same queries)


def is_validation(query_ids: Sequence[str], fraction: float) -> np.ndarray:
    """[N] whether each query is in the fixed validation split: crc32(query id) / 2^32 < fraction
    (no seed: the same split for every seed and arm; the trainer and the exports share it)."""
    return np.array([stable_hash(q, "validation") / 2.0 ** 32 < fraction for q in query_ids],
                    dtype=bool)
