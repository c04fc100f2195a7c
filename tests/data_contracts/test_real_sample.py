"""The real Yahoo LTR sample (LightGBM layout) reads into exactly the documented queries."""
from __future__ import annotations

from collections import Counter

import pyarrow.compute as pc
import pytest

from data_contracts.readers import detect_format
from tests.data_contracts.util import read_and_validate


def _group_sizes(path: str) -> list[int]:
    with open(path + ".query", encoding="utf-8") as handle:
        return [int(line) for line in handle if line.strip()]


@pytest.fixture(scope="module")
def train(yahoo_train):
    """rank.train read with auto format detection and validated."""
    return read_and_validate(yahoo_train, batch_size=64)


@pytest.fixture(scope="module")
def held_out(yahoo_test):
    """rank.test read with auto format detection and validated."""
    return read_and_validate(yahoo_test, batch_size=64)


def test_auto_format_is_lightgbm(yahoo_train, yahoo_test):
    """A data file with a `.query` file beside it is detected as the LightGBM layout."""
    assert detect_format(yahoo_train) == "lightgbm"
    assert detect_format(yahoo_test) == "lightgbm"


def test_train_counts(train, yahoo_train):
    """rank.train: 201 queries, 3005 documents, width 300, labels exactly {0..4}, none rejected."""
    assert train.quarantine.num_rows == 0
    assert train.records == 201
    assert train.ok.num_rows == 201
    n_docs = pc.list_value_length(train.ok.column("doc_ids")).to_pylist()
    assert sum(n_docs) == 3005
    assert n_docs == _group_sizes(yahoo_train)  # one query per group, in file order
    assert train.state.feature_width == 300
    widths = pc.list_value_length(pc.list_flatten(train.ok.column("features")))
    assert len(widths) == 3005
    assert set(widths.to_pylist()) == {300}
    labels = pc.list_flatten(train.ok.column("labels")).to_pylist()
    assert set(labels) == {0.0, 1.0, 2.0, 3.0, 4.0}
    assert Counter(labels) == {0.0: 645, 1.0: 1211, 2.0: 858, 3.0: 222, 4.0: 69}


def test_train_query_ids_unique(train):
    """Query ids of the LightGBM layout are FILE:INDEX of the groups, unique, in file order."""
    ids = train.ok.column("query_id").to_pylist()
    assert ids == [f"rank.train:{i}" for i in range(201)]


def test_rank_test_counts(held_out, yahoo_test):
    """rank.test: 50 queries, 768 documents, width 300, labels in {0..4}, none rejected."""
    assert held_out.quarantine.num_rows == 0
    assert held_out.ok.num_rows == 50
    n_docs = pc.list_value_length(held_out.ok.column("doc_ids")).to_pylist()
    assert sum(n_docs) == 768
    assert n_docs == _group_sizes(yahoo_test)
    assert held_out.state.feature_width == 300
    labels = pc.list_flatten(held_out.ok.column("labels")).to_pylist()
    assert Counter(labels) == {0.0: 206, 1.0: 256, 2.0: 252, 3.0: 44, 4.0: 10}
