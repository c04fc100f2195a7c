"""Parsing LLM rerankers' generations: permutations and Rank-R1 answers, malformed outputs."""
from __future__ import annotations

import pytest

from difficulty.generations import parse_generation, repair


@pytest.mark.parametrize("text,ranking", [
    ("[3] > [1] > [2]", [2, 0, 1]),
    ("Ranking: [2] > [3] > [1]. These are ordered by relevance.", [1, 2, 0]),  # extra text
    ("<think>[1] seems best, then [2]</think>\n<answer>[3] > [2] > [1]</answer>", [2, 1, 0]),
    ("<think>compare [1] and [2]</think> [2] > [1] > [3]", [1, 0, 2]),
    ("[ 1 ]>[2]>[3]", [0, 1, 2]),
])
def test_well_formed_permutations(text, ranking):
    parsed = parse_generation(text, 3)
    assert parsed.ranking == ranking and parsed.reason is None and not parsed.repaired


@pytest.mark.parametrize("text,reason,repaired", [
    ("[3] > [1]", "missing_id", [2, 0, 1]),
    ("[3] > [1] > [3] > [2]", "repeated_id", [2, 0, 1]),
    ("[4] > [1] > [2] > [3]", "id_out_of_range", [0, 1, 2]),
    ("[0] > [2] > [1] > [3]", "id_out_of_range", [1, 0, 2]),
    ("I cannot rank these passages.", "no_ranking", None),
    ("<think>[1] looks relevant but", "no_ranking", None),  # never finished thinking
    ("", "no_ranking", None),
    (None, "no_ranking", None),
])
def test_malformed_permutations_fail_or_repair(text, reason, repaired):
    failed = parse_generation(text, 3, malformed="fail")
    assert failed.ranking is None and failed.reason == reason
    fixed = parse_generation(text, 3, malformed="repair")
    assert fixed.reason == reason and fixed.ranking == repaired
    assert fixed.repaired == (repaired is not None)


@pytest.mark.parametrize("text,ranking,reason", [
    ("<think>passage 2 answers it</think><answer>[2]</answer>", [1], None),
    ("<answer>3</answer>", [2], None),
    ("<answer>[2] [2]</answer>", [1], None),
    ("<answer>[7]</answer>", None, "id_out_of_range"),
    ("<answer>[1] or [2]</answer>", None, "multiple_answers"),
    ("[2]", None, "no_ranking"),
    ("<answer>none</answer>", None, "no_ranking"),
])
def test_rank_r1_answers(text, ranking, reason):
    parsed = parse_generation(text, 3, fmt="answer")
    assert parsed.ranking == ranking and parsed.reason == reason


def test_answer_repair_keeps_the_first_id_in_range():
    assert parse_generation("<answer>[9] [2] [1]</answer>", 3, "answer", "repair").ranking == [1]


def test_repair_is_a_permutation():
    assert sorted(repair([5, 2, 2, -1, 4], 4)) == [0, 1, 2, 3]
    assert repair([5, 2, 2, -1, 4], 4) == [1, 3, 0, 2]


def test_unknown_modes_raise():
    with pytest.raises(ValueError):
        parse_generation("[1]", 1, fmt="json")
    with pytest.raises(ValueError):
        parse_generation("[1]", 1, malformed="ignore")
