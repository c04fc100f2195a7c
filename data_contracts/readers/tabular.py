"""Parquet, CSV and JSON-lines readers: canonical query tables, and one-row-per-document tables.

Two layouts, told apart by their columns (after `column_map`):

  - canonical: one record per query, in QUERY_SCHEMA's columns (`query_id`, `doc_ids`,
    `features` as a list of lists, optional `labels`, `teacher_scores`, ...). Parquet and JSONL.
  - rows: one record per document, as pandas / LightGBM / XGBoost users hold them: a query id
    column, optionally a document id and a label column, and the features either as one list
    column or as one numeric column per feature. Parquet, CSV/TSV (with a header) and JSONL.
    Columns are found by name (ROW_NAMES, case-insensitive) or named with `column_map`
    (`query_id=`, `doc_id=`, `label=`, `features=` a list column, `a|b|c` or a pattern `f*`);
    every other numeric column is a feature (except a saved pandas index, `weight` and `fold`
    columns: NOT_FEATURES). The rows of a query must be adjacent, or
    `group_rows=True` groups them in memory. A missing document id becomes `QID:N`.

Quarantine decisions are per record and never depend on the batch size or where the record
stands: a value that does not convert (a label `very`) quarantines only its own record (for the
rows layout: its query); numeric strings (`"2"`) are cast as Arrow casts them; a required column
no record has is an InputError for the file, decided over the whole file for JSONL (a record
lacking it is quarantined by validation, e.g. `length_mismatch`); a record nested deeper than
MAX_DEPTH is quarantined (`unparseable_record`), never a RecursionError.

This module picks the layout and the reader; the rooms it draws on: readers.records (reading
records of one schema from JSONL, Parquet and CSV files), readers.layout (which columns hold
what: `table_layout`, CatBoost pools, the feature-space scan of a table) and readers.rows (the
one-row-per-document reader).
"""
from __future__ import annotations

from typing import Iterator, Mapping

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.readers.base import QueryBatch
from data_contracts.readers.layout import table_layout
from data_contracts.readers.records import fill_nulls, read_jsonl_rows, read_parquet_rows
from data_contracts.readers.rows import read_rows_table
from data_contracts.schema import QUERY_REQUIRED, QUERY_SCHEMA

TABLE_FORMATS = ("parquet", "jsonl", "csv", "catboost")


def read_table_queries(path: str, fmt: str, *, batch_size: int,
                       column_map: Mapping[str, str] | None = None, source: str | None = None,
                       split: str | None = None, row_groups: list[int] | None = None,
                       group_rows: bool = False, space=None) -> Iterator[QueryBatch]:
    """Queries from a Parquet, CSV or JSONL input, canonical or rows layout (by its columns).

    Raises:
      InputError: missing file, a folder where a file is needed, unreadable or corrupt data,
        missing required columns, rows of a query not adjacent (without group_rows), row groups
        asked of a rows table (its queries may span row groups).
    """
    if not fs.exists(path):
        raise InputError(path, "file not found")
    if fmt != "parquet" and fs.isdir(path):
        raise InputError(path, f"is a folder, not a {fmt} file")
    layout = table_layout(path, fmt, column_map)
    if layout is not None:
        if row_groups is not None:
            raise InputError(path, "row groups split only tables of one record per query (a "
                                   "query of a one-row-per-document table may span row groups)")
        return read_rows_table(path, fmt, layout, batch_size=batch_size, source=source,
                               split=split, group_rows=group_rows)
    if fmt == "csv":
        raise InputError(path, "a CSV file is read as one row per document; this one has "
                               "list columns (doc_ids) that CSV cannot hold")
    return _canonical(path, fmt, batch_size, column_map, source, split, row_groups)


def _canonical(path, fmt, batch_size, column_map, source, split, row_groups):
    counts: dict = {}
    if fmt == "parquet":
        batches = read_parquet_rows(path, batch_size, QUERY_SCHEMA, QUERY_REQUIRED, "query",
                                    column_map, row_groups)
    else:
        batches = read_jsonl_rows(path, batch_size, QUERY_SCHEMA, QUERY_REQUIRED, "query",
                                  column_map, counts)
    name = source or fs.basename(fs.abspath(path).rstrip("/"))
    for table, locations, bad in batches:
        table = fill_nulls(table, "source", name)
        if split is not None:
            table = fill_nulls(table, "split", split)
        yield QueryBatch(table, locations, bad, skipped_lines=counts.pop("skipped_lines", 0))
    if counts.get("skipped_lines"):
        yield QueryBatch(QUERY_SCHEMA.empty_table(), [], skipped_lines=counts.pop("skipped_lines"))


__all__ = ["TABLE_FORMATS", "read_table_queries"]
