"""What every benchmark script writes with `--out DIR`: `DIR/results.md` and `DIR/results.json`.

`results.md` is the Markdown the README quotes verbatim in a generated block
(`trainers.readme_sync`): a short table of medians and spread, then one line naming the date,
the usable core count and the load average at the start of the run, because wall-clock numbers
on a shared machine mean nothing without them. `results.json` holds the raw numbers (every timed
repeat), the script's arguments and the same machine facts; a `--smoke` run (sizes cut so it
ends in seconds, for tests) says `"smoke": true` there, and `trainers.readme_sync` refuses to
quote such a record as a measurement.

A smoke run writes the same shape as a full one (same rows, same columns; only numbers differ),
which is what the README check compares for a script's block (tests/benchmarks/).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds `--out DIR` and `--smoke` to a benchmark's parser."""
    parser.add_argument("--out", default=None,
                        help="also write DIR/results.md (what the README quotes) and "
                             "DIR/results.json (raw numbers); default: print only")
    parser.add_argument("--smoke", action="store_true",
                        help="cut every size so the run ends in seconds (a check that the script "
                             "and its --out shape still work, not a measurement)")


def machine() -> dict:
    """Usable cores, the UTC time (minutes) and the 1/5/15-minute load averages, now."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else []
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return {"cores": cores, "date": when, "load_average": [round(x, 2) for x in load]}


def machine_line(facts: dict) -> str:
    """The results.md footer: `Measured DATE on N cores, load average A (1 min) at the start.`"""
    load = facts["load_average"]
    told = f"load average {load[0]:.2f} (1 min)" if load else "load average unknown"
    return f"Measured {facts['date']} on {facts['cores']} cores, {told} at the start."


def spread(values: list[float], fmt: str) -> str:
    """The median, and `(min-max)` when there are several values."""
    ordered = sorted(values)
    n = len(ordered)
    med = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    if n == 1:
        return f"{med:{fmt}}"
    return f"{med:{fmt}} ({ordered[0]:{fmt}}-{ordered[-1]:{fmt}})"


def load_now() -> float | None:
    """The 1-minute load average now (None where the OS has none): what a run records at its end."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table: header, rule, rows (cells already formatted)."""
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(row) + " |" for row in rows])


def write(out: str | None, script: str, args: argparse.Namespace, facts: dict,
          markdown: list[str], raw: dict) -> None:
    """Writes `out`/results.md (`markdown` lines + the machine line) and `out`/results.json.

    Args:
      out: the --out folder (created; None: nothing is written).
      script: the script's file name, recorded in results.json.
      args: the parsed arguments (recorded; `out` itself is left out, so the record does not
        depend on where it was written).
      facts: `machine()` taken when the measurement started.
      markdown: the lines of results.md before the machine line.
      raw: the raw numbers (JSON-serialisable).

    Raises:
      SystemExit: exit 2 with one `error:` line when `out` exists and is not a folder.
    """
    if out is None:
        return
    if os.path.exists(out) and not os.path.isdir(out):
        print(f"error: --out {out} exists and is not a folder", file=sys.stderr)
        raise SystemExit(2)
    os.makedirs(out, exist_ok=True)
    record = {"script": script, "smoke": bool(getattr(args, "smoke", False)),
              "args": {k: v for k, v in sorted(vars(args).items()) if k != "out"},
              "machine": facts, "results": raw}
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(markdown + ["", machine_line(facts)]) + "\n")
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
        handle.write("\n")
