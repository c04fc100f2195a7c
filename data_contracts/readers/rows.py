"""Queries from a one-row-per-document table (Parquet, CSV/TSV, CatBoost TSV, JSONL): the rows of
a query are gathered into one canonical record (see readers.tabular for the layout rules).

A value that does not convert makes its query `unparseable_record` (decided value by value, so
independent of the batch); a row without a query id is quarantined as `empty_query_id`; the rows
of a query must be adjacent unless `group_rows` (QueryGrouper).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pyarrow as pa

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.quarantine import quarantine_row
from data_contracts.readers.base import QueryBatch, QueryGrouper, rows_to_batch
from data_contracts.readers.layout import RowsLayout
from data_contracts.readers.records import (CONVERT_ERRORS, csv_reader, iter_parquet,
                                            json_records, open_parquet, parquet_files)
from data_contracts.reasons import Reason

def _cast_each(values: pa.Array, kind: pa.DataType) -> tuple[pa.Array, list]:
    """`values` cast to `kind`, with the index and error of every value that does not cast
    (those become null); decided value by value, so independent of the batch."""
    try:
        return values.cast(kind), []
    except CONVERT_ERRORS:
        pass
    out, errors = [], []
    for i in range(len(values)):
        try:
            out.append(values.take([i]).cast(kind))  # take: see _conform_each
        except CONVERT_ERRORS as exc:
            out.append(pa.nulls(1, kind))
            errors.append((i, str(exc)))
    return pa.concat_arrays(out) if out else pa.array([], kind), errors


def _as_string(values: pa.Array) -> pa.Array:
    if pa.types.is_floating(values.type):  # pandas writes int ids with nulls as floats
        numbers = values.to_numpy(zero_copy_only=False)
        return pa.array([None if v != v else (str(int(v)) if float(v).is_integer() else str(v))
                         for v in numbers], pa.string())
    return values.cast(pa.string())


def _rows_batches(path: str, fmt: str, layout: RowsLayout, batch_rows: int, counts: dict
                  ) -> Iterator[tuple[pa.Table, list[str], list, dict]]:
    """Row batches (a table holding the layout's columns), their locations, quarantine rows
    for records that are not even rows (bad JSON), and {row: error} for JSON values that do
    not convert (CSV is read as text and Parquet as stored: both are cast value by value)."""
    needed = [c for c in (layout.query_id, layout.doc_id, layout.label, layout.list_features)
              if c] + list(layout.feature_columns)
    if fmt == "parquet":
        for file in parquet_files(path):
            parquet = open_parquet(file)
            start = 0
            missing = [c for c in needed if c not in parquet.schema_arrow.names]
            if missing:
                raise InputError(file, "column missing (the first file of the folder has it)",
                                 column=missing[0])
            for batch in iter_parquet(file, parquet, batch_rows, None, needed):
                table = pa.Table.from_batches([batch])
                yield table, [f"{file}#{start + i}" for i in range(table.num_rows)], [], {}
                start += table.num_rows
        return
    if fmt in ("csv", "catboost"):
        reader = csv_reader(path, 1 << 20, header=fmt == "csv", as_text=True)
        start = 2 if fmt == "csv" else 1  # line 1 is the header of a CSV
        try:
            for batch in reader:
                table = pa.Table.from_batches([batch]).select(
                    [c for c in needed if c in batch.schema.names])
                yield table, [f"{path}:{start + i}" for i in range(table.num_rows)], [], {}
                start += table.num_rows
        except pa.ArrowInvalid as exc:
            raise InputError(path, f"not a readable CSV file ({exc})") from None
        return
    rows, locations, bad = [], [], []
    for location, row, _, problem in json_records(path, "query"):
        if not location:
            counts["skipped_lines"] = counts.get("skipped_lines", 0) + 1
            continue
        if problem is not None:
            bad.append(problem)
            continue
        rows.append(row)
        locations.append(location)
        if len(rows) >= batch_rows:
            table, errors = _json_columns(rows, layout)
            yield table, locations, bad, errors
            rows, locations, bad = [], [], []
    if rows or bad:
        table, errors = _json_columns(rows, layout)
        yield table, locations, bad, errors


def _json_value(value, kind: str):
    """One JSON value as the rows layout's column `kind` wants it (id, number, numbers);
    ValueError when it is not one. Decided per value: independent of the batch."""
    if value is None:
        return None
    if kind == "id":
        if isinstance(value, (dict, list, bool)):
            raise ValueError(f"{value!r:.40} is not an id")
        return str(value)
    if kind == "number":
        if isinstance(value, bool) or isinstance(value, (dict, list)):
            raise ValueError(f"{value!r:.40} is not a number")
        return float(value)
    if not isinstance(value, list) or any(isinstance(v, (bool, dict, list, str)) for v in value):
        raise ValueError(f"{value!r:.40} is not a list of numbers")
    return [None if v is None else float(v) for v in value]


def _json_columns(rows: list[dict], layout: "RowsLayout") -> tuple[pa.Table, dict]:
    """A typed table of the layout's columns from JSON records, with {row: error} for values
    that do not convert (those become null)."""
    kinds = {layout.query_id: ("id", pa.string()), layout.doc_id: ("id", pa.string()),
             layout.label: ("number", pa.float32()),
             layout.list_features: ("numbers", pa.list_(pa.float32()))}
    kinds.update({c: ("number", pa.float32()) for c in layout.feature_columns})
    columns, errors = {}, {}
    for name, (kind, arrow_type) in kinds.items():
        if name is None:
            continue
        values = []
        for i, row in enumerate(rows):
            try:
                values.append(_json_value(row.get(name), kind))
            except (ValueError, TypeError, OverflowError) as exc:
                values.append(None)
                errors.setdefault(i, f"column {name!r}: {exc}")
        columns[name] = pa.array(values, type=arrow_type)
    return pa.table(columns), errors


@dataclass
class _RowQuery:
    query_id: str
    location: str
    docs: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    features: list = field(default_factory=list)  # pa.Array pieces (list<float32>)
    errors: list = field(default_factory=list)  # (location, message)


def _features_of(table: pa.Table, layout: RowsLayout) -> tuple[pa.Array, list]:
    """Per row a list<float32> of features, with (row, error) for rows that do not convert."""
    kind = pa.list_(pa.float32())
    if layout.list_features is not None:
        column = table.column(layout.list_features).combine_chunks()
        return _cast_each(column, kind)
    n = table.num_rows
    matrix = np.zeros((n, len(layout.feature_columns)), dtype=np.float32)
    errors = []
    for j, name in enumerate(layout.feature_columns):
        if name not in table.column_names:
            matrix[:, j] = np.nan
            continue
        values, bad = _cast_each(table.column(name).combine_chunks(), pa.float32())
        errors += [(i, f"column {name!r}: {e}") for i, e in bad]
        matrix[:, j] = values.to_numpy(zero_copy_only=False).astype(np.float32)
    flat = pa.array(matrix.reshape(-1), pa.float32())
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * len(layout.feature_columns))
    return pa.ListArray.from_arrays(offsets, flat), errors


def _place(location: str, path: str) -> str:
    """`line N` for `PATH:N`, `row N` for `FILE#N`."""
    if "#" in location[len(path):] or location.rsplit("#", 1)[-1].isdigit() and "#" in location:
        return "row " + location.rsplit("#", 1)[1]
    return "line " + location.rsplit(":", 1)[1]


def read_rows_table(path: str, fmt: str, layout: RowsLayout, *, batch_size: int,
                    source: str | None, split: str | None, group_rows: bool
                    ) -> Iterator[QueryBatch]:
    """Queries from a one-row-per-document table (see the module docstring)."""
    source = source or fs.basename(fs.abspath(path).rstrip("/"))
    counts: dict = {}

    def finish(q: _RowQuery) -> dict:
        if q.errors:
            where, message = q.errors[0]
            return {"query_id": q.query_id, "_error": (
                Reason.UNPARSEABLE_RECORD, where, f"{message} ({len(q.errors)} bad row(s))", "")}
        features = pa.concat_arrays(q.features) if q.features else pa.array([], pa.list_(pa.float32()))
        lengths = features.value_lengths().to_numpy(zero_copy_only=False)
        if features.null_count == 0 and len(set(lengths.tolist())) <= 1:
            width = int(lengths[0]) if len(lengths) else 0
            dense = features.flatten().to_numpy(zero_copy_only=False).reshape(len(features), width)
        else:
            dense = features.to_pylist()  # ragged or null rows: validation names them
        docs = [d if d is not None else f"{q.query_id}:{i}" for i, d in enumerate(q.docs)]
        labels = q.labels if layout.label is not None else None
        return {"query_id": q.query_id, "doc_ids": docs, "features": dense, "labels": labels,
                "source": source, "split": split, "_location": q.location}

    stray: list[dict] = []

    def flush(rows: list[dict]) -> QueryBatch:
        nonlocal stray
        batch = rows_to_batch(rows, stray, step="read")
        batch.skipped_lines = counts.pop("skipped_lines", 0)
        stray = []
        return batch

    grouper = QueryGrouper(path, group_rows, batch_size, finish, noun="query")

    for table, locations, bad, errors in _rows_batches(path, fmt, layout,
                                                       max(batch_size * 16, 1024), counts):
        stray.extend(bad)
        n = table.num_rows
        if n == 0:
            continue
        qids = _as_string(table.column(layout.query_id).combine_chunks()).to_pylist()
        docs = (_as_string(table.column(layout.doc_id).combine_chunks()).to_pylist()
                if layout.doc_id and layout.doc_id in table.column_names else [None] * n)
        labels, label_errors = (_cast_each(table.column(layout.label).combine_chunks(),
                                           pa.float32())
                                if layout.label and layout.label in table.column_names
                                else (pa.nulls(n, pa.float32()), []))
        labels = labels.to_pylist()
        features, feature_errors = _features_of(table, layout)
        row_errors: dict[int, str] = dict(errors)
        for i, e in label_errors:
            row_errors.setdefault(i, f"label: {e}")
        for i, e in feature_errors:
            row_errors.setdefault(i, f"features: {e}")
        # runs of equal query ids
        starts = [0] + [i for i in range(1, n) if qids[i] != qids[i - 1]]
        for a, b in zip(starts, starts[1:] + [n]):
            qid = qids[a]
            if qid is None:
                for i in range(a, b):
                    stray.append(quarantine_row(Reason.EMPTY_QUERY_ID, step="read",
                                                location=locations[i], record_kind="line",
                                                detail="row has no query id", raw=""))
                continue
            current = grouper.group_for(qid, _place(locations[a], path),
                                        lambda: _RowQuery(query_id=qid, location=locations[a]))
            for rows in grouper.batches():
                yield flush(rows)
            current.docs.extend(docs[a:b])
            current.labels.extend(labels[a:b])
            current.features.append(features.slice(a, b - a))
            for i in range(a, b):
                if i in row_errors:
                    current.errors.append((locations[i], row_errors[i]))
    for rows in grouper.batches(final=True):
        yield flush(rows)
    if stray or counts.get("skipped_lines"):
        yield flush([])


__all__ = ["read_rows_table"]
