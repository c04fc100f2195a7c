"""Recipe presets: ReasonRank (verl GRPO) and Rank-R1 (TRL GRPO) rows and rewards.

Both rewards parse and score with the product's own code (exports.rewards.score_generation:
difficulty.generations + difficulty.rewards, the run's `--reward`), so the trainer's reward is
the one the pass rates were measured with; only the recipe's format rule is added on top.

- `reasonrank`: data_source "ranking"; ground truth the ideal ranking as a `[a] > [b] > ...`
  string (prompt numbering; the teacher's order where the query has one, else the labels'
  ideal order); extra_info `initial_list` (doc ids in prompt order), `final_list` (doc ids in the
  ground truth's order), `relevant_docids` (label > 0) and `reward_record` (the JSON record the
  reward reads). Reward: -1.0 when the `<think>...</think>` then `<answer>...</answer>`
  structure is missing, else the run's reward value (e.g. NDCG@10 + 0.2 Recall@10 + 0.1 RBO,
  whose NDCG has graded gains and whose RBO is RBO_ext, p=0.9: ReasonRank's own reward has
  binary gains and the `rbo` package's p=1 average overlap, and scores answers the product's
  parser fails; tests/exports/test_recipe_rewards.py asserts the exact difference).
  Needs a run scored with `--rollout-format permutation`.
- `rank-r1`: ground truth `[k]`, the prompt position of the most relevant passage. Reward 1.0
  when a `<think>...</think>` block precedes `<answer>...</answer>` and the answer passes the
  run's reward, else 0.0 (Rank-R1's own reward compares the answer text with `[k]`; the
  product parses it, so `k`, `[ k ]` and a passage tied at the top label also pass, and of two
  answer blocks the last is read). Needs a run scored with `--rollout-format answer`.

The format check (`think_then_answer`) is both recipes' own pattern,
`<think>.*?</think>\\s*<answer>(.*?)</answer>` (case-sensitive tags, only whitespace between
`</think>` and `<answer>`), done as `str.find` scans (linear in the text).
"""
from __future__ import annotations

import json
import re

from exports.rewards import score_generation

PRESETS = ("reasonrank", "rank-r1")
PRESET_FORMAT = {"reasonrank": "permutation", "rank-r1": "answer"}
REASONRANK_DATA_SOURCE = "ranking"
FORMAT_PENALTY = -1.0
_SPACES = re.compile(r"\s*")  # the pattern's `\s*` (Unicode whitespace, as `re` reads it)


def check_preset(preset: str | None, rollout_format: str, run: str) -> None:
    """Raises InputError when a preset does not fit the run's rollout format."""
    from data_contracts.errors import InputError

    if preset is None:
        return
    if preset not in PRESETS:
        raise InputError("--preset", f"unknown preset {preset!r} (expected one of "
                                     f"{', '.join(PRESETS)})")
    if PRESET_FORMAT[preset] != rollout_format:
        raise InputError(run, f"--preset {preset} needs a run scored with --rollout-format "
                              f"{PRESET_FORMAT[preset]}; this run used {rollout_format}")


def think_then_answer(text: str | None) -> bool:
    """Whether `text` has the recipes' structure: their pattern
    `<think>.*?</think>\\s*<answer>(.*?)</answer>` (`re.search`, DOTALL, tags case-sensitive;
    ReasonRank's listwise_prompt_r1.toml and Rank-R1's train_grpo.py) matches somewhere in it.

    That is: a `<think>`; after it a `</think>` followed by nothing but whitespace and then
    `<answer>`; and a `</answer>` after that. Any `</think>` that works for a later `<think>`
    works for the first, so only the first is tried; the `</think>` candidates are tried left
    to right, their whitespace runs are disjoint and one `</answer>` search decides, so the
    scan is linear in the text.
    """
    if not isinstance(text, str):
        return False
    start = text.find("<think>")
    end = text.find("</think>", start + 7) if start >= 0 else -1
    while end >= 0:
        answer = _SPACES.match(text, end + 8).end()
        if text.startswith("<answer>", answer):
            return text.find("</answer>", answer + 8) >= 0
        end = text.find("</think>", end + 8)
    return False


def _record(ground_truth, extra_info) -> dict | None:
    record = extra_info.get("reward_record") if isinstance(extra_info, dict) else None
    if record is None and isinstance(ground_truth, str) and ground_truth.startswith("{"):
        record = ground_truth
    try:
        return json.loads(record) if isinstance(record, str) else record
    except ValueError:
        return None


def _score(text, record) -> tuple[float, bool] | None:
    if not isinstance(record, dict):
        return None
    try:
        value, passed, _ = score_generation(text if isinstance(text, str) else "", record)
    except (ValueError, TypeError, KeyError):
        return None
    return value, passed


def reasonrank_compute_score(data_source, solution_str, ground_truth, extra_info=None,
                             **kwargs) -> float:
    """verl reward of the reasonrank preset: -1 without <think>/<answer>, else the run's
    reward value (0.0 when the row has no reward record)."""
    if not think_then_answer(solution_str):
        return FORMAT_PENALTY
    scored = _score(solution_str, _record(ground_truth, extra_info))
    return 0.0 if scored is None else float(scored[0])


def rank_r1_compute_score(data_source, solution_str, ground_truth, extra_info=None,
                          **kwargs) -> float:
    """verl reward of the rank-r1 preset: 1.0 when the think block is there and the answer
    passes the run's reward, else 0.0."""
    if not think_then_answer(solution_str):
        return 0.0
    scored = _score(solution_str, _record(ground_truth, extra_info))
    return 1.0 if scored is not None and scored[1] else 0.0


def _texts(completions) -> list[str]:
    out = []
    for c in completions:
        if isinstance(c, list) and c and isinstance(c[-1], dict):
            c = c[-1].get("content", "")
        out.append(c if isinstance(c, str) else "")
    return out


def reasonrank_reward(completions, reward_record=None, ground_truth=None, **kwargs
                      ) -> list[float]:
    """TRL reward of the reasonrank preset (the GRPO dataset's `reward_record` column)."""
    records = reward_record or [None] * len(completions)
    return [reasonrank_compute_score(REASONRANK_DATA_SOURCE, t, None, {"reward_record": r})
            for t, r in zip(_texts(completions), records)]


def rank_r1_reward(completions, reward_record=None, ground_truth=None, **kwargs) -> list[float]:
    """TRL reward of the rank-r1 preset (the GRPO dataset's `reward_record` column)."""
    records = reward_record or [None] * len(completions)
    return [rank_r1_compute_score("rank-r1", t, None, {"reward_record": r})
            for t, r in zip(_texts(completions), records)]


VERL_FUNCTION = {None: "compute_score", "reasonrank": "reasonrank_compute_score",
                 "rank-r1": "rank_r1_compute_score"}
TRL_FUNCTION = {None: "exports.rewards.ranking_reward",
                "reasonrank": "exports.presets.reasonrank_reward",
                "rank-r1": "exports.presets.rank_r1_reward"}
