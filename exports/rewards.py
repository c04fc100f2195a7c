"""Reward functions for verl and TRL that score a generation exactly as the pass rates were.

Both parse the generation with difficulty.generations (the run's `rollout_format` and `malformed`
mode) and score the ranking with difficulty.rewards.evaluate (the run's `--reward`), against the
ground truth the export wrote per query: the candidates' labels (qrels), the teacher's order
(the RBO reference) and, for a reward with `ideal=qrels`, `judged_labels` (the labels of every
judged relevant document of the query, the ideal's). A malformed generation under `fail` scores 0.

- verl: `compute_score(data_source, solution_str, ground_truth, extra_info=None) -> float`
  (verl's custom reward function; point `reward.custom_reward_function.path` at this file, or at
  the `reward_fn.py` the export writes, and `reward.custom_reward_function.name=compute_score`).
- TRL: `ranking_reward(completions, ground_truth, **kwargs) -> list[float]` (GRPOTrainer's
  reward function; `ground_truth` is a column of the GRPO dataset, passed per completion).

The value returned is the reward's continuous value (the NDCG or composite), a finite float in
[0, max] (max = 1 for NDCG and hit@1, a composite's sum of weights); with `"output": "pass"` in
the ground truth it is 1.0 when the rollout passes the reward's threshold and 0.0 otherwise (the
pass rate's own outcome, as Rank-R1's binary reward).

They never fail a training loop: whatever the policy writes (empty, megabytes, binary junk,
ids of thousands of digits, unclosed tags, a non-string completion) they return such a float in
time linear in its length (the parser's guarantees, difficulty/generations.py). A ground truth
they cannot score (no labels: the query had no qrels; the `log` reward, which has no verifier)
scores 0.0 with a warning, once per kind, on stderr (Python's `warnings`); only a call without
any `ground_truth` column (not a dataset this package exported) raises.
"""
from __future__ import annotations

import json
import math
import warnings
from functools import lru_cache

import numpy as np

from difficulty.generations import parse_generation
from difficulty.rewards import evaluate, judged_matrix, parse_reward, reference_order


def ground_truth_record(doc_ids: list[str], labels: list[float] | None,
                        teacher_order: list[int] | None, reward: str, rollout_format: str,
                        malformed: str, output: str = "value",
                        judged_labels: list[float] | None = None) -> dict:
    """The ground truth of one query, as the export stores it (JSON) and the rewards read it.

    `judged_labels` is written only when given (a reward with `ideal=qrels`), so the ground truth
    of any other reward is unchanged.
    """
    record = {"doc_ids": list(doc_ids), "labels": None if labels is None else list(labels),
              "teacher_order": None if teacher_order is None else list(teacher_order),
              "reward": reward, "rollout_format": rollout_format, "malformed": malformed,
              "output": output}
    if judged_labels is not None:
        record["judged_labels"] = list(judged_labels)
    return record


@lru_cache(maxsize=64)
def _spec(text: str):
    return parse_reward(text)


@lru_cache(maxsize=4096)
def _truth_of_json(text: str) -> dict:
    return json.loads(text)


def _truth(ground_truth) -> dict:
    return _truth_of_json(ground_truth) if isinstance(ground_truth, str) else ground_truth


def score_generation(solution_str, ground_truth: dict | str
                     ) -> tuple[float, bool, str | None]:
    """(reward value, passed, malformation reason) of one generation.

    Args:
      solution_str: the generated text (anything else counts as no ranking).
      ground_truth: a `ground_truth_record` (or its JSON).

    Returns:
      The reward is a finite float in [0, the reward's maximum].

    Raises:
      ValueError: the ground truth has no labels (a query without qrels cannot be rewarded) or
        an unknown reward or `log` (these are what `compute_score` scores 0 with a warning).
    """
    truth = _truth(ground_truth)
    if truth.get("labels") is None:
        raise ValueError("ground truth without labels: this query has no qrels")
    spec = _spec(truth["reward"])
    if spec.kind == "log":
        raise ValueError("the `log` reward comes from a rollout log: it cannot score a generation")
    n = len(truth["doc_ids"])
    parsed = parse_generation(solution_str, n, truth.get("rollout_format", "permutation"),
                              truth.get("malformed", "fail"))
    if parsed.ranking is None or not parsed.ranking:
        return 0.0, False, parsed.reason
    labels = np.asarray(truth["labels"], dtype=np.float64)[None, :]
    mask = np.ones_like(labels, dtype=bool)
    ranking = np.zeros((1, 1, n), dtype=np.int64)
    valid = np.zeros((1, 1, n), dtype=bool)
    ranking[0, 0, :len(parsed.ranking)] = parsed.ranking
    valid[0, 0, :len(parsed.ranking)] = True
    reference = (np.asarray(truth["teacher_order"], dtype=np.int64)[None, :]
                 if truth.get("teacher_order") is not None else reference_order(labels, mask))
    judged = (judged_matrix([truth["judged_labels"]]) if truth.get("judged_labels") is not None
              else None)
    reward, passed = evaluate(spec, ranking, labels, mask, valid, reference, judged)
    value = float(reward[0, 0])
    if not math.isfinite(value):  # labels the export wrote are finite; never pass NaN on
        return 0.0, False, parsed.reason
    return min(max(value, 0.0), spec.max_reward), bool(passed[0, 0]), parsed.reason


def _value(solution_str, ground_truth) -> float:
    truth = _truth(ground_truth)
    try:
        reward, passed, _ = score_generation(solution_str, truth)
    except ValueError as exc:  # a ground truth without a verifier: see the module docstring
        warnings.warn(f"rerank-curriculum reward scored 0.0: {exc}", RuntimeWarning,
                      stacklevel=3)
        return 0.0
    return float(passed) if truth.get("output") == "pass" else reward


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    """verl's custom reward function: the reward of one response (see the module docstring)."""
    return _value(solution_str, ground_truth)


def _text(completion) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:  # conversational: [{role, content}, ...]
        last = completion[-1]
        content = last.get("content", "") if isinstance(last, dict) else last
        return content if isinstance(content, str) else ""
    return ""


def ranking_reward(completions, ground_truth=None, **kwargs) -> list[float]:
    """TRL GRPOTrainer's reward function: one reward per completion.

    Args:
      completions: the generated completions (strings, or conversational message lists).
      ground_truth: the GRPO dataset's `ground_truth` column, one JSON record per completion.

    Raises:
      ValueError: no `ground_truth` column (the dataset is not one this package exported).
    """
    if ground_truth is None:
        raise ValueError("ranking_reward needs the dataset's `ground_truth` column")
    return [_value(_text(c), g) for c, g in zip(completions, ground_truth)]
