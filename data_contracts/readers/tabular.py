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
"""
from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.quarantine import quarantine_row, quarantine_table
from data_contracts.readers.base import (QueryBatch, QueryGrouper, nested_float_array,
                                         rows_to_batch)
from data_contracts.reasons import Reason
from data_contracts.schema import QUARANTINE_SCHEMA, QUERY_REQUIRED, QUERY_SCHEMA

TABLE_FORMATS = ("parquet", "jsonl", "csv", "catboost")
MAX_DEPTH = 32  # a query record is 3 levels deep (record, features, row); far deeper is junk
ROW_NAMES = {
    "query_id": ("query_id", "qid", "queryid", "query", "group_id", "groupid", "group",
                 "topic_id", "topic"),
    "doc_id": ("doc_id", "docid", "docno", "document_id", "doc", "document", "passage_id",
               "pid"),
    "label": ("label", "relevance", "rel", "target", "grade", "judgment", "y"),
    "features": ("features", "feature", "feature_vector", "vector", "x"),
}
# numeric columns that are not features: a saved pandas index, sample weights, fold numbers
NOT_FEATURES = ("", "index", "unnamed: 0", "level_0", "weight", "weights", "sample_weight",
                "fold")
_CONVERT_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError,
                   ValueError, OverflowError, RecursionError)


def _require(path: str, names: list[str], required: tuple[str, ...], schema: pa.Schema) -> None:
    for column in required:
        if column not in names:
            raise InputError(path, f"required column missing (expected {schema.field(column).type})",
                             column=column)


def _id_text(value):
    """An integer id (JSON `"qid": 7`) as its decimal string; anything else as it is."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    columns = {}
    for fld in schema:
        values = [r.get(fld.name) for r in rows]
        if fld.type == pa.string():
            values = [_id_text(v) for v in values]
        elif fld.type == pa.list_(pa.string()):
            values = [[_id_text(x) for x in v] if isinstance(v, list) else v for v in values]
        if fld.type == pa.list_(pa.list_(pa.float32())):
            columns[fld.name] = nested_float_array(values)
        else:
            columns[fld.name] = pa.array(values, type=fld.type)
    return pa.Table.from_pydict(columns, schema=schema)


def conform_rows(rows: list[dict], locations: list[str], schema: pa.Schema, record_kind: str,
                 step: str, raws: list | None = None) -> tuple[pa.Table, list[str], list[dict]]:
    """Converts dict rows to `schema`; rows whose values do not convert are quarantined.

    The batch is converted at once (Python values into Arrow types: a string label is not a
    number here); only when that fails is it retried row by row, each row on its own, so a
    record's fate does not depend on its batch.
    """
    booleans = _boolean_numbers(rows, schema)
    if not booleans:
        try:
            return _to_table(rows, schema), locations, []
        except _CONVERT_ERRORS:
            pass
    good, good_locations, bad = [], [], []
    for i, (row, location) in enumerate(zip(rows, locations)):
        try:
            if i in booleans:  # Arrow would read true as 1.0: a boolean is not a number
                raise TypeError(f"column {booleans[i]!r}: a boolean where a number is expected")
            good.append(_to_table([row], schema))
        except _CONVERT_ERRORS as exc:
            bad.append(quarantine_row(Reason.UNPARSEABLE_RECORD, step=step, location=location,
                                      query_id=_as_id(row.get("query_id")),
                                      record_kind=record_kind, detail=f"bad type: {exc}",
                                      raw=raws[i] if raws is not None else _safe_raw(row)))
            continue
        good_locations.append(location)
    table = pa.concat_tables(good) if good else schema.empty_table()
    return table, good_locations, bad


def _boolean_numbers(rows: list[dict], schema: pa.Schema) -> dict[int, str]:
    """Row index -> the first numeric column (a number, or a list of numbers) holding a JSON
    boolean, which Arrow would convert to 1.0 / 0.0 without a word."""
    numeric = []
    for fld in schema:
        kind, depth = fld.type, 0
        while pa.types.is_list(kind):
            kind, depth = kind.value_type, depth + 1
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            numeric.append((fld.name, depth))
    out = {}
    for i, row in enumerate(rows):
        for name, depth in numeric:
            if _holds_bool(row.get(name), depth):
                out[i] = name
                break
    return out


def _holds_bool(value, depth: int) -> bool:
    """Whether a value, or an item of its lists down to `depth` levels, is a boolean."""
    if isinstance(value, bool):
        return True
    if depth == 0 or not isinstance(value, list):
        return False
    if depth == 1:
        return any(type(v) is bool for v in value)
    return any(_holds_bool(v, depth - 1) for v in value)


def _safe_raw(row):
    try:
        json.dumps(row, default=str)
        return row
    except (ValueError, TypeError, RecursionError):
        return str(type(row))


def _as_id(value) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _depth_over(value, limit: int) -> bool:
    """Whether a parsed JSON value nests deeper than `limit` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def _json_records(path: str, record_kind: str) -> Iterator[tuple[str, dict | None, str, dict | None]]:
    """(location, record or None, raw line, quarantine row or None) of each JSONL record;
    blank and `#` lines are yielded as ("", None, "", None) so they can be counted."""
    from data_contracts.readers.svmlight import _decode, is_skipped, iter_lines

    with fs.open_input(path) as stream:
        for number, (offset, raw) in enumerate(iter_lines(stream), 1):
            text = _decode(raw, offset)
            if is_skipped(text):
                yield "", None, "", None
                continue
            location = f"{path}:{number}"
            try:
                row = json.loads(text)
                if not isinstance(row, dict):
                    raise ValueError("a JSON object per line is expected")
                if _depth_over(row, MAX_DEPTH):
                    raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            except RecursionError:
                yield location, None, text, quarantine_row(
                    Reason.UNPARSEABLE_RECORD, step="read", location=location,
                    record_kind=record_kind, detail="nested too deeply to parse", raw=text)
                continue
            except ValueError as exc:
                yield location, None, text, quarantine_row(
                    Reason.UNPARSEABLE_RECORD, step="read", location=location,
                    record_kind=record_kind, detail=str(exc), raw=text)
                continue
            yield location, row, text, None


def read_jsonl_rows(path: str, batch_size: int, schema: pa.Schema, required: tuple[str, ...],
                    record_kind: str, column_map: Mapping[str, str] | None = None,
                    counts: dict | None = None
                    ) -> Iterator[tuple[pa.Table, list[str], pa.Table]]:
    """Streams a JSONL file of records in `schema`'s columns as (table, locations, quarantine).

    A record lacking a required column is kept (validation gives it its reason); only when no
    record of the whole file has one is the file refused (InputError, after the last batch).

    Args:
      counts: when given, `counts["skipped_lines"]` is increased per blank/comment line.
    """
    if not fs.exists(path):
        raise InputError(path, "file not found")
    if fs.isdir(path):
        raise InputError(path, "is a folder, not a JSON-lines file")
    rename = {v: k for k, v in (column_map or {}).items()}
    rows, locations, raws, bad = [], [], [], []
    present: set = set()
    any_record = False
    for location, row, text, problem in _json_records(path, record_kind):
        if not location:
            if counts is not None:
                counts["skipped_lines"] = counts.get("skipped_lines", 0) + 1
            continue
        if problem is not None:
            bad.append(problem)
        else:
            if rename:
                row = {rename.get(k, k): v for k, v in row.items()}
            any_record = True
            present.update(k for k in required if k in row)  # a null value is given
            rows.append(row)
            locations.append(location)
            raws.append(text)
        if len(rows) + len(bad) >= batch_size:
            table, locs, more = conform_rows(rows, locations, schema, record_kind, "read", raws)
            yield table, locs, quarantine_table(bad + more)
            rows, locations, raws, bad = [], [], [], []
    if rows or bad:
        table, locs, more = conform_rows(rows, locations, schema, record_kind, "read", raws)
        yield table, locs, quarantine_table(bad + more)
    if any_record:
        for column in required:
            if column not in present:
                raise InputError(path, f"required column missing in every record (expected "
                                       f"{schema.field(column).type})", column=column)


def _parquet(path: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(fs.open_read(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(path, f"not a readable Parquet file ({exc})") from None


def _parquet_files(path: str) -> list[str]:
    if fs.isdir(path):
        files = [f for f in fs.list_files(path) if f.lower().endswith(".parquet")]
        if not files:
            raise InputError(path, "a folder without .parquet files")
        return files
    return [path]


def _iter_parquet(path: str, parquet: pq.ParquetFile, batch_size: int,
                  row_groups: list[int] | None, columns: list[str] | None = None):
    try:
        yield from parquet.iter_batches(batch_size=batch_size, row_groups=row_groups,
                                        columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:  # a corrupt page: the file, in one line
        raise InputError(path, f"corrupt Parquet data ({exc})") from None


def read_parquet_rows(path: str, batch_size: int, schema: pa.Schema, required: tuple[str, ...],
                      record_kind: str, column_map: Mapping[str, str] | None = None,
                      row_groups: list[int] | None = None
                      ) -> Iterator[tuple[pa.Table, list[str], pa.Table]]:
    """Streams a Parquet file (or folder of them) as (table, locations, quarantine) batches."""
    if not fs.exists(path):
        raise InputError(path, "file not found")
    rename = {v: k for k, v in (column_map or {}).items()}
    for file in _parquet_files(path):
        parquet = _parquet(file)
        names = [rename.get(n, n) for n in parquet.schema_arrow.names]
        for contract, given in (column_map or {}).items():
            if contract in schema.names and given not in parquet.schema_arrow.names:
                raise InputError(file, f"mapped column not in file (has "
                                       f"{parquet.schema_arrow.names})", column=given)
        _require(file, names, required, schema)
        meta = parquet.metadata
        sizes = np.array([meta.row_group(i).num_rows for i in range(meta.num_row_groups)],
                         dtype=np.int64)
        groups = np.arange(len(sizes)) if row_groups is None else np.asarray(row_groups, np.int64)
        firsts = np.concatenate([[0], np.cumsum(sizes)])[groups]  # file row of each group
        taken = np.concatenate([[0], np.cumsum(sizes[groups])])  # stream row of each group
        position = 0
        for record_batch in _iter_parquet(file, parquet, batch_size, row_groups):
            table = pa.Table.from_batches([record_batch])
            table = table.rename_columns([rename.get(n, n) for n in table.column_names])
            stream = np.arange(position, position + table.num_rows)
            j = np.searchsorted(taken, stream, side="right") - 1
            locations = [f"{file}#{r}" for r in (firsts[j] + stream - taken[j]).tolist()]
            position += table.num_rows
            try:
                yield _conform_arrow(table, schema), locations, QUARANTINE_SCHEMA.empty_table()
            except _CONVERT_ERRORS:
                yield _conform_each(table, schema, locations, record_kind)


def _conform_each(table: pa.Table, schema: pa.Schema, locations: list[str], record_kind: str):
    """Casts a table row by row: rows that do not cast are quarantined, each on its own."""
    good, good_locations, bad = [], [], []
    for i, location in enumerate(locations):
        row = table.take([i])  # a copy: casting a sliced list would cast its whole child
        try:
            good.append(_conform_arrow(row, schema))
            good_locations.append(location)
        except _CONVERT_ERRORS as exc:
            record = row.to_pylist()[0]
            bad.append(quarantine_row(Reason.UNPARSEABLE_RECORD, step="read", location=location,
                                      query_id=_as_id(record.get("query_id")),
                                      record_kind=record_kind, detail=f"bad type: {exc}",
                                      raw=record))
    out = pa.concat_tables(good) if good else schema.empty_table()
    return out, good_locations, quarantine_table(bad)


def _conform_arrow(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = []
    for fld in schema:
        if fld.name in table.column_names:
            columns.append(table.column(fld.name).cast(fld.type))
        else:
            columns.append(pa.nulls(table.num_rows, fld.type))
    # Arrow keeps our non-nullable flags as documentation; nulls are caught by validation.
    return pa.Table.from_arrays(columns, schema=schema)


# --- layout -------------------------------------------------------------------------------------

def _column_names(path: str, fmt: str) -> tuple[list[str], dict]:
    """(column names, {name: arrow type or a sample value}) of a table input, cheaply."""
    if fmt == "parquet":
        schema = _parquet(_parquet_files(path)[0]).schema_arrow
        return schema.names, {f.name: f.type for f in schema}
    if fmt == "csv":
        reader = _csv_reader(path, 1 << 16)
        return reader.schema.names, {f.name: f.type for f in reader.schema}
    for location, row, _, _ in _json_records(path, "query"):
        if row is not None:
            return list(row), dict(row)
    return [], {}


def _is_nested(value) -> bool:
    if isinstance(value, pa.DataType):
        return pa.types.is_list(value) and pa.types.is_list(value.value_type) or \
            pa.types.is_large_list(value)
    return isinstance(value, list) and any(isinstance(v, list) for v in value)


@dataclass
class RowsLayout:
    """Which columns of a one-row-per-document table hold what.

    Attributes:
      query_id, doc_id, label: column names (doc_id / label None when absent).
      list_features: the name of one list column holding a document's features, else None.
      feature_columns: one column per feature, in file order (when list_features is None).
    """

    query_id: str
    doc_id: str | None = None
    label: str | None = None
    list_features: str | None = None
    feature_columns: list = field(default_factory=list)


def _find(names: list[str], wanted: tuple[str, ...]) -> str | None:
    lower = {n.lower(): n for n in names}
    for w in wanted:
        if w in lower:
            return lower[w]
    return None


def table_layout(path: str, fmt: str, column_map: Mapping[str, str] | None = None
                 ) -> RowsLayout | None:
    """The rows layout of a table input, or None when it is in the canonical columns.

    Raises:
      InputError: a rows table without a query id or feature columns, or a mapped column that
        is not there.
    """
    if fmt == "catboost":
        return catboost_layout(path)
    names, types = _column_names(path, fmt)
    cmap = dict(column_map or {})
    canonical_docs = cmap.get("doc_ids", "doc_ids")
    canonical_feats = cmap.get("features", "features")
    nested = canonical_feats in names and _is_nested(types.get(canonical_feats))
    if canonical_docs in names or nested:
        return None
    if fmt == "jsonl" and not _rows_record(names, types, cmap):
        return None  # no record parses, or the first one is a query record missing columns
    for key in ("query_id", "doc_id", "doc_ids", "label", "labels"):
        if key in cmap and cmap[key] not in names:
            raise InputError(path, f"mapped column not in file (has {names})", column=cmap[key])
    qid = cmap.get("query_id") or _find(names, ROW_NAMES["query_id"])
    if qid is None:
        raise InputError(path, f"no query id column (has {names[:12]}; name it with "
                               f"--column-map query_id=NAME)", column="query_id")
    doc = cmap.get("doc_id") or cmap.get("doc_ids") or _find(names, ROW_NAMES["doc_id"])
    label = cmap.get("label") or cmap.get("labels") or _find(names, ROW_NAMES["label"])
    used = {qid, doc, label}
    spec = cmap.get("features")
    layout = RowsLayout(query_id=qid, doc_id=doc, label=label)
    if spec is not None and ("*" in spec or "?" in spec or "|" in spec):
        patterns = spec.split("|")
        layout.feature_columns = [n for n in names if n not in used and
                                  any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    elif spec is not None:
        if spec not in names:
            raise InputError(path, f"mapped column not in file (has {names[:12]})", column=spec)
        if _is_list(types.get(spec)):
            layout.list_features = spec
        else:
            layout.feature_columns = [spec]
    else:
        listed = _find([n for n in names if _is_list(types.get(n))], ROW_NAMES["features"])
        if listed is not None:
            layout.list_features = listed
        else:
            candidates = [n for n in names if n not in used and not _not_feature(n)]
            texts = [n for n in candidates if _is_text(types.get(n))]
            numeric_texts = _mostly_numbers(path, fmt, texts) if texts else set()
            layout.feature_columns = [n for n in candidates if _is_numeric(types.get(n))
                                      or n in numeric_texts]
    if layout.list_features is None and not layout.feature_columns:
        raise InputError(path, f"no feature columns (has {names[:12]}; name them with "
                               f"--column-map features=COL|COL or features=PREFIX*)",
                         column="features")
    return layout


def _rows_record(names: list[str], values: dict, cmap: Mapping[str, str]) -> bool:
    """Whether a JSON record is one document's row: a scalar query id beside scalar or list
    features, and no `doc_ids` list."""
    qid = cmap.get("query_id") or _find(names, ROW_NAMES["query_id"])
    if qid is None or isinstance(values.get(qid), (list, dict)):
        return False
    others = [n for n in names if n != qid]
    return any(not isinstance(values.get(n), (list, dict)) or n == cmap.get("features")
               or n.lower() in ROW_NAMES["features"] for n in others)


def _not_feature(name: str) -> bool:
    lower = name.strip().lower()
    return lower in NOT_FEATURES or lower.startswith(("__index_level_", "unnamed:"))


def _is_list(value) -> bool:
    if isinstance(value, pa.DataType):
        return pa.types.is_list(value) or pa.types.is_large_list(value)
    return isinstance(value, list)


def _is_text(value) -> bool:
    if isinstance(value, pa.DataType):
        return pa.types.is_string(value) or pa.types.is_large_string(value)
    return isinstance(value, str)


TEXT_SAMPLE_ROWS = 1000  # values of a text column looked at to tell a feature from a text


def _mostly_numbers(path: str, fmt: str, columns: list[str]) -> set[str]:
    """The text columns whose first TEXT_SAMPLE_ROWS non-empty values are mostly (more than
    half) numbers: feature columns with a few bad cells (`abc`, `n/a`), whose rows are then
    quarantined one query at a time (`unparseable_record`), rather than text columns (titles,
    urls) that are not features. Decided from the file's head, so every split agrees."""
    sample: dict[str, list] = {c: [] for c in columns}
    if fmt == "csv":
        reader = _csv_reader(path, 1 << 16)
        batch = reader.read_next_batch()
        for c in columns:
            sample[c] = batch.column(batch.schema.get_field_index(c)).to_pylist()
    elif fmt == "parquet":
        handle = _parquet(_parquet_files(path)[0])
        for batch in handle.iter_batches(batch_size=TEXT_SAMPLE_ROWS, columns=columns):
            for c in columns:
                sample[c] = batch.column(c).to_pylist()
            break
    else:
        seen = 0
        for _, row, _, _ in _json_records(path, "query"):
            if row is None:
                continue
            for c in columns:
                sample[c].append(row.get(c))
            seen += 1
            if seen >= TEXT_SAMPLE_ROWS:
                break
    out = set()
    for c, values in sample.items():
        values = [v for v in values[:TEXT_SAMPLE_ROWS] if v is not None and str(v).strip()]
        good = sum(_is_number_text(v) for v in values)
        if values and 2 * good > len(values):
            out.add(c)
    return out


def _is_number_text(value) -> bool:
    """Whether a sampled cell reads as a number (`"0.5"`, `7`; not `abc`, lists, booleans)."""
    if isinstance(value, (bool, list, dict)):
        return False
    try:
        float(value)
    except (ValueError, TypeError):
        return False
    return True


def _is_numeric(value) -> bool:
    if isinstance(value, pa.DataType):
        return pa.types.is_integer(value) or pa.types.is_floating(value) or \
            pa.types.is_boolean(value) or pa.types.is_null(value)
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def scan_table(path: str, fmt: str, column_map: Mapping[str, str] | None = None):
    """SpaceStats of a table input: its number of feature columns (and their names) when it has
    one column per feature; nothing for list-column features (not scanned)."""
    from data_contracts.readers.space import SpaceStats

    stats = SpaceStats()
    layout = table_layout(path, fmt, column_map)
    if layout is not None and layout.feature_columns:
        stats.widths[len(layout.feature_columns)] = path
        stats.names = tuple(layout.feature_columns)
    return stats


# --- rows-table reading -------------------------------------------------------------------------

def _csv_reader(path: str, block_size: int, header: bool = True, as_text: bool = False):
    """A streaming CSV reader (delimiter: tab when the first line has one, else comma).

    Args:
      as_text: read every column as strings, so a value that does not convert is found per
        value later (pyarrow would otherwise infer types from the first block and refuse a
        later block, which makes the outcome depend on where a bad value stands).
    """
    import pyarrow.csv as pcsv

    from data_contracts.readers.detect import head_lines

    lines, _ = head_lines(path)
    delimiter = "\t" if lines and "\t" in lines[0] else ","
    read = pcsv.ReadOptions(block_size=block_size, autogenerate_column_names=not header)
    parse = pcsv.ParseOptions(delimiter=delimiter)
    convert = pcsv.ConvertOptions(strings_can_be_null=True)
    try:
        if as_text:
            with fs.open_input(path) as probe:
                names = pcsv.open_csv(probe, read_options=read, parse_options=parse,
                                      convert_options=convert).schema.names
            convert = pcsv.ConvertOptions(strings_can_be_null=True,
                                          column_types={n: pa.string() for n in names})
        return pcsv.open_csv(fs.open_input(path), read_options=read, parse_options=parse,
                             convert_options=convert)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(path, f"not a readable CSV file ({exc})") from None


# CatBoost column roles (https://catboost.ai/docs/en/concepts/input-data_column-descfile)
_CD_QUERY = ("groupid", "queryid")
_CD_LABEL = ("label", "target")
_CD_DOC = ("sampleid", "docid")


def catboost_cd(path: str) -> str | None:
    """The CatBoost column description beside a TSV pool: `PATH.cd`, `STEM.cd`, `pool.cd`, or
    the only `.cd` file in its folder."""
    name = fs.basename(path)
    folder = fs.dirname(path) or "."
    stem = name.rsplit(".", 1)[0] if "." in name else name
    for candidate in (path + ".cd", fs.join(folder, stem + ".cd"), fs.join(folder, "pool.cd")):
        if fs.exists(candidate) and not fs.isdir(candidate):
            return candidate
    found = [f for f in fs.list_files(folder) if f.endswith(".cd")
             and fs.dirname(f) == folder] if fs.isdir(folder) else []
    return found[0] if len(found) == 1 else None


def catboost_layout(path: str, cd_path: str | None = None) -> RowsLayout:
    """The rows layout of a headerless CatBoost TSV pool from its column description file
    (`INDEX<TAB>TYPE[<TAB>NAME]` per line; unlisted columns are `Num`, as in CatBoost).

    Raises:
      InputError: no description file, a malformed one, or one naming no GroupId column.
    """
    from data_contracts.readers.detect import head_lines

    cd_path = cd_path or catboost_cd(path)
    if cd_path is None:
        raise InputError(path, "a CatBoost TSV pool needs its column description (PATH.cd, "
                               "INDEX<TAB>TYPE per line) beside it")
    roles = {}
    with fs.open_text(cd_path) as handle:
        for number, line in enumerate(handle, 1):
            parts = line.strip().split("\t") if "\t" in line else line.split()
            if not parts or not parts[0] or parts[0].startswith("#"):
                continue
            if not parts[0].isdigit() or len(parts) < 2:
                raise InputError(cd_path, f"line {number}: expected INDEX<TAB>TYPE, got "
                                          f"{line.strip()!r}")
            roles[int(parts[0])] = parts[1].strip().lower()
    lines, _ = head_lines(path)
    sep = "\t" if lines and "\t" in lines[0] else ","
    n_columns = len(lines[0].split(sep)) if lines else 0
    layout = RowsLayout(query_id="")
    for i in range(n_columns):
        role, name = roles.get(i, "num"), f"f{i}"
        if role in _CD_QUERY:
            layout.query_id = name
        elif role in _CD_LABEL:
            layout.label = name
        elif role in _CD_DOC:
            layout.doc_id = name
        elif role == "num":
            layout.feature_columns.append(name)
    if not layout.query_id:
        raise InputError(cd_path, "names no GroupId (or QueryId) column: not a ranking pool")
    return layout


def _cast_each(values: pa.Array, kind: pa.DataType) -> tuple[pa.Array, list]:
    """`values` cast to `kind`, with the index and error of every value that does not cast
    (those become null); decided value by value, so independent of the batch."""
    try:
        return values.cast(kind), []
    except _CONVERT_ERRORS:
        pass
    out, errors = [], []
    for i in range(len(values)):
        try:
            out.append(values.take([i]).cast(kind))  # take: see _conform_each
        except _CONVERT_ERRORS as exc:
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
        for file in _parquet_files(path):
            parquet = _parquet(file)
            start = 0
            missing = [c for c in needed if c not in parquet.schema_arrow.names]
            if missing:
                raise InputError(file, "column missing (the first file of the folder has it)",
                                 column=missing[0])
            for batch in _iter_parquet(file, parquet, batch_rows, None, needed):
                table = pa.Table.from_batches([batch])
                yield table, [f"{file}#{start + i}" for i in range(table.num_rows)], [], {}
                start += table.num_rows
        return
    if fmt in ("csv", "catboost"):
        reader = _csv_reader(path, 1 << 20, header=fmt == "csv", as_text=True)
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
    for location, row, _, problem in _json_records(path, "query"):
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


# --- entry point --------------------------------------------------------------------------------

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
        table = _fill(table, "source", name)
        if split is not None:
            table = _fill(table, "split", split)
        yield QueryBatch(table, locations, bad, skipped_lines=counts.pop("skipped_lines", 0))
    if counts.get("skipped_lines"):
        yield QueryBatch(QUERY_SCHEMA.empty_table(), [], skipped_lines=counts.pop("skipped_lines"))


def _fill(table: pa.Table, name: str, value: str) -> pa.Table:
    """Fills nulls in a string column with `value`."""
    index = table.schema.get_field_index(name)
    column = table.column(name).fill_null(value) if table.num_rows else table.column(name)
    return table.set_column(index, table.schema.field(index), column)
