"""The exported reward functions never fail a training loop: for any completion and any ground
truth the export writes, verl's `compute_score` and TRL's `ranking_reward` return a finite float
in the documented range (a property test, and the adversarial families by example)."""
from __future__ import annotations

import json
import math
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from difficulty.rewards import parse_reward
from exports.rewards import compute_score, ground_truth_record, ranking_reward
from tests.difficulty.test_generation_shapes import ADVERSARIAL, JUNK

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
REWARDS = ["ndcg@10>=0.7", "ndcg@3>=0.5,gain=exp,ideal=qrels", "hit@1",
           "ndcg@10+0.2*recall@10+0.1*rbo>=0.8", "ndcg@10+0.2*recall@10+0.1*rbo>=0.8,ideal=qrels"]


@st.composite
def truths(draw):
    """Ground truths as exports.build writes them (any reward, format, mode and output)."""
    n = draw(st.integers(1, 25))
    labels = draw(st.lists(st.sampled_from([0.0, 0.0, 1.0, 2.0, 3.0]), min_size=n, max_size=n))
    reward = draw(st.sampled_from(REWARDS))
    teacher = draw(st.one_of(st.none(), st.permutations(list(range(n)))))
    judged = None
    if parse_reward(reward).ideal == "qrels":
        extra = draw(st.lists(st.sampled_from([1.0, 2.0, 3.0]), max_size=10))
        judged = sorted([x for x in labels if x > 0] + extra, reverse=True)
    fmt = "answer" if reward == "hit@1" else draw(st.sampled_from(["permutation", "answer"]))
    record = ground_truth_record([f"d{j}" for j in range(n)], labels, teacher, reward, fmt,
                                 draw(st.sampled_from(["fail", "repair"])),
                                 draw(st.sampled_from(["value", "pass"])), judged)
    return json.dumps(record)


def _in_range(value, truth):
    record = json.loads(truth)
    top = 1.0 if record["output"] == "pass" else parse_reward(record["reward"]).max_reward
    assert isinstance(value, float) and math.isfinite(value)
    assert 0.0 <= value <= top + 1e-9
    if record["output"] == "pass":
        assert value in (0.0, 1.0)


@SETTINGS
@given(text=JUNK, truth=truths())
def test_compute_score_is_total(text, truth):
    _in_range(compute_score("rerank-curriculum/x", text, truth, {}), truth)


@SETTINGS
@given(texts=st.lists(JUNK, min_size=1, max_size=4), truth=truths(),
       conversational=st.booleans())
def test_ranking_reward_is_total(texts, truth, conversational):
    completions = ([[{"role": "assistant", "content": t}] for t in texts] if conversational
                   else texts)
    values = ranking_reward(completions, ground_truth=[truth] * len(texts))
    assert len(values) == len(texts)
    for value in values:
        _in_range(value, truth)


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
@pytest.mark.parametrize("reward", REWARDS)
@pytest.mark.parametrize("fmt", ["permutation", "answer"])
def test_adversarial_completions_score(name, reward, fmt):
    truth = json.dumps(ground_truth_record(["a", "b", "c"], [0.0, 1.0, 2.0], None, reward, fmt,
                                           "repair", "value", [3.0, 2.0, 1.0]))
    _in_range(compute_score("s", ADVERSARIAL[name], truth), truth)
    _in_range(ranking_reward([ADVERSARIAL[name]], ground_truth=[truth])[0], truth)


@pytest.mark.parametrize("completion", [None, 17, b"[1] > [2]", [], [{"role": "assistant"}],
                                        [{"role": "assistant", "content": None}]])
def test_completions_that_are_not_text_score_zero(completion):
    truth = json.dumps(ground_truth_record(["a", "b"], [1.0, 0.0], None, "ndcg@2>=0.5",
                                           "permutation", "fail"))
    assert compute_score("s", completion, truth) in (0.0, 1.0)  # bytes are decoded and read
    assert ranking_reward([completion], ground_truth=[truth]) == [0.0]


def test_a_ground_truth_without_a_verifier_scores_zero_with_a_warning():
    for record in (ground_truth_record(["a"], None, None, "ndcg@10>=0.5", "permutation", "fail"),
                   ground_truth_record(["a"], [1.0], None, "log", "permutation", "fail")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert compute_score("s", "[1]", json.dumps(record)) == 0.0
        assert any("scored 0.0" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="ground_truth"):
        ranking_reward(["[1]"])
