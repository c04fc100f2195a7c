"""Read-ahead keeps order, re-raises the producer's errors, and stops cleanly when abandoned."""
from __future__ import annotations

import threading
import time

import pytest

from data_contracts.errors import InputError
from data_contracts.readers.prefetch import prefetch


def test_order_is_kept():
    assert list(prefetch(iter(range(1000)), depth=3)) == list(range(1000))


def test_producer_error_is_raised_where_it_happened():
    def items():
        yield 1
        yield 2
        raise InputError("data.parquet", "required column missing", column="features")

    seen = []
    with pytest.raises(InputError, match="features"):
        for item in prefetch(items()):
            seen.append(item)
    assert seen == [1, 2]


def test_reads_ahead_at_most_depth_items():
    produced = []

    def items():
        for i in range(100):
            produced.append(i)
            yield i

    stream = prefetch(items(), depth=2)
    assert next(stream) == 0
    time.sleep(0.3)
    assert len(produced) <= 4  # the one handed out, `depth` queued, one waiting to be queued


def test_abandoned_consumer_stops_the_producer():
    before = threading.active_count()
    stream = prefetch(iter(range(10_000)), depth=1)
    next(stream)
    stream.close()
    time.sleep(0.5)
    assert threading.active_count() <= before
