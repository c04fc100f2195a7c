"""Prompt templates: one renderer, numbered passages, bad templates rejected up front."""
from __future__ import annotations

import json

import pytest

from data_contracts.errors import InputError
from exports.build import completion_text
from exports.prompts import (MAX_FORMAT_WIDTH, Template, WordCut, default_template,
                             load_template, render_prompt)
from exports.rewards import compute_score, ground_truth_record, score_generation


def test_default_template_numbers_passages_in_candidate_order():
    prompt = render_prompt(default_template(cut=WordCut(2)), "q?", ["a", "b"],
                           ["a b c", "d\ne"])
    messages = prompt.messages
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "[1] a b\n[2] d e" in messages[1]["content"] and "2 passages" in messages[1]["content"]
    assert prompt.candidate_order == ["a", "b"]


def test_an_order_numbers_the_passages_and_is_returned():
    template = Template(user="{passages}", cut=WordCut(0))
    prompt = render_prompt(template, "q", ["d1", "d2", "d3"], ["one", "two", "three"], [2, 0, 1])
    assert prompt.messages[0]["content"] == "[1] three\n[2] one\n[3] two"
    assert prompt.candidate_order == ["d3", "d1", "d2"]
    with pytest.raises(ValueError, match="permutation"):
        render_prompt(template, "q", ["d1", "d2"], ["a", "b"], [0, 0])


def test_user_template_replaces_the_default(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"user": "Q: {query} ({n:>3})\n{passages} {{literal}}"}))
    messages = render_prompt(load_template(str(path), cut=WordCut(0)), "x", ["d"], ["p"]).messages
    assert messages == [{"role": "user", "content": "Q: x (  1)\n[1] p {literal}"}]


@pytest.mark.parametrize("text, match", [
    ('{"user": "{question}"}', "unknown placeholder"),
    ('{"system": "s"}', "user text"),
    ("not json", "not JSON"),
    ('{"user": "{n:>2000000000}"}', f"above {MAX_FORMAT_WIDTH}"),
    ('{"user": "{n:.2000000000}"}', f"above {MAX_FORMAT_WIDTH}"),
    ('{"user": "{query:{n}}"}', "not a plain format spec"),
    ('{"user": "{query:d}"}', "does not format"),
    ('{"user": "{query.__class__}"}', "unknown placeholder"),
    ('{"user": "{0}"}', "unknown placeholder"),
    ('{"user": "{query!x}"}', "not a format string|unknown conversion"),
    ('{"user": "a } b"}', "not a format string"),
    ('{"user": "{passages}", "system": 5}', "must be a string or null"),
    ('{"user": "{passages}", "sytem": "x"}', "unknown template key"),
    ('{"user": ""}', "user text"),
])
def test_bad_templates_are_input_errors_before_any_row(tmp_path, text, match):
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        load_template(str(path))


def test_teacher_completion_round_trips_through_the_reward():
    truth = ground_truth_record(["a", "b", "c"], [0.0, 2.0, 1.0], None, "ndcg@3>=1",
                                "permutation", "fail")
    ideal = completion_text([1, 2, 0], "permutation")
    assert ideal == "[2] > [3] > [1]"
    assert score_generation(ideal, truth) == (pytest.approx(1.0), True, None)
    reasoned = completion_text([1, 2, 0], "permutation", "b answers it")
    assert reasoned.startswith("<think>b answers it</think>")
    assert compute_score("s", reasoned, json.dumps(truth)) == pytest.approx(1.0)
    assert score_generation("[2] > [2]", truth) == (0.0, False, "repeated_id")
    answer = {**truth, "reward": "hit@1", "rollout_format": "answer", "output": "pass"}
    assert completion_text([1, 2, 0], "answer") == "<answer>[2]</answer>"
    assert compute_score("s", "<answer>[2]</answer>", answer) == 1.0
    assert compute_score("s", "<answer>[1]</answer>", answer) == 0.0
