"""The trainer's command line: `python -m trainers.train` (flags from `TrainConfig`, usage errors
as one `error: ...` line with exit status 2, and the human-readable report)."""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields

import torch

from data_contracts.cli import OneLineParser
from data_contracts.errors import InputError
from trainers import train as train_module
from difficulty.sampler import ROLLOUT_REWARDS
from trainers.config import BC_LOSSES, HELP, IMITATE, RL_ORDERS, TrainConfig
from trainers.train import train


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m trainers.train", description=train_module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    choices = {"bc_loss": BC_LOSSES, "rl_order": RL_ORDERS, "imitate": IMITATE,
               "rl_reward": ROLLOUT_REWARDS}
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        text = f"{HELP[f.name]} (default: {f.default if f.default != '' else 'none'})"
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                                help=text)
        else:
            kind = {"int": int, "float": float, "str": str}[str(f.type)]
            parser.add_argument(flag, type=kind, default=f.default, help=text,
                                choices=choices.get(f.name))
    return parser


def format_summary(summary: dict) -> str:
    """The human-readable report: each number with the set it is measured on."""
    sets = summary["sets"]
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [f"wrote {summary['outputs']['folder']} (summary: {summary['outputs']['summary']})"]
    if summary["outputs"].get("rescored_curriculum"):
        lines.append(f"  re-scored curriculum: {summary['outputs']['rescored_curriculum']}")
    n = summary["ndcg@10"]
    ideal = f"ideal={summary.get('ndcg_ideal', 'window')}"
    if "missing" in sets["eval"]:
        lines.append(f"  test NDCG@10 ({ideal}): not measured ({sets['eval']['missing']})")
    else:
        lines.append(f"  test NDCG@10 ({ideal}) on {sets['eval']['description']}, "
                     f"{sets['eval']['queries']} queries: untrained {fmt(n.get('untrained'))}, "
                     f"bc {fmt(n.get('bc'))}, final {fmt(n.get('rl'))}")
    v = summary.get("val_ndcg@10", {})
    lines.append(f"  validation NDCG@10 ({ideal}; {sets['validation']['queries']} held-out "
                 f"curriculum queries): untrained {fmt(v.get('untrained'))}, bc "
                 f"{fmt(v.get('bc'))}, final {fmt(v.get('rl'))}")
    lines.extend(selection_lines(summary.get("rl_selection")))
    for set_name, label in (("eval", "eval queries"), ("train_sample", "training sample"),
                            ("rl_queries", "RL queries (policy-selected)")):
        d = summary["diagnostics"].get(set_name)
        if not d:
            continue
        q = next(iter(d.values()))["queries"]
        lines.append(f"  on the {label}, {q} queries: " + "; ".join(
            f"{k}: informative {x['informative_fraction']:.3f}, pass {x['pass_rate']:.3f}, "
            f"entropy {x['entropy']:.2f}, diversity {x['ranking_diversity']:.2f}"
            for k, x in d.items()))
    lines.append(f"  budget: {summary.get('bc_steps_done', 0)} BC steps, "
                 f"{summary.get('rl_steps_done', 0)} RL steps, {summary['rollouts']} RL rollouts")
    lines.append(f"  update sparsity: {summary['update_sparsity']['fraction_unchanged']:.3f} of "
                 f"parameters unchanged by RL beyond {summary['update_sparsity']['tolerance']:g}")
    return "\n".join(lines)


def selection_lines(sel: dict | None) -> list[str]:
    """The report's line on which RL checkpoint model selection kept (and whether RL's updates
    were discarded), with the validation NDCG@10 it chose on."""
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    if not sel or sel["kept"] == "no_rl":
        return []
    if sel["kept"] == "last":
        return [f"  model selection: no validation queries; the last RL step ({sel['step']}) is "
                "the final policy"]
    if sel["rl_discarded"]:
        return [f"  model selection DISCARDED RL: kept RL's start (step {sel['step']}, the policy "
                f"RL began from) with validation NDCG@10 {fmt(sel['start_val_ndcg@10'])}; RL's "
                f"best was {fmt(sel['best_rl_val_ndcg@10'])} at step {sel['best_rl_step']}"]
    return [f"  model selection kept RL step {sel['step']}: validation NDCG@10 "
            f"{fmt(sel['best_rl_val_ndcg@10'])} against {fmt(sel['start_val_ndcg@10'])} at RL's "
            "start"]


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: 0, torch's own choice)")
    args = vars(parser.parse_args(argv))
    threads = args.pop("threads")
    if not 0 <= threads <= 1024:
        print(f"error: --threads must be within [0, 1024] (got {threads})", file=sys.stderr)
        return 2
    if threads > 0:
        torch.set_num_threads(threads)
    cfg = TrainConfig(**args)
    try:
        summary = train(cfg)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
