"""Writing a query result: an aligned text table for the terminal; CSV and JSON written by DuckDB
(`COPY ... TO`), Parquet by pyarrow. Files go through data_contracts/fs.py (local or gs://).

The library writers run on a fresh DuckDB connection that only sees the result table (registered
from Arrow) and a private temporary folder; the file is then copied to `--output` or stdout.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from data_contracts import fs

FORMATS = ("text", "csv", "json", "parquet")


# --- the text table -------------------------------------------------------------------------

def short(value, limit: int, decimals: int = 4) -> str:
    """`value` as a table cell, cut at `limit` characters (large lists are not rendered whole)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{decimals}f}" if abs(value) < 1e12 else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        parts, size = [], 1
        for item in value:
            text = short(item, limit)
            parts.append(text)
            size += len(text) + 2
            if size > limit:
                break
        text = "[" + ", ".join(parts) + ("]" if len(parts) == len(value) else ", ...")
    elif isinstance(value, dict):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def decimals_of(values, most: int = 4) -> int:
    """Decimals a float column needs (at most `most`, at least 1): 10.4 -> 1, 0.61111 -> 4."""
    need = 1
    for v in values:
        if isinstance(v, float) and math.isfinite(v) and abs(v) < 1e12:
            text = f"{v:.{most}f}".rstrip("0")
            need = max(need, len(text) - text.index(".") - 1)
            if need >= most:
                return most
    return need


def format_text(table: pa.Table, max_rows: int = 1000, max_width: int = 60) -> str:
    """An aligned text table: numbers right-aligned, floats with 4 decimals, '(N rows)' last."""
    names = table.column_names
    shown = table.slice(0, max_rows) if max_rows and table.num_rows > max_rows else table
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
               for t in table.schema.types]
    data = shown.to_pylist() if names else []
    decimals = [decimals_of([row[n] for row in data]) if pa.types.is_floating(t) else 4
                for n, t in zip(names, table.schema.types)]
    rows = [[short(v, max_width, d) for v, d in zip(row.values(), decimals)] for row in data]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]

    def line(cells):
        return "  ".join(c.rjust(w) if num else c.ljust(w)
                         for c, w, num in zip(cells, widths, numeric)).rstrip()

    out = [line(names), line(["-" * w for w in widths])] + [line(r) for r in rows]
    note = f"({table.num_rows} row{'s' if table.num_rows != 1 else ''}"
    if shown.num_rows < table.num_rows:
        note += f"; showing {shown.num_rows}, use --format csv or --max-rows 0 for all"
    out.append(note + ")")
    return "\n".join(out) + "\n"


# --- library writers ------------------------------------------------------------------------

def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _select(table: pa.Table, nested_as_json: bool) -> str:
    """Columns of the result with NaN/infinity as NULL (valid JSON, empty CSV fields) and, for
    CSV, nested values (lists, structs, maps) as JSON text."""
    columns = []
    for field in table.schema:
        name = _ident(field.name)
        if pa.types.is_floating(field.type):
            columns.append(f"CASE WHEN isfinite({name}) THEN {name} END AS {name}")
        elif nested_as_json and pa.types.is_nested(field.type):
            columns.append(f"to_json({name})::VARCHAR AS {name}")
        else:
            columns.append(name)
    return ", ".join(columns) or "*"


def write_file(table: pa.Table, fmt: str, path: str) -> None:
    """Writes `table` as csv | json | parquet to the local file `path` with the library that
    owns the format: DuckDB `COPY` (CSV with a header; JSON as one array of row objects) or
    `pyarrow.parquet.write_table`."""
    if fmt == "parquet":
        pq.write_table(table, path)
        return
    options = {"csv": "FORMAT csv, HEADER true", "json": "FORMAT json, ARRAY true"}[fmt]
    con = duckdb.connect(":memory:", config={"temp_directory": ""})
    try:
        con.execute("SET python_enable_replacements = false")
        con.register("result", table)
        target = "'" + path.replace("'", "''") + "'"
        con.execute(f"COPY (SELECT {_select(table, fmt == 'csv')} FROM result) TO {target} "
                    f"({options})")
    finally:
        con.close()


def write_result(table: pa.Table, fmt: str, output: str | None, max_rows: int = 1000) -> None:
    """Writes `table` as `fmt` to `output` (a local or remote file) or stdout.

    Raises:
      ValueError: `fmt` is parquet and there is no `output`.
      OSError: the output cannot be written.
    """
    if fmt == "text":
        text = format_text(table, max_rows)
        if output:
            fs.write_bytes(output, text.encode("utf-8"))
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
        return
    if fmt == "parquet" and not output:
        raise ValueError("--format parquet needs --output FILE")
    with tempfile.TemporaryDirectory(prefix="inspect-out-") as folder:
        local = os.path.join(folder, f"result.{fmt}")
        write_file(table, fmt, local)
        if output:
            fs.copy(local, output)
            return
        with fs.open_text(local) as handle:  # streamed: memory stays bounded
            shutil.copyfileobj(handle, sys.stdout, 1 << 20)
        sys.stdout.flush()
