"""The shapes LLM rerankers write their rankings in: each round-trips through the parser
(render a permutation in the shape -> parse -> the same permutation), and the parser is total on
any text (a property test; the adversarial families of the reward benchmark by example)."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from difficulty.generations import MALFORMED_REASONS, MAX_ID_DIGITS, parse_generation
from difficulty.rewards import parse_reward
from difficulty.scoring import ScoringConfig, score_from_log
from tests.difficulty.test_generation_scoring import _query

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SPACE = st.sampled_from(["", " ", "  ", "\n", "\t "])


def _join(ids, sep, spaces):
    return (spaces[0] + sep + spaces[1]).join(str(k) for k in ids)


SHAPES = {
    "bracketed_ids": lambda ids, sep, sp: (sp[0] + sep + sp[1]).join(f"[{k}]" for k in ids),
    "bracketed_list": lambda ids, sep, sp: "[" + sp[0] + _join(ids, sep, sp) + sp[1] + "]",
    "bare": lambda ids, sep, sp: sp[0] + _join(ids, sep, sp) + sp[1],
}
WRAPS = {
    "plain": lambda body: body,
    "answer": lambda body: f"<answer>{body}</answer>",
    "ANSWER": lambda body: f"<ANSWER>{body}</Answer>",
    "think_answer": lambda body: f"<think>[1] is close to [2] but 3 > 2</think>\n"
                                 f"<answer>{body}</answer>",
    "think_after": lambda body: f"<think>compare [1], [2], 3 and 4</think>\n{body}",
    "answers_twice": lambda body: f"<answer>[1] > [1]</answer> on second thought "
                                  f"<answer>{body}</answer>",
}


@SETTINGS
@given(perm=st.integers(1, 40).flatmap(lambda n: st.permutations(list(range(1, n + 1)))),
       shape=st.sampled_from(sorted(SHAPES)), wrap=st.sampled_from(sorted(WRAPS)),
       sep=st.sampled_from([">", ","]), spaces=st.tuples(SPACE, SPACE))
def test_every_shape_round_trips(perm, shape, wrap, sep, spaces):
    text = WRAPS[wrap](SHAPES[shape](perm, sep, spaces))
    parsed = parse_generation(text, len(perm))
    assert parsed.reason is None, text
    assert parsed.ranking == [k - 1 for k in perm], text


@pytest.mark.parametrize("text,ranking", [
    ("<answer>[2, 1, 3, 4, 5]</answer>", [1, 0, 2, 3, 4]),
    ("<answer>2 > 1 > 3 > 5 > 4</answer>", [1, 0, 2, 4, 3]),
    ("2, 1, 3, 5, 4", [1, 0, 2, 4, 3]),
    ("<answer>2, 1, 3, 5, 4.</answer>", [1, 0, 2, 4, 3]),
    ("Passage [3] is best. Final ranking: [3, 1, 2, 4, 5]", [2, 0, 1, 3, 4]),  # the list wins
])
def test_shapes_real_rerankers_write(text, ranking):
    parsed = parse_generation(text, 5)
    assert parsed.ranking == ranking and parsed.reason is None


@pytest.mark.parametrize("text,reason", [
    ("There are 5 passages and 2 are relevant.", "no_ranking"),  # prose with numbers
    ("<answer>2 > 1 > 3 > 5</answer>", "missing_id"),
    ("[2, 1, 2, 3, 4, 5]", "repeated_id"),
    ("2 > 1 > 3 > 5 > 9", "id_out_of_range"),
    ("[" + "7" * 5000 + "] > [1] > [2] > [3] > [4]", "id_out_of_range"),
    ("<answer>" + "9" * 5000 + ", 1, 2, 3, 4</answer>", "id_out_of_range"),
])
def test_malformed_shapes_keep_their_reasons(text, reason):
    assert parse_generation(text, 5).reason == reason
    repaired = parse_generation(text, 5, malformed="repair")
    assert repaired.reason == reason
    assert repaired.ranking is None if reason == "no_ranking" else sorted(repaired.ranking) == \
        list(range(5))


@SETTINGS
@given(k=st.integers(1, 12),
       wrap=st.sampled_from(["<answer>[{}]</answer>", "<answer>{}</answer>",
                             "<think>maybe [1]</think><answer> [{}] </answer>"]))
def test_answer_format_round_trips(k, wrap):
    parsed = parse_generation(wrap.format(k), 12, fmt="answer")
    assert parsed.ranking == [k - 1] and parsed.reason is None


# --- totality --------------------------------------------------------------------------------
PIECES = ["[", "]", "[[", "]]", "<answer>", "</answer>", "<ANSWER>", "<think>", "</think>", ">",
          ",", " ", "\n", "-", ".", "1", "2", "3", "٣", "۱", "𝟑", "12", "0", "\x00", "\ufffd",
          "9" * 25, "4" * 5000, "[1] > ", "<answer>[", "]</answer>"]
JUNK = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    st.lists(st.sampled_from(PIECES), max_size=60).map("".join),
)


def _check_parsed(parsed, n):
    assert parsed.reason is None or parsed.reason in MALFORMED_REASONS
    if parsed.ranking is not None:
        assert all(isinstance(j, int) and 0 <= j < n for j in parsed.ranking)
        assert len(set(parsed.ranking)) == len(parsed.ranking)
    if parsed.reason is None:
        assert parsed.ranking is not None and parsed.ranking


@SETTINGS
@given(text=JUNK, n=st.integers(1, 30), fmt=st.sampled_from(["permutation", "answer"]),
       mode=st.sampled_from(["fail", "repair"]))
def test_the_parser_is_total(text, n, fmt, mode):
    _check_parsed(parse_generation(text, n, fmt, mode), n)


ADVERSARIAL = {
    "empty": "",
    "one_megabyte": "[1] > [2] > [3] " * 65536,
    "binary": bytes(range(256)).decode("latin-1") * 400,
    "nested": "[" * 50_000 + "1" + "]" * 50_000,
    "repeated_id": " > ".join(["[1]"] * 10_000),
    "unicode_digits": "[٣] > [١] > [٢]",
    "unclosed_think": "<think>" + "[1] > [2] " * 1000,
    "answer_x20000": "<answer>" * 20_000,
    "long_ids": "[" + "1" * 5000 + "] > [" + "2" * 5000 + "]",
    "long_ids_answer": "<answer>[" + "3" * 5000 + "]</answer>",
    "long_bare": "<answer>" + "5" * 5000 + "</answer>",
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
@pytest.mark.parametrize("fmt", ["permutation", "answer"])
@pytest.mark.parametrize("mode", ["fail", "repair"])
def test_adversarial_generations_parse(name, fmt, mode):
    _check_parsed(parse_generation(ADVERSARIAL[name], 3, fmt, mode), 3)


def test_unicode_digits_read_as_python_reads_them():
    assert parse_generation("[٣] > [١] > [٢]", 3).ranking == [2, 0, 1]


def test_ids_longer_than_the_bound_are_out_of_range_not_errors():
    assert parse_generation("[" + "0" * 5000 + "1] > [2]", 2).ranking == [0, 1]  # 1
    assert parse_generation("[" + "1" * MAX_ID_DIGITS + "] > [2]", 2).reason == "id_out_of_range"
    assert parse_generation("[1" + "0" * MAX_ID_DIGITS + "] > [2]", 2).reason == \
        "id_out_of_range"
    assert parse_generation("[-" + "1" * 5000 + "] > [1] > [2]", 2).reason == "id_out_of_range"


def test_a_rollout_log_with_huge_ids_is_a_counted_malformed_rollout():
    cfg = ScoringConfig(reward=parse_reward("ndcg@3>=0.9"))
    rows = [{"query_id": "q1", "rollout_id": f"r{i}", "generation": g} for i, g in enumerate(
        ["[" + "2" * 5000 + "] > [1] > [3]", "<answer>" * 5000, "[2] > [1] > [3]"])]
    row = score_from_log(_query(), [rows], "llm", cfg).to_pylist()[0]
    assert (row["trials"], row["successes"], row["malformed_rollouts"]) == (3, 1, 2)
    assert json.loads(row["malformed_reasons"]) == {"id_out_of_range": 1, "no_ranking": 1}
