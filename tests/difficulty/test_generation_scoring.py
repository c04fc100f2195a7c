"""score_from_log on rollouts that carry raw generations instead of rankings."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from data_contracts.schema import QUERY_SCHEMA, SCORED_QUERY_SCHEMA
from difficulty.rewards import parse_reward
from difficulty.scoring import ScoringConfig, score_from_log


def _query():
    return pa.Table.from_pylist([{
        "query_id": "q1", "doc_ids": ["d1", "d2", "d3"],
        "features": [[0.0], [0.0], [0.0]], "labels": [0.0, 2.0, 0.0],
        "query_text": "what", "doc_texts": ["a", "b", "c"]}], schema=QUERY_SCHEMA)


ROWS = [
    {"rollout_id": "r1", "generation": "[2] > [1] > [3]"},                 # ideal: passes
    {"rollout_id": "r2", "generation": "<think>..</think><answer>[2] > [3]</answer>"},  # missing
    {"rollout_id": "r3", "generation": "[1] > [1] > [2] > [3]"},           # repeated
    {"rollout_id": "r4", "generation": "no idea"},                          # no ranking
    {"rollout_id": "r5", "ranking": ["d2", "d1", "d3"]},                    # parsed already
]


@pytest.mark.parametrize("mode,successes", [("fail", 2), ("repair", 3)])
def test_malformed_generations_are_failures_or_repaired_and_counted(mode, successes):
    cfg = ScoringConfig(reward=parse_reward("ndcg@3>=0.99"), malformed=mode)
    rows = [{"query_id": "q1", **r} for r in ROWS]
    scored = score_from_log(_query(), [rows], "llm", cfg)
    assert scored.schema.equals(SCORED_QUERY_SCHEMA)
    row = scored.to_pylist()[0]
    assert row["trials"] == 5 and row["successes"] == successes
    assert row["malformed_rollouts"] == 3
    assert json.loads(row["malformed_reasons"]) == {"missing_id": 1, "no_ranking": 1,
                                                    "repeated_id": 1}
    # repaired r2 is [2] > [3] > [1]: ideal on the one relevant doc; repaired r3 is [1]>[2]>[3]
    assert f"malformed: {mode}" in row["rule"]


def test_rank_r1_answers_use_hit_at_1():
    cfg = ScoringConfig(reward=parse_reward("hit@1"), rollout_format="answer")
    rows = [{"query_id": "q1", "rollout_id": f"r{i}", "generation": g}
            for i, g in enumerate(["<answer>[2]</answer>", "<answer>[1]</answer>", "[2]"])]
    row = score_from_log(_query(), [rows], "r1", cfg).to_pylist()[0]
    assert (row["trials"], row["successes"], row["malformed_rollouts"]) == (3, 1, 1)


def test_logs_without_generations_leave_the_columns_null():
    cfg = ScoringConfig(reward=parse_reward("ndcg@3>=0.5"))
    row = score_from_log(_query(), [[{"query_id": "q1", "rollout_id": "r", "ranking": ["d2"]}]],
                         "p", cfg).to_pylist()[0]
    assert row["malformed_rollouts"] is None and row["malformed_reasons"] is None
    assert np.isclose(row["reward_mean"], 1.0)


def test_malformed_stats_sum_the_scored_rows():
    from difficulty.generations import malformed_stats

    cfg = ScoringConfig(reward=parse_reward("ndcg@3>=0.99"))
    rows = [{"query_id": "q1", **r} for r in ROWS]
    scored = score_from_log(_query(), [rows], "llm", cfg)
    stats = malformed_stats(pa.concat_tables([scored, scored]))
    assert stats["counts"]["rollouts_malformed"] == 6
    assert stats["malformed_reasons"] == {"missing_id": 2, "no_ranking": 2, "repeated_id": 2}
    plain = score_from_log(_query(), [[{"query_id": "q1", "rollout_id": "r",
                                        "ranking": ["d2"]}]], "p", cfg)
    assert malformed_stats(plain)["counts"] == {}


@pytest.mark.parametrize("reward,successes", [("ndcg@10>=0.7", 1), ("ndcg@10>=0.3", 3),
                                              ("log", 2), ("ndcg@10+0.5*recall@10>=1.2", 1)])
def test_a_logged_reward_without_a_pass_flag_passes_at_the_runs_threshold(reward, successes):
    # rewards 0.2, 0.4, 0.6, 0.8 (no `passed`): judged against TAU of --reward, 0.5 under `log`
    cfg = ScoringConfig(reward=parse_reward(reward))
    rows = [{"query_id": "q1", "rollout_id": f"r{i}", "reward": r}
            for i, r in enumerate([0.2, 0.4, 0.6, 0.8, 1.3][:5 if "recall" in reward else 4])]
    row = score_from_log(_query(), [rows], "p", cfg).to_pylist()[0]
    assert row["successes"] == successes


def test_a_recorded_prior_bands_the_query_as_the_planner_does():
    """Issue #28: results planned under a recorded prior are banded under it (the planner's
    band, probability and decided flag); no prior (None) keeps the Beta(1, 1) table's bytes."""
    from difficulty.estimate import BandConfig
    from difficulty.planner import MixturePrior, PlanConfig, plan_round
    from difficulty.scoring import PRIOR_RULE

    cfg = ScoringConfig(reward=parse_reward("ndcg@10>=0.9"), bands=BandConfig(confidence=0.8))
    rows = [{"query_id": "q1", "rollout_id": f"r{i}", "generation": "[2] > [1] > [3]"}
            for i in range(4)]  # 4 of 4 pass
    plain = score_from_log(_query(), [rows], "llm", cfg)
    assert plain.equals(score_from_log(_query(), [rows], "llm", cfg, [None]))
    assert plain.column("band").to_pylist() == ["learnable"]  # Beta(1, 1) reads 4 of 4
    mixture = [[0.3, 1.0, 64.0], [0.7, 64.0, 1.0]]  # most measured queries always pass
    scored = score_from_log(_query(), [rows], "llm", cfg, [(mixture, 3)]).to_pylist()[0]
    planned = plan_round(["q1"], [4], [4], cfg.bands, PlanConfig(k0=4, k_max=16), 1,
                         prior=MixturePrior.from_rows([mixture])).to_pylist()[0]
    assert planned["status"] == "decided" and planned["band"] == "too_easy"
    assert (scored["band"], scored["band_confidence"], scored["decided"]) == \
        (planned["band"], planned["band_probability"], True)
    assert scored["rule"] == f"{plain.column('rule')[0].as_py()}; {PRIOR_RULE} 3"
    assert scored["trials"] == 4 and scored["successes"] == 4
