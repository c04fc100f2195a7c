"""Reward functions for verl and TRL that score a generation exactly as the pass rates were.

Both parse the generation with difficulty.generations (the run's `rollout_format` and `malformed`
mode) and score the ranking with difficulty.rewards.evaluate (the run's `--reward`), against the
ground truth the export wrote per query: the candidates' labels (qrels) and the teacher's order
(the RBO reference). A malformed generation under `fail` scores 0.

- verl: `compute_score(data_source, solution_str, ground_truth, extra_info=None) -> float`
  (verl's custom reward function; point `custom_reward_function.path` at this file, or at the
  `reward_fn.py` the export writes, and `custom_reward_function.name=compute_score`).
- TRL: `ranking_reward(completions, ground_truth, **kwargs) -> list[float]` (GRPOTrainer's
  reward function; `ground_truth` is a column of the GRPO dataset, passed per completion).

The value returned is the reward's continuous value (the NDCG or composite); with
`"output": "pass"` in the ground truth it is 1.0 when the rollout passes the reward's threshold and
0.0 otherwise (the pass rate's own outcome, as Rank-R1's binary reward).
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

from difficulty.generations import parse_generation
from difficulty.rewards import evaluate, parse_reward, reference_order


def ground_truth_record(doc_ids: list[str], labels: list[float] | None,
                        teacher_order: list[int] | None, reward: str, rollout_format: str,
                        malformed: str, output: str = "value") -> dict:
    """The ground truth of one query, as the export stores it (JSON) and the rewards read it."""
    return {"doc_ids": list(doc_ids), "labels": None if labels is None else list(labels),
            "teacher_order": None if teacher_order is None else list(teacher_order),
            "reward": reward, "rollout_format": rollout_format, "malformed": malformed,
            "output": output}


@lru_cache(maxsize=64)
def _spec(text: str):
    return parse_reward(text)


def score_generation(solution_str: str | None, ground_truth: dict | str
                     ) -> tuple[float, bool, str | None]:
    """(reward value, passed, malformation reason) of one generation.

    Args:
      solution_str: the generated text.
      ground_truth: a `ground_truth_record` (or its JSON).

    Raises:
      ValueError: the ground truth has no labels (a query without qrels cannot be rewarded) or
        an unknown reward.
    """
    truth = json.loads(ground_truth) if isinstance(ground_truth, str) else ground_truth
    if truth.get("labels") is None:
        raise ValueError("ground truth without labels: this query has no qrels")
    n = len(truth["doc_ids"])
    parsed = parse_generation(solution_str, n, truth.get("rollout_format", "permutation"),
                              truth.get("malformed", "fail"))
    if parsed.ranking is None:
        return 0.0, False, parsed.reason
    spec = _spec(truth["reward"])
    labels = np.asarray(truth["labels"], dtype=np.float64)[None, :]
    mask = np.ones_like(labels, dtype=bool)
    ranking = np.zeros((1, 1, n), dtype=np.int64)
    valid = np.zeros((1, 1, n), dtype=bool)
    ranking[0, 0, :len(parsed.ranking)] = parsed.ranking
    valid[0, 0, :len(parsed.ranking)] = True
    reference = (np.asarray(truth["teacher_order"], dtype=np.int64)[None, :]
                 if truth.get("teacher_order") is not None else reference_order(labels, mask))
    reward, passed = evaluate(spec, ranking, labels, mask, valid, reference)
    return float(reward[0, 0]), bool(passed[0, 0]), parsed.reason


def _value(solution_str, ground_truth) -> float:
    truth = json.loads(ground_truth) if isinstance(ground_truth, str) else ground_truth
    reward, passed, _ = score_generation(solution_str, truth)
    return float(passed) if truth.get("output") == "pass" else reward


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    """verl's custom reward function: the reward of one response (see the module docstring)."""
    return _value(solution_str, ground_truth)


def _text(completion) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:  # conversational: [{role, content}, ...]
        last = completion[-1]
        return last.get("content", "") if isinstance(last, dict) else str(last)
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
