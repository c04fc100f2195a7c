"""The LLM arm's experiment: arms, SFT depth, the RL sweep, the verdicts and the report.

Per seed (the model's initial weights, SFT's and GRPO's shuffling and sampling, the requests'
seeds), on the same held-out queries:

- `untrained`: the fresh model, measured (what GRPO from scratch starts from).
- `grpo`: GRPO from the fresh model.
- `sft@under`, `sft@converged`, `sft@over`: one SFT run, its weights at 1/4, 1 and 4 times the
  steps to convergence on validation (`phases.converged_step`); `sft@converged` is "SFT alone".
- `sft@under+grpo`, `sft@converged+grpo`, `sft@over+grpo`: GRPO from each of those checkpoints.

The equal-compute control (arm name `equal-compute`), per seed from the converged SFT
checkpoint: the SFT policy's pass rates on the training queries (k samples per query, the
README's LLM loop step 6: `measure.measure_training`) decide two curricula of the same samples,
filtered (too_hard out of RL, the export's stage order) and unfiltered (`--no-filter-hard`: too_hard
in RL; TRL's seeded shuffle, a plain GRPO run's draw, since in stage order the too_hard queries
come last and an equal budget smaller than the set would never reach them); GRPO on each with the
chosen setting and the same budget (`equal_compute_budget`), each measured on the held-out queries.

The RL sweep, fixed in advance: one factor at a time around the base setting (learning rate x1/3
and x3; KL beta 0.04 against TRL's default 0; the graded NDCG reward against pass at tau; 4x the
GRPO steps), GRPO from every seed's converged SFT checkpoint, chosen by the mean over seeds of the
validation pass rate (`val.parquet`, the training run's held-out-of-training queries; never the
held-out test queries; ties go to the earlier setting in the fixed order, the base first); every
arm's GRPO then runs with the chosen setting at every seed (the equal-compute control with the
chosen setting's steps). One factor at a time, not the full factorial the feature trainer's study
runs (trainers.studies): 6 settings x 3 seeds fit the CPU minutes, 24 x 3 would not.

Outputs (in OUT, built in OUT.partial and renamed at the end): `results.jsonl` (one row per seed
and arm, plus the sweep's rows; deterministic for the same settings), `llm_claims.md` (the tables
and verdicts), `timings.jsonl` (seconds per phase; not deterministic) and `commands.log` (every
product command run, with its output).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from trainers.llm import measure as M
from trainers.llm import phases
from trainers.llm.policy import build_model, set_determinism, train_tokenizer
from trainers.llm.report import arm_names, claims
from trainers.llm.settings import RL

METRICS = ("pass_rate", "informative", "malformed", "ndcg10")
DEPTHS = (("under", 0.25), ("converged", 1.0), ("over", 4.0))
EQUAL = "equal-compute"
__all__ = ["EQUAL", "RL", "Settings", "arm_names", "equal_compute_budget", "run_experiment",
           "sweep_settings"]


@dataclass(frozen=True)
class Settings:
    """Every size of the experiment (the full run's defaults; `quick()` shrinks them)."""

    task: M.Task = field(default_factory=M.Task)
    seeds: tuple = (0, 1, 2)
    k: int = 8                  # samples per held-out query = the GRPO group size (pass@k)
    max_tokens: int = 16
    hidden: int = 64
    layers: int = 2
    sft_lr: float = 3e-3
    sft_batch: int = 16
    sft_steps: int = 480        # SFT's longest run; the depths are points of it (over: capped)
    eval_every: int = 20
    grpo_steps: int = 40
    prompts_per_step: int = 2
    base: RL = field(default_factory=RL)
    sweep: bool = True
    depths: tuple = DEPTHS
    arms: tuple | None = None   # only these arms (a cell rerun); None: every arm

    @staticmethod
    def quick() -> "Settings":
        return Settings(task=replace(M.Task(), train_queries=120, heldout_queries=12),
                        seeds=(0,), k=4, sft_steps=40, eval_every=10, grpo_steps=2,
                        sweep=False, depths=(("converged", 1.0),))


def sweep_settings(base: RL) -> list[RL]:
    """The sweep, fixed in advance: the base, then one factor changed at a time."""
    return [base, replace(base, lr=base.lr / 3), replace(base, lr=base.lr * 3),
            replace(base, beta=0.04), replace(base, reward="value"),
            replace(base, steps=base.steps * 4)]


def choose_setting(settings: list[RL], sweep_rows: list[dict]) -> RL:
    """The setting with the highest mean validation pass rate over its seeds (`sweep_rows`:
    {"setting": name, "val_pass_rate"}); ties go to the earlier setting of `settings`.

    Raises:
      ValueError: a setting without a row.
    """
    best = None
    for rl in settings:
        values = [r["val_pass_rate"] for r in sweep_rows if r["setting"] == rl.name]
        if not values:
            raise ValueError(f"no sweep row for {rl.name}")
        mean = float(np.mean(values))
        if best is None or mean > best[0]:
            best = (mean, rl)
    return best[1]


def equal_compute_budget(prompts: dict, steps: int, prompts_per_step: int, group: int) -> dict:
    """The equal-compute control's RL budget per side: the same steps and batch for every side,
    so the same rollouts (steps x prompts per step x group size); a side's prompts are cycled
    when it has fewer than its steps draw. When a side has no RL prompt the comparison cannot be
    made and every side gets 0 steps.

    Args:
      prompts: {side: RL prompts in that side's export}.
      steps: GRPO steps (the arm's setting).
      prompts_per_step: prompts per step.
      group: the GRPO group size (completions per prompt).

    Returns:
      {side: {"rl_steps", "rl_prompts", "rl_rollouts"}}, one "rl_steps" and one "rl_rollouts"
      for all.

    Raises:
      ValueError: steps, prompts_per_step or group below 1.
    """
    if min(steps, prompts_per_step, group) < 1:
        raise ValueError(f"steps, prompts per step and group must be >= 1, got {steps}, "
                         f"{prompts_per_step}, {group}")
    run = steps if prompts and min(prompts.values()) > 0 else 0
    return {side: {"rl_steps": run, "rl_prompts": n, "rl_rollouts": run * prompts_per_step * group}
            for side, n in prompts.items()}


def _round(value):
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    return value


class _Clock:
    def __init__(self, path: str):
        self.path, self.start = path, time.perf_counter()

    def lap(self, what: str, **tags) -> None:
        now = time.perf_counter()
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"phase": what, **tags,
                                     "seconds": round(now - self.start, 2)}) + "\n")
        self.start = now


def _rl_rows(folder: str) -> list[dict]:
    record = M.read_json(os.path.join(folder, "export.json"))
    rows = []
    for path in record["order"]:
        if path.startswith("rl/"):
            rows += phases.load_rows(os.path.join(folder, path))
    return rows


class Experiment:
    """Holds the prepared task, the tokenizer and the data of one experiment run."""

    def __init__(self, settings: Settings, work: str, log: str, clock: _Clock):
        self.s, self.work, self.log, self.clock = settings, work, log, clock
        self.prepared = M.prepare(work, settings.task, log)
        trl = self.prepared["trl"]
        self.sft_rows = [{"prompt": r["prompt"], "completion": r["completion"]}
                         for r in phases.load_rows(os.path.join(trl, "imitation.parquet"))]
        self.val_rows = phases.load_rows(os.path.join(trl, "val.parquet"))
        self.val_sft = phases.validation_sft_rows(self.val_rows)
        self.rl_rows = {"pass": _rl_rows(trl), "value": _rl_rows(self.prepared["trl_value"])}
        texts = [m["content"] for r in self.sft_rows for m in r["prompt"] + r["completion"]]
        texts += [m["content"] for r in self.rl_rows["pass"] + self.val_rows for m in r["prompt"]]
        self.tokenizer = train_tokenizer(texts)
        self.requests = {}
        clock.lap("prepare")

    def model(self, seed: int, state: dict | None = None):
        set_determinism(seed)
        model = build_model(self.tokenizer, seed, hidden=self.s.hidden, layers=self.s.layers)
        if state is not None:
            model.load_state_dict(state)
        return model

    def measure(self, model, seed: int, name: str) -> dict:
        if seed not in self.requests:
            self.requests[seed] = M.export_requests(
                self.prepared, self.s.task, os.path.join(self.work, "requests", f"seed{seed}"),
                self.s.k, self.s.max_tokens, seed, self.log)
        folder = os.path.join(self.work, "measure", f"seed{seed}", name.replace("+", "_")
                              .replace("@", "_"))
        set_determinism(seed)
        values = M.measure(model, self.tokenizer, self.prepared, self.s.task,
                           self.requests[seed], folder, self.log)
        self.clock.lap("measure", seed=seed, arm=name)
        return values

    def sft(self, seed: int) -> tuple[dict, list, int]:
        model = self.model(seed)
        snapshots, curve = phases.sft(model, self.tokenizer, self.sft_rows, self.val_sft,
                                      self.s.sft_steps, self.s.eval_every, self.s.sft_lr,
                                      self.s.sft_batch, seed,
                                      os.path.join(self.work, "trainer", f"sft{seed}"))
        self.clock.lap("sft", seed=seed, steps=self.s.sft_steps)
        return snapshots, curve, phases.converged_step(curve)

    def grpo(self, seed: int, state: dict | None, rl: RL, name: str, rows: list | None = None,
             steps: int | None = None, shuffle: bool = False):
        model = self.model(seed, state)
        info = phases.grpo(model, self.tokenizer, self.rl_rows[rl.reward] if rows is None
                           else rows, rl.grpo_steps(self.s.grpo_steps) if steps is None else steps,
                           rl.lr, rl.beta, self.s.k, self.s.prompts_per_step, self.s.max_tokens,
                           seed, os.path.join(self.work, "trainer", f"grpo{seed}"), shuffle)
        self.clock.lap("grpo", seed=seed, arm=name, setting=rl.name)
        return model, info

    def equal_compute(self, seed: int, state: dict, rl: RL, start: dict) -> list[dict]:
        """The equal-compute control at one seed from the SFT weights `state` (whose held-out
        numbers are `start`): one row per side (see the module docstring)."""
        set_determinism(seed)
        folder = os.path.join(self.work, "equal", f"seed{seed}")
        cur = M.measure_training(self.model(seed, state), self.tokenizer, self.prepared,
                                 self.s.task, self.s.k, self.s.max_tokens, seed, folder,
                                 self.log)
        self.clock.lap("equal-measure", seed=seed)
        rows = {side: _rl_rows(cur[side]) for side in ("filtered", "unfiltered")}
        budget = equal_compute_budget({k: len(v) for k, v in rows.items()},
                                      rl.grpo_steps(self.s.grpo_steps),
                                      self.s.prompts_per_step, self.s.k)
        out = []
        for side in ("filtered", "unfiltered"):
            row = {"kind": "equal", "seed": seed, "side": side, "bands": cur["bands"],
                   "train_sft": {k: cur["train"][k] for k in ("pass_rate", "informative",
                                                              "queries", "rollouts")},
                   **budget[side]}
            if budget[side]["rl_steps"] == 0:
                out.append(row)
                continue
            model, info = self.grpo(seed, state, rl, f"{EQUAL}:{side}", rows[side],
                                    budget[side]["rl_steps"], shuffle=side == "unfiltered")
            after = self.measure(model, seed, f"{EQUAL}:{side}")
            per_1k = 1000.0 / budget[side]["rl_rollouts"]
            out.append({**row, **after, "grpo": info,
                        "informative_groups": 1.0 - info["frac_reward_zero_std"],
                        "pass_gain_per_1k": (after["pass_rate"] - start["pass_rate"]) * per_1k,
                        "ndcg_gain_per_1k": (after["ndcg10"] - start["ndcg10"]) * per_1k})
        return out


def _depth_step(curve: list, converged: int, factor: float) -> int:
    steps = [s for s, _ in curve if s > 0]
    target = converged * factor
    return min(steps, key=lambda s: (abs(s - target), s))


def run_experiment(settings: Settings, out: str) -> list[dict]:
    """Runs every arm at every seed and writes the report folder `out` (see the module
    docstring); returns the result rows."""
    partial = out.rstrip("/") + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    work = os.path.join(partial, "work")
    clock = _Clock(os.path.join(partial, "timings.jsonl"))
    total = time.perf_counter()
    exp = Experiment(settings, work, os.path.join(partial, "commands.log"), clock)
    rows: list[dict] = []
    chosen = settings.base
    trained: dict = {}  # seed -> (SFT snapshots, validation curve, converged step)
    if settings.sweep:
        candidates = sweep_settings(settings.base)
        sweep_rows = []
        for seed in settings.seeds:
            trained[seed] = exp.sft(seed)
            snapshots, _, converged = trained[seed]
            for rl in candidates:
                model, info = exp.grpo(seed, snapshots[converged], rl, "sweep")
                val = phases.validation_pass_rate(model, exp.tokenizer, exp.val_rows,
                                                  settings.k, settings.max_tokens, seed)
                sweep_rows.append({"kind": "sweep", "seed": seed, "setting": rl.name,
                                   "from": "sft@converged", "val_pass_rate": val,
                                   "grpo": info})
        chosen = choose_setting(candidates, sweep_rows)
        rows += sweep_rows
        clock.lap("sweep")

    def wanted(arm: str) -> bool:
        return settings.arms is None or arm in settings.arms

    for seed in settings.seeds:
        fresh = exp.model(seed).state_dict()
        if wanted("untrained"):
            rows.append({"kind": "arm", "seed": seed, "arm": "untrained", "phase": "none",
                         **exp.measure(exp.model(seed, fresh), seed, "untrained")})
        if wanted("grpo"):
            model, info = exp.grpo(seed, fresh, chosen, "grpo")
            rows.append({"kind": "arm", "seed": seed, "arm": "grpo", "phase": "rl",
                         **exp.measure(model, seed, "grpo"), "grpo": info})
        depths = [(d, f) for d, f in settings.depths
                  if wanted(f"sft@{d}") or wanted(f"sft@{d}+grpo")
                  or (d == "converged" and wanted(EQUAL))]
        if not depths:
            continue
        snapshots, curve, converged = trained.pop(seed, None) or exp.sft(seed)
        for depth, factor in depths:
            step = _depth_step(curve, converged, factor)
            arm = f"sft@{depth}"
            if wanted(arm):
                before = exp.measure(exp.model(seed, snapshots[step]), seed, arm)
                rows.append({"kind": "arm", "seed": seed, "arm": arm, "phase": "sft",
                             "sft_steps": step, "converged_steps": converged,
                             "val_loss": dict(curve)[step], **before})
            if wanted(arm + "+grpo"):
                model, info = exp.grpo(seed, snapshots[step], chosen, arm + "+grpo")
                rows.append({"kind": "arm", "seed": seed, "arm": arm + "+grpo", "phase": "rl",
                             "sft_steps": step, **exp.measure(model, seed, arm + "+grpo"),
                             "grpo": info})

        if wanted(EQUAL):  # after every arm of the seed, so their rows do not depend on it
            step = _depth_step(curve, converged, 1.0)
            start = next((r for r in rows if r.get("arm") == "sft@converged"
                          and r["seed"] == seed), None)
            if start is None:
                start = exp.measure(exp.model(seed, snapshots[step]), seed, "sft@converged")
            rows += exp.equal_compute(seed, snapshots[step], chosen, start)
    header = {"kind": "settings", "settings": _round(asdict(settings)), "chosen": chosen.name,
              "reward": M.REWARD, "tau": M.TAU}
    rows = [header] + [_round(r) for r in rows]
    with open(os.path.join(partial, "results.jsonl"), "w", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    with open(os.path.join(partial, "llm_claims.md"), "w", encoding="utf-8") as handle:
        handle.write(claims(rows))
    clock.lap("report")
    with open(os.path.join(partial, "timings.jsonl"), "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"phase": "total", "seconds":
                                 round(time.perf_counter() - total, 2)}) + "\n")
    shutil.rmtree(work)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(partial, out)
    return rows
