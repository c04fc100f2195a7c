"""The experiment's report: claims.md (each claim's verdict and margin over seeds, measured on the
fixed query sets) and the figures, from the arms' result rows (`trainers.experiment`)."""
from __future__ import annotations

import os

import numpy as np

ARMS = ("bc", "bc_rl", "bc_rl_shuffled", "bc_rl_nofilter", "rl", "rl_nofilter", "bc_oor",
        "bc_oor_rl")
EQUAL_COMPUTE = {"bc_rl_nofilter_eq": "bc_rl", "rl_nofilter_eq": "rl"}  # unfiltered: filtered
RL_ARMS = ("bc_rl", "bc_rl_shuffled", "bc_rl_nofilter", "rl", "rl_nofilter", "bc_oor_rl")
IDEAL_WORDS = {"window": "normalised by the candidates' own ideal ranking",
               "qrels": "normalised by every judged document's ideal, as trec_eval's ndcg_cut"}
SMOKE_LINE = ("**SMOKE RUN (--quick): not evidence.** Tiny budgets that show the experiment runs "
              "end to end; no verdict below supports or refutes a claim. Quote only runs without "
              "--quick.")
NDCG_EFFECT = 0.005  # smallest mean NDCG@10 difference a claim counts as an effect
FRACTION_EFFECT = 0.02  # smallest mean informative-fraction difference counted


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



def claims_markdown(results: list[dict], refs: list[dict], timings: list[dict], cfg,
                    equal: list[dict] | None = None) -> str:
    """claims.md: the measured table, each claim with its verdict and margin over seeds.

    Args:
      results: the arms' result rows (`trainers.experiment.result_row`).
      refs: the reference rows (LambdaMART, best feature, random).
      timings: the timing rows (seconds vary with load; only the compute-promise table uses them).
      cfg: the experiment's `ExperimentConfig` (taus, seeds, inputs, quick).
      equal: the equal-compute rows (`trainers.experiment.equal_compute_row`), or None.
    """
    taus = list(cfg.taus)
    lines = (_header(results, cfg) + _ndcg_table(results, refs, taus)
             + _claims_table(results, taus, cfg.quick) + _legibility(results, taus)
             + _side_observations(results, taus) + _compute_promise(results, timings, taus)
             + (_equal_compute(equal, taus, cfg.quick) if equal else [])
             + _learning_curves(results, taus))
    return "\n".join(line for line in lines if line is not None)


def command_line(cfg) -> str:
    """The experiment's command as the report names it (inputs by their file names)."""
    if cfg.synthetic:
        inputs = f"--synthetic {cfg.synthetic} --synthetic-queries {cfg.synthetic_queries}"
    else:
        inputs = (f"--input {os.path.basename(cfg.input)} --eval-input "
                  f"{os.path.basename(cfg.eval_input)}")
        for flag in ("candidates", "qrels", "teacher_run", "eval_candidates", "eval_qrels"):
            if getattr(cfg, flag, ""):
                inputs += f" --{flag.replace('_', '-')} {os.path.basename(getattr(cfg, flag))}"
        if getattr(cfg, "candidate_depth", 0):
            inputs += f" --candidate-depth {cfg.candidate_depth}"
    return (f"python -m trainers.experiment {inputs} --taus "
            f"{','.join(f'{t:g}' for t in cfg.taus)} --seeds {','.join(map(str, cfg.seeds))}"
            f"{' --quick' if cfg.quick else ''}")


def _header(results: list[dict], cfg) -> list[str]:
    """The title, how the file was made, the sets, the verdicts' rule, the table's header."""
    taus = list(cfg.taus)
    seeds = ", ".join(str(s) for s in cfg.seeds)
    first = results[0]
    eval_desc = first["sets"]["eval"]
    sample_desc = first["sets"]["train_sample"]
    ideal = first.get("ideal", "window")
    return [
        "# Claims, measured on fixed query sets" + (" (SMOKE RUN: not evidence)" if cfg.quick
                                                    else ""),
        "",
        *([SMOKE_LINE, ""] if cfg.quick else []),
        f"Generated by `{command_line(cfg)}`.",
        f"Test NDCG@10 (ideal={ideal}: {IDEAL_WORDS.get(ideal, ideal)}): "
        f"{eval_desc.get('description')}, {eval_desc.get('queries')} queries. "
        f"Training sample: {sample_desc['description']}, {sample_desc['queries']} queries. "
        f"Seeds {seeds}; each cell is the mean over seeds (min..max).",
        "Verdicts: `confirmed` = every seed's paired difference has the claimed sign and the mean "
        f"is at least {NDCG_EFFECT} NDCG@10 ({FRACTION_EFFECT} for fractions); `contradicted` = "
        "every seed's has the opposite sign, as large; otherwise `not reproduced`.",
        "",
        f"## Test NDCG@10 (ideal={ideal})" + (" (smoke run)" if cfg.quick else ""),
        "",
        "| arm | " + " | ".join(f"tau {t:g}" for t in taus) + " |",
        "|---|" + "---|" * len(taus),
    ]


def _cell(values, digits: int = 3) -> str:
    """Mean over seeds (min..max), or n/a."""
    v = np.asarray(values, float)
    return (f"{v.mean():.{digits}f} ({v.min():.{digits}f}..{v.max():.{digits}f})" if len(v)
            else "n/a")


def _ndcg_table(results: list[dict], refs: list[dict], taus: list[float]) -> list[str]:
    """Test NDCG@10 rows: the untrained policy, every arm, the references."""
    untrained = [_cell([r["ndcg@10_start"] for r in _by(results, "bc", t).values()])
                 for t in taus]
    lines = ["| untrained | " + " | ".join(untrained) + " |"]
    for arm in ARMS:
        lines.append(f"| {arm} | " + " | ".join(
            _cell([r["ndcg@10"] for r in _by(results, arm, t).values()]) for t in taus) + " |")
    for name in ("lambdamart", "best_feature", "random"):
        rows = [r for r in refs if r["arm"] == name]
        if rows and "missing" in rows[0]:
            lines.append(f"| {name} | {rows[0]['missing']} |" + " |" * (len(taus) - 1))
        elif rows:
            lines.append(f"| {name} (reference) | {_cell([r['ndcg@10'] for r in rows])} |"
                         + " |" * (len(taus) - 1))
    return lines


def _claim(results: list[dict], taus: list[float], text: str, arm_a: str, arm_b: str, value,
           effect: float, digits: int = 3) -> str:
    """A claim's row: per tau, the verdict on the paired differences arm_a - arm_b over seeds."""
    cells = []
    for t in taus:
        d = paired(results, t, arm_a, arm_b, value)
        if not d:
            cells.append("n/a")
            continue
        cells.append(f"{verdict(d, effect)}: {np.mean(d):+.{digits}f} "
                     f"({min(d):+.{digits}f}..{max(d):+.{digits}f})")
    return f"| {text} | " + " | ".join(cells) + " |"


def _claims_table(results: list[dict], taus: list[float], smoke: bool = False) -> list[str]:
    """The claims, each with its verdict per tau (a smoke run's marked as such, every row)."""
    lines = ["", "## Claims" + (" (SMOKE RUN: not evidence)" if smoke else ""), "",
             *([SMOKE_LINE, ""] if smoke else []),
             "| claim | " + " | ".join(f"tau {t:g}" for t in taus) + " |",
             "|---|" + "---|" * len(taus)]
    lines.append(_claim(results, taus, "BC then RL beats BC alone (NDCG@10)", "bc_rl", "bc", ndcg,
                        NDCG_EFFECT))
    lines.append(_claim(results, taus, "BC then RL beats RL alone (NDCG@10)", "bc_rl", "rl", ndcg,
                        NDCG_EFFECT))
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
    for text, arm_a, arm_b in (
            ("Filtering too-hard queries out of RL helps, BC identical (NDCG@10)", "bc_rl",
             "bc_rl_nofilter"),
            ("Filtering too-hard queries out of RL helps, RL alone (NDCG@10)", "rl",
             "rl_nofilter"),
            ("Curriculum order beats the same RL rows shuffled (NDCG@10)", "bc_rl",
             "bc_rl_shuffled"),
            ("Imitating every query beats imitating only out-of-RL ones, after RL (NDCG@10)",
             "bc_rl", "bc_oor_rl"),
            ("Imitating every query beats imitating only out-of-RL ones, BC alone (NDCG@10)",
             "bc", "bc_oor")):
        lines.append(_claim(results, taus, text, arm_a, arm_b, ndcg, NDCG_EFFECT))
    if smoke:  # every verdict row says it comes from a smoke run
        first = lines.index("|---|" + "---|" * len(taus)) + 1
        lines[first:] = [line.replace("| ", "| (smoke run) ", 1) for line in lines[first:]]
    return lines


def _legibility(results: list[dict], taus: list[float]) -> list[str]:
    """The policy-selected comparison, then informative fraction and pass rate on fixed sets."""
    lines = [
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
                _cell([r["diagnostics"][set_name][key]["informative_fraction"]
                       for r in _by(results, arm, t).values()]) for t in taus) + " |")
    lines += ["", "Pass rate on the same sets:", "",
              "| set | policy | " + " | ".join(f"tau {t:g}" for t in taus) + " |",
              "|---|---|" + "---|" * len(taus)]
    for set_name in ("eval", "train_sample"):
        for policy, arm, key in (("untrained", "bc", "untrained"), ("bc", "bc", "bc"),
                                 ("bc_rl final", "bc_rl", "rl")):
            lines.append(f"| {set_name} | {policy} | " + " | ".join(
                _cell([r["diagnostics"][set_name][key]["pass_rate"]
                       for r in _by(results, arm, t).values()]) for t in taus) + " |")
    return lines


def _side_observations(results: list[dict], taus: list[float]) -> list[str]:
    """Entropy and diversity before and after RL, RL's update sparsity, BC's tie order."""
    lines = ["", "## Side observations (same runs)", "",
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
    return lines


def _compute_promise(results: list[dict], timings: list[dict], taus: list[float]) -> list[str]:
    """Rollouts (and seconds) to reach the lower of two arms' best, with and without the filter."""
    lines = ["", "## Filtering's compute promise", "",
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
    return lines


def equal_pairs(equal: list[dict], arm: str, tau: float) -> list[tuple[dict, dict]]:
    """(filtered, unfiltered) rows of one equal-compute pair at `tau`, per seed, seed order."""
    partner = EQUAL_COMPUTE[arm]
    side = {name: {r["seed"]: r for r in equal if r["arm"] == name and r["tau"] == tau}
            for name in (partner, arm)}
    return [(side[partner][s], side[arm][s]) for s in sorted(side[partner]) if s in side[arm]]


def gain_per_1000(row: dict) -> float:
    """Test NDCG@10 gained during RL per 1,000 rollouts spent (end of RL minus its start)."""
    return 1000.0 * (row["ndcg@10_rl_end"] - row["ndcg@10_rl_start"]) / max(row["rollouts"], 1)


EQUAL_CLAIMS = (
    ("At equal RL rollouts, the filtered curriculum reaches a higher test NDCG@10",
     lambda r: r["ndcg@10_rl_end"], NDCG_EFFECT),
    ("At equal RL rollouts, the filtered curriculum has more groups with a non-zero advantage",
     lambda r: r["informative_fraction"], FRACTION_EFFECT),
)


def _equal_compute(equal: list[dict], taus: list[float], smoke: bool = False) -> list[str]:
    """The equal-compute control: filtered vs unfiltered curriculum at the same RL rollouts."""
    mark = "(smoke run) " if smoke else ""
    lines = ["", "## Equal compute: filtered vs unfiltered curriculum at the same RL rollouts", "",
             "The unfiltered arm (`*_nofilter_eq`, too_hard queries in RL) gets the rollouts its "
             "filtered partner spent as its budget (`--rl-rollouts`, spent to within G-1 "
             "rollouts per stage). Test NDCG@10 at the end of RL (before model selection), "
             "its gain over RL's start per 1,000 rollouts, and the fraction of RL groups with a "
             "non-zero advantage (every RL step's groups); mean over seeds (min..max). The same "
             "rollouts need not be the same optimizer steps: a stage smaller than a batch "
             "makes smaller, more numerous steps.", "",
             "| pair | tau | rollouts | RL steps | test NDCG@10 reached | gain per 1,000 rollouts "
             "| groups with a non-zero advantage |", "|---|---|---|---|---|---|---|"]
    for arm, partner in EQUAL_COMPUTE.items():
        for t in taus:
            pairs = equal_pairs(equal, arm, t)
            if not pairs:
                continue
            for side, name in ((0, partner), (1, arm)):
                rows = [p[side] for p in pairs]
                lines.append(
                    f"| {mark}{name} | {t:g} | {_cell0([r['rollouts'] for r in rows])} | "
                    f"{_cell0([r['rl_steps'] for r in rows])} | "
                    f"{_cell([r['ndcg@10_rl_end'] for r in rows])} | "
                    f"{_cell([gain_per_1000(r) for r in rows], 4)} | "
                    f"{_cell([r['informative_fraction'] for r in rows])} |")
    lines += ["", "| claim (filtered minus unfiltered, paired by seed) | "
              + " | ".join(f"tau {t:g}" for t in taus) + " |", "|---|" + "---|" * len(taus)]
    for arm, partner in EQUAL_COMPUTE.items():
        start = "from BC" if partner == "bc_rl" else "RL alone"
        for text, value, effect in EQUAL_CLAIMS:
            cells = []
            for t in taus:
                d = [value(a) - value(b) for a, b in equal_pairs(equal, arm, t)
                     if value(a) is not None and value(b) is not None]
                cells.append(f"{verdict(d, effect)}: {np.mean(d):+.3f} "
                             f"({min(d):+.3f}..{max(d):+.3f})" if d else "n/a")
            lines.append(f"| {mark}{text} ({start}: {partner} vs {arm}) | "
                         + " | ".join(cells) + " |")
    return lines


def _cell0(values) -> str:
    """Mean over seeds (min..max) of counts, no decimals."""
    v = np.asarray(values, float)
    return f"{v.mean():.0f} ({v.min():.0f}..{v.max():.0f})" if len(v) else "n/a"


def _learning_curves(results: list[dict], taus: list[float]) -> list[str]:
    """Test NDCG@10 against RL rollouts, per tau and RL arm."""
    lines = ["", "## Learning curves (test NDCG@10 vs RL rollouts, mean over seeds)", ""]
    for t in taus:
        for arm in RL_ARMS:
            pts = curve_mean(results, arm, t)
            lines.append(f"- tau {t:g}, {arm}: " + ", ".join(f"{x:.0f}: {y:.3f}" for x, y in pts))
    lines += ["", "Figures: `ndcg_vs_rollouts.png`, `legibility.png`. Raw results: "
              "`results.jsonl`.", ""]
    return lines


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


def figures(results: list[dict], refs: list[dict], cfg, work: str) -> None:
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
    _smoke_title(fig, cfg)
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
    _smoke_title(fig, cfg)
    fig.tight_layout()
    fig.savefig(os.path.join(work, "legibility.png"), dpi=100)
    plt.close(fig)



def _smoke_title(fig, cfg) -> None:
    """A --quick run's figures say in their title that they are a smoke run, not evidence."""
    if cfg.quick:
        fig.suptitle("SMOKE RUN (--quick): not evidence", color="red")


def text_summary_markdown(results: list[dict], refs: list[dict], cfg,
                          equal: list[dict] | None = None) -> str:
    """text_summary.md: the text run's claims in brief (for the README's "Text rerankers"): per
    tau, the untrained, BC, BC-then-RL and RL-alone policies' pass rate, informative-group
    fraction and test NDCG@10 on the fixed test set; the references; how often model selection
    kept RL; the claims' verdicts and the equal-compute control (same rules as claims.md)."""
    taus = list(cfg.taus)
    first = results[0]
    ev, sample = first["sets"]["eval"], first["sets"]["train_sample"]
    smoke = " (SMOKE RUN: not evidence)" if cfg.quick else ""
    lines = [f"#### Claims on text inputs{smoke}", "",
             *([SMOKE_LINE, ""] if cfg.quick else []),
             f"Generated by `{command_line(cfg)}`. Test set: {ev.get('description')}, "
             f"{ev.get('queries')} queries; training sample: {sample['description']}, "
             f"{sample['queries']} queries. Budgets: {first['bc_steps']} BC steps, "
             f"{max(r['rl_steps'] for r in results if r['arm'] == 'rl')} RL steps (the "
             f"trainer's). Each cell: mean over seeds {', '.join(map(str, cfg.seeds))} "
             "(min..max); pass rate and informative fraction from 16 rollouts per test query.",
             "", "| tau | policy | pass rate | informative fraction | test NDCG@10 |",
             "|---|---|---|---|---|"]
    for t in taus:
        for label, arm, key in (("untrained", "bc", "untrained"), ("bc", "bc", "bc"),
                                ("bc_rl (after model selection)", "bc_rl", "rl"),
                                ("rl alone (after model selection)", "rl", "rl")):
            rows = list(_by(results, arm, t).values())
            ndcg_key = {"untrained": "ndcg@10_start"}.get(key, "ndcg@10")
            lines.append(f"| {t:g} | {label} | "
                         f"{_cell([r['diagnostics']['eval'][key]['pass_rate'] for r in rows])} | "
                         + _cell([r["diagnostics"]["eval"][key]["informative_fraction"]
                                  for r in rows]) + " | "
                         + _cell([r[ndcg_key] for r in rows]) + " |")
    ref_words = []
    for name in ("lambdamart", "best_feature", "random"):
        rows = [r for r in refs if r["arm"] == name and "ndcg@10" in r]
        if rows:
            ref_words.append(f"{name} {_cell([r['ndcg@10'] for r in rows])}")
    kept = [(r["selected_step"] or {}).get("rl", 0) > r["bc_steps"]
            for t in taus for r in _by(results, "bc_rl", t).values()]
    lines += ["", "References on the same test set (test NDCG@10, on the IR features the build "
                  "computes): " + "; ".join(ref_words) + ".",
              f"Model selection (validation NDCG@10) kept an RL checkpoint in {sum(kept)} of "
              f"{len(kept)} bc_rl runs; in the others RL did not beat its start (BC) on "
              "validation."]
    lines += _claims_table(results, taus, cfg.quick)
    if equal:
        lines += _equal_compute(equal, taus, cfg.quick)
    # a subsection of the README's "Text rerankers": claims.md's sections one level down
    return "\n".join("####" + line[2:] if line.startswith("## ") else line
                     for line in lines) + "\n"
