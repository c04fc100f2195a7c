"""Curriculum order of RL queries and stage boundaries, from a small global table of order keys.

Strategies:
- `staged`: easiest first, by pass rate (order key = 1 - pass rate), cut into S stages.
- `target`: nearest a target pass rate first (order key = |pass rate - target|); 0.5 is where
  p(1 - p), the variance of a group's binary rewards and so its group-relative signal, is largest.
- `shuffled`: the control. Order key = a per-query draw in [0, 1) from crc32(seed, query id)
  (`curricula.hashing.uniform`), quantised to 1/SHUFFLE_BUCKETS so the key table stays small; the
  same rows as the other strategies (routing does not depend on the order), in an order that
  carries no difficulty information. Needs the query ids (`order_keys(..., query_ids=, seed=)`).

Stage boundaries come from a histogram {order key: count}: pass rates are ratios of small
integers, so the table has few distinct keys however many rows there are, and it is built by a
combine, never by collecting rows on one worker. A key's stage is set by the midpoint of its
cumulative count, so equal keys share a stage and stages are as equal in size as ties allow.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from curricula.hashing import uniform

STRATEGIES = ("staged", "target", "shuffled")
KEY_DECIMALS = 9  # order keys are rounded so equal pass rates share a key across workers
SHUFFLE_BUCKETS = 4096  # distinct order keys of `shuffled` (ties go by query id, like all keys)


@dataclass(frozen=True)
class OrderConfig:
    strategy: str = "staged"
    stages: int = 3
    target: float = 0.5
    replay: float = 0.0


def order_keys(pass_rate: np.ndarray, cfg: OrderConfig, query_ids: Sequence[str] | None = None,
               seed: int = 0) -> np.ndarray:
    """[N] order keys (ascending = earlier in the curriculum), rounded to KEY_DECIMALS.

    Args:
      pass_rate: [N] pass rates of the RL rows.
      cfg: the strategy.
      query_ids: [N] query ids; required by `shuffled`.
      seed: run seed (`shuffled` only).

    Raises:
      ValueError: unknown strategy, or `shuffled` without query ids.
    """
    if cfg.strategy == "staged":
        keys = 1.0 - np.asarray(pass_rate, float)
    elif cfg.strategy == "target":
        keys = np.abs(np.asarray(pass_rate, float) - cfg.target)
    elif cfg.strategy == "shuffled":
        if query_ids is None:
            raise ValueError("strategy 'shuffled' orders by query id hash: pass query_ids")
        keys = shuffle_keys(query_ids, seed)
    else:
        raise ValueError(f"unknown strategy {cfg.strategy!r} (expected one of {STRATEGIES})")
    return np.round(keys, KEY_DECIMALS)


def shuffle_keys(query_ids: Sequence[str], seed: int) -> np.ndarray:
    """[N] per-query keys in [0, 1): floor(u * SHUFFLE_BUCKETS) / SHUFFLE_BUCKETS, with
    u = crc32-based `uniform(query_ids, seed, "shuffled")`; independent of batching."""
    draw = uniform(list(query_ids), seed, "shuffled")
    return np.floor(draw * SHUFFLE_BUCKETS) / SHUFFLE_BUCKETS


def shuffled_order(query_ids: Sequence[str], seed: int) -> np.ndarray:
    """[N] row indices in `shuffled` curriculum order: by (shuffle key, query id, row)."""
    keys = shuffle_keys(query_ids, seed)
    return np.array(sorted(range(len(keys)), key=lambda i: (keys[i], query_ids[i], i)),
                    dtype=np.int64)


def key_histogram(keys: np.ndarray) -> Counter:
    return Counter({float(k): int(c) for k, c in zip(*np.unique(keys, return_counts=True))})


def stage_table(histogram: Counter, stages: int) -> dict[float, int]:
    """Order key -> stage, for a global histogram of keys."""
    total = sum(histogram.values())
    table, cumulative = {}, 0
    for key in sorted(histogram):
        count = histogram[key]
        middle = cumulative + count / 2.0
        table[key] = min(stages - 1, int(stages * middle / max(total, 1)))
        cumulative += count
    return table


def assign_stages(keys: np.ndarray, table: dict[float, int]) -> np.ndarray:
    return np.array([table[float(k)] for k in keys], dtype=np.int32)


def replay_copies(query_ids: list, stages: np.ndarray, cfg: OrderConfig, seed: int
                  ) -> list[tuple[int, int]]:
    """(row, later stage) pairs: each row reappears in each later stage with probability `replay`."""
    if cfg.replay <= 0:
        return []
    copies = []
    for later in range(1, cfg.stages):
        draw = uniform(query_ids, seed, f"replay{later}")
        for row in np.flatnonzero((stages < later) & (draw < cfg.replay)):
            copies.append((int(row), later))
    return copies
