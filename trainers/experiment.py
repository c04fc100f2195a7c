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
from data_contracts.errors import InputError
from data_contracts.manifest import check_replaceable_folder
from difficulty.rewards import ndcg_of_scores
from trainers.train import (TRAINER_FILES, OneLineParser, TrainConfig, read_validated, train,
                            with_relevant)

DEFAULT_OUT = "runs/experiment"
ARMS = ("bc", "bc_rl", "bc_rl_shuffled", "bc_rl_nofilter", "rl", "rl_nofilter", "bc_oor",
        "bc_oor_rl")
RL_ARMS = ("bc_rl", "bc_rl_shuffled", "bc_rl_nofilter", "rl", "rl_nofilter", "bc_oor_rl")
NDCG_EFFECT = 0.005  # smallest mean NDCG@10 difference a claim counts as an effect
FRACTION_EFFECT = 0.02  # smallest mean informative-fraction difference counted
QUICK = {"bc_steps": 12, "rl_steps": 12, "eval_every": 4, "diagnostic_rollouts": 4,
         "train_sample": 40, "group_size": 8}


@dataclasses.dataclass
class ExperimentConfig:
    """The experiment's knobs (see `make_parser` for the flags)."""

    input: str
    eval_input: str
    out: str = DEFAULT_OUT
    input_format: str = "auto"
    taus: tuple = (0.5, 0.7, 0.9)
    seeds: tuple = (0, 1, 2)
    quick: bool = False
    keep_runs: bool = False
    trees: int = 200


# ---------------------------------------------------------------------------------------------
# References.

def references(cfg: ExperimentConfig) -> list[dict]:
    """LambdaMART (per seed), the best single feature chosen on train, random scores (per seed).

    All evaluated on --eval-input's queries with a relevant document, NDCG@10 (linear gain).
    """
    train_t = with_relevant(read_validated(cfg.input, cfg.input_format))
    test_t = with_relevant(read_validated(cfg.eval_input, "auto"))
    tr, te = pad_queries(train_t), pad_queries(test_t)
    if tr.features.shape[-1] != te.features.shape[-1]:
        raise InputError(cfg.eval_input, f"{te.features.shape[-1]} features per document; the "
                                         f"training input has {tr.features.shape[-1]}")
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


def arm_configs(manifests: dict, trained: str, seed: int, eval_input: str, quick: bool) -> dict:
    """{arm: TrainConfig} (the RL-after-BC arms start from the BC arm's bc.pt via --init)."""
    base = dict(QUICK if quick else {}, seed=seed, eval_input=eval_input, progress_seconds=60.0)
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


def result_row(arm: str, tau: float, seed: int, summary: dict) -> dict:
    """The deterministic part of a run's summary (no seconds)."""
    curve = [{k: p[k] for k in ("phase", "phase_step", "rollouts", "ndcg_at_10",
                                "val_ndcg_at_10")} for p in summary["learning_curve"]]
    return {"arm": arm, "tau": tau, "seed": seed,
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
    _check_replaceable(out)
    work = out + ".partial"
    _check_replaceable(work, "the work folder OUT.partial")
    for path, name in ((cfg.input, "--input"), (cfg.eval_input, "--eval-input")):
        if not fs.exists(path):
            raise InputError(path, f"{name} not found")
    if os.path.exists(work):
        fs.delete_tree(work)
    os.makedirs(work)
    try:
        _run(cfg, work)
    except BaseException:
        fs.delete_tree(work)
        raise
    _check_replaceable(out)  # again: files may have been put there while this run ran
    if os.path.exists(out):
        fs.delete_tree(out)
    os.replace(work, out)
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
                                         cfg.quick).items():
                t0 = time.monotonic()
                summary = train(tcfg)
                seconds = time.monotonic() - t0
                results.append(result_row(arm, tau, seed, summary))
                timings.append({"what": arm, "tau": tau, "seed": seed,
                                "seconds": round(seconds, 2),
                                "curve_seconds": [p["seconds"] for p in
                                                  summary["learning_curve"]]})
                done += 1
                print(f"[{done}/{total}] tau {tau:g} seed {seed} {arm}: test NDCG@10 "
                      f"{summary['ndcg@10'].get('rl'):.4f} ({seconds:.1f} s, "
                      f"{time.monotonic() - started:.0f} s in all)", file=sys.stderr, flush=True)
            if not cfg.keep_runs:
                fs.delete_tree(os.path.join(work, "runs", tag))
    if not cfg.keep_runs and os.path.exists(os.path.join(work, "runs")):
        fs.delete_tree(os.path.join(work, "runs"))
    with open(os.path.join(work, "results.jsonl"), "w", encoding="utf-8") as handle:
        for row in refs + results:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
    with open(os.path.join(work, "timings.jsonl"), "w", encoding="utf-8") as handle:
        for row in timings:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
    figures(results, refs, cfg, work)
    with open(os.path.join(work, "claims.md"), "w", encoding="utf-8") as handle:
        handle.write(claims_markdown(results, refs, timings, cfg))


# ---------------------------------------------------------------------------------------------
# Claims.

def _by(results: list[dict], arm: str, tau: float) -> dict:
    return {r["seed"]: r for r in results if r["arm"] == arm and r["tau"] == tau}


def verdict(diffs: list[float], effect: float) -> str:
    """`confirmed` when every seed's difference is positive and the mean is at least `effect`;
    `contradicted` when every seed's is negative and the mean at most -`effect`; else
    `not reproduced`."""
    d = np.asarray(diffs, float)
    if len(d) and (d > 0).all() and d.mean() >= effect:
        return "confirmed"
    if len(d) and (d < 0).all() and d.mean() <= -effect:
        return "contradicted"
    return "not reproduced"


def paired(results, tau, arm_a, arm_b, value) -> list[float]:
    a, b = _by(results, arm_a, tau), _by(results, arm_b, tau)
    return [value(a[s]) - value(b[s]) for s in sorted(a) if s in b]


def ndcg(r):
    return r["ndcg@10"]


def informative(set_name: str, policy: str):
    return lambda r: r["diagnostics"][set_name][policy]["informative_fraction"]


def rollouts_to_reach(curve: list[dict], target: float) -> int | None:
    """RL rollouts spent when the test NDCG@10 first reaches `target` (None: never)."""
    for p in curve:
        if p["phase"] == "rl" and p["ndcg_at_10"] is not None and p["ndcg_at_10"] >= target - 1e-12:
            return p["rollouts"]
    return None


def seconds_at(timings, arm, tau, seed, curve, rollouts) -> float | None:
    for t in timings:
        if t["what"] == arm and t["tau"] == tau and t["seed"] == seed:
            for p, s in zip(curve, t["curve_seconds"]):
                if p["phase"] == "rl" and p["rollouts"] == rollouts:
                    return s
    return None


def claims_markdown(results: list[dict], refs: list[dict], timings: list[dict],
                    cfg: ExperimentConfig) -> str:
    """claims.md: the measured table, each claim with its verdict and margin over seeds."""
    taus = list(cfg.taus)
    seeds = ", ".join(str(s) for s in cfg.seeds)
    first = results[0]
    eval_desc = first["sets"]["eval"]
    sample_desc = first["sets"]["train_sample"]
    lines = [
        "# Claims, measured on fixed query sets",
        "",
        f"Generated by `python -m trainers.experiment --input {os.path.basename(cfg.input)} "
        f"--eval-input {os.path.basename(cfg.eval_input)} --taus "
        f"{','.join(f'{t:g}' for t in taus)} --seeds {','.join(map(str, cfg.seeds))}"
        f"{' --quick' if cfg.quick else ''}`.",
        f"Test NDCG@10: {eval_desc.get('description')}, {eval_desc.get('queries')} queries. "
        f"Training sample: {sample_desc['description']}, {sample_desc['queries']} queries. "
        f"Seeds {seeds}; each cell is the mean over seeds (min..max).",
        "Verdicts: `confirmed` = every seed's paired difference has the claimed sign and the mean "
        f"is at least {NDCG_EFFECT} NDCG@10 ({FRACTION_EFFECT} for fractions); `contradicted` = "
        "every seed's has the opposite sign, as large; otherwise `not reproduced`.",
        "",
        "## Test NDCG@10",
        "",
        "| arm | " + " | ".join(f"tau {t:g}" for t in taus) + " |",
        "|---|" + "---|" * len(taus),
    ]

    def cell(values):
        v = np.asarray(values, float)
        return f"{v.mean():.3f} ({v.min():.3f}..{v.max():.3f})" if len(v) else "n/a"

    untrained = [cell([r["ndcg@10_start"] for r in _by(results, "bc", t).values()]) for t in taus]
    lines.append("| untrained | " + " | ".join(untrained) + " |")
    for arm in ARMS:
        lines.append(f"| {arm} | " + " | ".join(
            cell([r["ndcg@10"] for r in _by(results, arm, t).values()]) for t in taus) + " |")
    for name in ("lambdamart", "best_feature", "random"):
        rows = [r for r in refs if r["arm"] == name]
        if rows and "missing" in rows[0]:
            lines.append(f"| {name} | {rows[0]['missing']} |" + " |" * (len(taus) - 1))
        elif rows:
            lines.append(f"| {name} (reference) | {cell([r['ndcg@10'] for r in rows])} |"
                         + " |" * (len(taus) - 1))
    lines += ["", "## Claims", "", "| claim | " + " | ".join(f"tau {t:g}" for t in taus) + " |",
              "|---|" + "---|" * len(taus)]

    def claim(text, arm_a, arm_b, value, effect, digits=3):
        cells = []
        for t in taus:
            d = paired(results, t, arm_a, arm_b, value)
            if not d:
                cells.append("n/a")
                continue
            cells.append(f"{verdict(d, effect)}: {np.mean(d):+.{digits}f} "
                         f"({min(d):+.{digits}f}..{max(d):+.{digits}f})")
        lines.append(f"| {text} | " + " | ".join(cells) + " |")

    claim("BC then RL beats BC alone (NDCG@10)", "bc_rl", "bc", ndcg, NDCG_EFFECT)
    claim("BC then RL beats RL alone (NDCG@10)", "bc_rl", "rl", ndcg, NDCG_EFFECT)
    for set_name, label in (("eval", "test queries"), ("train_sample", "training sample")):
        cells = []
        for t in taus:
            rows = _by(results, "bc", t)
            d = [informative(set_name, "bc")(r) - informative(set_name, "untrained")(r)
                 for r in rows.values()]
            cells.append(f"{verdict(d, FRACTION_EFFECT)}: {np.mean(d):+.3f} "
                         f"({min(d):+.3f}..{max(d):+.3f})" if d else "n/a")
        lines.append(f"| BC raises the informative-group fraction ({label}, fixed) | "
                     + " | ".join(cells) + " |")
    claim("Filtering too-hard queries out of RL helps, BC identical (NDCG@10)", "bc_rl",
          "bc_rl_nofilter", ndcg, NDCG_EFFECT)
    claim("Filtering too-hard queries out of RL helps, RL alone (NDCG@10)", "rl", "rl_nofilter",
          ndcg, NDCG_EFFECT)
    claim("Curriculum order beats the same RL rows shuffled (NDCG@10)", "bc_rl",
          "bc_rl_shuffled", ndcg, NDCG_EFFECT)
    claim("Imitating every query beats imitating only out-of-RL ones, after RL (NDCG@10)",
          "bc_rl", "bc_oor_rl", ndcg, NDCG_EFFECT)
    claim("Imitating every query beats imitating only out-of-RL ones, BC alone (NDCG@10)",
          "bc", "bc_oor", ndcg, NDCG_EFFECT)
    lines += [
        "",
        "Policy-selected numbers, for comparison only (the RL queries, which the scoring policy "
        "routed to RL): informative fraction untrained -> BC -> final, bc_rl arm: " + "; ".join(
            f"tau {t:g}: " + ", ".join(
                f"{np.mean([r['diagnostics']['rl_queries'][p]['informative_fraction'] for r in _by(results, 'bc_rl', t).values()]):.3f}"  # noqa: E501
                for p in ("untrained", "bc", "rl")) for t in taus) + ".",
        "",
        "## Legibility curve: informative-group fraction per tau (fixed sets)",
        "",
        "| set | policy | " + " | ".join(f"tau {t:g}" for t in taus) + " |",
        "|---|---|" + "---|" * len(taus),
    ]
    for set_name in ("eval", "train_sample"):
        for policy, arm in (("untrained", "bc"), ("bc", "bc"), ("bc_rl final", "bc_rl"),
                            ("rl final", "rl")):
            key = "untrained" if policy == "untrained" else ("bc" if policy == "bc" else "rl")
            lines.append(f"| {set_name} | {policy} | " + " | ".join(
                cell([r["diagnostics"][set_name][key]["informative_fraction"]
                      for r in _by(results, arm, t).values()]) for t in taus) + " |")
    lines += ["", "Pass rate on the same sets:", "",
              "| set | policy | " + " | ".join(f"tau {t:g}" for t in taus) + " |",
              "|---|---|" + "---|" * len(taus)]
    for set_name in ("eval", "train_sample"):
        for policy, arm, key in (("untrained", "bc", "untrained"), ("bc", "bc", "bc"),
                                 ("bc_rl final", "bc_rl", "rl")):
            lines.append(f"| {set_name} | {policy} | " + " | ".join(
                cell([r["diagnostics"][set_name][key]["pass_rate"]
                      for r in _by(results, arm, t).values()]) for t in taus) + " |")
    lines += ["", "## Side observations (same runs)", "",
              "Entropy (nats) and ranking diversity (distinct top-10 prefixes of 16 rollouts) on "
              "the test queries, before and after RL:", "",
              "| arm | policy | " + " | ".join(f"tau {t:g} entropy / diversity" for t in taus)
              + " |", "|---|---|" + "---|" * len(taus)]
    for arm in ("bc_rl", "rl"):
        for policy, key in (("start of RL", "bc"), ("after RL", "rl")):
            lines.append(f"| {arm} | {policy} | " + " | ".join(
                "{:.2f} / {:.3f}".format(
                    np.mean([r["diagnostics"]["eval"][key]["entropy"]
                             for r in _by(results, arm, t).values()]),
                    np.mean([r["diagnostics"]["eval"][key]["ranking_diversity"]
                             for r in _by(results, arm, t).values()])) for t in taus) + " |")
    lines += ["", "Fraction of parameters RL changes (|delta| > 1e-6): " + "; ".join(
        f"{arm}: " + ", ".join(f"tau {t:g} {np.mean([r['fraction_changed'] for r in _by(results, arm, t).values()]):.3f}"  # noqa: E501
                               for t in taus) for arm in ("bc_rl", "rl")) + ".",
        "",
        "Within-label-group Spearman of BC scores with file position (training sample; ~0 means "
        "no learned tie order): " + ", ".join(
            f"tau {t:g} {np.mean([r['tie_order_spearman']['bc'] for r in _by(results, 'bc', t).values()]):+.3f}"  # noqa: E501
            for t in taus) + "."]
    lines += ["", "## Filtering's compute promise", "",
              "RL rollouts (and seconds, which vary with machine load) until test NDCG@10 first "
              "reaches the lower of the two arms' best, per seed; mean over seeds where both "
              "reach it:", "",
              "| pair | tau | target NDCG@10 | rollouts with filter | rollouts without | "
              "seconds with | seconds without |", "|---|---|---|---|---|---|---|"]
    for a, b in (("bc_rl", "bc_rl_nofilter"), ("rl", "rl_nofilter")):
        for t in taus:
            ra, rb = _by(results, a, t), _by(results, b, t)
            got = []
            for s in sorted(ra):
                if s not in rb:
                    continue
                ca, cb = ra[s]["learning_curve"], rb[s]["learning_curve"]
                best_a = max((p["ndcg_at_10"] for p in ca if p["phase"] == "rl"), default=None)
                best_b = max((p["ndcg_at_10"] for p in cb if p["phase"] == "rl"), default=None)
                if best_a is None or best_b is None:
                    continue
                target = min(best_a, best_b)
                xa, xb = rollouts_to_reach(ca, target), rollouts_to_reach(cb, target)
                got.append((target, xa, xb, seconds_at(timings, a, t, s, ca, xa),
                            seconds_at(timings, b, t, s, cb, xb)))
            if got:
                g = np.array([[v if v is not None else np.nan for v in row] for row in got])
                lines.append(f"| {a} vs {b} | {t:g} | {np.nanmean(g[:, 0]):.3f} | "
                             f"{np.nanmean(g[:, 1]):.0f} | {np.nanmean(g[:, 2]):.0f} | "
                             f"{np.nanmean(g[:, 3]):.1f} | {np.nanmean(g[:, 4]):.1f} |")
    lines += ["", "## Learning curves (test NDCG@10 vs RL rollouts, mean over seeds)", ""]
    for t in taus:
        for arm in RL_ARMS:
            pts = curve_mean(results, arm, t)
            lines.append(f"- tau {t:g}, {arm}: " + ", ".join(f"{x:.0f}: {y:.3f}" for x, y in pts))
    lines += ["", "Figures: `ndcg_vs_rollouts.png`, `legibility.png`. Raw results: "
              "`results.jsonl`.", ""]
    return "\n".join(line for line in lines if line is not None)


def curve_mean(results, arm, tau) -> list[tuple[float, float]]:
    """(mean rollouts, mean test NDCG@10) per RL evaluation point, over seeds."""
    curves = [[p for p in r["learning_curve"] if p["phase"] == "rl"]
              for r in _by(results, arm, tau).values()]
    curves = [c for c in curves if c]
    if not curves:
        return []
    n = min(len(c) for c in curves)
    return [(float(np.mean([c[i]["rollouts"] for c in curves])),
             float(np.mean([c[i]["ndcg_at_10"] for c in curves]))) for i in range(n)]


def figures(results: list[dict], refs: list[dict], cfg: ExperimentConfig, work: str) -> None:
    """ndcg_vs_rollouts.png (a panel per tau) and legibility.png (a panel per fixed set)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    taus = list(cfg.taus)
    fig, axes = plt.subplots(1, len(taus), figsize=(5 * len(taus), 4), squeeze=False)
    lm = [r["ndcg@10"] for r in refs if r["arm"] == "lambdamart" and "ndcg@10" in r]
    for ax, t in zip(axes[0], taus):
        for arm in RL_ARMS:
            pts = curve_mean(results, arm, t)
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker=".", label=arm)
        bc = [r["ndcg@10"] for r in _by(results, "bc", t).values()]
        if bc:
            ax.axhline(np.mean(bc), color="grey", linestyle="--", label="bc (no RL)")
        if lm:
            ax.axhline(np.mean(lm), color="black", linestyle=":", label="LambdaMART")
        ax.set_title(f"reward ndcg@10>={t:g}")
        ax.set_xlabel("RL rollouts spent")
        ax.set_ylabel("test NDCG@10 (mean over seeds)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(work, "ndcg_vs_rollouts.png"), dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), squeeze=False)
    for ax, set_name in zip(axes[0], ("eval", "train_sample")):
        for policy, arm, key in (("untrained", "bc", "untrained"), ("bc", "bc", "bc"),
                                 ("bc then rl", "bc_rl", "rl"), ("rl alone", "rl", "rl")):
            ys = [np.mean([r["diagnostics"][set_name][key]["informative_fraction"]
                           for r in _by(results, arm, t).values()]) for t in taus]
            ax.plot(taus, ys, marker="o", label=policy)
        ax.set_title(f"informative-group fraction, {set_name} (fixed set)")
        ax.set_xlabel("tau of the reward ndcg@10>=tau")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(work, "legibility.png"), dpi=100)
    plt.close(fig)


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
                           input_format=args.input_format, taus=args.taus, seeds=args.seeds,
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
