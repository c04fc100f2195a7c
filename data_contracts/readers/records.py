"""Records of one schema from JSON-lines, Parquet and CSV files: the file-level reading that every
table reader shares (canonical query tables, rows tables in readers.rows, rollouts, Hugging Face).

Quarantine decisions are per record and never depend on the batch size or where the record
stands: a value that does not convert quarantines only its own record (`conform_rows`), numeric
strings (`"2"`) are cast as Arrow casts them, a JSON boolean is not a number, a required column
no record has is an InputError for the file (decided over the whole file for JSONL), and a record
nested deeper than MAX_DEPTH is quarantined (`unparseable_record`), never a RecursionError.
"""
from __future__ import annotations

import json
from typing import Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.quarantine import quarantine_row, quarantine_table
from data_contracts.readers.base import nested_float_array
from data_contracts.readers.lines import decode_line, head_lines, is_skipped, iter_lines
from data_contracts.reasons import Reason
from data_contracts.schema import QUARANTINE_SCHEMA

MAX_DEPTH = 32  # a query record is 3 levels deep (record, features, row); far deeper is junk
CONVERT_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError,
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
    booleans.update(_strings_as_lists(rows, schema))
    if not booleans:
        try:
            return _to_table(rows, schema), locations, []
        except CONVERT_ERRORS:
            pass
    good, good_locations, bad = [], [], []
    for i, (row, location) in enumerate(zip(rows, locations)):
        try:
            if i in booleans:  # Arrow would read true as 1.0, "ab" as ["a", "b"]
                raise TypeError(booleans[i])
            good.append(_to_table([row], schema))
        except CONVERT_ERRORS as exc:
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
                out[i] = f"column {name!r}: a boolean where a number is expected"
                break
    return out


def _strings_as_lists(rows: list[dict], schema: pa.Schema) -> dict[int, str]:
    """Row index -> why: a list column given a string, which Arrow would split into its
    characters (a ranking "d1 d2" is not the list ["d", "1", " ", ...])."""
    lists = [fld.name for fld in schema if pa.types.is_list(fld.type)]
    out = {}
    for i, row in enumerate(rows):
        for name in lists:
            if isinstance(row.get(name), str):
                out[i] = f"column {name!r}: a string where a list is expected"
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


def json_records(path: str, record_kind: str
                 ) -> Iterator[tuple[str, dict | None, str, dict | None]]:
    """(location, record or None, raw line, quarantine row or None) of each JSONL record;
    blank and `#` lines are yielded as ("", None, "", None) so they can be counted."""
    with fs.open_input(path) as stream:
        for number, (offset, raw) in enumerate(iter_lines(stream), 1):
            yield json_record(path, number, offset, raw, record_kind)


def json_record(path: str, number: int, offset: int, raw: bytes, record_kind: str
                ) -> tuple[str, dict | None, str, dict | None]:
    """One JSONL line (1-based line `number`, at byte `offset`) as `json_records` yields it."""
    text = decode_line(raw, offset)
    if is_skipped(text):
        return "", None, "", None
    location = f"{path}:{number}"
    try:
        row = json.loads(text)
        if not isinstance(row, dict):
            raise ValueError("a JSON object per line is expected")
        if _depth_over(row, MAX_DEPTH):
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    except RecursionError:
        return location, None, text, quarantine_row(
            Reason.UNPARSEABLE_RECORD, step="read", location=location,
            record_kind=record_kind, detail="nested too deeply to parse", raw=text)
    except ValueError as exc:
        return location, None, text, quarantine_row(
            Reason.UNPARSEABLE_RECORD, step="read", location=location,
            record_kind=record_kind, detail=str(exc), raw=text)
    return location, row, text, None


FAST_BLOCK_BYTES = 8 << 20  # bytes of whole lines `read_jsonl_blocks` hands Arrow at a time


def read_jsonl_blocks(path: str, batch_size: int, schema: pa.Schema, required: tuple[str, ...],
                      record_kind: str) -> Iterator[tuple[pa.Table, list[str], pa.Table]]:
    """`read_jsonl_rows` (no column map, no counts) with Arrow's JSON reader where it gives
    the same table: the file is cut into blocks of whole lines (FAST_BLOCK_BYTES); a block
    whose every line is one JSON object in `schema`'s columns, of their types, with the
    required columns non-null (`_arrow_block`) is one batch read by Arrow; any other block
    (a blank or comment line, a BOM, CRLF, bad UTF-8, a bad record, another column, a type
    Arrow would convert differently) is read line by line exactly as `read_jsonl_rows` does.

    Yields:
      (table in `schema`, locations `path:line` of its rows, quarantine table), as
      `read_jsonl_rows`.

    Raises:
      InputError: as `read_jsonl_rows` (missing file, a folder, a required column missing in
        every record).
    """
    _check_jsonl_path(path)
    import pyarrow.json as pj

    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    present: set = set()
    any_record = False
    number = offset = 0  # lines and bytes before the block
    with fs.open_input(path) as stream:
        pending = b""
        while True:
            chunk = stream.read(FAST_BLOCK_BYTES)
            data = pending + chunk
            cut = data.rfind(b"\n") + 1 if chunk else len(data)
            block, pending = data[:cut], data[cut:]
            if block:
                lines = block.count(b"\n") + (not block.endswith(b"\n"))
                table = _arrow_block(block, lines, schema, options, first=offset == 0)
                if table is not None:
                    any_record = True
                    present.update(required)
                    yield (table, [f"{path}:{number + i}" for i in range(1, lines + 1)],
                           quarantine_table([]))
                else:
                    seen = yield from _line_batches(path, block, number, offset, batch_size,
                                                    schema, required, record_kind, present)
                    any_record = any_record or seen
                number, offset = number + lines, offset + len(block)
            if not chunk:
                break
    if any_record:
        _check_required(path, schema, required, present)


def _arrow_block(block: bytes, lines: int, schema: pa.Schema, options, first: bool
                 ) -> pa.Table | None:
    """The block as Arrow reads it, or None where the line reader could differ: a line that
    does not start with `{` and end with `}` (blank, comment, BOM, CRLF), bad UTF-8, any record
    Arrow refuses (bad JSON, NaN, an unknown or repeated key, a type not the column's, a null
    or missing required column), a row count other than the lines', or, in a float column,
    a `-0` (Python reads the integer 0, Arrow -0.0) or a magnitude of 2**53 or more (an integer
    there does not convert exactly: the line reader refuses it, Arrow rounds it)."""
    import pyarrow.compute as pc
    import pyarrow.json as pj

    data = np.frombuffer(block, np.uint8)
    ends = np.flatnonzero(data == 10)
    if len(ends) < lines:
        ends = np.append(ends, len(data))
    starts = np.concatenate([[0], ends[:-1] + 1])
    if (np.any(ends <= starts) or np.any(data[starts] != ord("{"))
            or np.any(data[ends - 1] != ord("}"))):
        return None
    try:
        block.decode("utf-8")
        table = pj.read_json(pa.BufferReader(block), parse_options=options)
    except (pa.ArrowException, UnicodeDecodeError, ValueError):
        return None
    if table.num_rows != lines or table.schema.names != schema.names or any(
            a.type != b.type for a, b in zip(table.schema, schema)):
        return None
    # Arrow reads every field as nullable; a required (non-null) field is never null here
    table = pa.Table.from_arrays(table.combine_chunks().columns, schema=schema)
    for fld in schema:
        if pa.types.is_floating(fld.type):
            values = table.column(fld.name)
            zero = pc.and_(pc.equal(values, 0.0), pc.less(pc.divide(1.0, values), 0.0))
            # an integer beyond 2**53 is refused by the line reader (not exactly a double)
            large = pc.greater_equal(pc.abs(values), float(2 ** 53))
            if pc.any(pc.or_(zero, large)).as_py():
                return None
    return table


def _line_batches(path: str, block: bytes, number: int, offset: int, batch_size: int,
                  schema: pa.Schema, required: tuple, record_kind: str, present: set
                  ) -> Iterator[tuple[pa.Table, list[str], pa.Table]]:
    """A block read line by line (`json_record`), batched as `read_jsonl_rows` batches
    (`_conformed_batches`); returns whether any line was a JSON object."""
    pieces = block.split(b"\n")
    if block.endswith(b"\n"):
        pieces.pop()

    def records():
        position = offset
        for i, raw in enumerate(pieces, number + 1):
            yield json_record(path, i, position, raw, record_kind)
            position += len(raw) + 1

    return (yield from _conformed_batches(records(), batch_size, schema, required, record_kind,
                                          present))


def _conformed_batches(records, batch_size: int, schema: pa.Schema, required: tuple,
                       record_kind: str, present: set, rename: dict | None = None,
                       counts: dict | None = None
                       ) -> Iterator[tuple[pa.Table, list[str], pa.Table]]:
    """(table, locations, quarantine) batches of at most `batch_size` records from `records`
    ((location, row, text, problem) as `json_record` gives them; a blank or comment line,
    location "", is skipped and counted in `counts["skipped_lines"]` when given), each
    conformed to `schema` (`conform_rows`). Keys are renamed by `rename`; the required columns
    any record gives are added to `present`. Returns whether any record was a JSON object."""
    rows, locations, raws, bad = [], [], [], []
    any_record = False
    for location, row, text, problem in records:
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
    return any_record


def _check_jsonl_path(path: str) -> None:
    """InputError (one line) unless `path` is a file."""
    if not fs.exists(path):
        raise InputError(path, "file not found")
    if fs.isdir(path):
        raise InputError(path, "is a folder, not a JSON-lines file")


def _check_required(path: str, schema: pa.Schema, required: tuple, present: set) -> None:
    """InputError for the first required column that no record of the file gives."""
    for column in required:
        if column not in present:
            raise InputError(path, f"required column missing in every record (expected "
                                   f"{schema.field(column).type})", column=column)


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
    _check_jsonl_path(path)
    rename = {v: k for k, v in (column_map or {}).items()}
    present: set = set()
    any_record = yield from _conformed_batches(json_records(path, record_kind), batch_size,
                                               schema, required, record_kind, present, rename,
                                               counts)
    if any_record:
        _check_required(path, schema, required, present)


def open_parquet(path: str) -> pq.ParquetFile:
    """One Parquet file, opened for reading (InputError, one line, when it is not readable)."""
    try:
        return pq.ParquetFile(fs.open_read(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(path, f"not a readable Parquet file ({exc})") from None


def parquet_files(path: str) -> list[str]:
    """The `.parquet` files of a folder (InputError when it has none), or `[path]` for a file."""
    if fs.isdir(path):
        files = [f for f in fs.list_files(path) if f.lower().endswith(".parquet")]
        if not files:
            raise InputError(path, "a folder without .parquet files")
        return files
    return [path]


def iter_parquet(path: str, parquet: pq.ParquetFile, batch_size: int,
                 row_groups: list[int] | None, columns: list[str] | None = None):
    """The record batches of an open Parquet file (`row_groups`, `columns`: None for all).

    Raises:
      InputError: a corrupt page (one line naming `path`).
    """
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
    for file in parquet_files(path):
        parquet = open_parquet(file)
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
        for record_batch in iter_parquet(file, parquet, batch_size, row_groups):
            table = pa.Table.from_batches([record_batch])
            table = table.rename_columns([rename.get(n, n) for n in table.column_names])
            stream = np.arange(position, position + table.num_rows)
            j = np.searchsorted(taken, stream, side="right") - 1
            locations = [f"{file}#{r}" for r in (firsts[j] + stream - taken[j]).tolist()]
            position += table.num_rows
            try:
                yield _conform_arrow(table, schema), locations, QUARANTINE_SCHEMA.empty_table()
            except CONVERT_ERRORS:
                yield _conform_each(table, schema, locations, record_kind)


def _conform_each(table: pa.Table, schema: pa.Schema, locations: list[str], record_kind: str):
    """Casts a table row by row: rows that do not cast are quarantined, each on its own."""
    good, good_locations, bad = [], [], []
    for i, location in enumerate(locations):
        row = table.take([i])  # a copy: casting a sliced list would cast its whole child
        try:
            good.append(_conform_arrow(row, schema))
            good_locations.append(location)
        except CONVERT_ERRORS as exc:
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


def csv_reader(path: str, block_size: int, header: bool = True, as_text: bool = False):
    """A streaming CSV reader (delimiter: tab when the first line has one, else comma).

    Args:
      as_text: read every column as strings, so a value that does not convert is found per
        value later (pyarrow would otherwise infer types from the first block and refuse a
        later block, which makes the outcome depend on where a bad value stands).
    """
    import pyarrow.csv as pcsv

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


def fill_nulls(table: pa.Table, name: str, value: str) -> pa.Table:
    """Fills nulls in a string column with `value`."""
    index = table.schema.get_field_index(name)
    column = table.column(name).fill_null(value) if table.num_rows else table.column(name)
    return table.set_column(index, table.schema.field(index), column)


__all__ = ["CONVERT_ERRORS", "MAX_DEPTH", "conform_rows", "csv_reader", "fill_nulls",
           "iter_parquet", "json_records", "open_parquet", "parquet_files", "read_jsonl_rows",
           "read_parquet_rows"]
