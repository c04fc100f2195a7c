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

The equal-compute control: `bc_rl_nofilter_eq` and `rl_nofilter_eq` run RL on the no-filter
curriculum with a rollout budget (`--rl-rollouts`) equal to what `bc_rl` and `rl` (filtered)
spent with the same seed and tau, so the two sides of each pair spend the same rollouts (the
unfiltered side may overshoot by less than one batch per stage). Their rows, with the four arms'
test NDCG@10 at the end of RL (before model selection) and the fraction of RL groups with a
non-zero advantage, go to `equal_compute.jsonl` (results.jsonl keeps the arms above only).

References, on the same test split: LightGBM LambdaMART when `lightgbm` is importable (extra
`reference`), the best single feature chosen on the training split, and random scores (on text
inputs: on the IR features the build computes).

Inputs: feature LTR files (`--input`, `--eval-input`); text inputs with the build's text options
(`--input-format beir|trec|msmarco|rankllm`, `--candidates`, `--qrels`, `--teacher-run`,
`--candidate-depth`) and an eval input of the same kind (`--eval-candidates`, `--eval-qrels`,
defaulting to the training side's); or the embedded generator (`--synthetic text|features`,
`--synthetic-queries N`), whose held-out split (`tq-heldout-*` for text, 300 queries) is the
test set. A flag that does not fit the inputs is one `error:` line.

Fixed sets: `eval` (--eval-input queries with a relevant document) and `train_sample` (a hash
sample of the training input's queries); see `trainers.train`. Outputs in --out: `claims.md`,
`results.jsonl` (one JSON object per arm, tau and seed; deterministic), `equal_compute.jsonl`
(deterministic), `timings.jsonl` (seconds, which vary with load), `ndcg_vs_rollouts.png`,
`legibility.png`, and for text inputs `text_summary.md` (the text claims in brief). Built in
OUT.partial and renamed at the end; a failed run leaves nothing.

Usage: python -m trainers.experiment --input TRAIN --eval-input TEST [--taus 0.5,0.7,0.9]
         [--seeds 0,1,2] [--quick] --out DIR
       python -m trainers.experiment --synthetic text [--synthetic-queries 800] ... --out DIR
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
from data_contracts.manifest import check_replaceable_folder
from difficulty.rewards import ndcg_of_scores
from trainers.claims import (ARMS, EQUAL_COMPUTE, claims_markdown, figures,
                             text_summary_markdown)
from trainers.data import (eval_space, input_kind, read_validated, synthetic_text_config,
                           synthetic_text_table, with_relevant)
from trainers.evaluate import synthetic_held_out
from trainers.staging import TRAINER_FILES, report_work_folder, run_report_command
from trainers.train import TrainConfig, train

DEFAULT_OUT = "runs/experiment"
QUICK = {"bc_steps": 12, "rl_steps": 12, "eval_every": 4, "diagnostic_rollouts": 4,
         "train_sample": 40, "group_size": 8}


@dataclasses.dataclass
class ExperimentConfig:
    """The experiment's knobs (see `make_parser` for the flags)."""

    input: str = ""
    eval_input: str = ""
    out: str = DEFAULT_OUT
    input_format: str = "auto"
    eval_format: str = "auto"
    taus: tuple = (0.5, 0.7, 0.9)
    seeds: tuple = (0, 1, 2)
    quick: bool = False
    keep_runs: bool = False
    trees: int = 200
    synthetic: str = ""  # `text` or `features`: the embedded generator instead of --input
    synthetic_queries: int = 800
    candidates: str = ""
    qrels: str = ""
    teacher_run: str = ""
    candidate_depth: int = 0  # 0: every candidate
    eval_candidates: str = ""  # "": --candidates
    eval_qrels: str = ""  # "": --qrels

    @property
    def synthetic_config(self) -> dict:
        """The embedded generator's knobs as a manifest records them (`config.synthetic`)."""
        from data_contracts.synthetic import SyntheticConfig

        return dataclasses.asdict(SyntheticConfig(n_queries=self.synthetic_queries))

    @property
    def synthetic_format(self) -> str:
        """The manifest's input format of the embedded generator (`synthetic-text`, ...)."""
        return {"text": "synthetic-text", "features": "synthetic"}[self.synthetic]

    def train_format(self) -> str:
        """The training input's format (detected when `auto`)."""
        from data_contracts.readers import detect_format

        if self.synthetic:
            return self.synthetic_format
        return detect_format(self.input) if self.input_format == "auto" else self.input_format

    def is_text(self) -> bool:
        """Whether the inputs are text (queries and passages, featurised by the IR features)."""
        return input_kind(self.train_format()) == "text"

    def text_options(self, eval_side: bool = False):
        """The `TextOptions` of the training (or eval) text input, or None (feature inputs)."""
        from data_contracts.readers.text import TextOptions

        if self.synthetic or not self.is_text():
            return None
        return TextOptions(
            candidates=((self.eval_candidates if eval_side else "") or self.candidates) or None,
            qrels=((self.eval_qrels if eval_side else "") or self.qrels) or None,
            teacher_run=None if eval_side else (self.teacher_run or None),
            depth=self.candidate_depth or None)


TEXT_FLAGS = ("candidates", "qrels", "teacher_run", "candidate_depth", "eval_candidates",
              "eval_qrels")


def check_inputs(cfg: ExperimentConfig) -> None:
    """Refuses flags that do not fit the inputs, before anything is built.

    Raises:
      InputError: --synthetic with --input/--eval-input or text options; neither --synthetic nor
        --input and --eval-input; text options on feature inputs (the teacher run alone is
        allowed there: it orders a feature input's demonstrations too); an eval input of
        another kind than the training input (`eval_space`'s line).
    """
    given = [f"--{n.replace('_', '-')}" for n in TEXT_FLAGS if getattr(cfg, n)]
    if cfg.synthetic:
        if cfg.synthetic not in ("text", "features"):
            raise InputError("--synthetic", f"expected text or features, got {cfg.synthetic!r}")
        clash = [f for f, v in (("--input", cfg.input), ("--eval-input", cfg.eval_input)) if v]
        if clash or given or cfg.input_format != "auto" or cfg.eval_format != "auto":
            named = clash + given + [f for f, v in (("--input-format", cfg.input_format),
                                                    ("--eval-format", cfg.eval_format))
                                     if v != "auto"]
            raise InputError("--synthetic", f"the embedded {cfg.synthetic} set is the input and "
                                            f"its held-out split the test set; drop "
                                            f"{', '.join(named)}")
        if not 20 <= cfg.synthetic_queries <= 1_000_000:
            raise InputError("--synthetic-queries", f"must be within [20, 1000000] (got "
                                                    f"{cfg.synthetic_queries})")
        return
    if cfg.synthetic_queries != 800:
        raise InputError("--synthetic-queries", "is for --synthetic only")
    if not cfg.input or not cfg.eval_input:
        raise InputError("--input", "give --input TRAIN and --eval-input TEST, or --synthetic "
                                    "text|features")
    for path, name in ((cfg.input, "--input"), (cfg.eval_input, "--eval-input")):
        if not fs.exists(path):
            raise InputError(path, f"{name} not found")
    fmt = cfg.train_format()
    if not cfg.is_text():
        only_text = [f for f in given if f != "--teacher-run"]
        if only_text:
            raise InputError(cfg.input, f"{', '.join(only_text)} are for text inputs, but "
                                        f"--input is feature vectors ({fmt})")
    space = None if cfg.is_text() else _feature_space(cfg)
    eval_space(cfg.eval_input, cfg.eval_format, fmt, space, f"--input {cfg.input}")


def _feature_space(cfg: ExperimentConfig) -> dict:
    from data_contracts.readers import dataset_space

    return dataset_space([cfg.input], cfg.input_format).to_dict()


# ---------------------------------------------------------------------------------------------
# References.

def read_pair(cfg: ExperimentConfig) -> tuple:
    """(training, test) queries with a relevant document, both in the training input's feature
    space; the test input is checked against it first (kind, width, id base: one line naming
    both when they differ). Text inputs are read with the build's text options (their IR
    features); the embedded generator gives its training set and its held-out split."""
    if cfg.synthetic:
        from data_contracts.synthetic import config_from_dict, generate_table

        synthetic = cfg.synthetic_config
        train_t = with_relevant(
            synthetic_text_table(synthetic_text_config(synthetic)) if cfg.synthetic == "text"
            else generate_table(config_from_dict(synthetic)))
        return train_t, synthetic_held_out(cfg.synthetic_format, synthetic)[0]
    train_fmt = cfg.train_format()
    space = None if cfg.is_text() else _feature_space(cfg)
    test_space = eval_space(cfg.eval_input, cfg.eval_format, train_fmt, space,
                            f"--input {cfg.input}")
    train_t = with_relevant(read_validated(cfg.input, cfg.input_format, None, None,
                                           cfg.text_options()))
    test_t = with_relevant(read_validated(cfg.eval_input, cfg.eval_format, None, test_space,
                                          cfg.text_options(eval_side=True)))
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

    if cfg.synthetic:
        from data_contracts.synthetic import config_from_dict

        source = dict(synthetic=config_from_dict(cfg.synthetic_config),
                      synthetic_kind=cfg.synthetic)
    else:
        source = dict(inputs=[cfg.input], input_format=cfg.input_format,
                      candidates=cfg.candidates or None, qrels=cfg.qrels or None,
                      teacher_run=cfg.teacher_run or None,
                      candidate_depth=cfg.candidate_depth or None)
    config = CurriculumConfig(**source, out=out, reward=f"ndcg@10>={tau:g}", seed=seed,
                              routing=RoutingConfig(filter_hard=filter_hard))
    run(config)
    return os.path.join(out, "manifest.json")


def train_base(cfg: ExperimentConfig, seed: int) -> dict:
    """The TrainConfig fields every arm shares (budgets, seed, the eval input and its options;
    none for the embedded generator, whose held-out split the trainer makes itself)."""
    base = dict(QUICK if cfg.quick else {}, seed=seed, progress_seconds=60.0)
    if cfg.synthetic:
        return base
    text = cfg.text_options(eval_side=True)
    return dict(base, eval_input=cfg.eval_input, eval_format=cfg.eval_format,
                eval_candidates=(text.candidates or "") if text else "",
                eval_qrels=(text.qrels or "") if text else "")


def arm_configs(manifests: dict, trained: str, seed: int, cfg: ExperimentConfig) -> dict:
    """{arm: TrainConfig} (the RL-after-BC arms start from the BC arm's bc.pt via --init)."""
    base = train_base(cfg, seed)
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


def equal_compute_configs(manifests: dict, trained: str, seed: int, cfg: ExperimentConfig,
                          spent: dict) -> dict:
    """{arm: TrainConfig} of the equal-compute arms: RL on the no-filter curriculum with the
    rollout budget its filtered partner spent (`spent`: {filtered arm: RL rollouts}); the step
    cap is the budget itself, which never binds (every step spends at least G >= 2 rollouts)."""
    base = train_base(cfg, seed)
    bc = os.path.join(trained, "bc", "bc.pt")
    start = {"bc_rl_nofilter_eq": dict(init=bc), "rl_nofilter_eq": dict(bc_steps=0)}
    return {arm: TrainConfig(**dict(base, out=os.path.join(trained, arm),
                                    manifest=manifests["nofilter"], rl_rollouts=spent[partner],
                                    rl_steps=spent[partner], **start[arm]))
            for arm, partner in EQUAL_COMPUTE.items() if spent.get(partner)}


def rl_groups(metrics_path: str, group_size: int) -> dict:
    """The RL groups a training spent and how many had a non-zero advantage (some rollout's
    reward differs from another's), from its metrics.jsonl RL rows.

    Each RL row logs the cumulative `rollouts` and the step's `informative_fraction` (share of
    its groups with max reward != min reward, `trainers.losses.rl_loss`); a step's groups are
    its new rollouts / G.

    Returns:
      {"rl_groups", "informative_groups", "informative_fraction"} (fraction None without RL).
    """
    groups = informative = previous = 0  # RL counts its rollouts from 0
    with open(metrics_path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row.get("phase") != "rl":
                continue
            n = (row["rollouts"] - previous) // group_size
            previous = row["rollouts"]
            groups += n
            informative += int(round(row["informative_fraction"] * n))
    return {"rl_groups": groups, "informative_groups": informative,
            "informative_fraction": informative / groups if groups else None}


def equal_compute_row(arm: str, tau: float, seed: int, summary: dict, groups: dict,
                      budget: int | None, smoke: bool) -> dict:
    """One arm's equal-compute numbers: RL rollouts spent, test and validation NDCG@10 at RL's
    start and at its end (the last learning-curve point, before model selection), RL groups."""
    rl = [p for p in summary["learning_curve"] if p["phase"] == "rl"]
    first, last = (rl[0], rl[-1]) if rl else ({}, {})
    return dict({"arm": arm, "tau": tau, "seed": seed, "smoke": smoke, "budget": budget,
                 "rollouts": summary["rollouts"], "rl_steps": summary.get("rl_steps_done", 0),
                 "ndcg@10_rl_start": first.get("ndcg_at_10"),
                 "ndcg@10_rl_end": last.get("ndcg_at_10"),
                 "val_ndcg@10_rl_end": last.get("val_ndcg_at_10")}, **groups)


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


EXPERIMENT_FILES = ("claims.md", "results.jsonl", "equal_compute.jsonl", "text_summary.md",
                    "timings.jsonl", "ndcg_vs_rollouts.png", "legibility.png", "runs", "train")  # what an experiment writes at its top


def _check_replaceable(out: str, what: str = "--out") -> None:
    """Refuses an OUT (or its OUT.partial) that is a link or holds anything an experiment does
    not write: its `runs/` hold build runs and `train/` trainer folders, nothing else (see
    `check_replaceable_folder`)."""
    check_replaceable_folder(out, EXPERIMENT_FILES, ("runs", "train"), "an experiment", what,
                             also_own=TRAINER_FILES)


def run_experiment(cfg: ExperimentConfig) -> str:
    """Runs everything into OUT.partial, writes claims, figures and results, renames to OUT
    (`trainers.staging.report_work_folder`: a second experiment to OUT is refused)."""
    with report_work_folder(cfg.out, (), _check_replaceable,
                            check_inputs=lambda: check_inputs(cfg)) as work:
        _run(cfg, work)
    return work[:-len(".partial")]


def _run(cfg: ExperimentConfig, work: str) -> None:
    started = time.monotonic()
    results, equal, timings = [], [], []
    refs = references(cfg)
    total = len(cfg.taus) * len(cfg.seeds) * (len(ARMS) + len(EQUAL_COMPUTE))
    done = 0

    def trained_arm(arm: str, tcfg: TrainConfig, tau: float, seed: int) -> dict:
        nonlocal done
        t0 = time.monotonic()
        summary = train(tcfg)
        seconds = time.monotonic() - t0
        timings.append({"what": arm, "tau": tau, "seed": seed, "seconds": round(seconds, 2),
                        "curve_seconds": [p["seconds"] for p in summary["learning_curve"]]})
        done += 1
        print(f"[{done}/{total}] tau {tau:g} seed {seed} {arm}: test NDCG@10 "
              f"(ideal={summary.get('ndcg_ideal', 'window')}) "
              f"{summary['ndcg@10'].get('rl'):.4f} ({seconds:.1f} s, "
              f"{time.monotonic() - started:.0f} s in all)", file=sys.stderr, flush=True)
        return summary

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
            summaries = {}
            for arm, tcfg in arm_configs(manifests, trained, seed, cfg).items():
                summaries[arm] = trained_arm(arm, tcfg, tau, seed)
                results.append(result_row(arm, tau, seed, summaries[arm], cfg.quick))
            spent = {a: summaries[a]["rollouts"] for a in EQUAL_COMPUTE.values()}
            eq_cfgs = equal_compute_configs(manifests, trained, seed, cfg, spent)
            for arm, tcfg in eq_cfgs.items():
                summaries[arm] = trained_arm(arm, tcfg, tau, seed)
            for arm, partner in EQUAL_COMPUTE.items():  # filtered side, then unfiltered
                for name, budget in ((partner, None), (arm, spent[partner])):
                    if name not in summaries:
                        continue
                    groups = rl_groups(os.path.join(trained, name, "metrics.jsonl"),
                                       arm_group_size(cfg))
                    equal.append(equal_compute_row(name, tau, seed, summaries[name], groups,
                                                   budget, cfg.quick))
            if not cfg.keep_runs:
                fs.delete_tree(os.path.join(work, "runs", tag))
    if not cfg.keep_runs and os.path.exists(os.path.join(work, "runs")):
        fs.delete_tree(os.path.join(work, "runs"))
    _write_jsonl(os.path.join(work, "results.jsonl"),
                 [dict(r, smoke=cfg.quick, ideal="window") for r in refs] + results)
    _write_jsonl(os.path.join(work, "equal_compute.jsonl"), equal)
    _write_jsonl(os.path.join(work, "timings.jsonl"), timings)
    figures(results, refs, cfg, work)
    with open(os.path.join(work, "claims.md"), "w", encoding="utf-8") as handle:
        handle.write(claims_markdown(results, refs, timings, cfg, equal))
    if cfg.is_text():
        with open(os.path.join(work, "text_summary.md"), "w", encoding="utf-8") as handle:
            handle.write(text_summary_markdown(results, refs, cfg, equal))


def arm_group_size(cfg: ExperimentConfig) -> int:
    """G of every arm (the trainer's default, or --quick's)."""
    return (QUICK if cfg.quick else {}).get("group_size", TrainConfig().group_size)


def _write_jsonl(path: str, rows: list[dict]) -> None:
    """One JSON object per line, keys sorted (byte-identical for the same rows)."""
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, sort_keys=True) + "\n")


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


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The input flags the experiment and `trainers.studies` share: --input and --eval-input
    (with their formats), or the embedded generator (--synthetic, --synthetic-queries)."""
    parser.add_argument("--input", default="",
                        help="training queries (any supported format) (required unless "
                             "--synthetic; default: none)")
    parser.add_argument("--eval-input", default="",
                        help="held-out labelled test queries of the same kind and feature space "
                             "(required unless --synthetic; default: none)")
    parser.add_argument("--input-format", default="auto", help="format of --input (default: auto)")
    parser.add_argument("--eval-format", default="auto",
                        help="format of --eval-input (default: auto)")
    parser.add_argument("--synthetic", default="", choices=("", "text", "features"),
                        help="the embedded generator instead of --input/--eval-input: its "
                             "training set and its 300-query held-out split (default: none)")
    parser.add_argument("--synthetic-queries", type=int, default=800,
                        help="training queries of --synthetic (default: 800)")


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m trainers.experiment", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_arguments(parser)
    parser.add_argument("--candidates", default="",
                        help="text inputs: each query's candidates, a TREC run (default: none)")
    parser.add_argument("--qrels", default="",
                        help="text inputs: TREC qrels, where the layout holds none "
                             "(default: none)")
    parser.add_argument("--teacher-run", default="",
                        help="the teacher's demonstration order, a TREC run (default: none)")
    parser.add_argument("--candidate-depth", type=int, default=0,
                        help="text inputs: rerank each query's first N candidates "
                             "(default: 0, every candidate)")
    parser.add_argument("--eval-candidates", default="",
                        help="a text --eval-input's candidates run (default: --candidates)")
    parser.add_argument("--eval-qrels", default="",
                        help="a text --eval-input's qrels (default: --qrels)")
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
    if args.candidate_depth < 0:
        print(f"error: --candidate-depth must be at least 1 (got {args.candidate_depth})",
              file=sys.stderr)
        return 2
    cfg = ExperimentConfig(input=args.input, eval_input=args.eval_input, out=args.out,
                           input_format=args.input_format, eval_format=args.eval_format,
                           taus=args.taus, seeds=args.seeds,
                           quick=args.quick, keep_runs=args.keep_runs, trees=args.trees,
                           synthetic=args.synthetic, synthetic_queries=args.synthetic_queries,
                           **{n: getattr(args, n) for n in TEXT_FLAGS})
    def files() -> str:
        return ("claims.md, results.jsonl, equal_compute.jsonl, timings.jsonl, "
                "ndcg_vs_rollouts.png, legibility.png"
                + (", text_summary.md" if cfg.is_text() else ""))

    return run_report_command(lambda: run_experiment(cfg), threads=args.threads, files=files,
                              quick=cfg.quick, summary="claims.md")


if __name__ == "__main__":
    sys.exit(main())
