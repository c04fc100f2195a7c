"""The LLM arm's report (`llm_claims.md`) from its result rows: per arm the held-out numbers'
mean and spread over seeds, the SFT-depth rows with the pre-RL entropy and pass@k, the sweep, and
the two verdicts with their margins.

Verdicts (on the held-out pass rate, the quantity the reward trains):
- "SFT then RL beats either alone": `sft@converged+grpo` against the better of `grpo` and
  `sft@converged`, per seed; holds when the mean margin is > 0 and every seed's margin is > 0.
- "SFT raises the informative fraction": `sft@converged` against `untrained`, same rule.
- "Filtering helps at equal compute" (the equal-compute control): the filtered side's held-out
  pass rate against the unfiltered side's, per seed, at the same RL rollouts; holds when the mean
  margin is > 0 and every seed's is > 0, contradicted when the mean is < 0 and every seed's is
  < 0, else not reproduced.
"Which pre-RL number predicted the RL outcome": Spearman's rank correlation (ties averaged) over
the SFT-depth checkpoints (every depth at every seed) between each pre-RL number and the pass
rate after GRPO from that checkpoint.
"""
from __future__ import annotations

import numpy as np

from trainers.llm.settings import RL

METRICS = (("pass_rate", "pass rate"), ("informative", "informative"),
           ("malformed", "malformed"), ("ndcg10", "NDCG@10"))
PREDICTORS = ("entropy", "pass_at_k", "pass_rate", "informative", "ndcg10", "val_loss")


def arm_names(depths) -> list[str]:
    """Every arm's name, in the report's order, for the SFT depths [(name, factor)]."""
    return ["untrained", "grpo"] + [a for d, _ in depths for a in (f"sft@{d}", f"sft@{d}+grpo")]


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=np.float64)
    for value in np.unique(values):  # ties get their mean rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x, y) -> float | None:
    """Spearman's rho (Pearson's r of the ranks, ties averaged); None when either side is
    constant or there are fewer than 3 points."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def _chosen_steps(header: dict) -> int:
    """GRPO steps of the chosen setting (its `steps=xF` times the base steps)."""
    return RL.from_name(header["chosen"]).grpo_steps(header["settings"]["grpo_steps"])


def _cell(values: list[float]) -> str:
    values = np.asarray(values, dtype=np.float64)
    spread = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ± {spread:.3f}"


def _by(rows: list[dict]) -> dict:
    arms: dict[str, dict[int, dict]] = {}
    for row in rows:
        if row.get("kind") == "arm":
            arms.setdefault(row["arm"], {})[row["seed"]] = row
    return arms


def _verdict(better: dict, worse: dict, key: str, label: str) -> tuple[str, float]:
    seeds = sorted(set(better) & set(worse))
    margins = [better[s][key] - worse[s][key] for s in seeds]
    if not margins:
        return f"- {label}: not measured", 0.0
    mean = float(np.mean(margins))
    holds = mean > 0 and all(m > 0 for m in margins)
    per_seed = ", ".join(f"{m:+.3f}" for m in margins)
    return (f"- {label}: **{'holds' if holds else 'does not hold'}** (margin {mean:+.3f}; "
            f"per seed {per_seed})"), mean


def verdicts(rows: list[dict]) -> dict:
    """The two verdicts as numbers: {"sft_then_rl_margin", "sft_then_rl_holds",
    "informative_margin", "informative_holds"} (None where an arm is missing)."""
    arms = _by(rows)
    out = {}
    both, sft, rl = (arms.get("sft@converged+grpo", {}), arms.get("sft@converged", {}),
                     arms.get("grpo", {}))
    seeds = sorted(set(both) & set(sft) & set(rl))
    margins = [both[s]["pass_rate"] - max(sft[s]["pass_rate"], rl[s]["pass_rate"])
               for s in seeds]
    out["sft_then_rl_margin"] = float(np.mean(margins)) if margins else None
    out["sft_then_rl_holds"] = bool(margins) and np.mean(margins) > 0 and min(margins) > 0
    untrained = arms.get("untrained", {})
    seeds = sorted(set(sft) & set(untrained))
    margins = [sft[s]["informative"] - untrained[s]["informative"] for s in seeds]
    out["informative_margin"] = float(np.mean(margins)) if margins else None
    out["informative_holds"] = bool(margins) and np.mean(margins) > 0 and min(margins) > 0
    return out


def equal_compute_verdict(rows: list[dict]) -> dict:
    """The equal-compute verdict: {"margins": [filtered - unfiltered held-out pass rate per seed,
    seeds ascending], "margin": their mean (None without a seed measured on both sides),
    "verdict": "holds" | "not reproduced" | "contradicted" | "not measured"}."""
    sides: dict[str, dict[int, dict]] = {}
    for row in rows:
        if row.get("kind") == "equal" and "pass_rate" in row:
            sides.setdefault(row["side"], {})[row["seed"]] = row
    f, u = sides.get("filtered", {}), sides.get("unfiltered", {})
    margins = [f[x]["pass_rate"] - u[x]["pass_rate"] for x in sorted(set(f) & set(u))]
    if not margins:
        return {"margins": [], "margin": None, "verdict": "not measured"}
    mean = float(np.mean(margins))
    verdict = ("holds" if mean > 0 and min(margins) > 0 else
               "contradicted" if mean < 0 and max(margins) < 0 else "not reproduced")
    return {"margins": margins, "margin": mean, "verdict": verdict}


def _equal_section(rows: list[dict], header: dict) -> list[str]:
    equal = [r for r in rows if r.get("kind") == "equal"]
    if not equal:
        return []
    s = header["settings"]
    by_side = {side: sorted((r for r in equal if r["side"] == side), key=lambda r: r["seed"])
               for side in ("filtered", "unfiltered")}
    bands = sorted({b for r in by_side["filtered"] for b in r["bands"]})
    band_text = ", ".join(f"{b} " + _cell([r["bands"].get(b, 0) for r in by_side["filtered"]])
                          for b in bands)
    train = _cell([r["train_sft"]["pass_rate"] for r in by_side["filtered"]])
    lines = ["", "Equal-compute control (GRPO from the converged SFT checkpoint, setting "
                 f"`{header['chosen']}`, the same rollouts per side: steps x {s['prompts_per_step']}"
                 f" prompts x group size {s['k']}). Curricula from the SFT policy's own samples on "
                 f"the training queries ({s['k']} per query, the product's default bands; SFT "
                 f"pass rate there {train}; queries per band: {band_text}); filtered: too_hard "
                 "out of RL, in the export's stage order; unfiltered (`--no-filter-hard`): "
                 "too_hard in RL, TRL's seeded shuffle. Held-out numbers after RL; "
                 "'informative in RL' = 1 - TRL's `frac_reward_zero_std`, mean over steps; "
                 "gain = held-out pass rate after RL minus the SFT checkpoint's, per 1,000 RL "
                 "rollouts. The training queries' measurement "
                 f"({by_side['filtered'][0]['train_sft']['rollouts']} rollouts per seed) is not "
                 "counted in either side's budget.", "",
             "| side | RL prompts | RL rollouts | pass rate | NDCG@10 | informative (held-out) "
             "| informative in RL | gain per 1k rollouts |", "|---|---|---|---|---|---|---|---|"]
    for side, side_rows in by_side.items():
        measured = [r for r in side_rows if "pass_rate" in r]
        prompts = "/".join(str(r["rl_prompts"]) for r in side_rows)
        spent = "/".join(str(r["rl_rollouts"]) for r in side_rows)
        if not measured:
            lines.append(f"| {side} | {prompts} | {spent} | not measured (a side has no RL "
                         "prompt) | | | | |")
            continue
        lines.append(f"| {side} | {prompts} | {spent} | "
                     + " | ".join(_cell([r[k] for r in measured]) for k in
                                  ("pass_rate", "ndcg10", "informative", "informative_groups",
                                   "pass_gain_per_1k")) + " |")
    v = equal_compute_verdict(rows)
    per_seed = ", ".join(f"{m:+.3f}" for m in v["margins"])
    margin = "" if v["margin"] is None else f" (margin {v['margin']:+.3f}; per seed {per_seed})"
    lines += ["", "- Filtering helps at equal compute (filtered vs unfiltered held-out pass "
                  f"rate): **{v['verdict']}**{margin}"]
    return lines


def claims(rows: list[dict]) -> str:
    """The report's markdown (see the module docstring)."""
    header = next(r for r in rows if r.get("kind") == "settings")
    s = header["settings"]
    arms = _by(rows)
    seeds = sorted({row["seed"] for a in arms.values() for row in a.values()})
    task = s["task"]
    lines = [f"Task: synthetic text set, {task['train_queries']} training queries, "
             f"{task['heldout_queries']} held-out queries (split `heldout`), top "
             f"{task['depth']} candidates, passages cut to {task['passage_words']} words. "
             f"Policy: Llama, {s['layers']} layers, width {s['hidden']}, word-level tokenizer "
             f"trained on the export's text. Reward: `{header['reward']}` (pass at tau = "
             f"{header['tau']:g}). Held-out measurement: k = {s['k']} samples per query at "
             f"temperature 1, max {s['max_tokens']} tokens, scored by the build. Seeds: "
             f"{', '.join(map(str, seeds))} (mean ± sample std over seeds). GRPO: TRL "
             f"GRPOTrainer, group size {s['k']}, {_chosen_steps(header)} steps x "
             f"{s['prompts_per_step']} prompts, setting `{header['chosen']}`. SFT: TRL "
             f"SFTTrainer, lr {s['sft_lr']:g}, batch {s['sft_batch']}.", "",
             "| arm | pass rate | informative | malformed | NDCG@10 |",
             "|---|---|---|---|---|"]
    for arm in arm_names(s["depths"]):
        if arm in arms:
            cells = [_cell([arms[arm][x][k] for x in sorted(arms[arm])]) for k, _ in METRICS]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += ["", "SFT depth (before RL: entropy in nats per token, pass@k with k = the group "
                  "size; after RL: the pass rate after GRPO from that checkpoint):", "",
              "| depth | SFT steps | entropy | pass@k | pass rate | informative | "
              "pass rate after GRPO |", "|---|---|---|---|---|---|---|"]
    points = {p: [] for p in PREDICTORS}
    outcome = []
    for depth, _ in s["depths"]:
        before, after = arms.get(f"sft@{depth}", {}), arms.get(f"sft@{depth}+grpo", {})
        if not before:
            continue
        seeds_d = sorted(set(before) & set(after))
        steps = "/".join(str(before[x]["sft_steps"]) for x in seeds_d)
        lines.append(f"| {depth} | {steps} | "
                     + " | ".join(_cell([before[x][k] for x in seeds_d])
                                  for k in ("entropy", "pass_at_k", "pass_rate", "informative"))
                     + f" | {_cell([after[x]['pass_rate'] for x in seeds_d])} |")
        for x in seeds_d:
            for p in PREDICTORS:
                points[p].append(before[x][p])
            outcome.append(after[x]["pass_rate"])
    rho = {p: spearman(points[p], outcome) for p in PREDICTORS}
    known = {p: r for p, r in rho.items() if r is not None}
    lines += ["", "Spearman's rho, pre-RL number vs pass rate after GRPO, over "
                  f"{len(outcome)} checkpoints (depth x seed): "
              + ", ".join(f"{p} {'n/a' if r is None else f'{r:+.2f}'}" for p, r in rho.items())
              + (f". Strongest: {max(known, key=lambda p: abs(known[p]))}." if known else "."),
              "", "Verdicts (held-out, per seed):"]
    v1, _ = _verdict(arms.get("sft@converged+grpo", {}),
                     {x: {"pass_rate": max(arms["sft@converged"][x]["pass_rate"],
                                           arms["grpo"][x]["pass_rate"])}
                      for x in arms.get("sft@converged", {}) if x in arms.get("grpo", {})},
                     "pass_rate", "SFT then RL beats either alone (pass rate vs the better of "
                                  "SFT alone and GRPO alone)")
    v2, _ = _verdict(arms.get("sft@converged", {}), arms.get("untrained", {}), "informative",
                     "SFT raises the informative fraction (SFT vs the untrained model)")
    lines += [v1, v2, "", "The same verdicts at each SFT depth:"]
    for depth, _ in s["depths"]:
        sft, both = arms.get(f"sft@{depth}", {}), arms.get(f"sft@{depth}+grpo", {})
        alone = {x: {"pass_rate": max(sft[x]["pass_rate"], arms["grpo"][x]["pass_rate"])}
                 for x in sft if x in arms.get("grpo", {})}
        lines.append(_verdict(both, alone, "pass_rate", f"{depth}: SFT then RL beats either "
                                                        "alone")[0])
        lines.append(_verdict(sft, arms.get("untrained", {}), "informative",
                              f"{depth}: SFT raises the informative fraction")[0])
        lines.append(_verdict(both, sft, "informative",
                              f"{depth}: RL raises the informative fraction further")[0])
    lines += _equal_section(rows, header)
    sweep = [r for r in rows if r.get("kind") == "sweep"]
    if sweep:
        seeds = sorted({r["seed"] for r in sweep})
        lines += ["", f"RL sweep (seeds {', '.join(map(str, seeds))}: GRPO from each seed's "
                      "converged SFT checkpoint; chosen on the mean validation pass rate; "
                      "mean ± sample std over seeds):", "",
                  "| setting | validation pass rate | train reward | zero-std groups |",
                  "|---|---|---|---|"]
        chosen = header.get("chosen")
        for name in dict.fromkeys(r["setting"] for r in sweep):
            mine = [r for r in sweep if r["setting"] == name]
            label = f"{name} (chosen)" if name == chosen else name
            lines.append(f"| {label} | {_cell([r['val_pass_rate'] for r in mine])} | "
                         f"{_cell([r['grpo']['reward'] for r in mine])} | "
                         f"{_cell([r['grpo']['frac_reward_zero_std'] for r in mine])} |")
    return "\n".join(lines) + "\n"
