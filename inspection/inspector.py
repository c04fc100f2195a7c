"""The inspector: an in-memory DuckDB connection with a view per output of one run, read only.

  python -m pipelines.inspect RUN                          # list views and named queries
  python -m pipelines.inspect RUN --query bands            # a named query (inspection/queries)
  python -m pipelines.inspect RUN --sql "SELECT band, count(*) FROM difficulty GROUP BY band"
  python -m pipelines.inspect RUN --training runs/train-default --report report.html

Views (all exist, empty with the contract's columns when the run wrote nothing for them):
  difficulty, imitation, rl, dropped, quarantine   the run's Parquet outputs (as listed in the
                                                   manifest; schemas in data_contracts/schema.py)
  files, counts, curriculum, diversity             the manifest's files, counts, stages, diversity
  training                                         a trainer's metrics.jsonl (--training DIR)

The run is a boundary (docs/security.md): every file opened is one the manifest lists, resolved by
`data_contracts.manifest.resolve_in_run` (symlinks first; it must lie inside the run) and, by
default, verified against its sha256. DuckDB may then read exactly those files (and the training
metrics file, confined to its folder the same way): `allowed_paths` is that list, no directory is
allowed, the temp directory is off, external access is off and the configuration locked. Only read
statements run; a data-modifying statement anywhere in the parse tree (a CTE included) is refused,
and each statement runs in a transaction that is rolled back. A run on an object store (gs://) is
copied file by file through data_contracts/fs.py into a private local cache, verified there, and
opened from the cache.

This module never imports the report (the report uses it).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import textwrap
from dataclasses import dataclass
from importlib import resources

import duckdb
import pyarrow as pa

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.manifest import (MANIFEST_NAME, is_inside, load_manifest, manifest_path,
                                     real_path, resolve_in_run, verify)
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
SUMMARY_NAME = "summary.json"
TRAINING_FOLDER = "training"  # RUN/training/: where older trainers wrote; read only if inside
DEFAULT_TRAINING = os.path.join("runs", "train-default")  # the trainer's default --out
# Known training-metric columns and their types; any other key in metrics.jsonl is kept as read.
TRAINING_COLUMNS = {
    "phase": "VARCHAR", "step": "BIGINT", "stage": "INTEGER", "loss": "DOUBLE",
    "reward_mean": "DOUBLE", "pass_rate": "DOUBLE", "informative_fraction": "DOUBLE",
    "entropy": "DOUBLE", "ranking_diversity": "DOUBLE", "ndcg_at_10": "DOUBLE",
    "policy": "VARCHAR", "kl": "DOUBLE", "set": "VARCHAR",
}
QUERY_PACKAGE = "inspection"
QUERY_FOLDER = "queries"
# Statement types that only read. EXPLAIN is allowed when what it explains is allowed.
READ_TYPES = {duckdb.StatementType.SELECT}
# Query-node types of a read: anything else in the parse tree (INSERT_QUERY_NODE,
# UPDATE_QUERY_NODE, DELETE_QUERY_NODE, ... in a CTE or a subquery) is refused.
READ_NODES = {"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"}
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
    """{name: (description, sql)} of inspection/queries/*.sql; the leading comment describes."""
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
    """Refuses anything but exactly one read statement, wherever a write hides in it.

    Two checks, both on DuckDB's own parser: the statement type (`extract_statements`) must be
    SELECT (DESCRIBE, SHOW, SUMMARIZE, VALUES and FROM-first parse as SELECT), or EXPLAIN of an
    allowed statement; then the statement's parse tree (`json_serialize_sql`) is walked and every
    query node in it must be a read (SELECT, set operation, CTE): `WITH x AS (UPDATE ...
    RETURNING *) SELECT ...` parses as a SELECT whose CTE holds an UPDATE_QUERY_NODE, refused.

    Raises:
      RefusedError: empty, several statements, a statement of a type that could write or change
        settings (INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, COPY, ATTACH, INSTALL, LOAD, SET,
        EXPORT, PRAGMA, CALL, ...), or a read holding a data-modifying query node.
      QueryError: DuckDB cannot parse it.
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
        _check_tree(con, statement.query)
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


def _check_tree(con, sql: str) -> None:
    """Walks a SELECT's serialized parse tree; refuses any query node that is not a read."""
    try:
        text = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0]
        tree = json.loads(text)
    except (duckdb.Error, ValueError) as exc:
        raise RefusedError(f"refused: the statement could not be checked ({_first_line(exc)})") \
            from None
    if tree.get("error"):
        raise RefusedError(f"refused: the statement could not be checked "
                           f"({tree.get('error_message', 'parse error')})")
    found = sorted(node for node in _node_types(tree) if node not in READ_NODES)
    if found:
        kinds = ", ".join(n.replace("_QUERY_NODE", "").replace("_NODE", "") for n in found)
        raise RefusedError(f"refused: a data-modifying statement ({kinds}) inside the query; "
                           f"the inspector only reads")


def _node_types(tree) -> set[str]:
    """Every `"type": "..._NODE"` value in a json_serialize_sql tree (iterative walk)."""
    found, stack = set(), [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            kind = item.get("type")
            if isinstance(kind, str) and kind.endswith("_NODE"):
                found.add(kind)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- where things may be read and written ---------------------------------------------------

def check_output(path: str, run: str, reads: tuple[str | None, ...] = ()) -> str:
    """Refuses an output (`--output`, `--report`) that would land inside the run, or on a file
    the inspector reads (`reads`: the training metrics, the summary); compares realpaths, so a
    symlink or `..` into the run is caught too.

    Args:
      path: the output file.
      run: RUN as given (a folder or its manifest.json; local or remote).
      reads: other files the inspector reads.

    Returns:
      `path`, unchanged.

    Raises:
      InputError: the output resolves inside the run folder (or onto one of `reads`).
      ValueError: the path holds a NUL byte.
    """
    root = manifest_path(run)[0]
    if is_inside(path, root):
        raise InputError(path, f"inside the run {root}; the inspector never writes into a run: "
                               f"write it elsewhere")
    for read in reads:
        if read and real_path(path) == real_path(read):
            raise InputError(path, "is a training file the inspector reads; write it elsewhere")
    return path


# --- opening a run --------------------------------------------------------------------------

def find_training(run: str, training: str | None) -> tuple[str, str] | None:
    """(training folder, metrics file) to read, each confined like a run's files.

    `training` is the trainer's `--out` (or the metrics.jsonl in it); the metrics file is
    resolved inside that folder with `resolve_in_run`, so a metrics.jsonl that is a symlink out of
    it is refused. Without `training`, RUN/training/metrics.jsonl is read when present (where
    older trainers wrote), resolved inside the run.

    Raises:
      InputError: `training` holds no metrics.jsonl, or a metrics file resolves outside its
        folder.
    """
    if training:
        folder, name = training, METRICS_NAME
        if fs.basename(training).endswith(".jsonl") and not (
                not fs.is_remote(training) and fs.isdir(training)):
            folder, name = fs.dirname(fs.abspath(training)), fs.basename(training)
        if not fs.is_remote(folder) and not fs.isdir(folder):
            raise InputError(training, "training folder not found (give the trainer's --out, "
                                       f"e.g. {DEFAULT_TRAINING})")
        path = resolve_in_run(folder, name)
        if not fs.isfile(path):
            raise InputError(training, f"no {METRICS_NAME} (expected a training folder, the "
                                       f"trainer's --out, or the file itself)")
        return folder, path
    if fs.is_remote(run):
        return None
    folder = os.path.join(run, TRAINING_FOLDER)
    if not os.path.lexists(os.path.join(folder, METRICS_NAME)):
        return None
    path = resolve_in_run(run, f"{TRAINING_FOLDER}/{METRICS_NAME}")  # refuses a link out
    return folder, path


class Inspector:
    """An in-memory DuckDB connection with a view per output of one run.

    Attributes:
      root: the run as given (absolute local path, or a gs:// URL).
      local_root: the folder DuckDB reads (the run itself, or the private cache of a remote run).
      manifest: the loaded manifest.
      verified: {"files", "bytes", "seconds"} of the sha256 check, or None (`verify=False`).
      training_path: the local metrics.jsonl read into `training`, or None.
      training_source: where that file came from (the confined path or URL), or None.
      training_summary: the trainer's summary.json beside the metrics, or None.
      views: {name: View}, in listing order.
      con: the connection (external access off and configuration locked once built).
    """

    def __init__(self, run: str, training: str | None = None, verify: bool = True):
        self._cache: str | None = None
        self.con = None
        try:
            self._open(run, training, verify)
        except BaseException:
            self.close()
            raise

    def _open(self, run: str, training: str | None, verify_files: bool) -> None:
        remote = fs.is_remote(run)
        self.manifest = load_manifest(run, verify_files=verify_files and not remote)
        self.root = self.manifest["_root"]
        self.verified = self.manifest.get("_verified")
        entries = self.manifest.get("files", [])
        if remote:
            self._cache = tempfile.mkdtemp(prefix="inspect-cache-")
            self.local_root = os.path.join(self._cache, "run")
            paths, urls = [], []
            for entry in entries:
                target = resolve_in_run_new(self.local_root, entry["path"])
                urls.append(resolve_in_run(self.root, entry["path"]))
                try:
                    fs.copy(urls[-1], target)
                except Exception as exc:  # the store's client raises its own error types
                    raise InputError(urls[-1], f"listed in the manifest but could not be "
                                               f"copied ({_first_line(exc)})") from None
                paths.append(target)
            if verify_files:
                self.verified = verify(self.manifest, paths, shown=urls)
        else:
            self.local_root = self.root
            paths = [resolve_in_run(self.root, e["path"]) for e in entries]
        self.paths = {e["path"]: p for e, p in zip(entries, paths)}
        self.training_path = self.training_source = self.summary_source = None
        self.training_summary = None
        found = find_training(self.root, training)
        if found:
            self._load_training(*found)
        self.views: dict[str, View] = {}
        self.warnings: list[str] = []
        self.con = duckdb.connect(":memory:", config={"temp_directory": ""})
        self.con.execute("SET python_enable_replacements = false")
        self.con.execute("CREATE SCHEMA _manifest")
        for phase in PHASE_SCHEMAS:
            self._phase_view(phase)
        self._manifest_views()
        self._training_view()
        self._lock()

    def _load_training(self, folder: str, metrics: str) -> None:
        """Notes the metrics file (copied into the cache when remote) and reads summary.json."""
        self.training_source = metrics
        if fs.is_remote(metrics):
            local = os.path.join(self._cache, "training", METRICS_NAME)
            fs.copy(metrics, local)
            self.training_path = local
        else:
            self.training_path = metrics
        try:
            summary = resolve_in_run(folder, SUMMARY_NAME)
        except InputError:
            return  # a summary.json that leaves its folder is not read
        if fs.isfile(summary):
            try:
                data = json.loads(fs.read_bytes(summary).decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return
            if isinstance(data, dict):
                self.training_summary = data
                self.summary_source = summary

    # -- building views --

    def _table(self, name: str, table: pa.Table) -> None:
        """Copies an Arrow table into _manifest.name (before external access is switched off)."""
        self.con.register("_arrow_input", table)
        try:
            self.con.execute(f'CREATE TABLE _manifest."{name}" AS SELECT * FROM _arrow_input')
        finally:
            self.con.unregister("_arrow_input")

    def _phase_view(self, phase: str) -> None:
        files = [self.paths[f["path"]] for f in self.manifest.get("files", [])
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
        if path and fs.size(path) > 0:
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
        """DuckDB may read exactly the run's listed files and the metrics file; nothing else.

        `allowed_paths` is that list (each already resolved inside its folder), no directory is
        allowed (the temp directory, which DuckDB would otherwise allow, is off), extensions may
        not be installed or loaded, external access is off and the configuration is locked.
        """
        allowed = list(self.paths.values()) + ([self.training_path] if self.training_path
                                               else [])
        self.con.execute("SET allowed_directories = []")
        self.con.execute(f"SET allowed_paths = {_sql_list(allowed) if allowed else '[]'}")
        self.con.execute("SET autoinstall_known_extensions = false")
        self.con.execute("SET autoload_known_extensions = false")
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

    # -- querying --

    def query(self, sql: str) -> pa.Table:
        """Runs one read statement in a transaction that is rolled back, and returns its result.

        Raises:
          RefusedError: not exactly one read statement.
          QueryError: DuckDB could not run it.
        """
        check_read_only(self.con, sql)
        self.con.execute("BEGIN TRANSACTION")
        try:
            return self.con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(str(exc).strip()) from None
        finally:
            self.con.execute("ROLLBACK")

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
        if self.training_source:
            lines[0] += f"; training metrics {self.training_source}"
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
        if self.con is not None:
            self.con.close()
            self.con = None
        if self._cache:
            shutil.rmtree(self._cache, ignore_errors=True)
            self._cache = None

    def __enter__(self) -> "Inspector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def resolve_in_run_new(root: str, relative: str) -> str:
    """A path for a file about to be created under the local folder `root` (the cache):
    `relative` checked by `resolve_in_run`'s rules, parent folders created."""
    os.makedirs(root, exist_ok=True)
    path = resolve_in_run(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def open_run(run: str, training: str | None = None, verify: bool = True) -> Inspector:
    """Opens RUN for inspection (see `Inspector`).

    Raises:
      InputError: no run folder or manifest, another schema version, a listed path outside the
        run, a listed file missing or (with `verify`, the default) changed, or `training` holds
        no metrics.jsonl.
    """
    return Inspector(run, training, verify)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join(_sql_str(v) for v in values) + "]"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
