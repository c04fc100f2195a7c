"""Trains a reranking policy: behavior cloning on the imitation shards, then RL over the RL stages.

Read top to bottom:
  1. load the manifest (refused if another schema version or a file hash does not match); set
     aside a fixed validation split of the curriculum's queries (crc32 of the query id) for model
     selection; fit the feature normaliser on the remaining training rows (stored in every
     checkpoint, applied inside the model, see `difficulty.policy`);
  2. measure the untrained policy on the fixed query sets (below). "untrained" is the pipeline's
     `base` weights (same seed) with the fitted normaliser installed; the pipeline's `base` itself
     has the identity normaliser (shift 0, scale 1). Its scores differ little within a query, so
     its Plackett-Luce samples are close to uniform shuffles: the "fresh policy";
  3. BC, `--bc-steps` optimizer steps over the imitation shards (cycled). With labels as the teacher
     many documents tie; the default loss `listmle_ties` is the Plackett-Luce likelihood of the
     teacher's order with ties broken at random at every step, i.e. a stochastic estimate of the
     likelihood marginalised over the orders within tied groups (Plackett-Luce for partial orders;
     ListMLE, Xia et al. 2008, with random tie-breaking). `listnet` (softmax cross-entropy to the
     teacher's softmax, Cao et al. 2007) is the alternative; `listmle` keeps the file order of ties
     (the old behaviour, kept only to show the difference). The checkpoint with the best
     validation NDCG@10 is kept;
  4. optionally re-score: rebuild the curriculum with the BC checkpoint as the policy;
  5. RL, `--rl-steps` optimizer steps split over the curriculum's stages in proportion to their rows
     (or over all RL rows in query-hash order with `--rl-order shuffled`, the control): G sampled
     rankings per query, reward per ranking, advantage relative to the group, policy gradient on
     exact Plackett-Luce log-probabilities, optional KL to the policy RL started from; the best
     checkpoint by validation NDCG@10 (RL's start included) is the final policy;
  6. measure again and write summary.json (what each number is measured on, and why one is missing).

Query sets every diagnostic names (`summary["sets"]`):
  - `eval`: --eval-input's queries with at least one relevant document (fixed, held out);
  - `train_sample`: a fixed, policy-independent sample of training queries (the smallest crc32
    hashes of the query ids of the build's input, at most --train-sample of them);
  - `validation`: the held-out validation split of the curriculum (model selection);
  - `rl_queries`: the RL queries of the final curriculum: POLICY-SELECTED (the scoring policy
    routed them to RL), so an informative fraction measured there is high by construction.

Outputs are built in OUT.partial (locked while a run writes it: a second run to the same OUT is
refused) and renamed to OUT at the end: a failed run leaves nothing; a killed one leaves
OUT.partial, which `--resume` continues from (metrics.jsonl cut back to the checkpoint's step).
Every NDCG@10 is normalised by the build's reward's ideal (`ideal=window|qrels`, named in the
summary and the report). An OUT on a store (gs://, s3://)
is trained in a local temporary folder and uploaded at the end, summary.json last. Checkpoints hold model, optimizer,
RNG states, best-so-far weights and the position in the curriculum; a killed run resumed with
`--resume` ends with bitwise the same weights as an uninterrupted one (CPU).

Usage: python -m trainers.train [--manifest RUN/manifest.json] [--out DIR] [--eval-input TEST]
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import torch

from data_contracts import fs
from data_contracts.arrays import pad_queries
from data_contracts.errors import InputError
from data_contracts.manifest import check_out_outside_runs, files_of, load_manifest
from difficulty.policy import (RerankPolicy, base_policy, fit_normaliser, load_policy_checkpoint,
                               save_policy)
from difficulty.rewards import parse_reward
from trainers.checkpoint import (MetricsLog, Progress, cut_metrics, load_checkpoint,
                                 save_checkpoint, set_rng_state)
from trainers.config import TrainConfig, check_config, check_run_config
from trainers.data import (ShardBatch, ShardStream, cycle, is_validation, read_rows,
                           shuffled_rl_file, split_steps)
from trainers.evaluate import (QuerySets, fixed_sets, group_diagnostics, ndcg_at_10,
                               update_sparsity, within_label_position_spearman)
from trainers.losses import bc_loss, rl_loss
from trainers.staging import check_out, work_folder

__all__ = ["TrainConfig", "train"]

IDEALS_TEXT = {  # what every NDCG@10 of a summary is normalised by (the reward's `ideal`)
    "window": "ideal=window: ideal DCG of the candidates' own labels (what a reranker can reach)",
    "qrels": "ideal=qrels: ideal DCG of every judged document of the query (trec_eval's "
             "ndcg_cut), candidates outside the window included",
}


# ---------------------------------------------------------------------------------------------
# The run's state: what the loops carry from step to step (and a checkpoint saves).

@dataclass
class Curriculum:
    """The curriculum a run trains on (its manifest checked, its width read from the shards)."""

    manifest: dict
    path: str  # its manifest.json
    reward: object  # `difficulty.rewards.parse_reward` of the build's reward
    teacher_mode: str
    imitation_files: list[str]
    train_files: list[str]  # imitation and RL shards: the normaliser and validation split
    n_features: int


@dataclass
class Best:
    """The best validation NDCG@10 of the current phase, its step and weights (None: none yet)."""

    val: float = -1.0
    step: int = 0
    state: dict | None = None


@dataclass
class State:
    """The loop's state: the model and optimizer, the position in the curriculum (phase, step,
    epoch, file, row, RL segment and its steps and rollouts), the summary being built, the best
    checkpoint so far, and where it all is written."""

    cfg: TrainConfig
    work: str
    model: RerankPolicy
    optimizer: torch.optim.Optimizer
    sets: QuerySets
    reward: object  # `difficulty.rewards.parse_reward` of the build's reward
    summary: dict
    rl_manifest: dict  # the curriculum RL trains on: the build's, or the re-scored one
    position: dict = field(default_factory=lambda: {
        "phase": "bc", "step": 0, "epoch": 0, "file": 0, "row": 0, "segment": 0,
        "segment_step": 0})
    best: Best = field(default_factory=Best)
    step: int = 0
    rollouts: int = 0
    started: float = 0.0  # time.monotonic() of the run's start (earlier when resumed)
    log: MetricsLog | None = None


@dataclass
class RLPlan:
    """RL's segments (a curriculum stage each, or one shuffled file) and each one's budget."""

    stages: list[dict]
    stage_files: list[list[str]]  # the RL shards of each stage
    segments: list[list[str]]
    steps: list[int]
    rollouts: list[int | None]  # None: steps only
    start: int  # the step RL starts at (BC's steps)


# ---------------------------------------------------------------------------------------------
# The run, top to bottom.

def train(cfg: TrainConfig) -> dict:
    """Runs BC then RL as configured; returns the summary (also written to OUT/summary.json).

    Raises:
      InputError: an unusable manifest, input, checkpoint or option; OUT inside another run's
        (or a trainer's, experiment's, export's) folder or holding one; another live run
        writing to OUT.
    """
    cfg = dataclasses.replace(cfg, out=fs.normalize(cfg.out))
    check_config(cfg)
    fs.check_replaceable_location(cfg.out)
    manifest_path = cfg.manifest
    if fs.isdir(manifest_path):
        manifest_path = fs.join(manifest_path, "manifest.json")
    manifest = load_manifest(manifest_path)
    check_run_config(manifest_path, manifest)
    check_out_outside_runs(cfg.out, "--out", own=("rescored",))
    out = check_out(cfg.out, manifest_path, cfg.resume)
    with work_folder(out, cfg.resume) as (work, resumed):
        summary = run(cfg, manifest, manifest_path, work, out, resumed)
    return summary


def run(cfg: TrainConfig, manifest: dict, manifest_path: str, work: str, out: str,
        resumed: bool) -> dict:
    """The whole run in its work folder: data, model, BC, optional re-score, RL, evaluate, save."""
    cur = load_curriculum(manifest, manifest_path)
    model, untrained = make_models(cfg, cur)
    torch.manual_seed(cfg.seed)
    st = State(cfg, work, model, torch.optim.Adam(model.parameters(), lr=cfg.bc_lr),
               fixed_sets(cfg, manifest, cur.n_features, cur.train_files), cur.reward, {},
               manifest)
    st.summary = new_summary(cfg, manifest_path, st.sets, cur.reward)
    elapsed = resume(st) if resumed else 0.0
    st.log = MetricsLog(os.path.join(work, "metrics.jsonl"), append=resumed)
    st.step, st.started = st.position["step"], time.monotonic() - elapsed
    st.rollouts = st.summary.get("rollouts", 0)
    if not resumed:
        measure(st, "untrained", untrained)
    if st.position["phase"] == "bc":
        behavior_cloning(st, cur)
        end_behavior_cloning(st, cur)
    reference = load_policy_checkpoint(os.path.join(work, "bc.pt"))
    reference.eval()
    plan = plan_rl(st)
    reinforcement_learning(st, plan, reference)
    end_reinforcement_learning(st, plan)
    return write_summary(st, plan, {"untrained": untrained, "bc": reference, "rl": st.model},
                         out)


def load_curriculum(manifest: dict, manifest_path: str) -> Curriculum:
    """The curriculum's reward, teacher, shards and feature width.

    Raises:
      InputError: a curriculum without any imitation or RL row.
    """
    imitation_files = files_of(manifest, "imitation")
    train_files = imitation_files + files_of(manifest, "rl")
    # every phase has a file, empty ones included: the width comes from the first with rows
    first = next((b for b in ShardStream(train_files, 1)), None)
    if first is None:
        raise InputError(manifest_path, "the curriculum has no imitation and no RL rows")
    return Curriculum(manifest, manifest_path, parse_reward(manifest["config"]["reward"]),
                      manifest["config"].get("teacher", "auto"), imitation_files, train_files,
                      len(first.padded.features[0, 0]))


def make_models(cfg: TrainConfig, cur: Curriculum) -> tuple[RerankPolicy, RerankPolicy]:
    """(the policy to train, the untrained policy): the pipeline's `base` weights with the
    normaliser fitted on the training rows (or --init's checkpoint as the policy to train).

    Raises:
      InputError: an --init checkpoint of another feature width.
    """
    keep_train = lambda t: ~is_validation(t.column("query_id").to_pylist(), cfg.val_fraction)  # noqa: E731
    shift, scale = fit_normaliser(
        ((b.padded.features, b.padded.mask)
         for b in ShardStream(cur.train_files, 256, keep=keep_train)), cur.n_features)
    seed = cur.manifest["config"]["seed"]
    if cfg.init:
        model = load_policy_checkpoint(cfg.init)
        if model.config.n_features != cur.n_features:
            raise InputError(cfg.init, f"policy expects {model.config.n_features} features, the "
                                       f"curriculum has {cur.n_features}")
    else:
        model = base_policy(cur.n_features, seed)
        model.set_normaliser(shift, scale)
    untrained = base_policy(cur.n_features, seed)
    untrained.set_normaliser(shift, scale)
    untrained.eval()
    return model, untrained


def new_summary(cfg: TrainConfig, manifest_path: str, sets: QuerySets, reward) -> dict:
    """The summary a run fills in as it goes."""
    return {
        "config": asdict(cfg), "manifest": os.path.abspath(manifest_path),
        "sets": sets.describe(cfg.val_fraction),
        "ndcg_ideal": reward.ideal,
        "ndcg_ideal_description": IDEALS_TEXT[reward.ideal],
        "ndcg@10": {}, "diagnostics": {}, "learning_curve": [],
        "normaliser": "slog1p, then per-feature mean/std fitted on the training rows; per-query "
                      "standardisation inside the model",
    }


def resume(st: State) -> float:
    """Restores a killed run from its checkpoint.pt; returns the seconds it had run."""
    state = load_checkpoint(os.path.join(st.work, "checkpoint.pt"), st.model)
    st.position = dict(state["position"])
    st.summary = json.loads(state["summary"])
    st.best = Best(val=float(state["best_val"]), step=int(state["best_step"]),
                   state=state.get("best_state"))
    if st.position["phase"] == "rl":
        st.optimizer = torch.optim.Adam(st.model.parameters(), lr=st.cfg.rl_lr)
        if st.summary.get("rescored_manifest"):
            st.rl_manifest = load_manifest(os.path.join(st.work, st.summary["rescored_manifest"]))
    st.optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
    step = int(state["position"]["step"])
    dropped = cut_metrics(os.path.join(st.work, "metrics.jsonl"), state.get("metrics_bytes"),
                          step)
    print(f"--resume: continuing the killed run in {st.work} from its checkpoint at step {step} "
          f"({st.position['phase']}); metrics.jsonl cut back to that step ({dropped} rows written "
          "after the checkpoint dropped, to be written again)", file=sys.stderr, flush=True)
    return float(state["elapsed"])


# ---------------------------------------------------------------------------------------------
# Behavior cloning, then the optional re-score.

def behavior_cloning(st: State, cur: Curriculum) -> None:
    """BC's optimizer steps over the imitation shards (and the RL shards with --imitate all)."""
    cfg, position = st.cfg, st.position
    bc_steps = 0 if cfg.init else cfg.bc_steps
    progress = Progress("bc", bc_steps, cfg.progress_seconds)
    bc_files = cur.imitation_files + (files_of(cur.manifest, "rl") if cfg.imitate == "all" else [])
    if bc_steps and bc_files:
        if st.step == 0:
            observe(st, "bc", 0)
        stream = cycle(bc_files, cfg.batch_queries,
                       (position["epoch"], position["file"], position["row"]),
                       cfg.val_fraction, ("weight",))
        for epoch, batch in stream:
            if st.step >= bc_steps:
                break
            st.model.train()
            loss = bc_loss(st.model, batch, cur.teacher_mode, cfg.bc_loss)
            st.optimizer.zero_grad()
            loss.backward()
            st.optimizer.step()
            st.step += 1
            position.update(epoch=epoch, file=batch.file_index, row=batch.row_start + batch.rows)
            st.log.write(phase="bc", step=st.step, epoch=epoch, loss=float(loss.detach()))
            val = observe(st, "bc", st.step) if st.step % cfg.eval_every == 0 \
                or st.step == bc_steps else None
            progress.update(st.step, loss=float(loss.detach()), val_ndcg=val)
            checkpoint(st)
    st.summary["bc_steps_done"] = st.step


def end_behavior_cloning(st: State, cur: Curriculum) -> None:
    """Keeps BC's best checkpoint (bc.pt), measures it, re-scores the curriculum with it when
    asked, and starts RL (a fresh optimizer, position and best)."""
    select_best(st)
    st.model.eval()
    save_policy(st.model, os.path.join(st.work, "bc.pt"))
    measure(st, "bc", st.model)
    if st.cfg.rescore_after_bc:
        print("re-scoring the curriculum with the BC policy", file=sys.stderr, flush=True)
        rescore(cur.manifest, os.path.join(st.work, "bc.pt"), os.path.join(st.work, "rescored"))
        st.summary["rescored_manifest"] = os.path.join("rescored", "manifest.json")
        st.rl_manifest = load_manifest(os.path.join(st.work, st.summary["rescored_manifest"]))
        st.summary["rescored_counts"] = st.rl_manifest["counts"]
    st.optimizer = torch.optim.Adam(st.model.parameters(), lr=st.cfg.rl_lr)
    st.position = {"phase": "rl", "step": st.step, "epoch": 0, "file": 0, "row": 0,
                   "segment": 0, "segment_step": 0}
    st.best = Best(val=-1.0, step=st.step, state=None)
    checkpoint(st, force=True)


def rescore(manifest: dict, checkpoint: str, out: str) -> str:
    """Re-runs difficulty scoring and the curriculum with `checkpoint` as the policy."""
    from pipelines.build_curriculum import run
    from pipelines.config import config_from_dict

    config = config_from_dict(manifest["config"], out=out)
    config.policy = os.path.abspath(checkpoint)
    return run(config).out


# ---------------------------------------------------------------------------------------------
# Reinforcement learning.

def plan_rl(st: State) -> RLPlan:
    """RL's segments and their step (and rollout) budgets, in proportion to their rows."""
    cfg = st.cfg
    stages = [s for s in st.rl_manifest["curriculum"] if s["phase"] == "rl"]
    stage_files = [files_of(st.rl_manifest, "rl", s["stage"]) for s in stages]
    if cfg.rl_order == "shuffled":
        segments = [[shuffled_rl_file([f for fs_ in stage_files for f in fs_], cfg.seed,
                                      st.work)]]
        segment_rows = [sum(s["rows"] for s in stages)]
    else:
        segments, segment_rows = stage_files, [s["rows"] for s in stages]
    plan = RLPlan(stages, stage_files, segments, split_steps(cfg.rl_steps, segment_rows),
                  split_steps(cfg.rl_rollouts, segment_rows) if cfg.rl_rollouts
                  else [None] * len(segments), st.summary.get("bc_steps_done", 0))
    st.summary["rl_plan"] = {"order": cfg.rl_order, "segment_rows": segment_rows,
                             "segment_steps": plan.steps}
    if cfg.rl_rollouts:
        st.summary["rl_plan"]["segment_rollouts"] = plan.rollouts
    return plan


def segment_done(st: State, plan: RLPlan, segment: int) -> bool:
    """Whether the segment's steps (or rollouts) are spent."""
    spent = st.position.get("segment_rollouts", 0)
    return st.position["segment_step"] >= plan.steps[segment] or (
        plan.rollouts[segment] is not None and spent >= plan.rollouts[segment])


def reinforcement_learning(st: State, plan: RLPlan, reference: RerankPolicy) -> None:
    """RL's optimizer steps, segment by segment, from the saved position."""
    cfg, position = st.cfg, st.position
    progress = Progress("rl", cfg.rl_steps, cfg.progress_seconds)
    if cfg.rl_steps and st.step == plan.start:
        observe(st, "rl", 0)
    for segment in range(position["segment"], len(plan.segments)):
        if position["segment"] != segment:
            position.update(segment=segment, segment_step=0, segment_rollouts=0, epoch=0, file=0,
                            row=0)
        if segment_done(st, plan, segment):
            continue
        stream = cycle(plan.segments[segment], cfg.batch_queries,
                       (position["epoch"], position["file"], position["row"]), cfg.val_fraction)
        for epoch, batch in stream:
            if segment_done(st, plan, segment):
                break
            batch = within_budget(batch, plan.rollouts[segment],
                                  position.get("segment_rollouts", 0), cfg.group_size)
            st.model.train()
            loss, info = rl_loss(st.model, reference, batch, st.reward, cfg, stream=st.step + 1)
            st.optimizer.zero_grad()
            loss.backward()
            st.optimizer.step()
            st.step += 1
            st.rollouts += batch.rows * cfg.group_size
            st.summary["rollouts"] = st.rollouts
            position.update(epoch=epoch, file=batch.file_index, row=batch.row_start + batch.rows,
                            segment_step=position["segment_step"] + 1,
                            segment_rollouts=position.get("segment_rollouts", 0)
                            + batch.rows * cfg.group_size)
            stage_no = plan.stages[segment]["stage"] if cfg.rl_order == "curriculum" else None
            st.log.write(phase="rl", step=st.step, stage=stage_no, epoch=epoch,
                         loss=float(loss.detach()), rollouts=st.rollouts, **info)
            done = st.step - plan.start
            val = observe(st, "rl", done) if done % cfg.eval_every == 0 or done == cfg.rl_steps \
                else None
            progress.update(done, reward=info["reward_mean"], val_ndcg=val)
            checkpoint(st)
    position["segment"] = len(plan.segments)
    st.summary["rl_steps_done"] = st.step - plan.start


def within_budget(batch: ShardBatch, budget: int | None, spent: int, group_size: int
                  ) -> ShardBatch:
    """The batch cut to the rows the segment's rollout budget still pays for (at least one), so
    a budget is spent to within G-1 rollouts instead of up to a batch over; None: no budget.

    The cut batch's rows are the first ones, and the stream's position advances past them only
    (`position["row"]` = row_start + rows), so the rest come next, also on resume."""
    if budget is None:
        return batch
    rows = max(1, -(-(budget - spent) // group_size))  # ceil
    if rows >= batch.rows:
        return batch
    table = batch.table.slice(0, rows)
    return ShardBatch(table, pad_queries(table), batch.file_index, batch.row_start)


def end_reinforcement_learning(st: State, plan: RLPlan) -> None:
    """Keeps RL's best checkpoint (RL's start included) as the final policy (final.pt)."""
    curve = st.summary["learning_curve"]
    if st.step > plan.start and not (curve and curve[-1]["step"] == st.step):
        observe(st, "rl", st.step - plan.start)  # a rollout budget can end RL between evaluations
    select_best(st)
    st.summary["rl_selection"] = rl_selection(st, plan)
    st.model.eval()
    save_policy(st.model, os.path.join(st.work, "final.pt"))
    measure(st, "rl", st.model)


# ---------------------------------------------------------------------------------------------
# Evaluating, selecting and saving.

def observe(st: State, phase: str, phase_step: int) -> float | None:
    """Validation (for selection) and eval NDCG@10: one point of the learning curve."""
    st.model.eval()
    val = ndcg_at_10(st.model, st.sets.validation, st.reward)
    point = {"phase": phase, "step": st.step, "phase_step": phase_step, "rollouts": st.rollouts,
             "seconds": round(time.monotonic() - st.started, 3), "val_ndcg_at_10": val,
             "ndcg_at_10": ndcg_at_10(st.model, st.sets.held_out, st.reward)}
    st.summary["learning_curve"].append(point)
    st.log.write(**dict(point, phase="eval", during=phase))
    if val is not None and val > st.best.val:
        st.best = Best(val=val, step=st.step,
                       state={k: v.clone() for k, v in st.model.state_dict().items()})
    return val


def measure(st: State, name: str, policy: RerankPolicy) -> None:
    """A policy's NDCG@10 (eval and validation), group diagnostics and tie order, in the summary."""
    cfg, sets, summary = st.cfg, st.sets, st.summary
    policy.eval()
    summary["ndcg@10"][name] = ndcg_at_10(policy, sets.held_out, st.reward)
    summary.setdefault("val_ndcg@10", {})[name] = ndcg_at_10(policy, sets.validation,
                                                             st.reward)
    for set_name, table, stream in (("eval", sets.held_out, 10_000),
                                    ("train_sample", sets.sample, 11_000)):
        if table is None:
            continue
        diag = group_diagnostics(policy, table, st.reward, cfg.diagnostic_rollouts, cfg.seed,
                                 cfg.temperature, stream)
        summary["diagnostics"].setdefault(set_name, {})[name] = diag
        st.log.write(phase="diagnostic", policy=name, set=set_name, step=st.step,
                     ndcg_at_10=summary["ndcg@10"][name] if set_name == "eval" else None, **diag)
    if sets.sample is not None:
        summary.setdefault("tie_order_spearman", {})[name] = within_label_position_spearman(
            policy, sets.sample)


def select_best(st: State) -> None:
    """Puts the phase's best weights (by validation NDCG@10) back in the model (without a
    validation set the last weights stay, and the last step is the selected one)."""
    if st.best.state is not None:
        st.model.load_state_dict(st.best.state)
    st.summary.setdefault("selected_step", {})[st.position["phase"]] = \
        st.best.step if st.best.state is not None else st.step


def rl_selection(st: State, plan: RLPlan) -> dict:
    """Which RL checkpoint model selection kept, on which validation NDCG@10: RL's start (the
    policy RL began from; RL's updates discarded) or RL's best step.

    Returns:
      {"kept": "rl_start" | "rl_step" | "last" (no validation queries) | "no_rl", "step",
      "rl_discarded", "start_val_ndcg@10", "best_rl_val_ndcg@10", "best_rl_step"}.
    """
    points = [p for p in st.summary["learning_curve"] if p["phase"] == "rl"
              and p["val_ndcg_at_10"] is not None]
    start = next((p["val_ndcg_at_10"] for p in points if p["phase_step"] == 0), None)
    later = [p for p in points if p["phase_step"] > 0]
    best = max(later, key=lambda p: p["val_ndcg_at_10"], default=None)  # first of equal ones
    selected = st.summary["selected_step"]["rl"]
    if st.step == plan.start:
        kept = "no_rl"
    elif st.best.state is None:
        kept = "last"
    else:
        kept = "rl_start" if selected == plan.start else "rl_step"
    return {"kept": kept, "step": selected, "rl_discarded": kept == "rl_start",
            "start_val_ndcg@10": start,
            "best_rl_val_ndcg@10": best["val_ndcg_at_10"] if best else None,
            "best_rl_step": best["step"] if best else None}


def checkpoint(st: State, force: bool = False) -> None:
    """Saves checkpoint.pt every --checkpoint-every steps (or when forced); with --stop-after,
    exits like a kill right after saving."""
    stop = st.cfg.stop_after and st.step >= st.cfg.stop_after
    if force or st.step % st.cfg.checkpoint_every == 0 or stop:
        extra = {"summary": json.dumps(st.summary), "best_val": st.best.val,
                 "best_step": st.best.step, "elapsed": time.monotonic() - st.started,
                 "metrics_bytes": st.log.size()}
        if st.best.state is not None:
            extra["best_state"] = st.best.state
        save_checkpoint(os.path.join(st.work, "checkpoint.pt"), st.model, st.optimizer,
                        dict(st.position, step=st.step), extra)
    if stop:
        st.log.handle.close()
        os._exit(3)  # behave like a kill right after a checkpoint


def write_summary(st: State, plan: RLPlan, policies: dict, out: str) -> dict:
    """The RL queries' diagnostics under each policy, RL's update sparsity, summary.json."""
    summary, cfg = st.summary, st.cfg
    # The RL queries (policy-selected) under each policy: kept, labelled as such.
    rl_queries = read_rows([f for fs_ in plan.stage_files for f in fs_], cfg.val_fraction, False)
    if rl_queries is not None:
        summary["sets"]["rl_queries"]["queries"] = rl_queries.num_rows
        summary["diagnostics"]["rl_queries"] = {
            name: group_diagnostics(policy, rl_queries, st.reward, cfg.diagnostic_rollouts,
                                    cfg.seed, cfg.temperature, stream=20_000)
            for name, policy in policies.items()}
    summary["update_sparsity"] = update_sparsity(policies["bc"], st.model, cfg.sparsity_tol)
    summary["steps"] = st.step
    summary["rollouts"] = st.rollouts
    summary["outputs"] = {"folder": out, "summary": os.path.join(out, "summary.json"),
                          "rescored_curriculum": os.path.join(out, "rescored")
                          if summary.get("rescored_manifest") else None}
    with open(os.path.join(st.work, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
    st.log.write(phase="summary", step=st.step, **{f"ndcg_at_10_{k}": v
                                                   for k, v in summary["ndcg@10"].items()})
    st.log.handle.close()
    return summary


if __name__ == "__main__":  # `python -m trainers.train` is the command line (trainers/cli.py),
    import runpy              # run as __main__: this module itself never imports it

    runpy.run_module("trainers.cli", run_name="__main__", alter_sys=True)
