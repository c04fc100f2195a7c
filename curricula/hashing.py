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
