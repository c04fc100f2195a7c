"""The embedded synthetic generator is deterministic, graded 0..4, and fully valid."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from data_contracts.schema import QUERY_SCHEMA
from data_contracts.synthetic import SyntheticConfig, generate, generate_table
from data_contracts.validate import ValidationState, validate_queries

SMALL = SyntheticConfig(n_queries=60, min_docs=3, max_docs=12)


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return generate_table(SMALL)


def test_same_config_same_table(table):
    """Two runs of one config give identical tables, whatever the batch size."""
    assert generate_table(SMALL).equals(table)
    rebatched = pa.concat_tables([b.queries for b in generate(SMALL, batch_size=7)])
    assert rebatched.equals(table)


def test_other_seed_other_table(table):
    """The seed matters: another seed gives other data (so equality above is not vacuous)."""
    other = generate_table(SyntheticConfig(n_queries=60, min_docs=3, max_docs=12, seed=1))
    assert not other.equals(table)


def test_prefix_stable(table):
    """A query depends only on (seed, split, index): fewer queries give a prefix."""
    fewer = generate_table(SyntheticConfig(n_queries=20, min_docs=3, max_docs=12))
    assert fewer.equals(table.slice(0, 20))


def test_schema_and_shape(table):
    """In QUERY_SCHEMA, with the configured counts and feature width."""
    assert table.schema.equals(QUERY_SCHEMA)
    assert table.num_rows == SMALL.n_queries
    n_docs = np.asarray(pc.list_value_length(table.column("doc_ids")))
    assert n_docs.min() >= SMALL.min_docs and n_docs.max() <= SMALL.max_docs
    widths = pc.list_value_length(pc.list_flatten(table.column("features")))
    assert set(widths.to_pylist()) == {SMALL.n_features}
    assert len(set(table.column("query_id").to_pylist())) == SMALL.n_queries


def test_labels_graded_zero_to_four(table):
    """Labels are whole grades in 0..4, and every grade occurs."""
    labels = np.asarray(pc.list_flatten(table.column("labels")))
    assert set(np.unique(labels)) == {0.0, 1.0, 2.0, 3.0, 4.0}


def test_validates_without_quarantine():
    """Every generated query passes validation: zero quarantine rows, all queries ok."""
    state = ValidationState()
    ok_rows = 0
    for batch in generate(SMALL, batch_size=16):
        ok, quarantine = validate_queries(batch, state)
        assert quarantine.num_rows == 0, quarantine.column("reason").to_pylist()
        ok_rows += ok.num_rows
    assert ok_rows == SMALL.n_queries
    assert state.feature_width == SMALL.n_features


def test_default_config_valid_and_deterministic():
    """The default config (the pipeline's embedded input) also validates cleanly and repeats."""
    cfg = SyntheticConfig(n_queries=200)
    first = generate_table(cfg)
    assert generate_table(cfg).equals(first)
    ok, quarantine = validate_queries(next(generate(cfg, batch_size=200)), ValidationState())
    assert quarantine.num_rows == 0 and ok.num_rows == 200
    labels = pc.list_flatten(first.column("labels")).to_numpy()
    assert labels.min() >= 0 and labels.max() <= 4 and np.all(labels == np.round(labels))
