"""The embedded text default: deterministic, every query judged, splits of their own."""
from __future__ import annotations

import numpy as np

from data_contracts.schema import QUERY_SCHEMA
from data_contracts.synthetic_text import SyntheticTextConfig, build, generate_text_table
from data_contracts.text_features import TEXT_FEATURE_NAMES
from data_contracts.validate import ValidationState, validate_queries
from data_contracts.readers.base import QueryBatch


def test_same_config_same_table_and_splits_differ():
    cfg = SyntheticTextConfig(n_queries=30)
    a, b = generate_text_table(cfg), generate_text_table(cfg)
    assert a.equals(b) and a.schema.equals(QUERY_SCHEMA)
    held = generate_text_table(SyntheticTextConfig(n_queries=30, split="heldout"))
    assert not set(a.column("query_id").to_pylist()) & set(held.column("query_id").to_pylist())


def test_every_query_has_a_relevant_candidate_and_passes_validation():
    cfg = SyntheticTextConfig(n_queries=40)
    table = generate_text_table(cfg)
    ok, bad = validate_queries(QueryBatch(table, [""] * table.num_rows),
                               ValidationState(require_labels=True))
    assert bad.num_rows == 0 and ok.num_rows == 40
    assert all(max(labels) > 0 for labels in table.column("labels").to_pylist())
    assert np.asarray(table.column("features")[0].as_py()).shape == (cfg.candidates,
                                                                      len(TEXT_FEATURE_NAMES))
    data = build(cfg)
    assert all(len(r) == cfg.candidates for r in data["run"].values())


def test_first_stage_is_informative_but_imperfect():
    data = build(SyntheticTextConfig(n_queries=200))
    top_relevant = np.mean([data["qrels"][q].get(r[0][0], 0) > 0 for q, r in data["run"].items()])
    teacher_top = np.mean([data["qrels"][q].get(r[0][0], 0) > 0
                           for q, r in data["teacher"].items()])
    assert 0.3 < top_relevant < teacher_top <= 1.0
