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

Outputs are built in OUT.partial and renamed to OUT at the end: a failed run leaves nothing; a
killed one leaves OUT.partial, which `--resume` continues from. An OUT on a store (gs://, s3://)
is trained in a local temporary folder and uploaded at the end, summary.json last. Checkpoints hold model, optimizer,
RNG states, best-so-far weights and the position in the curriculum; a killed run resumed with
`--resume` ends with bitwise the same weights as an uninterrupted one (CPU).

Usage: python -m trainers.train [--manifest RUN/manifest.json] [--out DIR] [--eval-input TEST]
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from curricula.hashing import stable_hash
from curricula.ordering import shuffled_order
from data_contracts import fs
from data_contracts.arrays import list_lengths, pad_queries, pad_ragged
from data_contracts.cli import OneLineParser
from data_contracts.errors import InputError
from data_contracts.manifest import (SIDE_FORMATS, check_replaceable_folder, files_of,
                                     input_digest, load_manifest)
from data_contracts.readers import read_queries
from data_contracts.synthetic import config_from_dict as synthetic_config
from data_contracts.synthetic import generate_table
from data_contracts.synthetic_text import SyntheticTextConfig, generate_text_table
from data_contracts.teacher import teacher_scores
from data_contracts.validate import ValidationState, validate_queries
from difficulty.policy import (RerankPolicy, base_policy, fit_normaliser, load_policy_checkpoint,
                               save_policy, score_in_chunks)
from difficulty.rewards import evaluate, ndcg_of_scores, parse_reward
from difficulty.scoring import rbo_reference
from difficulty.sampler import (MAX_SEED, TEMPERATURE_RANGE, gumbel_noise, log_prob,
                                ranking_diversity, sample_rankings)
from trainers.data import ShardStream, to_tensors

DEFAULT_MANIFEST = "runs/default/manifest.json"
DEFAULT_OUT = "runs/train-default"
BC_LOSSES = ("listmle_ties", "listnet", "listmle")
RL_ORDERS = ("curriculum", "shuffled")
IMITATE = ("all", "out_of_rl")
PARTIAL_SUFFIX = ".partial"


@dataclass
class TrainConfig:
    """Every knob of a training run (each is a command-line flag of the same name, see HELP)."""

    manifest: str = DEFAULT_MANIFEST
    out: str = DEFAULT_OUT
    seed: int = 0
    batch_queries: int = 32
    bc_steps: int = 100
    bc_lr: float = 3e-4
    bc_loss: str = "listmle_ties"
    imitate: str = "all"
    rl_steps: int = 150
    rl_lr: float = 1e-4
    rl_order: str = "curriculum"
    rl_rollouts: int = 0
    group_size: int = 16
    temperature: float = 1.0
    kl_coef: float = 0.05
    init: str = ""
    val_fraction: float = 0.2
    eval_every: int = 25
    rescore_after_bc: bool = False
    eval_input: str = ""
    eval_format: str = "auto"
    diagnostic_rollouts: int = 16
    train_sample: int = 200
    sparsity_tol: float = 1e-6
    checkpoint_every: int = 50
    progress_seconds: float = 5.0
    resume: bool = False
    stop_after: int = 0  # testing aid: exit (as if killed) right after this many steps


HELP = {
    "manifest": "the curriculum's manifest.json (or its run folder)",
    "out": "output folder (local, gs:// or s3://) for checkpoints, metrics.jsonl and "
           "summary.json; not inside a run folder, not a folder of other files (built as "
           "OUT.partial, renamed at the end; a store's is uploaded at the end)",
    "seed": "seed of training randomness (batches' tie-breaks, rollouts)",
    "batch_queries": "queries per optimizer step (BC and RL)",
    "bc_steps": "BC optimizer steps (0: no BC)",
    "bc_lr": "BC learning rate (Adam)",
    "bc_loss": "listmle_ties: Plackett-Luce with random tie-breaking; listnet: softmax "
               "cross-entropy to the teacher's scores; listmle: ties in file order (old)",
    "imitate": "all: BC imitates every curriculum query with a demonstration (the imitation "
               "and the RL shards); out_of_rl: only the imitation shards (too_hard/too_easy)",
    "rl_steps": "RL optimizer steps, split over the stages by rows (0: no RL)",
    "rl_lr": "RL learning rate (Adam)",
    "rl_rollouts": "RL rollout budget, split over the stages by rows like the steps; RL ends at "
                   "whichever budget is spent first (0: steps only)",
    "rl_order": "curriculum: stage by stage; shuffled: all RL rows in query-hash order (control)",
    "group_size": "G, sampled rankings per query per RL step (rollouts = rows x G)",
    "temperature": "Plackett-Luce sampling temperature",
    "kl_coef": "weight of the KL penalty to the policy RL started from",
    "init": "start from this policy checkpoint instead of BC (BC is skipped)",
    "val_fraction": "fraction of curriculum queries held out for validation (crc32 of query id)",
    "eval_every": "steps between validation (and --eval-input) measurements",
    "rescore_after_bc": "rebuild the curriculum with the BC policy before RL",
    "eval_input": "held-out labelled queries to report NDCG@10 on (read with the manifest's "
                  "feature space)",
    "eval_format": "format of --eval-input",
    "diagnostic_rollouts": "rollouts per query for the group diagnostics",
    "train_sample": "size of the fixed hash sample of training queries for diagnostics",
    "sparsity_tol": "a parameter counts as changed by RL beyond this absolute change",
    "checkpoint_every": "steps between checkpoints",
    "progress_seconds": "seconds between progress lines on stderr",
    "resume": "continue a killed run from OUT.partial/checkpoint.pt",
    "stop_after": "testing aid: exit with status 3 right after this many steps",
}


# ---------------------------------------------------------------------------------------------
# Query sets: reading inputs, the validation split, the fixed training sample.

def read_validated(path: str, fmt: str, n_features: int | None = None,
                   space: dict | None = None) -> pa.Table:
    """Valid, labelled queries of an input (NDCG needs labels), as one table.

    Args:
      path: input file or folder.
      fmt: its format (`auto` detects).
      n_features: the width the policy expects; the input must have it.
      space: the manifest's `feature_space` ({"base", "width", "names"}); used when the readers
        support it, else only its width is passed on.

    Raises:
      InputError: unreadable, empty (no valid labelled query), or of another feature width.
    """
    kwargs = {}
    params = inspect.signature(read_queries).parameters
    if space and "space" in params:
        from data_contracts.readers.space import FeatureSpace  # the readers' agreed interface
        kwargs["space"] = FeatureSpace(base=space["base"], width=space["width"],
                                       names=space.get("names"))
    elif (space or n_features) and "num_features" in params:
        kwargs["num_features"] = int((space or {}).get("width") or n_features)
    state = ValidationState(require_labels=True)
    try:
        tables = [validate_queries(b, state)[0] for b in read_queries(path, fmt, **kwargs)]
    except InputError:
        raise
    except Exception as exc:  # readers raise Arrow, OS, value and decoding errors
        first = (str(exc).splitlines() or [""])[0][:200]
        raise InputError(path, f"unreadable input ({type(exc).__name__}: {first})") from None
    tables = [t for t in tables if t.num_rows]
    if not tables:
        raise InputError(path, "no valid labelled query (empty input, or every query quarantined)")
    table = pa.concat_tables(tables)
    width = pad_queries(table.slice(0, 1)).features.shape[-1]
    if n_features is not None and width != n_features:
        raise InputError(path, f"{width} features per document; the curriculum has {n_features}")
    return table


def with_relevant(table: pa.Table | None) -> pa.Table | None:
    """Queries with at least one relevant document (label > 0): NDCG is defined on them."""
    if table is None:
        return None
    padded = pad_queries(table)
    keep = (np.where(padded.mask, padded.labels, 0) > 0).any(-1)
    return table.filter(pa.array(keep)) if keep.any() else None


def is_validation(query_ids: list[str], fraction: float) -> np.ndarray:
    """[N] whether each query is in the fixed validation split: crc32(query id) / 2^32 < fraction
    (no seed: the same split for every seed and arm)."""
    return np.array([stable_hash(q, "validation") / 2.0 ** 32 < fraction for q in query_ids],
                    dtype=bool)


def smallest_hashes(batches, limit: int, salt: str) -> pa.Table | None:
    """The `limit` distinct queries with the smallest crc32(salt, query id), streaming."""
    kept: pa.Table | None = None
    for table in batches:
        if table.num_rows == 0:
            continue
        kept = table if kept is None else pa.concat_tables([kept, table])
        ids = kept.column("query_id").to_pylist()
        _, first = np.unique(np.array(ids, dtype=object), return_index=True)
        first = sorted(first, key=lambda i: (stable_hash(ids[i], salt), ids[i]))[:limit]
        kept = kept.take(pa.array(np.array(first, dtype=np.int64)))
    if kept is None:
        return None
    ids = kept.column("query_id").to_pylist()
    return kept.take(pa.array(np.argsort(np.array(ids, dtype=object), kind="stable")))


def training_sample(manifest: dict, cfg: TrainConfig, n_features: int,
                    fallback_files: list[str]) -> tuple[pa.Table | None, str]:
    """The fixed hash sample of training queries, and a description of where it came from.

    The build's own input (every valid labelled query, before any policy chose anything) when it
    can still be read and is the file the build read (its `inputs[].sha256`, recomputed); else
    the curriculum's shards (then labelled as such: the scoring policy decided which queries are
    in them). Side files (rollout logs, qrels, candidates) are not query inputs.
    """
    limit, salt = cfg.train_sample, "train-sample"
    inputs = [i for i in manifest.get("inputs") or [] if i.get("format") not in SIDE_FORMATS]
    config = manifest.get("config", {})
    if inputs and inputs[0].get("format") == "synthetic" and config.get("synthetic"):
        sample = smallest_hashes([generate_table(synthetic_config(config["synthetic"]))], limit,
                                 salt)
        return with_relevant(sample), "synthetic training input, hash sample"
    why = "unreadable"
    try:
        if inputs and all(fs.exists(i["path"]) for i in inputs):
            if any(input_digest(i["path"], i.get("format", "auto")) != i.get("sha256")
                   for i in inputs):
                raise _Changed()
            tables = (read_validated(i["path"], i.get("format", "auto"), n_features,
                                     manifest.get("feature_space")) for i in inputs)
            sample = smallest_hashes(tables, limit, salt)
            name = ", ".join(os.path.basename(i["path"]) for i in inputs)
            return with_relevant(sample), f"{name} (the build's input), hash sample"
    except _Changed:
        why = "changed since the build (its sha256 differs from the manifest's)"
    except InputError:
        pass
    sample = smallest_hashes((b.table for b in ShardStream(fallback_files, 256)), limit, salt)
    return with_relevant(sample), (f"curriculum shards, hash sample (the build's input is {why};"
                                   " these queries were routed by the scoring policy)")


class _Changed(Exception):
    """The build's input is there but is not the file the build read."""


def eval_queries(cfg: TrainConfig, manifest: dict, n_features: int) -> tuple:
    """(table, description, why missing): --eval-input, else a synthetic run's test split."""
    if cfg.eval_input:
        table = with_relevant(read_validated(cfg.eval_input, cfg.eval_format, n_features,
                                             manifest.get("feature_space")))
        if table is None:
            raise InputError(cfg.eval_input, "no query with a relevant document (label > 0)")
        return table, f"{os.path.basename(cfg.eval_input)} (--eval-input)", None
    synthetic = manifest["config"].get("synthetic")
    if manifest["inputs"][0]["format"] == "synthetic-text" and synthetic:
        held_out = SyntheticTextConfig(n_queries=300, seed=synthetic["seed"], split="heldout")
        return (with_relevant(generate_text_table(held_out)), "synthetic text held-out split",
                None)
    if manifest["inputs"][0]["format"] == "synthetic" and synthetic:
        held_out = dataclasses.replace(synthetic_config(synthetic), split="test", n_queries=300)
        return with_relevant(generate_table(held_out)), "synthetic test split", None
    return None, None, "no --eval-input"


def read_rows(files: list[str], keep_fraction: float, validation: bool) -> pa.Table | None:
    """Distinct queries of some shards in (or out of) the validation split."""
    tables = []
    for batch in ShardStream(files, 256):
        ids = batch.table.column("query_id").to_pylist()
        mask = is_validation(ids, keep_fraction) == validation
        if mask.any():
            tables.append(batch.table.filter(pa.array(mask)))
    if not tables:
        return None
    return smallest_hashes(tables, 1 << 62, "rows")


# ---------------------------------------------------------------------------------------------
# Metrics.

def ndcg_at_10(model: RerankPolicy, table: pa.Table | None) -> float | None:
    """Mean NDCG@10 (linear gain) of the policy's deterministic ranking, or None without data."""
    if table is None:
        return None
    padded = pad_queries(table)
    scores = score_in_chunks(model, padded.features, padded.mask)
    return float(ndcg_of_scores(scores, padded.labels, padded.mask, k=10).mean())


def group_diagnostics(model: RerankPolicy, table: pa.Table, reward, rollouts: int, seed: int,
                      temperature: float, stream: int) -> dict:
    """Pass rate, informative-group fraction, entropy and ranking diversity of G rollouts/query.

    Returns:
      {"pass_rate": mean over queries and rollouts of `passed`, "informative_fraction": fraction
      of queries whose G rollouts neither all pass nor all fail, "entropy": mean -log p of the
      sampled rankings (nats, a Monte-Carlo estimate of the Plackett-Luce entropy),
      "ranking_diversity": mean fraction of distinct top-10 prefixes, "queries": N}.
    """
    padded = pad_queries(table)
    features, mask, _ = to_tensors(padded)
    scores = torch.from_numpy(score_in_chunks(model, padded.features, padded.mask))
    with torch.no_grad():
        noise = gumbel_noise(padded.query_ids, padded.n_docs, rollouts, seed, stream)
        rankings = sample_rankings(scores, mask, noise, temperature)
        logp = log_prob(scores, rankings, mask, temperature)
    _, passed = evaluate(reward, rankings.numpy(), padded.labels, padded.mask,
                         reference=rbo_reference(table, padded.mask, reward))
    informative = passed.min(-1) != passed.max(-1)
    return {"pass_rate": float(passed.mean()), "informative_fraction": float(informative.mean()),
            "entropy": float(-logp.mean()),
            "ranking_diversity": float(ranking_diversity(rankings.numpy(), padded.n_docs).mean()),
            "queries": int(table.num_rows)}


def within_label_position_spearman(model: RerankPolicy, table: pa.Table) -> float:
    """Mean Spearman correlation, within groups of equal label (2+ documents), between the
    policy's score and the document's file position (negated: +1 = earlier documents score
    higher). About 0 when scores carry no file order."""
    padded = pad_queries(table)
    scores = score_in_chunks(model, padded.features, padded.mask)
    values = []
    for i in range(len(padded.n_docs)):
        n = int(padded.n_docs[i])
        labels = padded.labels[i, :n]
        for label in np.unique(labels):
            idx = np.flatnonzero(labels == label)
            if len(idx) < 3:
                continue
            s = scores[i, idx]
            if np.ptp(s) == 0:
                continue
            rank_s = np.argsort(np.argsort(s)).astype(float)
            rank_p = np.argsort(np.argsort(-idx)).astype(float)
            values.append(np.corrcoef(rank_s, rank_p)[0, 1])
    return float(np.mean(values)) if values else 0.0


# ---------------------------------------------------------------------------------------------
# Checkpoints, logs, progress.

def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": _numpy_state()}


def _numpy_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))


def save_checkpoint(path: str, model, optimizer, position: dict, extra: dict) -> None:
    """Atomically writes model, optimizer, RNG states and curriculum position."""
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "model_config": asdict(model.config),
                "optimizer": optimizer.state_dict(), "rng": rng_state(),
                "position": position, **extra}, tmp)
    os.replace(tmp, path)


class MetricsLog:
    """Per-step metrics as JSON lines (DuckDB reads them with read_json_auto)."""

    def __init__(self, path: str, append: bool):
        self.handle = open(path, "a" if append else "w", encoding="utf-8")

    def write(self, **row) -> None:
        self.handle.write(json.dumps({k: v for k, v in row.items() if v is not None}) + "\n")
        self.handle.flush()


class Progress:
    """A progress line on stderr every `seconds` (also when stderr is not a terminal)."""

    def __init__(self, label: str, total: int, seconds: float):
        self.label, self.total, self.seconds = label, total, seconds
        self.last = time.monotonic()

    def update(self, step: int, **info) -> None:
        now = time.monotonic()
        if now - self.last >= self.seconds or step == self.total:
            self.last = now
            extra = ", ".join(f"{k} {v:.4f}" for k, v in info.items() if v is not None)
            print(f"{self.label}: step {step}/{self.total}" + (f", {extra}" if extra else ""),
                  file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The losses.

def bc_loss(model: RerankPolicy, batch, teacher_mode: str, loss: str) -> torch.Tensor:
    """Weighted BC loss of a batch of imitation rows (see the module docstring for the choices).

    The teacher's per-document scores (labels when the labels are the teacher) come from
    `data_contracts.teacher.teacher_scores`, so ties are visible to the loss.
    """
    features, mask, _ = to_tensors(batch.padded)
    teacher = torch.from_numpy(bc_teacher(batch.table, teacher_mode)[:, :features.shape[1]])
    if "weight" in batch.table.column_names:
        weight = torch.tensor(batch.table.column("weight").to_numpy(), dtype=torch.float32)
    else:  # an RL row imitated with --imitate all
        weight = torch.ones(batch.rows)
    # a demonstration whose scores all tie orders nothing: it would only teach a random order
    spread = teacher.masked_fill(~mask, float("-inf")).amax(-1) - \
        teacher.masked_fill(~mask, float("inf")).amin(-1)
    weight = weight * (spread > 0).to(torch.float32)
    scores = model(features, mask)
    n_docs = mask.sum(-1).clamp(min=1).to(torch.float32)
    if loss == "listnet":
        target = torch.softmax(teacher.masked_fill(~mask, float("-inf")), -1)
        log_p = torch.log_softmax(scores.masked_fill(~mask, -1e30), -1).masked_fill(~mask, 0.0)
        per_query = -(target * log_p).sum(-1)
    else:
        if loss == "listmle_ties":  # random tie-break: a fresh order within each tied group
            jitter = torch.rand(teacher.shape)
        else:  # listmle: ties keep file order
            jitter = -torch.arange(teacher.shape[1], dtype=torch.float32).expand_as(teacher)
        distinct = torch.unique(teacher[mask]) if mask.any() else torch.zeros(1)
        gap = (distinct[1:] - distinct[:-1]).min() if len(distinct) > 1 else torch.tensor(1.0)
        key = teacher + 0.5 * gap * jitter / jitter.abs().max().clamp(min=1e-12)
        key = key.masked_fill(~mask, float("-inf"))
        order = torch.argsort(key, dim=-1, descending=True, stable=True)
        per_query = -log_prob(scores, order.unsqueeze(1), mask)[:, 0] / n_docs
    return (weight * per_query).sum() / weight.sum().clamp(min=1e-8)


def bc_teacher(table: pa.Table, mode: str) -> np.ndarray:
    """[B, D] the teacher's per-document scores of imitation rows, with their ties.

    The pipeline stores each imitation row's teacher ORDER (`teacher_order`, derived from the
    teacher's scores, ties in file order), which hides ties. The scores are recovered: a full
    `teacher_scores` column first (modes auto/column); else, in modes auto/labels, the labels
    when the stored order is the labels' stable ideal order (the labels were the teacher) or
    when no order is stored (an RL row, imitated with `--imitate all`); else the order itself
    (position p of n scores n - p: an order has no ties).
    """
    n_docs = list_lengths(table.column("doc_ids"))
    scores, _ = teacher_scores(table, "column" if mode in ("auto", "column") else "none")
    if mode in ("auto", "labels"):
        labels = pad_ragged(table.column("labels"), n_docs)
        orders = table.column("teacher_order").to_pylist()
        has_scores = list_lengths(table.column("teacher_scores")) == n_docs
        for i, n in enumerate(n_docs):
            ideal = np.argsort(-labels[i, :n], kind="stable").tolist()
            # no stored order (an RL row imitated with --imitate all) or the labels' own order
            if mode == "labels" or (not has_scores[i] and orders[i] in (None, ideal)):
                scores[i, :n] = labels[i, :n]
    return scores


def rl_loss(model, reference, batch, reward, cfg: TrainConfig, stream: int) -> tuple:
    """Group-relative policy gradient on G sampled rankings per query, plus KL to `reference`."""
    features, mask, _ = to_tensors(batch.padded)
    scores = model(features, mask)
    noise = gumbel_noise(batch.padded.query_ids, batch.padded.n_docs, cfg.group_size, cfg.seed,
                         stream)
    rankings = sample_rankings(scores.detach(), mask, noise, cfg.temperature)
    logp = log_prob(scores, rankings, mask, cfg.temperature)
    # the RBO term of a composite reward is measured against the teacher's order, as in scoring
    _, passed = evaluate(reward, rankings.numpy(), batch.padded.labels, batch.padded.mask,
                         reference=rbo_reference(batch.table, batch.padded.mask, reward))
    r = torch.from_numpy(passed.astype(np.float32))
    advantage = (r - r.mean(-1, keepdim=True)) / (r.std(-1, keepdim=True) + 1e-6)
    loss = -(advantage * logp).mean()
    kl = torch.zeros(())
    if reference is not None and cfg.kl_coef > 0:
        with torch.no_grad():
            ref_logp = log_prob(reference(features, mask), rankings, mask, cfg.temperature)
        log_ratio = ref_logp - logp  # k3 estimator of KL(policy || reference), >= 0
        kl = (torch.exp(log_ratio) - log_ratio - 1).mean()
        loss = loss + cfg.kl_coef * kl
    informative = (r.min(-1).values != r.max(-1).values).float().mean()
    return loss, {"reward_mean": float(r.mean()), "informative_fraction": float(informative),
                  "entropy": float(-logp.detach().mean()), "kl": float(kl.detach()),
                  "ranking_diversity": float(ranking_diversity(rankings.numpy(),
                                                               batch.padded.n_docs).mean())}


def cycle(files: list[str], batch_size: int, start: tuple[int, int, int], val_fraction: float,
          columns: tuple[str, ...] = ()):
    """Batches of training rows (validation queries removed) forever, from (epoch, file, row).

    Yields (epoch, batch); positions count rows after the validation filter, so a resumed stream
    sees the same batches. Ends only if the files hold no training row at all.
    """
    epoch, file_index, row = start

    def keep(table: pa.Table) -> np.ndarray:
        return ~is_validation(table.column("query_id").to_pylist(), val_fraction)

    while True:
        produced = False
        for batch in ShardStream(files, batch_size, (file_index, row), columns, keep=keep):
            produced = True
            yield epoch, batch
        if not produced and (file_index, row) == (0, 0):
            return
        epoch, file_index, row = epoch + 1, 0, 0


def split_steps(total: int, rows: list[int]) -> list[int]:
    """Steps per segment in proportion to its rows (largest remainders; sums to `total`)."""
    weights = np.asarray(rows, float)
    if total <= 0 or weights.sum() == 0:
        return [0] * len(rows)
    exact = total * weights / weights.sum()
    steps = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - steps), kind="stable")[: total - steps.sum()]:
        steps[i] += 1
    return steps.tolist()


# ---------------------------------------------------------------------------------------------

def check_config(cfg: TrainConfig) -> None:
    """Raises InputError for values no run can use."""
    for name in ("batch_queries", "eval_every", "checkpoint_every", "diagnostic_rollouts"):
        if getattr(cfg, name) < 1:
            raise InputError(f"--{name.replace('_', '-')}", "must be at least 1")
    if cfg.group_size < 2:  # one rollout is its own group mean: every advantage would be 0
        raise InputError("--group-size", "must be at least 2 (a group-relative advantage "
                                         "needs two rollouts)")
    for name, high in (("group_size", 1024), ("diagnostic_rollouts", 1024),
                       ("batch_queries", 1 << 16)):  # memory grows with these
        if getattr(cfg, name) > high:
            raise InputError(f"--{name.replace('_', '-')}", f"must be at most {high}")
    for name, high in (("bc_lr", 1.0), ("rl_lr", 1.0), ("kl_coef", 1e3),
                       ("sparsity_tol", 1.0), ("progress_seconds", 1e6)):
        value = getattr(cfg, name)
        if not 0 <= value <= high:  # NaN fails too
            raise InputError(f"--{name.replace('_', '-')}", f"must be within [0, {high:g}] "
                                                            f"(got {value:g})")
    if not 0 <= cfg.seed <= MAX_SEED:
        raise InputError("--seed", f"must be within [0, {MAX_SEED}] (got {cfg.seed})")
    for name in ("bc_steps", "rl_steps", "rl_rollouts", "train_sample", "stop_after"):
        if getattr(cfg, name) < 0:
            raise InputError(f"--{name.replace('_', '-')}", "must not be negative")
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise InputError("--val-fraction", "must be in [0, 1)")
    low, high = TEMPERATURE_RANGE
    if not low <= cfg.temperature <= high:
        raise InputError("--temperature", f"must be within [{low:g}, {high:g}] (got "
                                          f"{cfg.temperature:g})")
    if cfg.bc_loss not in BC_LOSSES:
        raise InputError("--bc-loss", f"expected one of {BC_LOSSES}")
    if cfg.imitate not in IMITATE:
        raise InputError("--imitate", f"expected one of {IMITATE}")
    if cfg.rl_order not in RL_ORDERS:
        raise InputError("--rl-order", f"expected one of {RL_ORDERS}")


def train(cfg: TrainConfig) -> dict:
    """Runs BC then RL as configured; returns the summary (also written to OUT/summary.json).

    Raises:
      InputError: an unusable manifest, input, checkpoint or option; OUT inside a run folder.
    """
    cfg = dataclasses.replace(cfg, out=fs.normalize(cfg.out))
    check_config(cfg)
    fs.check_replaceable_location(cfg.out)
    manifest_path = cfg.manifest
    if fs.isdir(manifest_path):
        manifest_path = fs.join(manifest_path, "manifest.json")
    manifest = load_manifest(manifest_path)
    _check_run_config(manifest_path, manifest)
    run_dir, out = _resolved(fs.dirname(manifest_path)), _resolved(cfg.out)
    if out == run_dir or out.startswith(run_dir.rstrip("/") + "/"):
        raise InputError(cfg.out, f"--out is inside the run folder {run_dir}; a rebuild would "
                                  "delete it (choose a folder outside the run)")
    if run_dir.startswith(out.rstrip("/") + "/"):
        raise InputError(cfg.out, f"--out holds the run folder {run_dir}, which replacing it "
                                  "would delete (choose a folder outside the run)")
    if fs.exists(fs.join(out, "manifest.json")):
        raise InputError(cfg.out, "--out holds a run folder (manifest.json); choose another")
    _check_replaceable(out)
    if fs.is_remote(out):
        return _train_to_store(cfg, manifest, manifest_path, out)
    work = out + PARTIAL_SUFFIX
    _check_replaceable(work, "the work folder OUT.partial")
    resumed = cfg.resume and os.path.exists(os.path.join(work, "checkpoint.pt"))
    if cfg.resume and not resumed:
        print(f"--resume: no {work}{os.sep}checkpoint.pt (no killed run to continue); training "
              "from the start", file=sys.stderr, flush=True)
    if not resumed and os.path.exists(work):
        fs.delete_tree(work)
    os.makedirs(work, exist_ok=True)
    try:
        summary = _train(cfg, manifest, manifest_path, work, out, resumed)
    except Exception:
        if not resumed:  # a failed run leaves nothing half-made behind; a killed run's
            fs.delete_tree(work)  # OUT.partial that --resume failed on stays as it was
        raise
    _check_replaceable(out)  # again: files may have been put there while this run trained
    if os.path.exists(out):
        fs.delete_tree(out)
    os.replace(work, out)
    return summary


def _check_run_config(path: str, manifest: dict) -> None:
    """The build settings a trainer uses (the reward, the seed, the inputs) are there and valid.

    Raises:
      InputError: naming the manifest and the field (an edited or foreign manifest).
    """
    config = manifest.get("config")
    if not isinstance(config, dict):
        raise InputError(path, "no build 'config' object; not a build_curriculum manifest",
                         column="config")
    try:
        parse_reward(str(config.get("reward")))
    except ValueError as exc:
        raise InputError(path, f"config.reward: {exc}", column="config") from None
    seed = config.get("seed")
    if not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED):
        raise InputError(path, f"config.seed {seed!r} is not a seed in [0, {MAX_SEED}]",
                         column="config")
    inputs = manifest.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(
            isinstance(i, dict) and isinstance(i.get("path"), str) for i in inputs):
        raise InputError(path, "'inputs' is not a list of inputs with paths", column="inputs")


TRAINER_FILES = ("summary.json", "metrics.jsonl", "final.pt", "bc.pt", "checkpoint.pt",
                 "rescored")  # everything a trainer writes at the top of its folder


def _check_replaceable(out: str, what: str = "--out") -> None:
    """Refuses an --out (or its OUT.partial) that holds anything a trainer does not write (see
    `check_replaceable_folder`); --out itself is already resolved, so only OUT.partial may not
    be a link."""
    check_replaceable_folder(out, TRAINER_FILES, ("rescored",), "a trainer", what,
                             allow_link=what == "--out")


def _resolved(path: str) -> str:
    """A local path made absolute with its links resolved; a store URL as given."""
    return path.rstrip("/") if fs.is_remote(path) else os.path.realpath(os.path.abspath(path))


def _train_to_store(cfg: TrainConfig, manifest: dict, manifest_path: str, out: str) -> dict:
    """Trains in a local temporary folder, then uploads it to `out` (gs://, s3://).

    A store has no folder rename: the earlier files under `out` are deleted, the new ones
    uploaded, and `summary.json` last, so a folder with a summary is a finished one.

    Raises:
      InputError: --resume with a store --out (a killed run's work folder was local and is gone).
    """
    import tempfile

    if cfg.resume:
        raise InputError(cfg.out, "--resume needs a local --out (a run training to a store "
                                  "works in a temporary local folder that ends with it)")
    work = tempfile.mkdtemp(prefix="train-")
    try:
        summary = _train(cfg, manifest, manifest_path, work, out, False)
        files = sorted(os.path.relpath(os.path.join(folder, name), work)
                       for folder, _, names in os.walk(work) for name in names)
        files.sort(key=lambda rel: rel == "summary.json")  # the summary last: it marks the end
        if fs.exists(out):
            fs.delete_tree(out)
        for rel in files:
            fs.copy(os.path.join(work, rel), fs.join(out, *rel.split(os.sep)))
    finally:
        fs.delete_tree(work)
    return summary


def _train(cfg: TrainConfig, manifest: dict, manifest_path: str, work: str, out: str,
           resumed: bool) -> dict:
    ckpt_path = os.path.join(work, "checkpoint.pt")
    reward = parse_reward(manifest["config"]["reward"])
    teacher_mode = manifest["config"].get("teacher", "auto")
    imitation_files = files_of(manifest, "imitation")
    rl_manifest = manifest
    # every phase has a file, empty ones included: the width comes from the first with rows
    first = next((b for b in ShardStream(imitation_files + files_of(manifest, "rl"), 1)), None)
    if first is None:
        raise InputError(manifest_path, "the curriculum has no imitation and no RL rows")
    n_features = len(first.padded.features[0, 0])

    # The starting policy: the pipeline's `base` weights with the normaliser fitted on training rows.
    train_files = imitation_files + files_of(manifest, "rl")
    keep_train = lambda t: ~is_validation(t.column("query_id").to_pylist(), cfg.val_fraction)  # noqa: E731
    shift, scale = fit_normaliser(
        ((b.padded.features, b.padded.mask)
         for b in ShardStream(train_files, 256, keep=keep_train)), n_features)
    if cfg.init:
        model = load_policy_checkpoint(cfg.init)
        if model.config.n_features != n_features:
            raise InputError(cfg.init, f"policy expects {model.config.n_features} features, the "
                                       f"curriculum has {n_features}")
    else:
        model = base_policy(n_features, manifest["config"]["seed"])
        model.set_normaliser(shift, scale)
    untrained = base_policy(n_features, manifest["config"]["seed"])
    untrained.set_normaliser(shift, scale)
    untrained.eval()
    torch.manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.bc_lr)
    bc_steps = 0 if cfg.init else cfg.bc_steps
    position = {"phase": "bc", "step": 0, "epoch": 0, "file": 0, "row": 0, "segment": 0,
                "segment_step": 0}
    held_out, eval_name, eval_missing = eval_queries(cfg, manifest, n_features)
    validation = with_relevant(read_rows(train_files, cfg.val_fraction, validation=True))
    sample, sample_name = training_sample(manifest, cfg, n_features, train_files)
    summary: dict = {
        "config": asdict(cfg), "manifest": os.path.abspath(manifest_path),
        "sets": {
            "eval": {"description": eval_name, "queries": held_out.num_rows}
            if held_out is not None else {"missing": eval_missing},
            "validation": {"description": f"curriculum queries with crc32(query id) below "
                                          f"{cfg.val_fraction:g} (held out of BC and RL)",
                           "queries": validation.num_rows if validation is not None else 0},
            "train_sample": {"description": sample_name,
                             "queries": sample.num_rows if sample is not None else 0},
            "rl_queries": {"description": "the final curriculum's RL queries: POLICY-SELECTED "
                                          "(routed to RL by the scoring policy)"},
        },
        "ndcg@10": {}, "diagnostics": {}, "learning_curve": [],
        "normaliser": "slog1p, then per-feature mean/std fitted on the training rows; per-query "
                      "standardisation inside the model",
    }
    best = {"val": -1.0, "state": None, "step": 0}
    elapsed = 0.0
    if resumed:
        try:
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
        except Exception as exc:  # corrupt, unsafe (refused by weights_only) or another model
            first = (str(exc).splitlines() or [""])[0][:200]
            raise InputError(ckpt_path, f"cannot resume from this checkpoint "
                                        f"({type(exc).__name__}: {first})") from None
        position = dict(state["position"])
        summary = json.loads(state["summary"])
        best = {"val": float(state["best_val"]), "state": state.get("best_state"),
                "step": int(state["best_step"])}
        elapsed = float(state["elapsed"])
        if position["phase"] == "rl":
            optimizer = torch.optim.Adam(model.parameters(), lr=cfg.rl_lr)
            if summary.get("rescored_manifest"):
                rl_manifest = load_manifest(os.path.join(work, summary["rescored_manifest"]))
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
    log = MetricsLog(os.path.join(work, "metrics.jsonl"), append=resumed)
    step = position["step"]
    started = time.monotonic() - elapsed
    rollouts = summary.get("rollouts", 0)

    def checkpoint(force: bool = False) -> None:
        extra = {"summary": json.dumps(summary), "best_val": best["val"],
                 "best_step": best["step"], "elapsed": time.monotonic() - started}
        if best["state"] is not None:
            extra["best_state"] = best["state"]
        if force or step % cfg.checkpoint_every == 0 or (cfg.stop_after and step >= cfg.stop_after):
            save_checkpoint(ckpt_path, model, optimizer, dict(position, step=step), extra)
        if cfg.stop_after and step >= cfg.stop_after:
            log.handle.close()
            os._exit(3)  # behave like a kill right after a checkpoint

    def observe(phase: str, phase_step: int) -> float | None:
        """Validation (for selection) and eval NDCG@10: one point of the learning curve."""
        model.eval()
        val = ndcg_at_10(model, validation)
        point = {"phase": phase, "step": step, "phase_step": phase_step, "rollouts": rollouts,
                 "seconds": round(time.monotonic() - started, 3), "val_ndcg_at_10": val,
                 "ndcg_at_10": ndcg_at_10(model, held_out)}
        summary["learning_curve"].append(point)
        log.write(**dict(point, phase="eval", during=phase))
        if val is not None and val > best["val"]:
            best.update(val=val, step=step,
                        state={k: v.clone() for k, v in model.state_dict().items()})
        return val

    def measure(name: str, policy: RerankPolicy) -> None:
        policy.eval()
        summary["ndcg@10"][name] = ndcg_at_10(policy, held_out)
        summary.setdefault("val_ndcg@10", {})[name] = ndcg_at_10(policy, validation)
        for set_name, table, stream in (("eval", held_out, 10_000), ("train_sample", sample, 11_000)):
            if table is None:
                continue
            diag = group_diagnostics(policy, table, reward, cfg.diagnostic_rollouts, cfg.seed,
                                     cfg.temperature, stream)
            summary["diagnostics"].setdefault(set_name, {})[name] = diag
            log.write(phase="diagnostic", policy=name, set=set_name, step=step,
                      ndcg_at_10=summary["ndcg@10"][name] if set_name == "eval" else None, **diag)
        if sample is not None:
            summary.setdefault("tie_order_spearman", {})[name] = within_label_position_spearman(
                policy, sample)

    def select_best() -> None:
        if best["state"] is not None:
            model.load_state_dict(best["state"])
        summary.setdefault("selected_step", {})[position["phase"]] = best["step"]

    if not resumed:
        measure("untrained", untrained)

    # --- behavior cloning ---------------------------------------------------------------------
    if position["phase"] == "bc":
        progress = Progress("bc", bc_steps, cfg.progress_seconds)
        bc_files = imitation_files + (files_of(manifest, "rl") if cfg.imitate == "all" else [])
        if bc_steps and bc_files:
            if step == 0:
                observe("bc", 0)
            stream = cycle(bc_files, cfg.batch_queries,
                           (position["epoch"], position["file"], position["row"]),
                           cfg.val_fraction, ("weight",))
            for epoch, batch in stream:
                if step >= bc_steps:
                    break
                model.train()
                loss = bc_loss(model, batch, teacher_mode, cfg.bc_loss)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                position.update(epoch=epoch, file=batch.file_index,
                                row=batch.row_start + batch.rows)
                log.write(phase="bc", step=step, epoch=epoch, loss=float(loss.detach()))
                val = observe("bc", step) if step % cfg.eval_every == 0 or step == bc_steps \
                    else None
                progress.update(step, loss=float(loss.detach()), val_ndcg=val)
                checkpoint()
        summary["bc_steps_done"] = step
        select_best()
        model.eval()
        save_policy(model, os.path.join(work, "bc.pt"))
        measure("bc", model)
        if cfg.rescore_after_bc:
            print("re-scoring the curriculum with the BC policy", file=sys.stderr, flush=True)
            rescore(manifest, os.path.join(work, "bc.pt"), os.path.join(work, "rescored"))
            summary["rescored_manifest"] = os.path.join("rescored", "manifest.json")
            rl_manifest = load_manifest(os.path.join(work, summary["rescored_manifest"]))
            summary["rescored_counts"] = rl_manifest["counts"]
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.rl_lr)
        position = {"phase": "rl", "step": step, "epoch": 0, "file": 0, "row": 0, "segment": 0,
                    "segment_step": 0}
        best.update(val=-1.0, state=None, step=step)
        checkpoint(force=True)

    # --- reinforcement learning ---------------------------------------------------------------
    reference = load_policy_checkpoint(os.path.join(work, "bc.pt"))
    reference.eval()
    stages = [s for s in rl_manifest["curriculum"] if s["phase"] == "rl"]
    rl_files_all = [files_of(rl_manifest, "rl", s["stage"]) for s in stages]
    if cfg.rl_order == "shuffled":
        segments = [[shuffled_rl_file([f for fs_ in rl_files_all for f in fs_], cfg.seed, work)]]
        segment_rows = [sum(s["rows"] for s in stages)]
    else:
        segments, segment_rows = rl_files_all, [s["rows"] for s in stages]
    segment_steps = split_steps(cfg.rl_steps, segment_rows)
    rl_start = summary.get("bc_steps_done", 0)
    segment_budget = (split_steps(cfg.rl_rollouts, segment_rows) if cfg.rl_rollouts
                      else [None] * len(segments))
    summary["rl_plan"] = {"order": cfg.rl_order, "segment_rows": segment_rows,
                          "segment_steps": segment_steps}
    if cfg.rl_rollouts:
        summary["rl_plan"]["segment_rollouts"] = segment_budget

    def segment_done(segment: int) -> bool:
        spent = position.get("segment_rollouts", 0)
        return position["segment_step"] >= segment_steps[segment] or (
            segment_budget[segment] is not None and spent >= segment_budget[segment])

    progress = Progress("rl", cfg.rl_steps, cfg.progress_seconds)
    if cfg.rl_steps and step == rl_start:
        observe("rl", 0)
    for segment in range(position["segment"], len(segments)):
        if position["segment"] != segment:
            position.update(segment=segment, segment_step=0, segment_rollouts=0, epoch=0, file=0,
                            row=0)
        if segment_done(segment):
            continue
        stream = cycle(segments[segment], cfg.batch_queries,
                       (position["epoch"], position["file"], position["row"]), cfg.val_fraction)
        for epoch, batch in stream:
            if segment_done(segment):
                break
            model.train()
            loss, info = rl_loss(model, reference, batch, reward, cfg, stream=step + 1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            rollouts += batch.rows * cfg.group_size
            summary["rollouts"] = rollouts
            position.update(epoch=epoch, file=batch.file_index, row=batch.row_start + batch.rows,
                            segment_step=position["segment_step"] + 1,
                            segment_rollouts=position.get("segment_rollouts", 0)
                            + batch.rows * cfg.group_size)
            stage_no = stages[segment]["stage"] if cfg.rl_order == "curriculum" else None
            log.write(phase="rl", step=step, stage=stage_no, epoch=epoch,
                      loss=float(loss.detach()), rollouts=rollouts, **info)
            done = step - rl_start
            val = observe("rl", done) if done % cfg.eval_every == 0 or done == cfg.rl_steps \
                else None
            progress.update(done, reward=info["reward_mean"], val_ndcg=val)
            checkpoint()
    position["segment"] = len(segments)
    summary["rl_steps_done"] = step - rl_start
    curve = summary["learning_curve"]
    if step > rl_start and not (curve and curve[-1]["step"] == step):
        observe("rl", step - rl_start)  # a rollout budget can end RL between evaluations
    select_best()
    model.eval()
    save_policy(model, os.path.join(work, "final.pt"))
    measure("rl", model)
    # The RL queries (policy-selected) under each policy: kept, labelled as such.
    rl_queries = read_rows([f for fs_ in rl_files_all for f in fs_], cfg.val_fraction, False)
    if rl_queries is not None:
        summary["sets"]["rl_queries"]["queries"] = rl_queries.num_rows
        summary["diagnostics"]["rl_queries"] = {
            name: group_diagnostics(policy, rl_queries, reward, cfg.diagnostic_rollouts,
                                    cfg.seed, cfg.temperature, stream=20_000)
            for name, policy in (("untrained", untrained), ("bc", reference), ("rl", model))}
    summary["update_sparsity"] = update_sparsity(reference, model, cfg.sparsity_tol)
    summary["steps"] = step
    summary["rollouts"] = rollouts
    summary["outputs"] = {"folder": out, "summary": os.path.join(out, "summary.json"),
                          "rescored_curriculum": os.path.join(out, "rescored")
                          if summary.get("rescored_manifest") else None}
    with open(os.path.join(work, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
    log.write(phase="summary", step=step, **{f"ndcg_at_10_{k}": v
                                             for k, v in summary["ndcg@10"].items()})
    log.handle.close()
    return summary


def shuffled_rl_file(files: list[str], seed: int, work: str) -> str:
    """Writes every RL row (replays included) in `shuffled` order (crc32 of seed and query id,
    `curricula.ordering.shuffled_order`) to one Parquet file in the work folder; the control
    loads the RL rows in memory once to reorder them."""
    path = os.path.join(work, "rl-shuffled.parquet")
    if os.path.exists(path):
        return path
    tables = [pq.read_table(f) for f in files]
    table = pa.concat_tables(tables) if tables else None
    if table is None:
        raise InputError(work, "the curriculum has no RL shards to shuffle")
    order = shuffled_order(table.column("query_id").to_pylist(), seed)
    pq.write_table(table.take(pa.array(order)), path + ".tmp")
    os.replace(path + ".tmp", path)
    return path


def update_sparsity(before: RerankPolicy, after: RerankPolicy, tol: float) -> dict:
    """Fraction of parameters whose RL update exceeds `tol` in absolute value (and per tensor)."""
    changed, total, per_tensor = 0, 0, {}
    after_params = dict(after.named_parameters())
    for name, p0 in before.named_parameters():
        delta = (after_params[name].detach() - p0.detach()).abs()
        n_changed = int((delta > tol).sum())
        changed += n_changed
        total += delta.numel()
        per_tensor[name] = n_changed / delta.numel()
    return {"tolerance": tol, "fraction_changed": changed / max(total, 1),
            "fraction_unchanged": 1 - changed / max(total, 1), "per_tensor": per_tensor}


def rescore(manifest: dict, checkpoint: str, out: str) -> str:
    """Re-runs difficulty scoring and the curriculum with `checkpoint` as the policy."""
    from pipelines.build_curriculum import run
    from pipelines.config import config_from_dict

    config = config_from_dict(manifest["config"], out=out)
    config.policy = os.path.abspath(checkpoint)
    return run(config).out


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m trainers.train", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    choices = {"bc_loss": BC_LOSSES, "rl_order": RL_ORDERS, "imitate": IMITATE}
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
    if "missing" in sets["eval"]:
        lines.append(f"  test NDCG@10: not measured ({sets['eval']['missing']})")
    else:
        lines.append(f"  test NDCG@10 on {sets['eval']['description']}, {sets['eval']['queries']}"
                     f" queries: untrained {fmt(n.get('untrained'))}, bc {fmt(n.get('bc'))}, "
                     f"final {fmt(n.get('rl'))}")
    v = summary.get("val_ndcg@10", {})
    lines.append(f"  validation NDCG@10 ({sets['validation']['queries']} held-out curriculum "
                 f"queries): untrained {fmt(v.get('untrained'))}, bc {fmt(v.get('bc'))}, final "
                 f"{fmt(v.get('rl'))}")
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
