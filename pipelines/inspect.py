"""Inspects a curriculum run with DuckDB: a view per output, named queries, read-only SQL, a report.

Usage:
  python -m pipelines.inspect RUN                          # list views and named queries
  python -m pipelines.inspect RUN --query bands            # a named query (pipelines/queries/*.sql)
  python -m pipelines.inspect RUN --sql "SELECT band, count(*) FROM difficulty GROUP BY band"
  python -m pipelines.inspect RUN --query stages --format csv|json|parquet [--output FILE]
  python -m pipelines.inspect RUN --report report.html     # one self-contained HTML page
  python -m pipelines.inspect RUN                          # on a terminal: an interactive prompt

Views (all exist, empty with the contract's columns when the run wrote nothing for them):
  difficulty, imitation, rl, dropped, quarantine   the run's Parquet outputs (as listed in the
                                                   manifest; schemas in data_contracts/schema.py)
  files, counts, curriculum, diversity             the manifest's files, counts, stages, diversity
  training                                         a trainer's metrics.jsonl (--training DIR, else
                                                   RUN/training/ when present)

The connection is in memory and nothing is written to RUN. Only read statements run (SELECT, WITH,
VALUES, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN of those); once the views exist, DuckDB's
external access is switched off, with only RUN (and the training metrics file) left readable, and
its configuration is locked.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import decimal
import io
import json
import math
import os
import re
import sys
import textwrap
import time
from dataclasses import dataclass
from importlib import resources

import duckdb
import pyarrow as pa

from data_contracts.errors import InputError
from data_contracts.manifest import MANIFEST_NAME, load_manifest
from data_contracts.schema import (DIFFICULTY_SCHEMA, DROPPED_SCHEMA, IMITATION_SCHEMA,
                                   QUARANTINE_SCHEMA, RL_SCHEMA)

PHASE_SCHEMAS = {"difficulty": DIFFICULTY_SCHEMA, "imitation": IMITATION_SCHEMA,
                 "rl": RL_SCHEMA, "dropped": DROPPED_SCHEMA, "quarantine": QUARANTINE_SCHEMA}
PHASE_DESCRIPTIONS = {
    "difficulty": "per scored query: trials, pass rate and interval, band",
    "imitation": "demonstrations kept for behavior cloning (cluster, signature, weight)",
    "rl": "RL queries with stage, order key, replay flag (every stage)",
    "dropped": "queries in neither imitation nor RL, with the reason",
    "quarantine": "records set aside by validation, with reason and location",
}
METRICS_NAME = "metrics.jsonl"
TRAINING_FOLDER = "training"
# Known training-metric columns and their types; any other key in metrics.jsonl is kept as read.
TRAINING_COLUMNS = {
    "phase": "VARCHAR", "step": "BIGINT", "stage": "INTEGER", "loss": "DOUBLE",
    "reward_mean": "DOUBLE", "pass_rate": "DOUBLE", "informative_fraction": "DOUBLE",
    "entropy": "DOUBLE", "ranking_diversity": "DOUBLE", "ndcg_at_10": "DOUBLE",
    "policy": "VARCHAR", "kl": "DOUBLE",
}
FORMATS = ("text", "csv", "json", "parquet")
QUERY_PACKAGE = "pipelines"
QUERY_FOLDER = "queries"
# Statement types that only read. EXPLAIN is allowed when what it explains is allowed.
READ_TYPES = {duckdb.StatementType.SELECT}
_LEADING_NOISE = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)
_EXPLAIN = re.compile(r"\Aexplain\b\s*(?:analy[sz]e\b\s*)?(?:\([^)]*\)\s*)?", re.I | re.S)


class RefusedError(ValueError):
    """A statement that is not a read (or not one statement) was refused before running."""


class QueryError(ValueError):
    """A statement failed in DuckDB (bad SQL, a file it may not read, ...)."""


@dataclass
class View:
    name: str
    description: str
    source: str  # parquet | manifest | jsonl | empty


# --- named queries --------------------------------------------------------------------------

def named_queries() -> dict[str, tuple[str, str]]:
    """{name: (description, sql)} of pipelines/queries/*.sql; the leading comment describes."""
    out = {}
    folder = resources.files(QUERY_PACKAGE).joinpath(QUERY_FOLDER)
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        sql = entry.read_text(encoding="utf-8")
        lines = []
        for line in sql.strip().splitlines():
            if not line.startswith("--"):
                break
            lines.append(line[2:].strip())
        out[entry.name[:-4]] = (" ".join(lines), sql)
    return out


# --- read-only check ------------------------------------------------------------------------

def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuses anything but exactly one read statement.

    Raises:
      RefusedError: empty, several statements, or a statement of a type that could write or
        change settings (INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, COPY, ATTACH, INSTALL,
        LOAD, SET, EXPORT, PRAGMA, CALL, ...).
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(_first_line(exc)) from None
    except ValueError as exc:  # a statement type the Python enum does not know
        raise RefusedError(f"refused: not a read statement ({exc})") from None
    if not statements:
        raise RefusedError("refused: no statement")
    if len(statements) > 1:
        raise RefusedError(f"refused: {len(statements)} statements; run one at a time")
    _check_statement(con, statements[0], depth=0)


def _check_statement(con, statement, depth: int) -> None:
    kind = statement.type
    if kind in READ_TYPES:
        return
    if kind == duckdb.StatementType.EXPLAIN and depth < 3:
        text = _LEADING_NOISE.sub("", statement.query)
        match = _EXPLAIN.match(text)
        if match:
            try:
                inner = con.extract_statements(text[match.end():])
            except (duckdb.Error, ValueError):
                inner = []
            if len(inner) == 1:
                _check_statement(con, inner[0], depth + 1)
                return
    name = getattr(kind, "name", str(kind))
    hint = (" (a PIVOT without an IN list creates a type first; give the IN list)"
            if name == "MULTI" else "")
    raise RefusedError(f"refused: {name} statements are not allowed; the inspector only "
                       f"reads{hint}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- opening a run --------------------------------------------------------------------------

def find_training(run: str, training: str | None) -> str | None:
    """The metrics.jsonl to read: `training` (a folder or the file), else RUN/training/.

    Raises:
      InputError: `training` was given and holds no metrics.jsonl.
    """
    if training:
        path = training if os.path.isfile(training) else os.path.join(training, METRICS_NAME)
        if not os.path.isfile(path):
            raise InputError(training, f"no {METRICS_NAME} (expected a training folder or the "
                                       f"file itself)")
        return os.path.abspath(path)
    path = os.path.join(run, TRAINING_FOLDER, METRICS_NAME)
    return os.path.abspath(path) if os.path.isfile(path) else None


class Inspector:
    """An in-memory DuckDB connection with a view per output of one run.

    Attributes:
      root: the run folder (absolute).
      manifest: the loaded manifest.
      training_path: the metrics.jsonl read into `training`, or None.
      views: {name: View}, in listing order.
      con: the connection (external access off and configuration locked once built).
    """

    def __init__(self, run: str, training: str | None = None, verify: bool = False):
        if os.path.isfile(run) and os.path.basename(run) == MANIFEST_NAME:
            run = os.path.dirname(os.path.abspath(run))
        if not os.path.isdir(run):
            raise InputError(run, "run folder not found")
        self.manifest = load_manifest(run, verify_files=verify)
        self.root = self.manifest["_root"]
        if not verify:
            for entry in self.manifest.get("files", []):
                if not os.path.isfile(os.path.join(self.root, entry["path"])):
                    raise InputError(os.path.join(self.root, entry["path"]),
                                     "listed in the manifest but missing")
        self.training_path = find_training(self.root, training)
        self.views: dict[str, View] = {}
        self.warnings: list[str] = []
        self.con = duckdb.connect(":memory:")
        try:
            self.con.execute("SET python_enable_replacements = false")
            self.con.execute("CREATE SCHEMA _manifest")
            for phase in PHASE_SCHEMAS:
                self._phase_view(phase)
            self._manifest_views()
            self._training_view()
            self._lock()
        except BaseException:
            self.con.close()
            raise

    # -- building views --

    def _table(self, name: str, table: pa.Table) -> None:
        """Copies an Arrow table into _manifest.name (before external access is switched off)."""
        self.con.register("_arrow_input", table)
        try:
            self.con.execute(f'CREATE TABLE _manifest."{name}" AS SELECT * FROM _arrow_input')
        finally:
            self.con.unregister("_arrow_input")

    def _phase_view(self, phase: str) -> None:
        files = [os.path.join(self.root, f["path"]) for f in self.manifest.get("files", [])
                 if f.get("phase") == phase]
        if files:
            self.con.execute(f"CREATE VIEW {phase} AS "
                             f"SELECT * FROM read_parquet({_sql_list(files)})")
            source = "parquet"
        else:
            self._table(f"empty_{phase}", PHASE_SCHEMAS[phase].empty_table())
            self.con.execute(f'CREATE VIEW {phase} AS SELECT * FROM _manifest."empty_{phase}"')
            source = "empty"
        self.views[phase] = View(phase, PHASE_DESCRIPTIONS[phase], source)

    def _manifest_views(self) -> None:
        m = self.manifest
        files = m.get("files", [])
        self._table("files", pa.table({
            "path": pa.array([f["path"] for f in files], pa.string()),
            "phase": pa.array([f.get("phase") for f in files], pa.string()),
            "stage": pa.array([f.get("stage") for f in files], pa.int32()),
            "shard": pa.array([f.get("shard") for f in files], pa.int32()),
            "rows": pa.array([f.get("rows") for f in files], pa.int64()),
            "sha256": pa.array([f.get("sha256") for f in files], pa.string()),
        }))
        counts = m.get("counts", {})
        self._table("counts", pa.table({"name": pa.array(list(counts), pa.string()),
                                        "value": pa.array(list(counts.values()), pa.int64())}))
        stages = m.get("curriculum", [])

        def rows_of(entry):
            if entry.get("rows") is not None:
                return entry["rows"]
            return sum(f.get("rows", 0) for f in files if f.get("phase") == entry.get("phase")
                       and f.get("stage") == entry.get("stage"))

        self._table("curriculum", pa.table({
            "position": pa.array(range(len(stages)), pa.int32()),
            "phase": pa.array([s.get("phase") for s in stages], pa.string()),
            "stage": pa.array([s.get("stage") for s in stages], pa.int32()),
            "queries": pa.array([s.get("queries", rows_of(s) if s.get("phase") == "imitation"
                                       else None) for s in stages], pa.int64()),
            "rows": pa.array([rows_of(s) for s in stages], pa.int64()),
            "pass_rate_min": pa.array([s.get("pass_rate_min") for s in stages], pa.float64()),
            "pass_rate_mean": pa.array([s.get("pass_rate_mean") for s in stages], pa.float64()),
            "pass_rate_max": pa.array([s.get("pass_rate_max") for s in stages], pa.float64()),
            "files": pa.array([len(s.get("files", [])) for s in stages], pa.int32()),
        }))
        dv = m.get("diversity", {}) or {}
        sides = [s for s in ("before", "after") if isinstance(dv.get(s), dict)]
        width = max([int(dv.get("n_clusters") or 0)] + [
            int(k) + 1 for s in sides for k in dv[s].get("cluster_counts", {})])

        def cluster_list(side):
            counts = {int(k): int(v) for k, v in dv[side].get("cluster_counts", {}).items()}
            return [counts.get(c, 0) for c in range(width)]

        self._table("diversity", pa.table({
            "side": pa.array(sides, pa.string()),
            "demonstrations": pa.array([dv[s].get("demonstrations") for s in sides], pa.int64()),
            "clusters_used": pa.array([sum(1 for v in dv[s].get("cluster_counts", {}).values()
                                           if v) for s in sides], pa.int64()),
            "entropy_bits": pa.array([dv[s].get("cluster_entropy_bits") for s in sides],
                                     pa.float64()),
            "distinct_signatures": pa.array([dv[s].get("distinct_signatures") for s in sides],
                                            pa.int64()),
            "cluster_counts": pa.array([cluster_list(s) for s in sides], pa.list_(pa.int64())),
        }))
        for name, description in (
                ("files", "the manifest's files: path, phase, stage, shard, rows, sha256"),
                ("counts", "the manifest's counts as name/value rows"),
                ("curriculum", "the manifest's curriculum: imitation, then RL stages in order"),
                ("diversity", "the manifest's diversity before/after selection, per side")):
            self.con.execute(f'CREATE VIEW {name} AS SELECT * FROM _manifest."{name}"')
            self.views[name] = View(name, description, "manifest")

    def _training_view(self) -> None:
        path = self.training_path
        description = "a trainer's metrics.jsonl, one row per logged step"
        raw = None
        if path and os.path.getsize(path) > 0:
            raw = (f"read_json_auto({_sql_str(path)}, format='newline_delimited', "
                   f"union_by_name=true, sample_size=-1, ignore_errors=true)")
            try:
                columns = {r[0]: r[1] for r in self.con.execute(
                    f"DESCRIBE SELECT * FROM {raw}").fetchall()}
            except duckdb.Error as exc:
                raise InputError(path, f"not readable as JSON lines ({_first_line(exc)})") \
                    from None
            if set(columns) == {"json"}:  # no JSON object on any line
                self.warnings.append(f"{path}: no JSON objects found; the training view is empty")
                raw = None
        if raw is None:
            select = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in TRAINING_COLUMNS.items())
            self.con.execute(f"CREATE VIEW training AS SELECT {select} WHERE false")
            self.views["training"] = View(
                "training", description + (" (empty: none found)" if not path else " (empty)"),
                "empty")
            return
        known = [f"TRY_CAST({_ident(c)} AS {t}) AS {_ident(c)}" if c in columns
                 else f"CAST(NULL AS {t}) AS {_ident(c)}" for c, t in TRAINING_COLUMNS.items()]
        extra = [_ident(c) for c in columns if c not in TRAINING_COLUMNS]
        # ignore_errors turns a malformed line (say, one cut short by a live trainer) into an
        # all-NULL row: those are left out.
        all_null = " AND ".join(f"{_ident(c)} IS NULL" for c in columns)
        self.con.execute(f"CREATE VIEW training AS SELECT {', '.join(known + extra)} FROM {raw} "
                         f"WHERE NOT ({all_null})")
        skipped = self.con.execute(f"SELECT count(*) FROM {raw} WHERE {all_null}").fetchall()[0][0]
        if skipped:
            self.warnings.append(f"{path}: {skipped} malformed line(s) skipped")
        self.views["training"] = View("training", description, "jsonl")

    def _lock(self) -> None:
        """External access off, except for RUN and the training metrics file; config locked."""
        self.con.execute(f"SET allowed_directories = "
                         f"{_sql_list([self.root.rstrip(os.sep) + os.sep])}")
        if self.training_path:
            self.con.execute(f"SET allowed_paths = {_sql_list([self.training_path])}")
        self.con.execute("SET autoinstall_known_extensions = false")
        self.con.execute("SET autoload_known_extensions = false")
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

    # -- querying --

    def query(self, sql: str) -> pa.Table:
        """Runs one read statement and returns its result.

        Raises:
          RefusedError: not exactly one read statement.
          QueryError: DuckDB could not run it.
        """
        check_read_only(self.con, sql)
        try:
            return self.con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(str(exc).strip()) from None

    def named(self, name: str) -> pa.Table:
        queries = named_queries()
        if name not in queries:
            raise QueryError(f"no named query {name!r} (one of: {', '.join(queries)})")
        return self.query(queries[name][1])

    def count(self, view: str) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM {_ident(view)}").fetchall()[0][0])

    def has_training(self) -> bool:
        return self.views["training"].source == "jsonl" and self.count("training") > 0

    def listing(self) -> str:
        """The views (with row counts) and named queries, as text."""
        m = self.manifest
        lines = [f"run {self.root} ({m.get('created_by', '?')} {m.get('package_version', '?')}, "
                 f"config {str(m.get('config_hash', ''))[:12]})"]
        if self.training_path:
            lines[0] += f"; training metrics {self.training_path}"
        lines.append("views:")
        width = max(len(v) for v in self.views)
        for view in self.views.values():
            lines.append(f"  {view.name:<{width}}  {self.count(view.name):>8} rows  "
                         f"{view.description}")
        lines.append("named queries (--query NAME):")
        queries = named_queries()
        width = max(len(q) for q in queries)
        for name, (description, _) in queries.items():
            wrapped = textwrap.wrap(description, max(40, 98 - width), break_on_hyphens=False)
            lines.append(f"  {name:<{width}}  " + f"\n  {'':<{width}}  ".join(wrapped or [""]))
        return "\n".join(lines)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Inspector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_run(run: str, training: str | None = None, verify: bool = False) -> Inspector:
    """Opens RUN for inspection (see `Inspector`).

    Raises:
      InputError: no run folder or manifest, another schema version, a listed file missing (or,
        with `verify`, changed), or `training` holds no metrics.jsonl.
    """
    return Inspector(run, training, verify)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join(_sql_str(v) for v in values) + "]"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- output ---------------------------------------------------------------------------------

def _plain(value):
    """A JSON-able value: non-finite floats become None, decimals floats, times ISO strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (datetime.date, datetime.time, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], tuple) and len(value[0]) == 2:  # an Arrow map
            return {str(k): _plain(v) for k, v in value}
        return [_plain(v) for v in value]
    return value


def _short(value, limit: int, decimals: int = 4) -> str:
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
            text = _short(item, limit)
            parts.append(text)
            size += len(text) + 2
            if size > limit:
                break
        text = "[" + ", ".join(parts) + ("]" if len(parts) == len(value) else ", ...")
    elif isinstance(value, dict):
        text = json.dumps(_plain(value), default=str)
    else:
        text = str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _decimals(values, most: int = 4) -> int:
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
    decimals = [_decimals([row[n] for row in data]) if pa.types.is_floating(t) else 4
                for n, t in zip(names, table.schema.types)]
    rows = [[_short(v, max_width, d) for v, d in zip(row.values(), decimals)] for row in data]
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


def format_csv(table: pa.Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow([_csv_cell(v) for v in row.values()])
    return buffer.getvalue()


def _csv_cell(value):
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


def format_json(table: pa.Table) -> str:
    """A JSON array of row objects (NaN and infinities as null)."""
    rows = [_plain(row) for row in table.to_pylist()]
    return json.dumps(rows, indent=1, allow_nan=False, default=str) + "\n"


def write_result(table: pa.Table, fmt: str, output: str | None, max_rows: int = 1000) -> None:
    """Writes `table` as `fmt` to `output` (a file) or stdout; parquet needs `output`."""
    if fmt == "parquet":
        import pyarrow.parquet as pq
        if not output:
            raise ValueError("--format parquet needs --output FILE")
        pq.write_table(table, output)
        return
    text = {"text": lambda t: format_text(t, max_rows), "csv": format_csv,
            "json": format_json}[fmt](table)
    if output:
        with open(output, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


# --- interactive prompt ---------------------------------------------------------------------

PROMPT_HELP = """Type SQL ending with ';' (read statements only), or:
  .views             views and their row counts
  .queries           named queries
  .query NAME        run a named query (also: .NAME)
  .sql NAME          show a named query's SQL
  .format FMT        text | csv | json
  .help              this text
  .quit              leave (or Ctrl-D)"""


def interactive(ins: Inspector, fmt: str = "text", max_rows: int = 1000) -> int:
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    queries = named_queries()
    print(f"inspecting {ins.root}; .help for commands, .quit to leave")
    buffer: list[str] = []
    while True:
        try:
            line = input("...> " if buffer else "sql> ")
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:
            print()
            buffer = []
            continue
        stripped = line.strip()
        if not buffer and stripped.startswith("."):
            word, _, arg = stripped[1:].partition(" ")
            arg = arg.strip()
            if word in ("quit", "exit", "q"):
                return 0
            if word == "help":
                print(PROMPT_HELP)
            elif word in ("views", "tables", "list"):
                print(ins.listing())
            elif word == "queries":
                for name, (description, _) in queries.items():
                    print(f"  {name:<12} {description}")
            elif word == "sql" and arg in queries:
                print(queries[arg][1].strip())
            elif word == "format" and arg in ("text", "csv", "json"):
                fmt = arg
            elif word == "query" or word in queries:
                _run_and_print(ins, lambda: ins.named(arg if word == "query" else word), fmt,
                               max_rows)
            else:
                print(f"unknown command {stripped!r}; .help for commands")
            continue
        if not stripped and not buffer:
            continue
        buffer.append(line)
        if stripped.endswith(";"):
            sql = "\n".join(buffer)
            buffer = []
            _run_and_print(ins, lambda: ins.query(sql), fmt, max_rows)


def _run_and_print(ins, run, fmt, max_rows) -> None:
    try:
        write_result(run(), fmt, None, max_rows)
    except (RefusedError, QueryError) as exc:
        print(f"error: {exc}")


# --- command line ---------------------------------------------------------------------------

def make_parser() -> argparse.ArgumentParser:
    queries = named_queries()
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.inspect",
        description="Query a curriculum run with DuckDB (read only) and draw a report. With "
                    "neither --query nor --sql: an interactive prompt on a terminal, otherwise "
                    "the list of views and named queries.")
    parser.add_argument("run", metavar="RUN", help="run folder (holds manifest.json)")
    parser.add_argument("--training", metavar="DIR",
                        help="training folder holding metrics.jsonl (default: RUN/training/ "
                             "when present)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--query", metavar="NAME", choices=list(queries),
                      help="a named query: " + ", ".join(queries))
    what.add_argument("--sql", metavar="SQL", help="one read-only SQL statement")
    what.add_argument("--list", action="store_true", help="list views and named queries")
    parser.add_argument("--format", default="text", choices=FORMATS,
                        help="result format (default: text, an aligned table)")
    parser.add_argument("--output", metavar="FILE",
                        help="write the result here (required for parquet; default stdout)")
    parser.add_argument("--max-rows", type=int, default=1000,
                        help="rows shown by --format text (0: all; default 1000)")
    parser.add_argument("--report", metavar="HTML", help="write a self-contained HTML report")
    parser.add_argument("--verify", action="store_true",
                        help="check every listed file's sha256 against the manifest first")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.format == "parquet" and not args.output and (args.query or args.sql):
        print("error: --format parquet needs --output FILE", file=sys.stderr)
        return 2
    try:
        ins = open_run(args.run, args.training, args.verify)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with ins:
        for warning in ins.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if args.report:
            from pipelines.report import write_report
            started = time.time()
            try:
                write_report(ins, args.report)
            except OSError as exc:
                print(f"error: {args.report}: {exc.strerror or exc}", file=sys.stderr)
                return 2
            print(f"wrote {args.report} in {time.time() - started:.1f}s", file=sys.stderr)
        if args.query or args.sql:
            try:
                table = ins.named(args.query) if args.query else ins.query(args.sql)
                write_result(table, args.format, args.output, args.max_rows)
            except RefusedError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            except QueryError as exc:
                print(f"error: {_first_line(exc)}", file=sys.stderr)
                return 1
            except OSError as exc:
                print(f"error: {args.output}: {exc.strerror or exc}", file=sys.stderr)
                return 2
            return 0
        if args.report and not args.list:
            return 0
        if not args.list and sys.stdin.isatty():
            return interactive(ins, args.format if args.format in ("text", "csv", "json")
                               else "text", args.max_rows)
        print(ins.listing())
    return 0


if __name__ == "__main__":
    sys.exit(main())
