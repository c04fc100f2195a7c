"""The vectorized permutation parser (`fast_permutation_ids` + `check_permutations`) against the
scalar `parse_generation` on adversarial strings: the same ranking and reason on every row the
fast shape claims, and the rows it leaves alone are left to the scalar parser."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from difficulty.generations import (CHECK_REASONS, FAST_PERMUTATION, check_permutations,
                                    fast_permutation_ids, parse_generation, permutation_id_lists,
                                    permutation_of_ids)

# pieces a generation is made of: ids (some out of range, zero-padded, long, Unicode digits),
# brackets, separators, blanks of every kind, tags, prose
_PIECES = st.sampled_from([
    "[", "]", ">", ",", " ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "\u00a0", "\u2003", ".",
    "-", "1", "2", "3", "4", "5", "0", "00", "007", "10", "12", "999999999", "1234567890",
    "٣", "１", "<answer>", "</answer>", "<think>", "</think>", "<ANSWER>", "Ranking:", "x"])
_ID = st.one_of(st.integers(0, 14).map(str), st.sampled_from(["01", "0000000003",
                                                              "123456789", "٢"]))
_BLANK = st.sampled_from(["", " ", "  ", "\t", "\n", "\r\n", "\u00a0"])


@st.composite
def _bracketed(draw):
    """Mostly the fast shape (bracketed ids and `>`), with blanks that may or may not qualify."""
    ids = draw(st.lists(_ID, min_size=1, max_size=14))
    parts = [f"{draw(_BLANK)}[{draw(_BLANK)}{k}{draw(_BLANK)}]{draw(_BLANK)}" for k in ids]
    sep = draw(st.sampled_from([">", " > ", ",", ">>", "> ", ""]))
    return sep.join(parts)


_TEXT = st.one_of(_bracketed(), st.lists(_PIECES, max_size=30).map("".join),
                  st.text(max_size=40))


def _compare(texts: list, n: int, malformed: str) -> int:
    fast, counts, ids = fast_permutation_ids(pa.array(texts, pa.string()))
    starts = np.concatenate([[0], np.cumsum(counts)])
    rows = np.flatnonzero(fast)
    reason, ranking = check_permutations(counts[rows], ids, n)  # ids: the fast rows' only
    for j, r in enumerate(rows.tolist()):
        expected = parse_generation(texts[r], n, "permutation", malformed)
        mine = ids[starts[r]:starts[r + 1]].tolist()
        assert permutation_of_ids(mine, n, malformed) == expected, texts[r]
        code = int(reason[j])
        assert (None if code == 0 else CHECK_REASONS[code - 1]) == expected.reason, texts[r]
        if code == 0:
            assert ranking[j].tolist() == expected.ranking, texts[r]
    return rows.size


@settings(max_examples=400, deadline=None)
@given(st.lists(_TEXT, min_size=1, max_size=20), st.integers(1, 12),
       st.sampled_from(["fail", "repair"]))
def test_fast_rows_parse_as_the_scalar_parser(texts, n, malformed):
    _compare(texts, n, malformed)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_TEXT, st.none()), min_size=1, max_size=20), st.integers(1, 12))
def test_every_row_checks_as_the_scalar_parser(texts, n):
    """`permutation_id_lists` (fast rows and scalar rows merged) + `check_permutations`: the
    reason and ranking of `parse_generation` on every row, None and prose included."""
    counts, ids = permutation_id_lists(pa.chunked_array([pa.array(texts, pa.string())]))
    reason, ranking = check_permutations(counts, ids, n)
    starts = np.concatenate([[0], np.cumsum(counts)])
    for r, text in enumerate(texts):
        expected = parse_generation(text, n)
        code = int(reason[r])
        assert (None if code == 0 else CHECK_REASONS[code - 1]) == expected.reason, text
        assert permutation_of_ids(ids[starts[r]:starts[r + 1]].tolist(), n) == expected, text
        if code == 0:
            assert ranking[r].tolist() == expected.ranking, text


def test_the_fast_shape_covers_the_common_generations_and_refuses_the_others():
    texts = ["[3] > [1] > [2]", " [ 2 ]>[1] ", "[1]", "[0012] > [1]", "[2] > [2]", "[1] > [9]",
             "[1] > [2]",  # fast
             None, "", "prose", "[٣] > [1]", "[1, 2, 3]", "<answer>[1] > [2]</answer>",
             "[1] [2] [3]", "[-1] > [2]", "[1234567890] > [1]", "[1] > [2]\x0b", "3 > 1 > 2"]
    fast, counts, _ = fast_permutation_ids(pa.array(texts, pa.string()))
    assert fast.tolist() == [True] * 7 + [False] * 11
    assert counts.tolist()[:7] == [3, 2, 1, 2, 2, 2, 2]
    assert _compare(texts, 3, "fail") == 7
    assert FAST_PERMUTATION.startswith("^") and FAST_PERMUTATION.endswith("$")


def test_check_permutations_reason_order():
    counts = np.array([3, 3, 2, 3, 4])
    ids = np.array([3, 1, 2, 1, 1, 9, 1, 2, 2, 2, 3, 1, 2, 3, 4])
    reason, ranking = check_permutations(counts, ids, 3)
    assert [None if c == 0 else CHECK_REASONS[c - 1] for c in reason.tolist()] == [
        None, "id_out_of_range", "missing_id", "repeated_id", "id_out_of_range"]
    reason, _ = check_permutations(np.array([0, 3]), np.array([1, 2, 3]), 3)
    assert reason.tolist() == [1, 0]  # no ids: no_ranking
    assert ranking[0].tolist() == [2, 0, 1]
