"""`python -m trainers.llm_experiment --out DIR [--quick] [--seeds 0,1,2]`:
the LLM arm of the claim (trainers/llm/experiment.py), on CPU.

Writes DIR/results.jsonl, DIR/llm_claims.md and DIR/timings.jsonl (built in DIR.partial, renamed
at the end). `--quick` is the test-sized run; `--seeds 1 --arms sft@converged+grpo --rl
0.0003,0,pass[,x4]` reruns one cell of a run with the RL setting its sweep chose (the drift test);
`--arms equal-compute` runs only the equal-compute control (filtered vs unfiltered curriculum
from the converged SFT checkpoint at the same RL rollouts).
Needs the `[llm]` extra (trl, transformers, tokenizers, datasets).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import replace

from data_contracts.cli import OneLineParser


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m trainers.llm_experiment",
                           description="SFT vs GRPO vs SFT then GRPO for a small local LLM "
                                       "reranker, measured by the product (requests -> "
                                       "samples -> build) on fixed held-out queries.")
    parser.add_argument("--out", required=True, metavar="DIR", help="the report folder")
    parser.add_argument("--quick", action="store_true",
                        help="test-sized: 1 seed, small sets, no sweep, converged depth only")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds (default: 0,1,2; --quick: 0)")
    parser.add_argument("--arms", default=None,
                        help="comma-separated arms to run (a cell rerun; default: every arm)")
    parser.add_argument("--rl", default=None, metavar="LR,BETA,REWARD[,xF]",
                        help="skip the sweep and run GRPO with this setting, e.g. "
                             "0.0003,0,pass or 0.0003,0,pass,x4 (4x the GRPO steps; "
                             "default: the sweep chooses)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    missing = [m for m in ("trl", "transformers", "tokenizers", "datasets")
               if importlib.util.find_spec(m) is None]
    if missing:
        print(f"error: the [llm] extra is needed ({', '.join(missing)} not installed); "
              "pip install -e .[llm]", file=sys.stderr)
        return 2
    from trainers.llm.experiment import EQUAL, RL, Settings, arm_names, run_experiment

    settings = Settings.quick() if args.quick else Settings()
    if args.seeds:
        try:
            seeds = tuple(int(x) for x in args.seeds.split(","))
        except ValueError:
            print(f"error: --seeds {args.seeds!r} is not a comma-separated list of integers",
                  file=sys.stderr)
            return 2
        settings = replace(settings, seeds=seeds)
    if args.arms:
        arms = tuple(a.strip() for a in args.arms.split(","))
        known = arm_names(settings.depths) + [EQUAL]
        unknown = [a for a in arms if a not in known]
        if unknown:
            print(f"error: --arms: unknown arm(s) {', '.join(unknown)} (arms: "
                  f"{', '.join(known)})", file=sys.stderr)
            return 2
        settings = replace(settings, arms=arms)
    if args.rl:
        try:
            rl = RL.parse(args.rl)
        except ValueError as exc:
            print(f"error: --rl {exc}", file=sys.stderr)
            return 2
        settings = replace(settings, base=rl, sweep=False)
    rows = run_experiment(settings, args.out)
    print(json.dumps({"out": args.out, "rows": len(rows)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
