"""The product's question, answered with evidence: does BC make the outcome reward legible, and do
filtering and curriculum order then help RL? Every claim is measured on FIXED query sets.

For each reward `ndcg@10>=TAU` and seed, it builds two curricula (`pipelines.build_curriculum.run`,
FnApiRunner): the default one and the no-filter control (`filter_hard=False`: too_hard queries go
to RL). Then it trains these arms (`trainers.train.train`, default budgets unless --quick):

| arm | BC | RL |
|---|---|---|
| untrained | - | - (the starting policy, measured in every run) |
| bc | `--imitate all` on the default curriculum | - |
| bc_rl | = bc (same checkpoint, `--init`) | default curriculum, stage order |
| bc_rl_shuffled | = bc | the same RL rows in query-hash order (`--rl-order shuffled`) |
| bc_rl_nofilter | = bc (so BC's data is identical) | no-filter curriculum |
| rl | - | default curriculum |
| rl_nofilter | - | no-filter curriculum |
| bc_oor | `--imitate out_of_rl` (only too_hard/too_easy) | - |
| bc_oor_rl | = bc_oor | default curriculum |

References, on the same test split: LightGBM LambdaMART when `lightgbm` is importable (extra
`reference`), the best single feature chosen on the training split, and random scores.

Fixed sets: `eval` (--eval-input queries with a relevant document) and `train_sample` (a hash
sample of the training input's queries); see `trainers.train`. Outputs in --out: `claims.md`,
`results.jsonl` (one JSON object per arm, tau and seed; deterministic), `timings.jsonl` (seconds,
which vary with load), `ndcg_vs_rollouts.png`, `legibility.png`. Built in OUT.partial and renamed
at the end; a failed run leaves nothing.

Usage: python -m trainers.experiment --input TRAIN --eval-input TEST [--taus 0.5,0.7,0.9]
         [--seeds 0,1,2] [--quick] --out DIR
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import numpy as np

from data_contracts import fs
from data_contracts.arrays import pad_queries
from data_contracts.cli import OneLineParser
from data_contracts.errors import InputError
from data_contracts.manifest import check_out_outside_runs, check_replaceable_folder
from difficulty.rewards import ndcg_of_scores
from trainers.claims import ARMS, claims_markdown, figures
from trainers.data import eval_space, input_kind, read_validated, with_relevant
from trainers.staging import TRAINER_FILES, claim_work_folder, swapped_in
from trainers.train import TrainConfig, train

DEFAULT_OUT = "runs/experiment"
QUICK = {"bc_steps": 12, "rl_steps": 12, "eval_every": 4, "diagnostic_rollouts": 4,
         "train_sample": 40, "group_size": 8}


@dataclasses.dataclass
class ExperimentConfig:
    """The experiment's knobs (see `make_parser` for the flags)."""

    input: str
    eval_input: str
    out: str = DEFAULT_OUT
    input_format: str = "auto"
    eval_format: str = "auto"
    taus: tuple = (0.5, 0.7, 0.9)
    seeds: tuple = (0, 1, 2)
    quick: bool = False
    keep_runs: bool = False
    trees: int = 200


# ---------------------------------------------------------------------------------------------
# References.

def read_pair(cfg: ExperimentConfig) -> tuple:
    """(training, test) queries with a relevant document, both in the training input's feature
    space; the test input is checked against it first (kind, width, id base: one line naming
    both when they differ)."""
    from data_contracts.readers import dataset_space, detect_format

    train_fmt = detect_format(cfg.input) if cfg.input_format == "auto" else cfg.input_format
    space = None if input_kind(train_fmt) == "text" else \
        dataset_space([cfg.input], cfg.input_format).to_dict()
    test_space = eval_space(cfg.eval_input, cfg.eval_format, train_fmt, space,
                            f"--input {cfg.input}")
    train_t = with_relevant(read_validated(cfg.input, cfg.input_format))
    test_t = with_relevant(read_validated(cfg.eval_input, cfg.eval_format, None, test_space))
    for table, path in ((train_t, cfg.input), (test_t, cfg.eval_input)):
        if table is None:
            raise InputError(path, "no query with a relevant document (label > 0)")
    return train_t, test_t


def references(cfg: ExperimentConfig) -> list[dict]:
    """LambdaMART (per seed), the best single feature chosen on train, random scores (per seed).

    All evaluated on --eval-input's queries with a relevant document, NDCG@10 (linear gain).
    """
    train_t, test_t = read_pair(cfg)
    tr, te = pad_queries(train_t), pad_queries(test_t)
    rows = []
    best, best_train = None, -1.0
    for f in range(tr.features.shape[-1]):
        for sign in (1.0, -1.0):
            value = float(ndcg_of_scores(sign * tr.features[..., f], tr.labels, tr.mask).mean())
            if value > best_train + 1e-12:
                best, best_train = (f, sign), value
    f, sign = best
    rows.append({"arm": "best_feature", "feature": f, "sign": sign, "train_ndcg@10": best_train,
                 "ndcg@10": float(ndcg_of_scores(sign * te.features[..., f], te.labels,
                                                 te.mask).mean())})
    for seed in cfg.seeds:
        rng = np.random.default_rng([int(seed), 7])
        values = [ndcg_of_scores(rng.random(te.mask.shape), te.labels, te.mask).mean()
                  for _ in range(20)]
        rows.append({"arm": "random", "seed": seed, "ndcg@10": float(np.mean(values))})
    try:
        import lightgbm
    except ImportError:
        rows.append({"arm": "lambdamart", "missing": "lightgbm is not installed (extra "
                                                     "`reference`)"})
        return rows
    x_tr, y_tr = tr.features[tr.mask], tr.labels[tr.mask]
    trees = 20 if cfg.quick else cfg.trees
    for seed in cfg.seeds:
        model = lightgbm.LGBMRanker(n_estimators=trees, learning_rate=0.05, num_leaves=15,
                                    random_state=int(seed), deterministic=True, n_jobs=1,
                                    verbose=-1)
        model.fit(x_tr, y_tr.astype(int), group=tr.mask.sum(-1).tolist())
        scores = np.zeros(te.mask.shape)
        scores[te.mask] = model.predict(te.features[te.mask])
        rows.append({"arm": "lambdamart", "seed": seed, "trees": trees, "learning_rate": 0.05,
                     "leaves": 15,
                     "ndcg@10": float(ndcg_of_scores(scores, te.labels, te.mask).mean())})
    return rows


# ---------------------------------------------------------------------------------------------
# Running the arms.

def build(cfg: ExperimentConfig, tau: float, seed: int, filter_hard: bool, out: str) -> str:
    """Builds one curriculum (FnApiRunner) and returns its manifest path."""
    from curricula.routing import RoutingConfig
    from pipelines.build_curriculum import run
    from pipelines.config import CurriculumConfig

    config = CurriculumConfig(inputs=[cfg.input], input_format=cfg.input_format, out=out,
                              reward=f"ndcg@10>={tau:g}", seed=seed,
                              routing=RoutingConfig(filter_hard=filter_hard))
    run(config)
    return os.path.join(out, "manifest.json")


def arm_configs(manifests: dict, trained: str, seed: int, eval_input: str, quick: bool,
                eval_format: str = "auto") -> dict:
    """{arm: TrainConfig} (the RL-after-BC arms start from the BC arm's bc.pt via --init)."""
    base = dict(QUICK if quick else {}, seed=seed, eval_input=eval_input,
                eval_format=eval_format, progress_seconds=60.0)
    default, nofilter = manifests["default"], manifests["nofilter"]
    bc = os.path.join(trained, "bc", "bc.pt")
    oor = os.path.join(trained, "bc_oor", "bc.pt")
    spec = {
        "bc": dict(manifest=default, rl_steps=0),
        "bc_oor": dict(manifest=default, rl_steps=0, imitate="out_of_rl"),
        "bc_rl": dict(manifest=default, init=bc),
        "bc_rl_shuffled": dict(manifest=default, init=bc, rl_order="shuffled"),
        "bc_rl_nofilter": dict(manifest=nofilter, init=bc),
        "rl": dict(manifest=default, bc_steps=0),
        "rl_nofilter": dict(manifest=nofilter, bc_steps=0),
        "bc_oor_rl": dict(manifest=default, init=oor),
    }
    return {arm: TrainConfig(**dict(base, out=os.path.join(trained, arm), **kw))
            for arm, kw in spec.items()}


def result_row(arm: str, tau: float, seed: int, summary: dict, smoke: bool = False) -> dict:
    """The deterministic part of a run's summary (no seconds); `smoke`: a --quick run's (tiny
    budgets, not evidence)."""
    curve = [{k: p[k] for k in ("phase", "phase_step", "rollouts", "ndcg_at_10",
                                "val_ndcg_at_10")} for p in summary["learning_curve"]]
    return {"arm": arm, "tau": tau, "seed": seed, "smoke": smoke,
            "ideal": summary.get("ndcg_ideal", "window"),
            "ndcg@10": summary["ndcg@10"].get("rl"),
            "ndcg@10_start": summary["ndcg@10"].get("untrained"),
            "ndcg@10_after_bc": summary["ndcg@10"].get("bc"),
            "val_ndcg@10": summary.get("val_ndcg@10", {}).get("rl"),
            "rollouts": summary["rollouts"], "bc_steps": summary.get("bc_steps_done", 0),
            "rl_steps": summary.get("rl_steps_done", 0),
            "selected_step": summary.get("selected_step"),
            "diagnostics": summary["diagnostics"], "sets": summary["sets"],
            "tie_order_spearman": summary.get("tie_order_spearman"),
            "fraction_changed": summary["update_sparsity"]["fraction_changed"],
            "rl_plan": summary.get("rl_plan"), "learning_curve": curve}


EXPERIMENT_FILES = ("claims.md", "results.jsonl", "timings.jsonl", "ndcg_vs_rollouts.png",
                    "legibility.png", "runs", "train")  # what an experiment writes at its top


def _check_replaceable(out: str, what: str = "--out") -> None:
    """Refuses an OUT (or its OUT.partial) that is a link or holds anything an experiment does
    not write: its `runs/` hold build runs and `train/` trainer folders, nothing else (see
    `check_replaceable_folder`)."""
    check_replaceable_folder(out, EXPERIMENT_FILES, ("runs", "train"), "an experiment", what,
                             also_own=TRAINER_FILES)


def run_experiment(cfg: ExperimentConfig) -> str:
    """Runs everything into OUT.partial, writes claims, figures and results, renames to OUT."""
    fs.check_replaceable_location(cfg.out)
    out = os.path.abspath(fs.normalize(cfg.out))
    check_out_outside_runs(out, "--out", own=("runs", "train"))
    _check_replaceable(out)
    work = out + ".partial"
    _check_replaceable(work, "the work folder OUT.partial")
    for path, name in ((cfg.input, "--input"), (cfg.eval_input, "--eval-input")):
        if not fs.exists(path):
            raise InputError(path, f"{name} not found")
    lock = claim_work_folder(work, False, out)  # a second experiment to OUT is refused
    with swapped_in(work, out, lock, False, _check_replaceable, (BaseException,)):
        _run(cfg, work)
    return out


def _run(cfg: ExperimentConfig, work: str) -> None:
    started = time.monotonic()
    results, timings = [], []
    refs = references(cfg)
    total = len(cfg.taus) * len(cfg.seeds) * len(ARMS)
    done = 0
    for tau in cfg.taus:
        for seed in cfg.seeds:
            tag = f"tau{tau:g}-seed{seed}"
            manifests = {}
            for name, flt in (("default", True), ("nofilter", False)):
                t0 = time.monotonic()
                manifests[name] = build(cfg, tau, seed, flt,
                                        os.path.join(work, "runs", tag, name))
                timings.append({"what": f"build {name}", "tau": tau, "seed": seed,
                                "seconds": round(time.monotonic() - t0, 2)})
            trained = os.path.join(work, "train", tag)
            for arm, tcfg in arm_configs(manifests, trained, seed, cfg.eval_input,
                                         cfg.quick, cfg.eval_format).items():
                t0 = time.monotonic()
                summary = train(tcfg)
                seconds = time.monotonic() - t0
                results.append(result_row(arm, tau, seed, summary, cfg.quick))
                timings.append({"what": arm, "tau": tau, "seed": seed,
                                "seconds": round(seconds, 2),
                                "curve_seconds": [p["seconds"] for p in
                                                  summary["learning_curve"]]})
                done += 1
                print(f"[{done}/{total}] tau {tau:g} seed {seed} {arm}: test NDCG@10 "
                      f"(ideal={summary.get('ndcg_ideal', 'window')}) "
                      f"{summary['ndcg@10'].get('rl'):.4f} ({seconds:.1f} s, "
                      f"{time.monotonic() - started:.0f} s in all)", file=sys.stderr, flush=True)
            if not cfg.keep_runs:
                fs.delete_tree(os.path.join(work, "runs", tag))
    if not cfg.keep_runs and os.path.exists(os.path.join(work, "runs")):
        fs.delete_tree(os.path.join(work, "runs"))
    with open(os.path.join(work, "results.jsonl"), "w", encoding="utf-8") as handle:
        for row in [dict(r, smoke=cfg.quick, ideal="window") for r in refs] + results:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
    with open(os.path.join(work, "timings.jsonl"), "w", encoding="utf-8") as handle:
        for row in timings:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
    figures(results, refs, cfg, work)
    with open(os.path.join(work, "claims.md"), "w", encoding="utf-8") as handle:
        handle.write(claims_markdown(results, refs, timings, cfg))


# ---------------------------------------------------------------------------------------------

def _floats(text: str) -> tuple:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")


def _ints(text: str) -> tuple:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m trainers.experiment", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True,
                        help="training queries (any supported format) (required)")
    parser.add_argument("--eval-input", required=True,
                        help="held-out labelled test queries, same feature space (required)")
    parser.add_argument("--input-format", default="auto", help="format of --input (default: auto)")
    parser.add_argument("--eval-format", default="auto",
                        help="format of --eval-input (default: auto)")
    parser.add_argument("--taus", type=_floats, default=(0.5, 0.7, 0.9),
                        help="reward thresholds: one curriculum per ndcg@10>=TAU "
                             "(default: 0.5,0.7,0.9)")
    parser.add_argument("--seeds", type=_ints, default=(0, 1, 2),
                        help="seeds of build and training (default: 0,1,2)")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny budgets for tests ({QUICK}) (default: off)")
    parser.add_argument("--keep-runs", action="store_true",
                        help="keep the curriculum run folders in OUT/runs (default: off)")
    parser.add_argument("--trees", type=int, default=200,
                        help="LambdaMART trees (default: 200)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default: 1; the models are small)")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"output folder, replaced at the end (default: {DEFAULT_OUT})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if not args.taus or not args.seeds:
        print("error: --taus and --seeds need at least one value", file=sys.stderr)
        return 2
    if any(not 0.0 <= t <= 1.0 for t in args.taus):
        print(f"error: --taus must lie in [0, 1], got {args.taus}", file=sys.stderr)
        return 2
    cfg = ExperimentConfig(input=args.input, eval_input=args.eval_input, out=args.out,
                           input_format=args.input_format, eval_format=args.eval_format,
                           taus=args.taus, seeds=args.seeds,
                           quick=args.quick, keep_runs=args.keep_runs, trees=args.trees)
    import torch

    if not 1 <= args.threads <= 1024:
        print(f"error: --threads must be within [1, 1024] (got {args.threads})", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)  # small models: extra threads mostly contend
    try:
        out = run_experiment(cfg)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: claims.md, results.jsonl, timings.jsonl, ndcg_vs_rollouts.png, "
          "legibility.png")
    if cfg.quick:
        print("SMOKE RUN (--quick): not evidence (tiny budgets; claims.md and results.jsonl say "
              "so: smoke: true)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
