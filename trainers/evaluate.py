"""Measuring a policy: NDCG@10 of its deterministic ranking, its rollouts' group diagnostics, the
order it learned within tied labels, how much of it RL changed; and the fixed query sets (eval,
validation, training sample) it is measured on.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from data_contracts.arrays import pad_queries
from data_contracts.errors import InputError
from data_contracts.synthetic import config_from_dict as synthetic_config
from data_contracts.synthetic import generate_table
from difficulty.policy import RerankPolicy, score_in_chunks
from difficulty.rewards import evaluate, ndcg_of_scores
from difficulty.scoring import judged_of, rbo_reference
from difficulty.sampler import (gumbel_noise, informative_groups, log_prob, ranking_diversity,
                               sample_rankings)
from trainers.config import TrainConfig
from trainers.data import (eval_space, read_rows, read_validated, synthetic_text_config,
                           synthetic_text_table, to_tensors, training_sample, with_relevant)


def ndcg_at_10(model: RerankPolicy, table: pa.Table | None, reward=None) -> float | None:
    """Mean NDCG@10 (linear gain) of the policy's deterministic ranking, or None without data.

    Args:
      reward: the run's `parse_reward` spec; its `ideal` names the ideal DCG (`window`: the
        candidates' labels; `qrels`: every judged document's, the table's `judged_labels`).
        None: the window's.
    """
    if table is None:
        return None
    padded = pad_queries(table)
    scores = score_in_chunks(model, padded.features, padded.mask)
    judged = judged_of(table, reward) if reward is not None else None
    return float(ndcg_of_scores(scores, padded.labels, padded.mask, k=10, judged=judged).mean())


def ideal_name(reward) -> str:
    """How reported NDCG names its ideal: `ideal=window` or `ideal=qrels`."""
    return f"ideal={getattr(reward, 'ideal', 'window')}"


def group_rollouts(model: RerankPolicy, table: pa.Table, reward, rollouts: int, seed: int,
                   temperature: float, stream: int) -> tuple:
    """G sampled rankings per query under the policy and whether each passes the reward.

    Returns:
      (padded queries, rankings [B, G, D] int64, log-probabilities [B, G] (nats), passed
      [B, G] bool); the noise is drawn per query from (seed, query id, stream), so the same
      arguments give the same rollouts.
    """
    padded = pad_queries(table)
    features, mask, _ = to_tensors(padded)
    scores = torch.from_numpy(score_in_chunks(model, padded.features, padded.mask))
    with torch.no_grad():
        noise = gumbel_noise(padded.query_ids, padded.n_docs, rollouts, seed, stream)
        rankings = sample_rankings(scores, mask, noise, temperature)
        logp = log_prob(scores, rankings, mask, temperature)
    _, passed = evaluate(reward, rankings.numpy(), padded.labels, padded.mask,
                         reference=rbo_reference(table, padded.mask, reward),
                         judged=judged_of(table, reward))
    return padded, rankings.numpy(), logp, passed


def group_diagnostics(model: RerankPolicy, table: pa.Table, reward, rollouts: int, seed: int,
                      temperature: float, stream: int) -> dict:
    """Pass rate, informative-group fraction, entropy and ranking diversity of G rollouts/query
    (`group_rollouts`).

    Returns:
      {"pass_rate": mean over queries and rollouts of `passed`, "informative_fraction": fraction
      of queries whose G rollouts neither all pass nor all fail, "entropy": mean -log p of the
      sampled rankings (nats, a Monte-Carlo estimate of the Plackett-Luce entropy),
      "ranking_diversity": mean fraction of distinct top-10 prefixes, "queries": N}.
    """
    padded, rankings, logp, passed = group_rollouts(model, table, reward, rollouts, seed,
                                                    temperature, stream)
    return {"pass_rate": float(passed.mean()),
            "informative_fraction": float(informative_groups(passed).mean()),
            "entropy": float(-logp.mean()),
            "ranking_diversity": float(ranking_diversity(rankings, padded.n_docs).mean()),
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


def eval_queries(cfg: TrainConfig, manifest: dict, n_features: int) -> tuple:
    """(table, description, why missing): --eval-input (checked against the run's kind, width
    and id base, read in its feature space), else a synthetic run's test split."""
    if cfg.eval_input:
        space = eval_space(cfg.eval_input, cfg.eval_format, run_format(manifest),
                           manifest.get("feature_space"), f"the run {cfg.manifest}")
        table = with_relevant(read_validated(cfg.eval_input, cfg.eval_format, n_features, space,
                                             eval_text_options(cfg, manifest)))
        if table is None:
            raise InputError(cfg.eval_input, "no query with a relevant document (label > 0)")
        return table, f"{os.path.basename(cfg.eval_input)} (--eval-input)", None
    held_out = synthetic_held_out(manifest["inputs"][0]["format"],
                                  manifest["config"].get("synthetic"))
    return held_out + (None,) if held_out else (None, None, "no --eval-input")


def eval_text_options(cfg: TrainConfig, manifest: dict):
    """The `TextOptions` of a text --eval-input: its own candidates run and qrels
    (--eval-candidates, --eval-qrels), the build's --candidate-depth; None when it needs none."""
    from data_contracts.readers.text import TextOptions

    if not (cfg.eval_candidates or cfg.eval_qrels):
        return None
    return TextOptions(candidates=cfg.eval_candidates or None, qrels=cfg.eval_qrels or None,
                       depth=manifest["config"].get("candidate_depth"))


def synthetic_held_out(fmt: str, synthetic: dict | None) -> tuple | None:
    """(table, description) of a synthetic build's held-out queries (300, with a relevant
    document; query ids of their own), or None when `fmt` is no synthetic input's format.

    Args:
      fmt: the build's first input format (`synthetic` or `synthetic-text`).
      synthetic: the manifest's `config.synthetic` (the generator's knobs).
    """
    if fmt == "synthetic-text" and synthetic:
        held_out = synthetic_text_config(synthetic, "heldout", 300)
        return with_relevant(synthetic_text_table(held_out)), "synthetic text held-out split"
    if fmt == "synthetic" and synthetic:
        held_out = dataclasses.replace(synthetic_config(synthetic), split="test", n_queries=300)
        return with_relevant(generate_table(held_out)), "synthetic test split"
    return None


def run_format(manifest: dict) -> str:
    """The format of a run's first query input (side files such as qrels left out)."""
    from data_contracts.manifest import SIDE_FORMATS

    inputs = [i for i in manifest.get("inputs") or [] if i.get("format") not in SIDE_FORMATS]
    return inputs[0].get("format", "auto") if inputs else "auto"


@dataclass
class QuerySets:
    """The fixed query sets every diagnostic names (see `trainers.train`): each table is None when
    the set is empty, and its description says where it came from (or why it is missing)."""

    held_out: pa.Table | None
    eval_name: str | None
    eval_missing: str | None
    validation: pa.Table | None
    sample: pa.Table | None
    sample_name: str

    def describe(self, val_fraction: float) -> dict:
        """The summary's `sets`: each set's description and query count."""
        return {
            "eval": {"description": self.eval_name, "queries": self.held_out.num_rows}
            if self.held_out is not None else {"missing": self.eval_missing},
            "validation": {"description": f"curriculum queries with crc32(query id) below "
                                          f"{val_fraction:g} (held out of BC and RL)",
                           "queries": self.validation.num_rows
                           if self.validation is not None else 0},
            "train_sample": {"description": self.sample_name,
                             "queries": self.sample.num_rows if self.sample is not None else 0},
            "rl_queries": {"description": "the final curriculum's RL queries: POLICY-SELECTED "
                                          "(routed to RL by the scoring policy)"},
        }


def fixed_sets(cfg: TrainConfig, manifest: dict, n_features: int,
               train_files: list[str]) -> QuerySets:
    """Reads the eval queries, the validation split of `train_files` and the training sample."""
    held_out, eval_name, eval_missing = eval_queries(cfg, manifest, n_features)
    validation = with_relevant(read_rows(train_files, cfg.val_fraction, validation=True))
    sample, sample_name = training_sample(manifest, cfg, n_features, train_files)
    return QuerySets(held_out, eval_name, eval_missing, validation, sample, sample_name)
