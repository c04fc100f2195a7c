"""Prompt templates: numbered passages, replaceable templates, bad templates rejected."""
from __future__ import annotations

import json

import pytest

from data_contracts.errors import InputError
from exports.build import completion_text
from exports.prompts import default_template, load_template
from exports.rewards import compute_score, ground_truth_record, score_generation


def test_default_template_numbers_passages_in_candidate_order():
    messages = default_template(max_passage_words=2).messages("q?", ["a b c", "d\ne"])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "[1] a b\n[2] d e" in messages[1]["content"] and "2 passages" in messages[1]["content"]


def test_user_template_replaces_the_default(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"user": "Q: {query} ({n})\n{passages} {{literal}}"}))
    messages = load_template(str(path), max_passage_words=0).messages("x", ["p"])
    assert messages == [{"role": "user", "content": "Q: x (1)\n[1] p {literal}"}]


@pytest.mark.parametrize("text", ['{"user": "{question}"}', '{"system": "s"}', "not json"])
def test_bad_templates_are_input_errors(tmp_path, text):
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(InputError):
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


def test_export_refuses_a_folder_of_other_files(tmp_path):
    from exports.build import _check_out

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not an export"):
        _check_out(str(tmp_path / "out"), str(tmp_path / "run"))
    with pytest.raises(InputError, match="inside the run"):
        _check_out(str(tmp_path / "run" / "x"), str(tmp_path / "run"))
    _check_out(str(tmp_path / "new"), str(tmp_path / "run"))
