"""Scoring queries with a policy or from a rollout log: batching, deterministic cases, real data."""
from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from data_contracts.readers.base import rows_to_batch
from data_contracts.schema import SCORED_QUERY_SCHEMA
from data_contracts.synthetic import SyntheticConfig, generate_table
from data_contracts.validate import ValidationState, validate_queries
from difficulty.estimate import BandConfig, Budget
from difficulty.policy import PolicyScorer, PolicySpec
from difficulty.rewards import parse_reward
from difficulty.scoring import ScoringConfig, deterministic_outcome, score_from_log, \
    score_with_policy
from tests.difficulty.test_rewards import reference_ndcg

REWARD = parse_reward("ndcg@10>=0.7")


def make_queries(specs: list[tuple[str, list[float]]], n_features: int = 5,
                 seed: int = 0) -> pa.Table:
    """Validated queries (QUERY_SCHEMA) with random features and the given labels.

    Args:
      specs: (query id, labels) per query; the labels' length is the document count.
      n_features: feature width.
      seed: seeds the features.
    """
    rng = np.random.default_rng(seed)
    rows = [{"query_id": qid, "doc_ids": [f"{qid}-d{j}" for j in range(len(labels))],
             "features": rng.normal(size=(len(labels), n_features)).astype(np.float32),
             "labels": list(labels), "source": "test", "split": "train",
             "_location": f"test#{i}"} for i, (qid, labels) in enumerate(specs)]
    ok, bad = validate_queries(rows_to_batch(rows, [], step="read"), ValidationState())
    assert bad.num_rows == 0
    return ok


def score(table: pa.Table, policy: str = "base", **overrides) -> tuple[pa.Table, int]:
    """Scores `table` with a fresh scorer for `policy` under ScoringConfig(REWARD, **overrides)."""
    cfg = ScoringConfig(reward=overrides.pop("reward", REWARD), **overrides)
    return score_with_policy(table, PolicyScorer(PolicySpec(policy)), cfg)


def assert_same_rows(a: pa.Table, b: pa.Table) -> None:
    """Row-for-row equality, naming the first differing column."""
    assert a.num_rows == b.num_rows
    for name in a.column_names:
        assert a.column(name).to_pylist() == b.column(name).to_pylist(), name


@pytest.fixture(scope="module")
def synthetic() -> pa.Table:
    """A small synthetic dataset, validated (queries of 8 to 40 documents)."""
    table = generate_table(SyntheticConfig(n_queries=80, seed=3))
    ok, bad = validate_queries(rows_to_batch(table.to_pylist(), [], "read"), ValidationState())
    assert bad.num_rows == 0
    return ok


@pytest.mark.parametrize("policy", ["base", "teacher"])
@pytest.mark.parametrize("adaptive", [True, False])
def test_scoring_does_not_depend_on_batching(synthetic, policy, adaptive):
    budget = Budget(k=8, k_max=32, adaptive=adaptive)
    whole, spent = score(synthetic, policy, budget=budget)
    assert whole.schema.equals(SCORED_QUERY_SCHEMA)
    assert spent == sum(whole.column("trials").to_pylist())
    half = synthetic.num_rows // 3
    parts = [score(synthetic.slice(0, half), policy, budget=budget),
             score(synthetic.slice(half), policy, budget=budget)]
    assert_same_rows(whole, pa.concat_tables([t for t, _ in parts]))
    assert spent == sum(s for _, s in parts)
    # one query at a time, in reverse order
    singles = [score(synthetic.slice(i, 1), policy, budget=budget)[0]
               for i in reversed(range(0, synthetic.num_rows, 9))]
    picked = whole.take(list(reversed(range(0, synthetic.num_rows, 9))))
    assert_same_rows(picked, pa.concat_tables(singles))


def test_scoring_is_reproducible_and_depends_on_seed(synthetic):
    a, _ = score(synthetic, seed=1)
    assert_same_rows(a, score(synthetic, seed=1)[0])
    other, _ = score(synthetic, seed=2)
    assert a.column("successes").to_pylist() != other.column("successes").to_pylist()


DEGENERATE = [("zero", [0.0, 0.0, 0.0, 0.0]), ("single-rel", [2.0]), ("single-irr", [0.0]),
              ("equal", [3.0, 3.0, 3.0]), ("normal", [0.0, 1.0, 4.0, 2.0, 0.0, 1.0])]


@pytest.mark.parametrize("budget", [Budget(), Budget(k=1, k_max=1), Budget(k=2, k_max=5),
                                    Budget(k=4, adaptive=False)])
@pytest.mark.parametrize("reward", ["ndcg@10>=0.7", "ndcg@3>=0,gain=exp", "hit@1"])
def test_deterministic_queries_get_stated_bands(budget, reward):
    table = make_queries(DEGENERATE)
    scored, _ = score(table, reward=parse_reward(reward), budget=budget)
    got = {q: (b, r, d, c) for q, b, r, d, c in zip(*(scored.column(n).to_pylist() for n in (
        "query_id", "band", "rule", "decided", "band_confidence")))}
    assert got["zero"][:2] == ("too_hard", "deterministic:no_relevant_documents")
    assert got["single-rel"][:2] == ("too_easy", "deterministic:single_document")
    assert got["single-irr"][:2] == ("too_hard", "deterministic:single_document")
    assert got["equal"][:2] == ("too_easy", "deterministic:all_labels_equal")
    for qid in ("zero", "single-rel", "single-irr", "equal"):
        assert got[qid][2] is True and got[qid][3] == 1.0
    assert not got["normal"][1].startswith("deterministic")
    # a deterministic query stops after its first round
    trials = dict(zip(scored.column("query_id").to_pylist(), scored.column("trials").to_pylist()))
    assert trials["zero"] == budget.round_sizes()[0]


def test_deterministic_outcome_rules():
    table = make_queries(DEGENERATE)
    from data_contracts.arrays import pad_queries
    batch = pad_queries(table)
    assert deterministic_outcome(batch.labels, batch.mask, batch.n_docs, REWARD) == [
        "no_relevant_documents", "single_document", "single_document", "all_labels_equal", None]


def test_adaptive_budget_stops_decided_queries_and_respects_k_max(synthetic):
    budget = Budget(k=16, k_max=40)
    scored, spent = score(synthetic, "teacher", budget=budget)
    trials = np.array(scored.column("trials").to_pylist())
    decided = np.array(scored.column("decided").to_pylist())
    assert trials.max() <= 40 and set(trials) <= {16, 32, 40}
    assert np.all(trials[~decided] == 40)  # undecided queries used the whole budget
    assert spent == trials.sum() < 40 * len(trials)


def test_teacher_scores_higher_than_base_on_real_data(yahoo_train_table):
    base, base_spent = score(yahoo_train_table, "base")
    teacher, teacher_spent = score(yahoo_train_table, "teacher")
    base_rate = float(np.mean(base.column("pass_rate").to_numpy()))
    teacher_rate = float(np.mean(teacher.column("pass_rate").to_numpy()))
    print(f"\n[yahoo train] mean pass rate base={base_rate:.3f} teacher={teacher_rate:.3f} "
          f"(rollouts {base_spent} / {teacher_spent})")
    assert teacher_rate > base_rate + 0.2
    assert base.num_rows == teacher.num_rows == yahoo_train_table.num_rows
    rules = base.column("rule").to_pylist()
    # the sample's degenerate queries (all-zero labels, equal labels, one document) are stated
    assert {r for r in rules if r.startswith("deterministic:")} == {
        "deterministic:no_relevant_documents", "deterministic:all_labels_equal",
        "deterministic:single_document"}


def test_real_data_scoring_does_not_depend_on_batching(yahoo_train_table):
    whole, _ = score(yahoo_train_table)
    half = yahoo_train_table.num_rows // 2
    parts = [score(yahoo_train_table.slice(0, half))[0], score(yahoo_train_table.slice(half))[0]]
    assert_same_rows(whole, pa.concat_tables(parts))


def test_empty_table_scores_to_empty(synthetic):
    scored, spent = score(synthetic.slice(0, 0))
    assert scored.num_rows == 0 and spent == 0 and scored.schema.equals(SCORED_QUERY_SCHEMA)


# --- rollout logs ---------------------------------------------------------------------------

LOG_QUERIES = [("a", [3.0, 0.0, 2.0, 1.0, 0.0]), ("b", [0.0, 1.0, 0.0]), ("c", [1.0, 2.0])]


def rollout(qid: str, rid: str, ranking=None, reward=None, passed=None) -> dict:
    """One rollout row as `read_rollouts` yields it."""
    return {"query_id": qid, "rollout_id": rid, "policy_id": "outside",
            "ranking": None if ranking is None else [f"{qid}-d{j}" for j in ranking],
            "reward": reward, "passed": passed}


def test_score_from_log_verifies_rankings_not_the_given_reward():
    table = make_queries(LOG_QUERIES)
    labels = [lab for _, lab in LOG_QUERIES]
    logs = [
        [rollout("a", "1", [0, 2, 3, 1, 4], reward=0.0, passed=False),  # ideal, claims failure
         rollout("a", "2", [4, 1, 3, 2, 0], reward=1.0, passed=True),   # poor, claims success
         rollout("a", "3", [2, 0], reward=None, passed=None)],          # partial ranking
        [rollout("b", "1", reward=0.9), rollout("b", "2", passed=False),
         rollout("b", "3", reward=0.2, passed=True)],                   # no rankings: as given
        [],                                                             # no rollouts
    ]
    scored = score_from_log(table, logs, "outside", ScoringConfig(reward=REWARD))
    assert scored.schema.equals(SCORED_QUERY_SCHEMA)
    row = {name: scored.column(name).to_pylist() for name in scored.column_names}
    a_rewards = [reference_ndcg([labels[0][j] for j in r], labels[0], 10)
                 for r in ([0, 2, 3, 1, 4], [4, 1, 3, 2, 0], [2, 0])]
    assert a_rewards[0] == pytest.approx(1.0)
    assert row["trials"][0] == 3
    assert row["successes"][0] == sum(r >= 0.7 for r in a_rewards)
    assert row["reward_mean"][0] == pytest.approx(np.mean(a_rewards), abs=1e-9)
    # b: reward 0.9 passes by the log threshold, passed=False counts as reward 0, passed=True wins
    assert (row["trials"][1], row["successes"][1]) == (3, 2)
    assert row["reward_mean"][1] == pytest.approx((0.9 + 0.0 + 0.2) / 3)
    # c: no rollouts, so no evidence: the prior's most probable band, undecided
    assert (row["trials"][2], row["successes"][2], row["decided"][2]) == (0, 0, False)
    assert row["pass_rate"][2] == pytest.approx(0.5)
    assert set(row["policy_id"]) == {"outside"}
    assert all(r.endswith("outside rollouts") for r in row["rule"])


def test_score_from_log_with_log_and_hit_rewards():
    table = make_queries(LOG_QUERIES[:1])
    logs = [[rollout("a", "1", [1, 0], reward=0.25, passed=None),
             rollout("a", "2", [0, 1], reward=None, passed=True)]]
    log_spec = ScoringConfig(reward=parse_reward("log"))
    scored = score_from_log(table, logs, "outside", log_spec)
    assert scored.column("successes")[0].as_py() == 1  # 0.25 < 0.5; passed=True
    assert scored.column("reward_mean")[0].as_py() == pytest.approx((0.25 + 1.0) / 2)
    hit = score_from_log(table, logs, "outside", ScoringConfig(reward=parse_reward("hit@1")))
    assert hit.column("successes")[0].as_py() == 1  # doc 1 (label 0) first fails, doc 0 passes
    with pytest.raises(ValueError):
        score_from_log(table, [[rollout("a", "1", [0, 1])]], "outside", log_spec)


def test_score_from_log_all_zero_labels_never_pass_even_at_tau_zero():
    table = make_queries([("z", [0.0, 0.0, 0.0])])
    cfg = ScoringConfig(reward=parse_reward("ndcg@10>=0"))
    scored = score_from_log(table, [[rollout("z", str(i), [0, 1, 2]) for i in range(20)]], "x",
                            cfg)
    assert scored.column("successes")[0].as_py() == 0
    assert scored.column("band")[0].as_py() == "too_hard"


def test_scoring_config_is_frozen():
    cfg = ScoringConfig(reward=REWARD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3  # type: ignore[misc]
    assert cfg.bands == BandConfig()


def test_an_empty_batch_does_not_fix_the_base_policy_width(synthetic):
    """A reused scorer (one per Beam worker) meets an empty batch first, then real ones."""
    scorer = PolicyScorer(PolicySpec("base"))
    cfg = ScoringConfig(reward=REWARD)
    empty, spent = score_with_policy(synthetic.slice(0, 0), scorer, cfg)
    assert empty.num_rows == 0 and spent == 0
    after, _ = score_with_policy(synthetic.slice(0, 5), scorer, cfg)
    assert_same_rows(after, score(synthetic.slice(0, 5))[0])


@pytest.mark.parametrize("policy", ["base", "teacher"])
def test_planned_rounds_do_not_depend_on_batching(synthetic, policy):
    budget = Budget(k=4, k_max=32, rule="planned")
    whole, spent = score(synthetic, policy, budget=budget)
    assert spent == sum(whole.column("trials").to_pylist())
    half = synthetic.num_rows // 3
    parts = [score(synthetic.slice(0, half), policy, budget=budget)[0],
             score(synthetic.slice(half), policy, budget=budget)[0]]
    assert_same_rows(whole, pa.concat_tables(parts))


def test_planned_rounds_ask_only_undecided_queries(synthetic):
    planned, spent = score(synthetic, "teacher", budget=Budget(k=4, k_max=32, rule="planned"))
    trials = np.array(planned.column("trials").to_pylist())
    decided = np.array(planned.column("decided").to_pylist())
    assert trials.min() >= 4 and trials.max() <= 32
    assert np.all(trials[~decided] == 32)  # an undecided query used the whole budget
    assert len(set(trials)) > 3  # per-query round sizes, not multiples of k
    assert all(r.endswith("planned k=4..32") for r in planned.column("rule").to_pylist()
               if not r.startswith("deterministic"))
    # a query decided by its first round is asked nothing more: its first 4 samples are the
    # same draws under both rules (one noise stream per query and round)
    first = score(synthetic, "teacher", budget=Budget(k=4, k_max=4))[0]
    decided0 = np.array(first.column("decided").to_pylist())
    assert decided0.any()
    assert np.all(trials[decided0] == 4)
    assert (np.array(planned.column("successes").to_pylist())[decided0]
            == np.array(first.column("successes").to_pylist())[decided0]).all()


def test_learned_prior_is_reproducible_and_never_decides_without_samples(synthetic):
    budget = Budget(k=4, k_max=32, rule="planned", prior="learned")
    a, spent = score(synthetic, "teacher", budget=budget)
    assert_same_rows(a, score(synthetic, "teacher", budget=budget)[0])
    trials = np.array(a.column("trials").to_pylist())
    assert trials.min() >= 4 and trials.max() <= 32 and spent == trials.sum()
    assert all(r.endswith("learned prior") for r in a.column("rule").to_pylist()
               if not r.startswith("deterministic"))


def test_learned_prior_records_the_band_the_planner_stopped_on(synthetic):
    """A query the planner asks no more was decided by its mixture posterior, so the table must
    say decided with that posterior's band; the Beta(1, 1) band of the same tallies (the old
    output) left such queries undecided (e.g. 4 / 4 passes: learnable at 0.59)."""
    budget = Budget(k=4, k_max=32, rule="planned", prior="learned")
    table, _ = score(synthetic, "teacher", budget=budget)
    trials = np.array(table.column("trials").to_pylist())
    decided = np.array(table.column("decided").to_pylist())
    rules = table.column("rule").to_pylist()
    sampled = np.array([not r.startswith("deterministic") for r in rules])
    stopped = sampled & (trials < 32)
    assert stopped.any()
    assert decided[stopped].all()  # stopped early only when the planner's posterior decided
    confidence = np.array(table.column("band_confidence").to_pylist())
    assert (confidence[stopped] >= BandConfig().confidence).all()


def test_budget_rule_and_prior_are_checked():
    with pytest.raises(ValueError, match="budget rule"):
        Budget(rule="greedy")
    with pytest.raises(ValueError, match="prior"):
        Budget(prior="oracle")
