"""`read_jsonl_blocks` (Arrow's JSON reader on blocks of whole lines, the line reader where Arrow
could differ) gives what `read_jsonl_rows` gives, line for line, on adversarial rollout logs."""
from __future__ import annotations

import json

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_contracts.errors import InputError
from data_contracts.readers import records
from data_contracts.readers.records import read_jsonl_blocks, read_jsonl_rows
from data_contracts.schema import ROLLOUT_REQUIRED, ROLLOUT_SCHEMA

_GOOD = [
    '{"query_id": "q1", "rollout_id": "r1", "generation": "[2] > [1]"}',
    '{"query_id": "q2", "rollout_id": "r2", "ranking": ["d1", "d2"], "policy_id": "p"}',
    '{"rollout_id": "r3", "query_id": "q\\u00e9", "reward": 1, "passed": true}',
    '{"query_id": "q4", "rollout_id": "r4", "reward": 0.25, "ranking": [null]}',
    '{"query_id": "", "rollout_id": "r5", "generation": "x\\u0000y"}',
    '{"query_id": "q6", "rollout_id": "r6", "reward": 9007199254740991}',
]
_ODD = [
    "", "   ", "# a comment", '\ufeff{"query_id": "q", "rollout_id": "r", "passed": false}',
    '{"query_id": "q", "rollout_id": "r", "passed": false}\r', "{not json",
    '{"query_id": 5, "rollout_id": "r", "passed": true}', '{"query_id": null, "rollout_id": "r"}',
    '{"query_id": "q", "rollout_id": "r", "reward": -0}',
    '{"query_id": "q", "rollout_id": "r", "reward": 123456789012345678901234567890}',
    '{"query_id": "q", "rollout_id": "r", "reward": 9007199254740993}',
    '{"query_id": "q", "rollout_id": "r", "reward": NaN}',
    '{"query_id": "q", "rollout_id": "r", "reward": true}',
    '{"query_id": "q", "rollout_id": "r", "ranking": "d1 d2"}',
    '{"query_id": "q", "query_id": "p", "rollout_id": "r", "passed": true}',
    '{"query_id": "q", "rollout_id": "r", "extra": {"deep": [1]}}',
    '{"query_id": "q", "rollout_id": "r", "generation": "\\ud800"}',
    '{"query_id": "q", "rollout_id": "r"} {"query_id": "p"}', '[1, 2]',
    '{"rollout_id": "r", "passed": true}', '{"query_id": "q", "rollout_id": "r", "passed": 1}',
]


def _read(reader, path):
    tables, locations, bad = [], [], []
    for table, locs, quarantine in reader(str(path), 4, ROLLOUT_SCHEMA, ROLLOUT_REQUIRED,
                                          "rollout"):
        tables.append(table)
        locations += locs
        bad.append(quarantine)
    rows = pa.concat_tables(tables).to_pylist() if tables else []
    # quarantine rows in any order (the shards are sorted when written; a batch lists its bad
    # lines before its rows that do not convert, and the batches differ)
    quarantined = sorted((pa.concat_tables(bad).to_pylist() if bad else []), key=repr)
    return rows, locations, quarantined


def _same(path):
    try:
        expected = _read(read_jsonl_rows, path)
    except InputError as exc:
        with pytest.raises(InputError, match=str(exc.args[0])[:20]):
            _read(read_jsonl_blocks, path)
        return
    assert repr(_read(read_jsonl_blocks, path)) == repr(expected)  # repr: NaN equals NaN


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_GOOD), st.sampled_from(_ODD)), max_size=25),
       st.integers(16, 400), st.booleans(), st.data())
def test_blocks_read_as_the_line_reader(tmp_path_factory, lines, block, final_newline, data):
    path = tmp_path_factory.mktemp("jsonl") / "log.jsonl"
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    raw = text.encode("utf-8", "surrogatepass")
    if data.draw(st.booleans()):
        raw = raw.replace(b"q1", b"q\xff")  # bad UTF-8
    path.write_bytes(raw)
    old = records.FAST_BLOCK_BYTES
    records.FAST_BLOCK_BYTES = block  # many blocks, cut anywhere between lines
    try:
        _same(path)
    finally:
        records.FAST_BLOCK_BYTES = old


def test_a_clean_log_is_read_by_arrow_in_one_block(tmp_path, monkeypatch):
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(_GOOD * 50) + "\n")
    calls = []
    monkeypatch.setattr(records, "_line_batches", lambda *a, **k: calls.append(a) or iter(()))
    rows, locations, bad = _read(read_jsonl_blocks, path)
    assert not calls and len(rows) == 300 and not bad
    assert locations[:2] == [f"{path}:1", f"{path}:2"]
    monkeypatch.undo()
    assert _read(read_jsonl_blocks, path) == _read(read_jsonl_rows, path)
    assert rows[2] == {**dict.fromkeys(ROLLOUT_SCHEMA.names), **json.loads(_GOOD[2]),
                       "reward": 1.0}
