"""Curriculum order: keys per strategy, stage boundaries from a key histogram, replay copies."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from curricula.ordering import (OrderConfig, assign_stages, key_histogram, order_keys,
                                replay_copies, stage_table)


def _pass_rates(n: int, seed: int = 0) -> np.ndarray:
    """Posterior-mean pass rates (s + 1) / (k + 2) as the scorer makes them: many ties."""
    rng = np.random.default_rng(seed)
    trials = rng.choice([16, 32, 48, 64], size=n)
    successes = rng.integers(0, trials + 1)
    return (successes + 1.0) / (trials + 2.0)


def _stages(rates: np.ndarray, cfg: OrderConfig, batches: int = 1) -> np.ndarray:
    """Stages as the pipeline computes them: per-batch histograms summed, then a lookup."""
    keys = order_keys(rates, cfg)
    histogram = Counter()
    for part in np.array_split(keys, batches):
        histogram.update(key_histogram(part))
    return assign_stages(keys, stage_table(histogram, cfg.stages))


@pytest.mark.parametrize("stages", [2, 3, 5])
def test_staged_puts_higher_pass_rates_in_earlier_stages(stages):
    rates = _pass_rates(1000)
    cfg = OrderConfig(strategy="staged", stages=stages)
    stage = _stages(rates, cfg)
    assert set(stage.tolist()) == set(range(stages))
    for s in range(stages - 1):
        assert rates[stage == s].min() >= rates[stage == s + 1].max(), s
        # equal pass rates never straddle a boundary
        assert not set(np.round(rates[stage == s], 9)) & set(np.round(rates[stage == s + 1], 9))


@pytest.mark.parametrize("target", [0.5, 0.3])
def test_target_puts_pass_rates_nearer_the_target_earlier(target):
    rates = _pass_rates(1000, seed=1)
    cfg = OrderConfig(strategy="target", stages=3, target=target)
    stage = _stages(rates, cfg)
    distance = np.abs(rates - target)
    for s in range(2):
        assert distance[stage == s].max() <= distance[stage == s + 1].min() + 1e-9
    assert distance[stage == 0].mean() < distance[stage == 2].mean()


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy"):
        order_keys(np.array([0.5]), OrderConfig(strategy="random"))


def test_stage_table_keeps_equal_keys_together_and_stages_about_equal():
    rates = _pass_rates(3000, seed=2)
    cfg = OrderConfig(stages=3)
    keys = order_keys(rates, cfg)
    histogram = key_histogram(keys)
    table = stage_table(histogram, 3)
    assert set(table) == set(histogram)  # one stage per key: equal keys share it
    sizes = Counter(assign_stages(keys, table).tolist())
    largest_tie = max(histogram.values())
    for s in range(3):
        assert abs(sizes[s] - 1000) <= largest_tie, (sizes, largest_tie)


def test_stage_table_distinct_keys_split_evenly_and_in_key_order():
    histogram = Counter({float(k): 1 for k in range(12)})
    table = stage_table(histogram, 3)
    assert [table[float(k)] for k in range(12)] == [0] * 4 + [1] * 4 + [2] * 4
    assert stage_table(Counter({0.5: 10}), 3) == {0.5: 1}  # one key: one stage, never split


def test_stage_boundaries_do_not_depend_on_batching():
    rates = _pass_rates(500, seed=4)
    cfg = OrderConfig(stages=4)
    assert np.array_equal(_stages(rates, cfg, batches=1), _stages(rates, cfg, batches=7))


def test_replay_copies_go_only_to_later_stages_at_about_the_fraction():
    n, replay = 6000, 0.2
    qids = [f"q{i}" for i in range(n)]
    stages = np.repeat(np.arange(3), n // 3).astype(np.int32)
    cfg = OrderConfig(stages=3, replay=replay)
    copies = replay_copies(qids, stages, cfg, seed=0)
    assert copies, "replay > 0 must copy some rows"
    assert all(later > stages[row] for row, later in copies)
    assert len(set(copies)) == len(copies)
    per_stage = Counter(later for _, later in copies)
    assert 0 not in per_stage
    for later in (1, 2):
        earlier = int((stages < later).sum())
        assert per_stage[later] / earlier == pytest.approx(replay, abs=0.03)


def test_replay_zero_copies_nothing_and_draws_are_per_query():
    qids = [f"q{i}" for i in range(300)]
    stages = np.repeat(np.arange(3), 100).astype(np.int32)
    assert replay_copies(qids, stages, OrderConfig(stages=3, replay=0.0), seed=0) == []
    cfg = OrderConfig(stages=3, replay=0.3)
    whole = {(qids[r], s) for r, s in replay_copies(qids, stages, cfg, seed=0)}
    halves = set()
    for part in (slice(0, 137), slice(137, 300)):  # another batching gives the same copies
        sub = qids[part]
        halves |= {(sub[r], s) for r, s in replay_copies(sub, stages[part], cfg, seed=0)}
    assert whole == halves
    other_seed = {(qids[r], s) for r, s in replay_copies(qids, stages, cfg, seed=1)}
    assert other_seed != whole


def test_shuffled_strategy_orders_by_query_hash_and_keeps_every_row():
    from curricula.ordering import SHUFFLE_BUCKETS, shuffle_keys, shuffled_order

    ids = [f"q{i}" for i in range(500)] + ["q7", "q7"]  # replays repeat a query id
    rates = np.linspace(0, 1, len(ids))
    cfg = OrderConfig(strategy="shuffled")
    keys = order_keys(rates, cfg, query_ids=ids, seed=3)
    assert np.array_equal(keys, order_keys(rates[::-1], cfg, query_ids=ids, seed=3))  # no rates
    assert not np.array_equal(keys, order_keys(rates, cfg, query_ids=ids, seed=4))  # seeded
    assert np.allclose(keys * SHUFFLE_BUCKETS, np.round(keys * SHUFFLE_BUCKETS), atol=1e-4)
    order = shuffled_order(ids, 3)
    assert sorted(order.tolist()) == list(range(len(ids)))  # a permutation: every row kept
    assert np.all(np.diff(shuffle_keys(ids, 3)[order]) >= 0)
    assert abs(np.corrcoef(order, np.arange(len(ids)))[0, 1]) < 0.2  # not the input order
    with pytest.raises(ValueError, match="query_ids"):
        order_keys(rates, cfg)
