"""The trainer's losses: BC on the teacher's order (ties broken at random, or ListNet), and RL's
group-relative policy gradient on exact Plackett-Luce log-probabilities with a KL to a reference.

See `trainers.train`'s docstring for the choice of BC loss (`--bc-loss`).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from data_contracts.arrays import list_lengths, pad_ragged
from data_contracts.teacher import teacher_scores
from difficulty.policy import RerankPolicy
from difficulty.rewards import evaluate
from difficulty.scoring import judged_of, rbo_reference
from difficulty.sampler import (group_advantage, gumbel_noise, informative_groups, log_prob,
                               ranking_diversity, rollout_reward, sample_rankings)
from trainers.config import TrainConfig
from trainers.data import to_tensors


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
    """Group-relative policy gradient on G sampled rankings per query, plus KL to `reference`.

    Each ranking's reward is its pass (0/1) or, with `--rl-reward graded`, the reward's metric
    value (`difficulty.sampler.rollout_reward`); the advantage is group-relative
    (`difficulty.sampler.group_advantage`). The returned `informative_fraction` counts the groups
    with a non-zero advantage under that reward; `reward_mean` is that reward's mean.
    """
    features, mask, _ = to_tensors(batch.padded)
    scores = model(features, mask)
    noise = gumbel_noise(batch.padded.query_ids, batch.padded.n_docs, cfg.group_size, cfg.seed,
                         stream)
    rankings = sample_rankings(scores.detach(), mask, noise, cfg.temperature)
    logp = log_prob(scores, rankings, mask, cfg.temperature)
    # the RBO term of a composite reward is measured against the teacher's order, as in scoring
    value, passed = evaluate(reward, rankings.numpy(), batch.padded.labels, batch.padded.mask,
                             reference=rbo_reference(batch.table, batch.padded.mask, reward),
                             judged=judged_of(batch.table, reward))
    r = torch.from_numpy(rollout_reward(value, passed, cfg.rl_reward))  # --rl-reward
    advantage = group_advantage(r)
    loss = -(advantage * logp).mean()
    kl = torch.zeros(())
    if reference is not None and cfg.kl_coef > 0:
        with torch.no_grad():
            ref_logp = log_prob(reference(features, mask), rankings, mask, cfg.temperature)
        log_ratio = ref_logp - logp  # k3 estimator of KL(policy || reference), >= 0
        kl = (torch.exp(log_ratio) - log_ratio - 1).mean()
        loss = loss + cfg.kl_coef * kl
    informative = informative_groups(r).float().mean()
    return loss, {"reward_mean": float(r.mean()), "informative_fraction": float(informative),
                  "entropy": float(-logp.detach().mean()), "kl": float(kl.detach()),
                  "ranking_diversity": float(ranking_diversity(rankings.numpy(),
                                                               batch.padded.n_docs).mean())}
