"""Helpers shared by the data-contract tests: read a whole input, write small inputs."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from data_contracts.readers import read_queries
from data_contracts.schema import QUARANTINE_SCHEMA, QUERY_SCHEMA
from data_contracts.validate import ValidationState, validate_queries


@dataclass
class Outcome:
    """A whole input read and validated.

    Attributes:
      ok: valid queries (QUERY_SCHEMA), in input order.
      quarantine: every rejected record (QUARANTINE_SCHEMA), read-time rejects included.
      records: records the reader accounted for (QueryBatch.records summed).
      state: the validation state after the last batch.
    """

    ok: pa.Table
    quarantine: pa.Table
    records: int
    state: ValidationState


def read_and_validate(path: str, fmt: str = "auto", *, batch_size: int = 256,
                      state: ValidationState | None = None, **kwargs) -> Outcome:
    """Reads `path` with read_queries and validates every batch, checking per-batch accounting.

    Raises:
      AssertionError: a batch's records are not exactly its ok plus quarantined rows, or a
        table leaves its schema.
    """
    state = state or ValidationState()
    oks, bads, records = [], [], 0
    for batch in read_queries(path, fmt, batch_size=batch_size, **kwargs):
        assert batch.queries.schema.equals(QUERY_SCHEMA)
        assert len(batch.locations) == batch.queries.num_rows
        ok, bad = validate_queries(batch, state)
        assert ok.schema.equals(QUERY_SCHEMA)
        assert bad.schema.equals(QUARANTINE_SCHEMA)
        assert batch.records == ok.num_rows + bad.num_rows
        records += batch.records
        oks.append(ok)
        bads.append(bad)
    ok = pa.concat_tables(oks) if oks else QUERY_SCHEMA.empty_table()
    bad = pa.concat_tables(bads) if bads else QUARANTINE_SCHEMA.empty_table()
    return Outcome(ok, bad, records, state)


def write_jsonl(path, rows: list) -> list[int]:
    """Writes rows (dicts, or raw strings written as they are) one a line; returns line numbers."""
    numbers = []
    with open(path, "w", encoding="utf-8") as handle:
        for number, row in enumerate(rows, 1):
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
            numbers.append(number)
    return numbers


def assert_parquet_round_trip(table: pa.Table, schema: pa.Schema, path) -> pa.Table:
    """Writes `table` with pyarrow.parquet, reads it back, and asserts schema and content equal."""
    pq.write_table(table, str(path))
    back = pq.read_table(str(path))
    assert back.schema.equals(schema), back.schema
    assert back.equals(table)
    return back
