"""Parquet and JSONL readers for inputs already in the canonical columns (queries or rollouts)."""
from __future__ import annotations

import json
import os
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from data_contracts.errors import InputError
from data_contracts.quarantine import quarantine_row, quarantine_table
from data_contracts.readers.base import QueryBatch, nested_float_array
from data_contracts.reasons import Reason
from data_contracts.schema import QUARANTINE_SCHEMA, QUERY_SCHEMA


def _require(path: str, names: list[str], required: tuple[str, ...], schema: pa.Schema) -> None:
    for column in required:
        if column not in names:
            raise InputError(path, f"required column missing (expected {schema.field(column).type})",
                             column=column)


def _to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    columns = {}
    for fld in schema:
        values = [r.get(fld.name) for r in rows]
        if fld.type == pa.list_(pa.list_(pa.float32())):
            columns[fld.name] = nested_float_array(values)
        else:
            columns[fld.name] = pa.array(values, type=fld.type)
    return pa.Table.from_pydict(columns, schema=schema)


def conform_rows(rows: list[dict], locations: list[str], schema: pa.Schema, record_kind: str,
                 step: str) -> tuple[pa.Table, list[str], list[dict]]:
    """Converts dict rows to `schema`; rows whose values do not convert are quarantined.

    The batch is converted at once; only when that fails is it retried row by row to find the
    offending records, so the common path stays vectorized.
    """
    try:
        return _to_table(rows, schema), locations, []
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    good, good_locations, bad = [], [], []
    for row, location in zip(rows, locations):
        try:
            _to_table([row], schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
            bad.append(quarantine_row(Reason.UNPARSEABLE_RECORD, step=step, location=location,
                                      query_id=_as_id(row.get("query_id")),
                                      record_kind=record_kind, detail=f"bad type: {exc}",
                                      raw=row))
            continue
        good.append(row)
        good_locations.append(location)
    return _to_table(good, schema), good_locations, bad


def _as_id(value) -> str | None:
    return None if value is None else str(value)


def read_jsonl_rows(path: str, batch_size: int, schema: pa.Schema, required: tuple[str, ...],
                    record_kind: str) -> Iterator[tuple[pa.Table, list[str], pa.Table]]:
    """Streams a JSONL file as (table in `schema`, locations, quarantine) batches."""
    if not os.path.exists(path):
        raise InputError(path, "file not found")
    rows, locations, bad = [], [], []
    checked = False
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            location = f"{path}:{number}"
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("a JSON object per line is expected")
            except ValueError as exc:
                bad.append(quarantine_row(Reason.UNPARSEABLE_RECORD, step="read",
                                          location=location, record_kind=record_kind,
                                          detail=str(exc), raw=line.rstrip("\n")))
                continue
            if not checked:  # the first good record decides whether the columns are there
                _require(path, list(row), required, schema)
                checked = True
            rows.append(row)
            locations.append(location)
            if len(rows) >= batch_size:
                table, locs, more = conform_rows(rows, locations, schema, record_kind, "read")
                yield table, locs, quarantine_table(bad + more)
                rows, locations, bad = [], [], []
    if rows or bad:
        table, locs, more = conform_rows(rows, locations, schema, record_kind, "read")
        yield table, locs, quarantine_table(bad + more)


def read_parquet_rows(path: str, batch_size: int, schema: pa.Schema, required: tuple[str, ...],
                      record_kind: str, row_groups: list[int] | None = None
                      ) -> Iterator[tuple[pa.Table, list[str], pa.Table]]:
    """Streams a Parquet file (or folder of them) as (table, locations, quarantine) batches.

    `row_groups` (one file only) reads just those row groups, ascending; locations keep their
    row numbers within the whole file.
    """
    if not os.path.exists(path):
        raise InputError(path, "file not found")
    files = (sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".parquet"))
             if os.path.isdir(path) else [path])
    for file in files:
        try:
            parquet = pq.ParquetFile(file)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(file, f"not a readable Parquet file ({exc})") from None
        names = parquet.schema_arrow.names
        _require(file, names, required, schema)
        start = 0
        if row_groups is not None:
            meta = parquet.metadata
            start = sum(meta.row_group(g).num_rows for g in range(min(row_groups or [0])))
        for record_batch in parquet.iter_batches(batch_size=batch_size, row_groups=row_groups):
            table = pa.Table.from_batches([record_batch])
            locations = [f"{file}#{start + i}" for i in range(table.num_rows)]
            start += table.num_rows
            try:
                cast = _conform_arrow(table, schema)
                yield cast, locations, QUARANTINE_SCHEMA.empty_table()
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                rows, locs, bad = conform_rows(table.to_pylist(), locations, schema, record_kind,
                                               "read")
                yield rows, locs, quarantine_table(bad)


def _conform_arrow(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = []
    for fld in schema:
        if fld.name in table.column_names:
            columns.append(table.column(fld.name).cast(fld.type))
        else:
            columns.append(pa.nulls(table.num_rows, fld.type))
    # Arrow keeps our non-nullable flags as documentation; nulls are caught by validation.
    return pa.Table.from_arrays(columns, schema=schema)


def read_query_table_file(path: str, fmt: str, batch_size: int, source: str | None,
                          split: str | None, row_groups: list[int] | None = None
                          ) -> Iterator[QueryBatch]:
    """Canonical-column queries from Parquet or JSONL as QueryBatch (`row_groups`: Parquet)."""
    from data_contracts.schema import QUERY_REQUIRED
    if fmt == "parquet":
        rows = read_parquet_rows(path, batch_size, QUERY_SCHEMA, QUERY_REQUIRED, "query",
                                 row_groups=row_groups)
    else:
        rows = read_jsonl_rows(path, batch_size, QUERY_SCHEMA, QUERY_REQUIRED, "query")
    for table, locations, bad in rows:
        table = _fill(table, "source", source or os.path.basename(path))
        if split is not None:
            table = _fill(table, "split", split)
        yield QueryBatch(table, locations, bad)


def _fill(table: pa.Table, name: str, value: str) -> pa.Table:
    """Fills nulls in a string column with `value`."""
    index = table.schema.get_field_index(name)
    column = table.column(name).fill_null(value) if table.num_rows else table.column(name)
    return table.set_column(index, table.schema.field(index), column)
