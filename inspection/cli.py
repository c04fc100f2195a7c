"""The inspector's command line: `python -m pipelines.inspect` (a shim) runs `main` here.

Every usage error and every unusable input is one `error: ...` line on stderr and exit status 2
(no usage dump, no traceback); `--help` describes every option with its default.
"""
from __future__ import annotations

import argparse
import sys
import time

import duckdb

from data_contracts.errors import InputError
from inspection.inspector import (DEFAULT_TRAINING, Inspector, QueryError, RefusedError,
                                  _first_line, check_output, named_queries, open_run)
from inspection.output import FORMATS, write_result

PROG = "python -m pipelines.inspect"


class UsageError(Exception):
    """A command-line usage error (argparse's message, one line)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are raised (one line, exit 2 in `main`), not printed with
    the whole usage."""

    def error(self, message):  # noqa: D401 (argparse's hook)
        raise UsageError(" ".join(str(message).split()))


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
    except (RefusedError, QueryError, InputError, OSError) as exc:
        print(f"error: {exc}")


# --- command line ---------------------------------------------------------------------------

def make_parser() -> argparse.ArgumentParser:
    queries = named_queries()
    parser = _Parser(
        prog=PROG, allow_abbrev=False,
        description="Query a curriculum run with DuckDB (read only) and draw a report. With "
                    "neither --query nor --sql: an interactive prompt on a terminal, otherwise "
                    "the list of views and named queries. The run is a boundary: only files its "
                    "manifest lists, resolved inside it and (by default) verified, are read; "
                    "nothing is written into it (docs/security.md).")
    parser.add_argument("run", metavar="RUN",
                        help="run folder holding manifest.json (or the manifest itself); a "
                             "gs:// run is copied into a private local cache first")
    parser.add_argument("--training", metavar="DIR",
                        help="the trainer's --out folder holding metrics.jsonl (and "
                             f"summary.json), e.g. {DEFAULT_TRAINING} (the trainer's default); "
                             "default: none (RUN/training/ is read only if an older trainer "
                             "left metrics there)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--query", metavar="NAME", choices=list(queries),
                      help="a named query: " + ", ".join(queries) + " (default: none)")
    what.add_argument("--sql", metavar="SQL",
                      help="one read-only SQL statement (default: none)")
    what.add_argument("--list", action="store_true",
                      help="list views and named queries (default: off; the list is also what a "
                           "non-terminal gets without --query/--sql)")
    parser.add_argument("--format", default="text", choices=FORMATS,
                        help="result format: text (an aligned table), csv and json (written by "
                             "DuckDB), parquet (by pyarrow; needs --output) (default: text)")
    parser.add_argument("--output", metavar="FILE",
                        help="write the result to FILE, never inside the run (default: stdout)")
    parser.add_argument("--max-rows", type=int, default=1000, metavar="N",
                        help="rows shown by --format text; 0 shows all (default: 1000)")
    parser.add_argument("--report", metavar="HTML",
                        help="write a self-contained HTML report to HTML, never inside the run "
                             "(default: none)")
    check = parser.add_mutually_exclusive_group()
    check.add_argument("--verify", dest="verify", action="store_true", default=True,
                       help="check every listed file's sha256 against the manifest and say so "
                            "(default: on, checked silently)")
    check.add_argument("--no-verify", dest="verify", action="store_false",
                       help="skip the sha256 check (about 1.3 s per GB here, "
                            "benchmarks/bench_verify.py; a missing file is "
                            "still an error) (default: off)")
    return parser


def _fail(message: str) -> int:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Runs the inspector command line; returns the exit status (0 ok, 2 any error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = make_parser().parse_args(argv)
    except UsageError as exc:
        return _fail(f"{exc} (see {PROG} --help)")
    if args.max_rows < 0:
        return _fail("--max-rows must be 0 (all) or more")
    if args.format == "parquet" and not args.output and (args.query or args.sql):
        return _fail("--format parquet needs --output FILE")
    if args.output and not (args.query or args.sql):
        return _fail("--output needs --query NAME or --sql SQL")
    said_verify = "--verify" in argv
    try:  # before opening (and hashing) the run
        for target in (args.output, args.report):
            if target:
                check_output(target, args.run)
    except (InputError, ValueError) as exc:  # ValueError: a NUL in the path
        return _fail(exc)
    try:
        ins = open_run(args.run, args.training, args.verify)
    except (InputError, OSError, ValueError, duckdb.Error) as exc:
        return _fail(exc if not isinstance(exc, duckdb.Error) else _first_line(exc))
    with ins:
        return _run(ins, args, said_verify)


def _run(ins: Inspector, args, said_verify: bool) -> int:
    for warning in ins.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if said_verify and ins.verified:
        v = ins.verified
        print(f"verified: {v['files']} files, {v['bytes'] / 2**20:.1f} MiB, every sha256 matches "
              f"the manifest ({v['seconds']:.2f}s)", file=sys.stderr)
    try:
        for target in (args.output, args.report):
            if target:
                check_output(target, ins.root, (ins.training_source, ins.summary_source))
    except (InputError, ValueError) as exc:
        return _fail(exc)
    if args.query == "training" and not ins.has_training():
        where = (f"{ins.training_source} has no metric lines" if ins.training_source else
                 f"no training metrics: pass --training DIR (the trainer's --out, e.g. "
                 f"{DEFAULT_TRAINING})")
        return _fail(where)
    if args.report:
        from inspection.report import write_report
        started = time.time()
        try:
            write_report(ins, args.report)
        except (OSError, InputError) as exc:
            return _fail(f"{args.report}: {getattr(exc, 'strerror', None) or exc}")
        print(f"wrote {args.report} in {time.time() - started:.1f}s", file=sys.stderr)
    if args.query or args.sql:
        try:
            table = ins.named(args.query) if args.query else ins.query(args.sql)
            write_result(table, args.format, args.output, args.max_rows)
        except (RefusedError, QueryError, ValueError) as exc:
            return _fail(_first_line(exc))
        except (OSError, duckdb.Error) as exc:
            return _fail(f"{args.output or 'stdout'}: {getattr(exc, 'strerror', None) or exc}")
        return 0
    if args.report or (said_verify and not args.list):
        return 0
    if not args.list and sys.stdin.isatty():
        return interactive(ins, args.format if args.format in ("text", "csv", "json")
                           else "text", args.max_rows)
    print(ins.listing())
    return 0
