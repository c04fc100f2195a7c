"""Exports a curriculum run for verl or TRL (a thin command line over exports.build).

Usage:
  python -m pipelines.export RUN --to verl --out DIR
  python -m pipelines.export RUN --to trl --out DIR [--template T.json] [--passage-words 300]
"""
from __future__ import annotations

import argparse
import sys

from data_contracts.cli import OneLineParser
from data_contracts.errors import InputError
from exports.build import TARGETS, export_run


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m pipelines.export",
        description="Write a run's imitation and RL stages as verl or TRL datasets, in curriculum "
                    "order, with reward functions that score as the pass rates were measured.")
    parser.add_argument("run", help="the run folder (holds manifest.json)")
    parser.add_argument("--to", required=True, choices=TARGETS, help="the trainer to export for")
    parser.add_argument("--out", required=True, metavar="DIR", help="the export folder")
    parser.add_argument("--template", default=None, metavar="JSON",
                        help='prompt template {"system": ..., "user": ...} with {query}, '
                             "{passages}, {n} (default: the built-in listwise prompt)")
    parser.add_argument("--passage-words", type=int, default=300,
                        help="words kept per passage in the prompt (0: all; default 300)")
    parser.add_argument("--reward-output", default="value", choices=("value", "pass"),
                        help="the reward functions return the reward's value or its pass (1/0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        record = export_run(args.run, args.to, args.out, args.template, args.passage_words,
                            args.reward_output)
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} for {args.to}: " + ", ".join(
        f"{f['path']} ({f['rows']} rows)" for f in record["files"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
