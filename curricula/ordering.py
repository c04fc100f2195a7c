"""Curriculum order of RL queries and stage boundaries, from a small global table of order keys.

Strategies:
- `staged`: easiest first, by pass rate (order key = 1 - pass rate), cut into S stages.
- `target`: nearest a target pass rate first (order key = |pass rate - target|); 0.5 is where
  p(1 - p), the variance of a group's binary rewards and so its group-relative signal, is largest.

Stage boundaries come from a histogram {order key: count}: pass rates are ratios of small
integers, so the table has few distinct keys however many rows there are, and it is built by a
combine, never by collecting rows on one worker. A key's stage is set by the midpoint of its
cumulative count, so equal keys share a stage and stages are as equal in size as ties allow.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from curricula.hashing import uniform

STRATEGIES = ("staged", "target")
KEY_DECIMALS = 9  # order keys are rounded so equal pass rates share a key across workers


@dataclass(frozen=True)
class OrderConfig:
    strategy: str = "staged"
    stages: int = 3
    target: float = 0.5
    replay: float = 0.0


def order_keys(pass_rate: np.ndarray, cfg: OrderConfig) -> np.ndarray:
    if cfg.strategy == "staged":
        keys = 1.0 - np.asarray(pass_rate, float)
    elif cfg.strategy == "target":
        keys = np.abs(np.asarray(pass_rate, float) - cfg.target)
    else:
        raise ValueError(f"unknown strategy {cfg.strategy!r} (expected one of {STRATEGIES})")
    return np.round(keys, KEY_DECIMALS)


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
