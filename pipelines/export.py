"""Exports a curriculum run for verl or TRL, or writes sampling requests (a thin command line over
exports.build and exports.requests).

Usage:
  python -m pipelines.export RUN --to verl|trl --out DIR [--preset reasonrank|rank-r1]
      [--template T.json] [--passage-words 300 | --tokenizer DIR --passage-tokens N]
      [--reward-output pass|value] [--sft all|out_of_rl] [--weights column|repeat]
  python -m pipelines.export RUN --to requests --out DIR --model NAME [--k 8]
      [--temperature 1.0] [--max-tokens 2048] [--seed 0] [--round 0] [--template T.json]
"""
from __future__ import annotations

import argparse
import sys

from data_contracts.cli import OneLineParser
from data_contracts.errors import InputError
from exports.build import REWARD_OUTPUTS, SFT_MODES, TARGETS, WEIGHT_MODES, export_run
from exports.presets import PRESETS
from exports.requests import PRIORS, PlanOptions, RequestOptions, export_requests
from exports.tokens import load_tokenizer

REQUEST_DEFAULTS = RequestOptions(model="")
PLAN_DEFAULTS = PlanOptions()


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m pipelines.export",
        description="Write a run's SFT and RL stages as verl or TRL datasets, in curriculum "
                    "order, with reward functions that score as the pass rates were measured; "
                    "or write OpenAI batch requests for a policy's rollouts (--to requests). "
                    "The export folder is built aside and swapped in whole.")
    parser.add_argument("run", help="the run folder (holds manifest.json)")
    parser.add_argument("--to", required=True, choices=TARGETS + ("requests",),
                        help="verl, trl, or requests (OpenAI batch input lines)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="the export folder (new, empty or an earlier export; replaced whole)")
    parser.add_argument("--template", default=None, metavar="JSON",
                        help='prompt template {"system": ..., "user": ...} with {query}, '
                             "{passages}, {n} (default: the built-in prompt of the run's rollout "
                             "format, or the preset's)")
    parser.add_argument("--passage-words", type=int, default=300,
                        help="words kept per passage in the prompt, 0 keeps all (default: 300)")
    parser.add_argument("--tokenizer", default=None, metavar="DIR",
                        help="a local Hugging Face tokenizer folder: lengths in export.json in "
                             "its tokens (default: none, lengths in words)")
    parser.add_argument("--passage-tokens", type=int, default=0,
                        help="cut passages to this many tokens of --tokenizer (ReasonRank's way; "
                             "default: 0, cut by --passage-words)")
    parser.add_argument("--preset", default=None, choices=PRESETS,
                        help="a recipe's rows, prompt and reward: reasonrank (verl GRPO) or "
                             "rank-r1 (TRL GRPO); give the same preset to --to requests so the "
                             "policy is sampled on the prompt it is trained on (default: none)")
    g = parser.add_argument_group("verl / trl exports")
    g.add_argument("--reward-output", default="pass", choices=REWARD_OUTPUTS,
                   help="what the reward function returns: pass (1.0 when the generation passes "
                        "the run's reward threshold, as the pass rates were measured) or value "
                        "(the graded NDCG or composite) (default: pass)")
    g.add_argument("--sft", default="all", choices=SFT_MODES,
                   help="SFT rows: all (every training query with a demonstration, as the "
                        "trainer's --imitate all) or out_of_rl (the imitation phase only) "
                        "(default: all)")
    g.add_argument("--weights", default="column", choices=WEIGHT_MODES,
                   help="demonstration weights: column (a `weight` column, which TRL and verl "
                        "ignore) or repeat (rows repeated in proportion) (default: column)")
    g.add_argument("--val-fraction", type=float, default=None,
                   help="validation fraction (crc32 of query id), left out of SFT and RL and "
                        "written to val.parquet (default: the trainer's, 0.2)")
    r = parser.add_argument_group("--to requests")
    r.add_argument("--model", default=None,
                   help="the model name the sampler serves (the body's model; required)")
    r.add_argument("--k", type=int, default=REQUEST_DEFAULTS.k,
                   help=f"samples per query (default: {REQUEST_DEFAULTS.k})")
    r.add_argument("--temperature", type=float, default=REQUEST_DEFAULTS.temperature,
                   help=f"sampling temperature (default: {REQUEST_DEFAULTS.temperature:g})")
    r.add_argument("--max-tokens", type=int, default=REQUEST_DEFAULTS.max_tokens,
                   help=f"max tokens per sample (default: {REQUEST_DEFAULTS.max_tokens})")
    r.add_argument("--seed", type=int, default=REQUEST_DEFAULTS.seed,
                   help="base seed; each line's seed is crc32(seed, round, sample, query id) "
                        f"(default: {REQUEST_DEFAULTS.seed})")
    r.add_argument("--round", type=int, default=None,
                   help="the sampling round, in each custom_id (default: the next round the "
                        "run needs: 0 and every query for a run without rollouts or built with "
                        "--policy none; after a build from results, the round after its last, "
                        "asking only undecided queries as many samples as the planner says)")
    r.add_argument("--prior", default=PLAN_DEFAULTS.prior, choices=PRIORS,
                   help="learned: a calibrated pass-rate model fitted on the queries measured "
                        "so far gives each query an empirical-Bayes mixture prior (near 0, near "
                        "1, between, the learned Beta, uniform; fitted once, kept in "
                        "requests.json); samples still decide every band; none: "
                        f"Beta(1, 1) (default: {PLAN_DEFAULTS.prior})")
    r.add_argument("--skip-predicted", action="store_true",
                   help="do not ask a query with no samples whose prior alone decides its band; "
                        "requests.json lists it under `predicted` (default: off, the prior never "
                        "decides a band alone)")
    r.add_argument("--reference-share", type=float, default=PLAN_DEFAULTS.reference_share,
                   help="round 0 asks only this crc32 share of the queries, so round 1 asks "
                        "the rest with the prior fitted on them (default: "
                        f"{PLAN_DEFAULTS.reference_share:g}, every query)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.to == "requests" and args.model is None:
        parser.error("--to requests needs --model NAME (the model the sampler serves)")
    if args.passage_tokens < 0 or args.passage_words < 0:
        parser.error("--passage-words and --passage-tokens are counts >= 0")
    try:
        counter = load_tokenizer(args.tokenizer)
        if args.to == "requests":
            from exports.prompts import TokenCut, WordCut

            cut = TokenCut(counter, args.passage_tokens, counter.name) if args.passage_tokens \
                else WordCut(args.passage_words)
            if args.passage_tokens and counter.tokenizer is None:
                raise InputError("--passage-tokens", "needs --tokenizer (a local tokenizer "
                                                     "folder)")
            options = RequestOptions(model=args.model, k=args.k, temperature=args.temperature,
                                     max_tokens=args.max_tokens, seed=args.seed,
                                     round=args.round)
            plan = PlanOptions(prior=args.prior, skip_predicted=args.skip_predicted,
                               reference_share=args.reference_share)
            plan.check()
            record = export_requests(args.run, args.out, options, args.template, cut,
                                     preset=args.preset, plan_options=plan)
            if not record["requests"]:
                stale = f"; {record['stale']}" if record.get("stale") else ""
                print(f"nothing to ask: every query's band is decided or at k_max "
                      f"({record['note']}); nothing written{stale}")
                return 0
            print(f"wrote {args.out}: requests.jsonl ({record['requests']} requests, "
                  f"{record['query_count']} queries, round {record['round']}) and "
                  "requests.json" + (f"; {record['plan']}" if record.get("plan") else ""))
            return 0
        record = export_run(args.run, args.to, args.out, args.template, args.passage_words,
                            args.reward_output, sft=args.sft, weights=args.weights,
                            preset=args.preset, val_fraction=args.val_fraction,
                            counter=counter, passage_tokens=args.passage_tokens)
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lengths = record["lengths"]
    settings = lengths["settings"]["verl"]
    print(f"wrote {args.out} for {args.to}: " + ", ".join(
        f"{f['path']} ({f['rows']} rows)" for f in record["files"] + [record["validation"]]))
    if lengths["prompt"]:
        print(f"prompts {lengths['prompt']['min']}-{lengths['prompt']['max']} {lengths['unit']}"
              f"; set max_prompt_length >= {settings['data.max_prompt_length']} (export.json "
              "has every setting and command)")
    for warning in record["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
