"""RL given a fair chance on the trainer's own task (feature LTR, or the embedded text set): two
studies, fixed in advance.

**a. SFT depth.** Per seed, one BC run (`--rl-steps 0`, a long horizon: 4 x the default BC steps,
validation every few steps) finds the step where validation NDCG@10 stops improving
(`convergence_step`: the first evaluated step after which no later one is better by more than
`CONVERGENCE_DELTA`; validation only, never the test queries). BC is then trained for 1/4, 1 and
4 times that many steps (validation measured only at the start and the end, so the end's weights
are kept unless they are worse than the untrained policy's: `bc_selected_step` says which), and RL
runs from each checkpoint with the default RL settings. Before RL, on the fixed training sample
and the test queries, G = the RL group size rollouts per query give the policy's Plackett-Luce
entropy (mean -log p of its samples, as the trainer's diagnostics), pass@G (queries with at least
one passing rollout), the pass rate and the informative-group fraction. After RL: test NDCG@10
and pass rate. Reported: RL's gain per depth, the peak of the RL learning curve (test, for
reading only; selection uses validation), and the Spearman correlation of each pre-RL number
(training sample) with the after-RL outcome over depths x seeds (9 points with 3 seeds: only a
large |rho| means anything; its p-value is printed).

**b. RL sweep.** From one BC checkpoint per seed (the trainer's default BC), RL with every
combination of: reward `pass` / `graded` (`--rl-reward`), learning rate x1/3, x1, x3 of the
default, KL to the BC policy on (default coefficient) / off, steps x1 / x4 of the default: the
full factorial (24 settings) at every seed, no reduction: 33 trainings and one build per seed
(the default Yahoo study, 3 seeds: 1448 s of training measured on 2 cores shared with other jobs,
load average about 12; each training's seconds are in timings.jsonl). The setting is chosen on the trainer's VALIDATION split (mean validation NDCG@10 of the
final policy over seeds; ties go to the earlier setting in the listed order, the default first),
and only then is its test NDCG@10 and pass rate compared with BC alone, seed by seed (verdict as
`trainers.claims.verdict`: every seed's paired difference positive and the mean at least
`NDCG_EFFECT`).

Outputs in --out: `studies.md` (tables and verdicts), `results.jsonl` (one row per training,
deterministic), `timings.jsonl` (seconds, which vary with load). Built in OUT.partial and renamed
at the end; a failed run leaves nothing. `--cell default` runs only BC and the default RL setting
(the README's drift test reruns that one cell at seed 0).

Inputs: --input TRAIN --eval-input TEST, or the embedded generator (`--synthetic text|features`,
`--synthetic-queries N`) with its held-out split as the test set, as `trainers.experiment` takes
them (`--synthetic text` is the regime the idea is about: the untrained policy mostly fails).

Usage: python -m trainers.studies (--input TRAIN --eval-input TEST | --synthetic text)
         [--tau 0.7] [--seeds 0,1,2] [--quick] [--cell all|default] --out DIR
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from fractions import Fraction

import numpy as np

from data_contracts import fs
from data_contracts.cli import OneLineParser
from data_contracts.manifest import check_replaceable_folder, load_manifest
from difficulty.policy import load_policy_checkpoint
from difficulty.sampler import informative_groups
from trainers.claims import NDCG_EFFECT, verdict
from trainers.config import TrainConfig
from trainers.evaluate import fixed_sets, group_rollouts
from trainers.experiment import (QUICK, ExperimentConfig, _ints, add_input_arguments,
                                 build, check_inputs, train_base)
from trainers.staging import TRAINER_FILES, report_work_folder, run_report_command
from trainers.train import load_curriculum, train

DEFAULT_OUT = "runs/studies"
DEFAULTS = TrainConfig()
DEPTHS = (Fraction(1, 4), Fraction(1), Fraction(4))  # x the steps to convergence
HORIZON_FACTOR = 4  # the convergence run's BC steps: 4 x the default BC steps
CONVERGENCE_EVERY = 10  # its validation interval (steps); --quick: QUICK's eval_every
CONVERGENCE_DELTA = 0.001  # validation NDCG@10 gain that still counts as improving
REWARDS = ("pass", "graded")
LR_FACTORS = (Fraction(1, 3), Fraction(1), Fraction(3))
KL = ("on", "off")
STEP_FACTORS = (1, 4)
PRE_RL_NUMBERS = ("entropy", "pass_at_k", "pass_rate", "informative_fraction")
STUDY_FILES = ("studies.md", "results.jsonl", "timings.jsonl", "runs", "train")
SMOKE_LINE = ("**SMOKE RUN (--quick): not evidence.** Tiny budgets that show the studies run end "
              "to end; no verdict below supports or refutes anything.")


@dataclasses.dataclass
class StudyConfig:
    """The studies' knobs (see `make_parser` for the flags)."""

    input: str = ""
    eval_input: str = ""
    out: str = DEFAULT_OUT
    input_format: str = "auto"
    eval_format: str = "auto"
    tau: float = 0.7
    seeds: tuple = (0, 1, 2)
    quick: bool = False
    cell: str = "all"
    synthetic: str = ""  # `text` or `features`: the embedded generator instead of --input
    synthetic_queries: int = 800

    def experiment(self) -> ExperimentConfig:
        """The experiment's config of the same inputs (its checks, builds and test sets)."""
        return ExperimentConfig(input=self.input, eval_input=self.eval_input,
                                input_format=self.input_format, eval_format=self.eval_format,
                                synthetic=self.synthetic,
                                synthetic_queries=self.synthetic_queries, quick=self.quick)

    def input_line(self) -> str:
        """The input flags as the report's command line names them."""
        if self.synthetic:
            queries = (f" --synthetic-queries {self.synthetic_queries}"
                       if self.synthetic_queries != 800 else "")
            return f"--synthetic {self.synthetic}{queries}"
        return (f"--input {os.path.basename(self.input)} --eval-input "
                f"{os.path.basename(self.eval_input)}")

    def test_name(self) -> str:
        """What the report calls the test queries."""
        if self.synthetic:
            return (f"the embedded {self.synthetic} generator's held-out split (queries no "
                    "build or policy selected)")
        return f"{os.path.basename(self.eval_input)}'s queries"


# ---------------------------------------------------------------------------------------------
# The fixed designs.

def settings() -> list[dict]:
    """Every RL setting of the sweep, the default first (the tie-break order of selection)."""
    grid = [{"reward": r, "lr_factor": str(lr), "kl": kl, "steps_factor": s}
            for r in REWARDS for lr in LR_FACTORS for kl in KL for s in STEP_FACTORS]
    default = {"reward": "pass", "lr_factor": "1", "kl": "on", "steps_factor": 1}
    return [default] + [g for g in grid if g != default]


def setting_name(setting: dict) -> str:
    """`pass, lr x1, KL on, steps x1`."""
    return (f"{setting['reward']}, lr x{setting['lr_factor']}, KL {setting['kl']}, "
            f"steps x{setting['steps_factor']}")


def setting_overrides(setting: dict, base: dict) -> dict:
    """The TrainConfig fields a setting sets (relative to the defaults, or --quick's budgets)."""
    steps = base.get("rl_steps", DEFAULTS.rl_steps)
    return {"rl_reward": setting["reward"],
            "rl_lr": float(DEFAULTS.rl_lr * Fraction(setting["lr_factor"])),
            "kl_coef": DEFAULTS.kl_coef if setting["kl"] == "on" else 0.0,
            "rl_steps": steps * setting["steps_factor"]}


def convergence_step(curve: list[dict], delta: float = CONVERGENCE_DELTA) -> tuple[int, bool]:
    """The BC step where validation NDCG@10 stops improving.

    Args:
      curve: a BC run's learning-curve points (`{"phase": "bc", "step", "val_ndcg_at_10"}`), in
        step order; points of other phases, step 0 and missing validation values are ignored.
      delta: a later point improves only when it beats the candidate by more than this.

    Returns:
      (the first evaluated step after which no later point's validation NDCG@10 exceeds its own
      by more than `delta`, whether that is the last evaluated step: still improving at the end
      of the horizon).

    Raises:
      ValueError: no BC point after step 0 has a validation value.
    """
    points = [(p["step"], p["val_ndcg_at_10"]) for p in curve
              if p.get("phase") == "bc" and p["step"] > 0 and p.get("val_ndcg_at_10") is not None]
    if not points:
        raise ValueError("no BC validation point after step 0: no convergence step")
    for i, (step, value) in enumerate(points):
        if all(later <= value + delta for _, later in points[i + 1:]):
            return step, i == len(points) - 1
    raise AssertionError("unreachable: the last point always qualifies")


def choose_setting(rows: list[dict], order: list[str]) -> str:
    """The sweep setting with the highest mean VALIDATION NDCG@10 over seeds (ties: the earlier
    in `order`). Test numbers are not read.

    Args:
      rows: sweep rows (`{"name", "seed", "val_ndcg@10", ...}`).
      order: setting names in the fixed order (default first).

    Raises:
      ValueError: no row has a validation value.
    """
    means = {}
    for name in order:
        values = [r["val_ndcg@10"] for r in rows
                  if r["name"] == name and r["val_ndcg@10"] is not None]
        if values:
            means[name] = float(np.mean(values))
    if not means:
        raise ValueError("no sweep row has a validation NDCG@10: nothing to choose on")
    best = max(means.values())
    return next(n for n in order if n in means and means[n] >= best - 1e-12)


def spearman(x: list[float], y: list[float]) -> tuple[float | None, float | None]:
    """(Spearman's rho, its two-sided p-value; scipy's t approximation), or (None, None) when
    either side is constant or fewer than 3 points."""
    from scipy.stats import spearmanr

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


# ---------------------------------------------------------------------------------------------
# Measuring a checkpoint before RL.

def pre_rl_numbers(checkpoint: str, tcfg: TrainConfig) -> dict:
    """A policy checkpoint's numbers before RL, on the fixed training sample and test queries.

    G = `tcfg.group_size` rollouts per query (seeded by `tcfg.seed`, query id and a stream of
    its own): entropy (mean -log p of the samples, nats: a Monte-Carlo estimate of the
    Plackett-Luce entropy), pass@G (fraction of queries with at least one passing rollout, the
    unbiased pass@k of Chen et al. 2021 with n = k), pass rate, informative-group fraction.

    Returns:
      {set name: {number: value, "queries": N}} for `train_sample` and `eval` (a missing set is
      left out).
    """
    manifest = load_manifest(tcfg.manifest)
    cur = load_curriculum(manifest, tcfg.manifest)
    sets = fixed_sets(tcfg, manifest, cur.n_features, cur.train_files)
    policy = load_policy_checkpoint(checkpoint)
    policy.eval()
    out = {}
    for name, table, stream in (("train_sample", sets.sample, 30_000),
                                ("eval", sets.held_out, 31_000)):
        if table is None:
            continue
        _, _, logp, passed = group_rollouts(policy, table, cur.reward, tcfg.group_size,
                                            tcfg.seed, tcfg.temperature, stream)
        out[name] = {"entropy": float(-logp.mean()), "pass_at_k": float(passed.any(-1).mean()),
                     "k": tcfg.group_size, "pass_rate": float(passed.mean()),
                     "informative_fraction": float(informative_groups(passed).mean()),
                     "queries": int(table.num_rows)}
    return out


def after(summary: dict, policy: str = "rl") -> dict:
    """A trained policy's test and validation NDCG@10 and test pass rate from its summary."""
    diag = summary["diagnostics"].get("eval", {}).get(policy, {})
    return {"ndcg@10": summary["ndcg@10"].get(policy),
            "val_ndcg@10": summary.get("val_ndcg@10", {}).get(policy),
            "pass_rate": diag.get("pass_rate")}


def rl_peak(summary: dict) -> float | None:
    """The highest test NDCG@10 on the RL learning curve (for reading; not selectable)."""
    values = [p["ndcg_at_10"] for p in summary["learning_curve"]
              if p["phase"] == "rl" and p["ndcg_at_10"] is not None]
    return max(values) if values else None


# ---------------------------------------------------------------------------------------------
# Running.

class Runner:
    """Trains and times; every training's seconds go to `timings`."""

    def __init__(self, cfg: StudyConfig, work: str):
        self.cfg, self.work = cfg, work
        self.timings: list[dict] = []
        # the experiment's (its eval input; none for the embedded generator, whose held-out
        # split the trainer makes itself); each training sets its own seed
        self.base = {k: v for k, v in train_base(cfg.experiment(), 0).items() if k != "seed"}
        self.started = time.monotonic()

    def train(self, what: str, seed: int, manifest: str, **kw) -> tuple[dict, TrainConfig]:
        tcfg = TrainConfig(**dict(self.base, seed=seed, manifest=manifest,
                                  out=os.path.join(self.work, "train", f"seed{seed}", what),
                                  **kw))
        t0 = time.monotonic()
        summary = train(tcfg)
        seconds = time.monotonic() - t0
        self.timings.append({"what": what, "seed": seed, "seconds": round(seconds, 2)})
        print(f"seed {seed} {what}: test NDCG@10 {summary['ndcg@10'].get('rl'):.4f} "
              f"({seconds:.1f} s, {time.monotonic() - self.started:.0f} s in all)",
              file=sys.stderr, flush=True)
        return summary, tcfg

    def build(self, seed: int) -> str:
        ecfg = self.cfg.experiment()
        t0 = time.monotonic()
        manifest = build(ecfg, self.cfg.tau, seed, True,
                         os.path.join(self.work, "runs", f"seed{seed}"))
        self.timings.append({"what": "build", "seed": seed,
                             "seconds": round(time.monotonic() - t0, 2)})
        return manifest


def sft_depth(run: Runner, seed: int, manifest: str) -> list[dict]:
    """Study a for one seed: the convergence run, BC at each depth, RL from each."""
    bc_default = run.base.get("bc_steps", DEFAULTS.bc_steps)
    every = run.base.get("eval_every", CONVERGENCE_EVERY) if run.cfg.quick else CONVERGENCE_EVERY
    summary, _ = run.train("convergence", seed, manifest, bc_steps=HORIZON_FACTOR * bc_default,
                           rl_steps=0, eval_every=every)
    step, at_end = convergence_step(summary["learning_curve"])
    val_curve = [[p["step"], p["val_ndcg_at_10"]] for p in summary["learning_curve"]
                 if p["phase"] == "bc"]
    rows = [{"study": "convergence", "seed": seed, "convergence_step": step,
             "still_improving_at_horizon": at_end, "horizon": HORIZON_FACTOR * bc_default,
             "eval_every": every, "delta": CONVERGENCE_DELTA, "val_curve": val_curve}]
    for depth in DEPTHS:
        steps = max(1, round(depth * step))
        tag = f"depth-x{depth}".replace("/", "_")
        bc_summary, _ = run.train(f"{tag}-bc", seed, manifest, bc_steps=steps, rl_steps=0,
                                  eval_every=steps)
        bc_ckpt = os.path.join(run.work, "train", f"seed{seed}", f"{tag}-bc", "bc.pt")
        rl_summary, tcfg = run.train(f"{tag}-rl", seed, manifest, init=bc_ckpt)
        rows.append({"study": "sft_depth", "seed": seed, "depth": str(depth), "bc_steps": steps,
                     "convergence_step": step,
                     "bc_selected_step": bc_summary["selected_step"]["bc"],
                     "pre_rl": pre_rl_numbers(bc_ckpt, tcfg), "before": after(rl_summary, "bc"),
                     "after": after(rl_summary, "rl"), "peak_ndcg@10": rl_peak(rl_summary),
                     "rl_kept": rl_summary["rl_selection"]["kept"],
                     "rl_steps": rl_summary.get("rl_steps_done", 0),
                     "rollouts": rl_summary["rollouts"]})
    return rows


def sweep(run: Runner, seed: int, manifest: str, grid: list[dict]) -> list[dict]:
    """Study b for one seed: BC (the trainer's default), then RL with each setting from it."""
    summary, _ = run.train("bc", seed, manifest, rl_steps=0)
    rows = [dict({"study": "bc", "seed": seed}, **after(summary, "rl"))]
    bc_ckpt = os.path.join(run.work, "train", f"seed{seed}", "bc", "bc.pt")
    for i, setting in enumerate(grid):
        rl, _ = run.train(f"sweep{i:02d}", seed, manifest, init=bc_ckpt,
                          **setting_overrides(setting, run.base))
        rows.append(dict({"study": "sweep", "seed": seed, "setting": setting,
                          "name": setting_name(setting), "rl_kept": rl["rl_selection"]["kept"],
                          "rl_steps": rl.get("rl_steps_done", 0), "rollouts": rl["rollouts"],
                          "peak_ndcg@10": rl_peak(rl)}, **after(rl, "rl")))
    return rows


def run_studies(cfg: StudyConfig) -> str:
    """Runs both studies into OUT.partial, writes the report and rows, renames to OUT
    (`trainers.staging.report_work_folder`)."""
    with report_work_folder(cfg.out, (), _check_replaceable,
                            check_inputs=lambda: check_inputs(cfg.experiment())) as work:
        _run(cfg, work)
    return work[:-len(".partial")]


def _check_replaceable(out: str, what: str = "--out") -> None:
    check_replaceable_folder(out, STUDY_FILES, ("runs", "train"), "the studies", what,
                             also_own=TRAINER_FILES)


def _run(cfg: StudyConfig, work: str) -> None:
    run = Runner(cfg, work)
    grid = settings() if cfg.cell == "all" else settings()[:1]
    results = []
    for seed in cfg.seeds:
        manifest = run.build(seed)
        if cfg.cell == "all":
            results += sft_depth(run, seed, manifest)
        results += sweep(run, seed, manifest, grid)
        fs.delete_tree(os.path.join(work, "runs", f"seed{seed}"))
        fs.delete_tree(os.path.join(work, "train", f"seed{seed}"))
    for folder in ("runs", "train"):
        if os.path.exists(os.path.join(work, folder)):
            fs.delete_tree(os.path.join(work, folder))
    results = [dict(r, smoke=cfg.quick, tau=cfg.tau) for r in results]
    with open(os.path.join(work, "results.jsonl"), "w", encoding="utf-8") as handle:
        for row in results:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
    with open(os.path.join(work, "timings.jsonl"), "w", encoding="utf-8") as handle:
        for row in run.timings:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
    with open(os.path.join(work, "studies.md"), "w", encoding="utf-8") as handle:
        handle.write(studies_markdown(results, cfg))


# ---------------------------------------------------------------------------------------------
# The report.

def _f(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _cell(values, digits: int = 3, sign: bool = False) -> str:
    """Mean (min..max) over seeds, or n/a."""
    v = np.asarray([x for x in values if x is not None], float)
    if not len(v):
        return "n/a"
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    return f"{fmt.format(v.mean())} ({fmt.format(v.min())}..{fmt.format(v.max())})"


def _claim(diffs: list[float]) -> str:
    return f"{verdict(diffs, NDCG_EFFECT)}: {_cell(diffs, sign=True)}"


def seed_line(row: dict, arm: str) -> str:
    """One per-seed table row (the README drift test renders a rerun's row with this)."""
    return (f"| {row['seed']} | {arm} | {_f(row['val_ndcg@10'], 4)} | {_f(row['ndcg@10'], 4)} | "
            f"{_f(row['pass_rate'], 4)} |")


def studies_markdown(results: list[dict], cfg: StudyConfig) -> str:
    """studies.md: both studies' tables and verdicts (a `--cell default` run: the sweep's
    default cell only)."""
    lines = [f"#### RL given a fair chance: SFT depth and an RL sweep"
             f"{' (SMOKE RUN: not evidence)' if cfg.quick else ''}", ""]
    if cfg.quick:
        lines += [SMOKE_LINE, ""]
    seeds = ",".join(map(str, cfg.seeds))
    lines += [f"Generated by `python -m trainers.studies {cfg.input_line()} --tau {cfg.tau:g} "
              f"--seeds {seeds}{' --quick' if cfg.quick else ''}"
              f"{' --cell ' + cfg.cell if cfg.cell != 'all' else ''}`. "
              f"Reward `ndcg@10>={cfg.tau:g}` (a rollout passes when its NDCG@10 reaches "
              f"{cfg.tau:g}); test = {cfg.test_name()} with a relevant document; validation = "
              "the trainer's validation split of the curriculum (model and setting selection). "
              "Cells: mean over seeds (min..max). Verdicts: `confirmed` = "
              f"every seed's paired difference positive and the mean at least {NDCG_EFFECT}; "
              "`contradicted` = every seed's negative, as large; else `not reproduced`.", ""]
    if cfg.cell == "all":
        lines += _depth_section(results, cfg)
    lines += _sweep_section(results, cfg)
    return "\n".join(lines) + "\n"


def _depth_section(results: list[dict], cfg: StudyConfig) -> list[str]:
    conv = [r for r in results if r["study"] == "convergence"]
    rows = [r for r in results if r["study"] == "sft_depth"]
    by = lambda d: [r for r in rows if r["depth"] == str(d)]  # noqa: E731
    k = rows[0]["pre_rl"]["train_sample"]["k"] if rows else 0
    lines = ["##### a. SFT depth: RL from under-trained, converged and over-trained BC", "",
             "Steps to convergence (validation NDCG@10 stops improving by more than "
             f"{CONVERGENCE_DELTA}; horizon {conv[0]['horizon'] if conv else 'n/a'} BC steps, "
             f"validation every {conv[0]['eval_every'] if conv else 'n/a'}): " + ", ".join(
                 f"seed {r['seed']}: {r['convergence_step']}"
                 + (" (still improving at the horizon)" if r["still_improving_at_horizon"]
                    else "") for r in conv) + ". BC keeps its last weights unless the untrained "
             "policy's validation NDCG@10 is higher; BC steps kept: " + ", ".join(
                 f"x{r['depth']} seed {r['seed']}: {r['bc_selected_step']}/{r['bc_steps']}"
                 for r in rows) + ".", "",
             f"Before RL, on the fixed training sample ({rows[0]['pre_rl']['train_sample']['queries'] if rows else 0} "
             f"queries), G = {k} rollouts per query (the RL group size); after RL (default "
             "settings), on the test queries:", "",
             "| depth | BC steps | test NDCG@10 before RL | entropy (nats) | pass@G | pass rate | "
             "informative | test NDCG@10 after RL | test pass rate after RL | RL gain (test) | "
             "peak test NDCG@10 on the RL curve | RL start kept (seeds) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in DEPTHS:
        rs = by(d)
        pre = lambda name: _cell([r["pre_rl"]["train_sample"][name] for r in rs],  # noqa: E731
                                 2 if name == "entropy" else 3)
        lines.append(
            f"| x{d} | {_cell([r['bc_steps'] for r in rs], 0)} | "
            f"{_cell([r['before']['ndcg@10'] for r in rs])} | {pre('entropy')} | "
            f"{pre('pass_at_k')} | {pre('pass_rate')} | {pre('informative_fraction')} | "
            f"{_cell([r['after']['ndcg@10'] for r in rs])} | "
            f"{_cell([r['after']['pass_rate'] for r in rs])} | "
            f"{_cell([r['after']['ndcg@10'] - r['before']['ndcg@10'] for r in rs], sign=True)} | "
            f"{_cell([r['peak_ndcg@10'] for r in rs])} | "
            f"{sum(r['rl_kept'] == 'rl_start' for r in rs)}/{len(rs)} |")
    lines += ["", "| question (paired over seeds, test NDCG@10) | verdict |", "|---|---|"]
    for d in DEPTHS:
        gains = [r["after"]["ndcg@10"] - r["before"]["ndcg@10"] for r in by(d)]
        lines.append(f"| RL improves on its BC checkpoint at depth x{d} | {_claim(gains)} |")
    for low, high in zip(DEPTHS, DEPTHS[1:]):
        lo, hi = {r["seed"]: r for r in by(low)}, {r["seed"]: r for r in by(high)}
        after_rl = [hi[s]["after"]["ndcg@10"] - lo[s]["after"]["ndcg@10"] for s in lo if s in hi]
        gain = [(hi[s]["after"]["ndcg@10"] - hi[s]["before"]["ndcg@10"])
                - (lo[s]["after"]["ndcg@10"] - lo[s]["before"]["ndcg@10"]) for s in lo if s in hi]
        lines.append(f"| deeper imitation (x{high} vs x{low}) gives a better policy after RL | "
                     f"{_claim(after_rl)} |")
        lines.append(f"| deeper imitation (x{high} vs x{low}) gives a larger RL gain | "
                     f"{_claim(gain)} |")
    outcome = [r["after"]["ndcg@10"] for r in rows]
    gain = [r["after"]["ndcg@10"] - r["before"]["ndcg@10"] for r in rows]
    lines += ["", f"Which pre-RL number predicts the outcome? Spearman's rho over depths x seeds "
              f"({len(rows)} points, {len(DEPTHS)} depths x {len(rows) // len(DEPTHS)} seeds: "
              "with so few only a large |rho| stands out from chance (p: scipy's t "
              "approximation, rough at this size), and the depths, not independent draws, drive "
              "most of the spread):", "",
              "| pre-RL number (training sample) | rho with test NDCG@10 after RL (p) | "
              "rho with RL gain (p) |", "|---|---|---|"]
    predictors = [(name, [r["pre_rl"]["train_sample"][name] for r in rows])
                  for name in PRE_RL_NUMBERS]
    predictors.append(("validation NDCG@10", [r["before"]["val_ndcg@10"] for r in rows]))
    best = None
    for name, values in predictors:
        cells = []
        for target in (outcome, gain):
            rho, p = spearman(values, target)
            cells.append("n/a (constant)" if rho is None else f"{rho:+.2f} (p {p:.2f})")
            if rho is not None and target is outcome and (best is None or abs(rho) > best[1]):
                best = (name, abs(rho), p)
        lines.append(f"| {name.replace('pass_at_k', f'pass@{k}').replace('_', ' ')} | "
                     f"{cells[0]} | {cells[1]} |")
    if best:
        label = best[0].replace("pass_at_k", f"pass@{k}").replace("_", " ")
        lines += ["", f"Strongest predictor of the after-RL test NDCG@10: {label} (|rho| "
                      f"{best[1]:.2f}, p {best[2]:.2f}"
                      + ("; not significant at 0.05" if best[2] >= 0.05 else "") + ")."]
    return lines + [""]


def _sweep_section(results: list[dict], cfg: StudyConfig) -> list[str]:
    bc = {r["seed"]: r for r in results if r["study"] == "bc"}
    rows = [r for r in results if r["study"] == "sweep"]
    order = [setting_name(s) for s in settings()]
    order = [n for n in order if any(r["name"] == n for r in rows)]
    chosen = choose_setting(rows, order)
    default = order[0]
    lines = ["##### b. RL sweep from one BC checkpoint per seed", "",
             f"Every setting RL was given ({len(order)}; reward `pass` = 0/1, `graded` = the "
             f"sampled ranking's NDCG@10; default lr {DEFAULTS.rl_lr:g}, KL coefficient "
             f"{DEFAULTS.kl_coef:g}, {cfg_rl_steps(cfg)} steps, group size "
             f"{QUICK['group_size'] if cfg.quick else DEFAULTS.group_size}); validation picks "
             "the setting, test is read only after:", "",
             "| setting | validation NDCG@10 | test NDCG@10 | test pass rate | RL start kept "
             "(seeds) |", "|---|---|---|---|---|",
             f"| BC alone | {_cell([r['val_ndcg@10'] for r in bc.values()])} | "
             f"{_cell([r['ndcg@10'] for r in bc.values()])} | "
             f"{_cell([r['pass_rate'] for r in bc.values()])} | |"]
    for name in order:
        rs = [r for r in rows if r["name"] == name]
        mark = " (chosen)" if name == chosen else ""
        mark += " (default)" if name == default else ""
        lines.append(f"| {name}{mark} | {_cell([r['val_ndcg@10'] for r in rs])} | "
                     f"{_cell([r['ndcg@10'] for r in rs])} | "
                     f"{_cell([r['pass_rate'] for r in rs])} | "
                     f"{sum(r['rl_kept'] == 'rl_start' for r in rs)}/{len(rs)} |")
    lines += ["", "| comparison (paired over seeds, test) | NDCG@10 | pass rate |",
              "|---|---|---|"]
    for label, name in (("chosen on validation", chosen), ("default", default)):
        rs = {r["seed"]: r for r in rows if r["name"] == name}
        nd = [rs[s]["ndcg@10"] - bc[s]["ndcg@10"] for s in rs if s in bc]
        pr = [rs[s]["pass_rate"] - bc[s]["pass_rate"] for s in rs if s in bc]
        lines.append(f"| RL ({label}: {name}) beats BC alone | {_claim(nd)} | "
                     f"{_cell(pr, sign=True)} |")
    bc_spread = [r["ndcg@10"] for r in bc.values()]
    nd = [r["ndcg@10"] - bc[r["seed"]]["ndcg@10"] for r in rows if r["name"] == chosen]
    beats = verdict(nd, NDCG_EFFECT) == "confirmed"
    lines += ["", f"Verdict: {'an' if beats else 'no'} RL setting beats BC alone on test beyond "
              f"seed noise (chosen on validation: {chosen}; test NDCG@10 difference "
              f"{_cell(nd, sign=True)}; BC alone ranges {_f(min(bc_spread))}.."
              f"{_f(max(bc_spread))} over seeds). Read on test for every setting (not a "
              f"selection: {len(order)} comparisons, some pass by chance): "
              f"{sum(_confirmed(rows, bc, n) for n in order)} of {len(order)} settings beat BC "
              "alone by the verdict's rule.", "",
              "Per seed (BC alone, the default and the chosen setting):", "",
              "| seed | arm | validation NDCG@10 | test NDCG@10 | test pass rate |",
              "|---|---|---|---|---|"]
    for seed in sorted(bc):
        lines.append(seed_line(bc[seed], "BC alone"))
        for label, name in (("default", default), ("chosen", chosen)):
            if label == "chosen" and chosen == default:
                continue
            row = next(r for r in rows if r["name"] == name and r["seed"] == seed)
            lines.append(seed_line(row, f"{label}: {name}"))
    return lines


def _confirmed(rows: list[dict], bc: dict, name: str) -> bool:
    """Whether setting `name` beats BC alone on test by the verdict's rule (paired by seed)."""
    rs = [r for r in rows if r["name"] == name and r["seed"] in bc]
    return verdict([r["ndcg@10"] - bc[r["seed"]]["ndcg@10"] for r in rs],
                   NDCG_EFFECT) == "confirmed"


def cfg_rl_steps(cfg: StudyConfig) -> int:
    return QUICK["rl_steps"] if cfg.quick else DEFAULTS.rl_steps


# ---------------------------------------------------------------------------------------------

def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m trainers.studies", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_arguments(parser)  # as trainers.experiment takes them
    parser.add_argument("--tau", type=float, default=0.7,
                        help="reward threshold: the curriculum's reward is ndcg@10>=TAU "
                             "(default: 0.7)")
    parser.add_argument("--seeds", type=_ints, default=(0, 1, 2),
                        help="seeds of build and training (default: 0,1,2)")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny budgets for tests ({QUICK}); the same designs (default: off)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default: 1; the models are small)")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"output folder, replaced at the end (default: {DEFAULT_OUT})")
    parser.add_argument("--cell", choices=("all", "default"), default="all",
                        help="all: both studies; default: only BC and the sweep's default RL "
                             "setting (a drift check) (default: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if not args.seeds:
        print("error: --seeds needs at least one value", file=sys.stderr)
        return 2
    if not 0.0 <= args.tau <= 1.0:
        print(f"error: --tau must lie in [0, 1], got {args.tau}", file=sys.stderr)
        return 2
    cfg = StudyConfig(input=args.input, eval_input=args.eval_input, out=args.out,
                      input_format=args.input_format, eval_format=args.eval_format,
                      tau=args.tau, seeds=args.seeds, quick=args.quick, cell=args.cell,
                      synthetic=args.synthetic, synthetic_queries=args.synthetic_queries)
    return run_report_command(lambda: run_studies(cfg), threads=args.threads,
                              files="studies.md, results.jsonl, timings.jsonl", quick=cfg.quick,
                              summary="studies.md")


if __name__ == "__main__":
    sys.exit(main())
