"""A feature id written twice on one SVMlight line (some toolkits do; their readers keep the last
value, scikit-learn refuses): kept last by default and counted, or quarantined with
`--repeated-features quarantine`; the count, the first example line, the warning and the error
name the option."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_contracts.readers import (dataset_space, first_repeated_feature, plan_splits,
                                    read_queries, repeated_features_warning, scan_space)
from data_contracts.readers.svmlight import _parse_line
from data_contracts.reasons import Reason
from data_contracts.usable import unusable_reason
from tests.data_contracts.util import read_and_validate


def _write(tmp_path, lines: list[str], name: str = "train.txt") -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _counted(path: str, **kwargs) -> int:
    return sum(b.counts.get("duplicate_feature_ids", 0) for b in read_queries(path, **kwargs))


def _every_line_repeats(n_queries: int = 6, docs: int = 4) -> list[str]:
    """A file whose every line writes id 1 twice (first 0.25, then the real value) and id 3
    three times."""
    return [f"{d % 3} qid:{q} 1:0.25 2:{d * 0.5:.2f} 1:{q + d / 10:.2f} 3:0 3:1 3:{d}"
            for q in range(1, n_queries + 1) for d in range(docs)]


def test_the_last_value_is_kept_and_every_repeat_counted(tmp_path):
    path = _write(tmp_path, _every_line_repeats())
    out = read_and_validate(path)
    assert out.quarantine.num_rows == 0
    assert out.ok.column("query_id").to_pylist() == [str(q) for q in range(1, 7)]
    features = out.ok.column("features").to_pylist()
    for q, query in enumerate(features, 1):
        assert np.allclose(query, [[q + d / 10, d * 0.5, float(d)] for d in range(4)])
    assert _counted(path) == 6 * 4 * 3  # per line: one repeat of id 1, two of id 3


def test_quarantine_is_todays_rule_with_a_detail_that_names_the_option(tmp_path):
    lines = _every_line_repeats()
    lines[0] = "2 qid:1 1:0.5 2:0.1 3:0.2"  # query 1 is clean apart from its other lines
    path = _write(tmp_path, lines)
    out = read_and_validate(path, repeated_features="quarantine")
    assert out.ok.num_rows == 0
    assert set(out.quarantine.column("reason").to_pylist()) == {Reason.UNPARSEABLE_LINE}
    detail = out.quarantine.column("detail")[0].as_py()
    assert "--repeated-features quarantine" in detail and "--repeated-features last" in detail
    assert "feature id 1 repeats" in detail
    assert _counted(path, repeated_features="quarantine") == (6 * 4 - 1) * 3


def test_an_unknown_choice_is_refused(tmp_path):
    path = _write(tmp_path, _every_line_repeats(1, 1))
    with pytest.raises(ValueError, match="repeated="):
        list(read_queries(path, repeated_features="first"))


def test_a_repeat_the_fast_path_cannot_read_counts_the_same(tmp_path):
    """A line that takes the token-by-token parse (a trailing comment with `:`, an exponent) keeps
    the same last value and count as the fast path."""
    fast = _write(tmp_path, ["1 qid:1 1:1 2:2 1:3", "0 qid:1 2:5 2:6 1:1"], "fast.txt")
    slow = _write(tmp_path, ["1 qid:1 1:1 2:2 1:3e0 # note: x", "0 qid:1 2:5 2:6 1:1 #a:b"],
                  "slow.txt")
    a, b = read_and_validate(fast), read_and_validate(slow)
    assert a.ok.column("features").to_pylist() == b.ok.column("features").to_pylist() \
        == [[[3.0, 2.0], [1.0, 6.0]]]
    assert _counted(fast) == _counted(slow) == 2


def test_byte_range_splits_count_what_the_whole_file_counts(tmp_path):
    rng = random.Random(5)
    lines = []
    for q in range(1, 80):
        for d in range(rng.randint(1, 5)):
            ids = [rng.randint(1, 6) for _ in range(rng.randint(1, 8))]
            lines.append(f"{d % 3} qid:{q} " + " ".join(f"{i}:{rng.random():.3f}" for i in ids))
    path = _write(tmp_path, lines)
    whole = _counted(path)
    assert whole > 0
    plans = plan_splits(path, target_bytes=700)
    assert len(plans) > 3
    space = dataset_space([path])
    assert sum(_counted(path, space=space, **plan) for plan in plans) == whole
    ids = [q for plan in plans for b in read_queries(path, space=space, **plan)
           for q in b.queries.column("query_id").to_pylist()]
    assert ids == [str(q) for q in range(1, 80)]


_line = st.tuples(st.integers(0, 4), st.lists(
    st.tuples(st.integers(0, 12), st.integers(-9, 9)), min_size=1, max_size=10))


@settings(max_examples=150, deadline=None)
@given(st.lists(_line, min_size=1, max_size=12))
def test_the_scan_and_the_parser_agree_on_lines_with_repeats(tmp_path_factory, lines):
    """Each parsed line holds every id of its tokens once, with the last value; the ids the
    scan sees are exactly the ids the parser keeps (so the space fits every kept value)."""
    text = [f"{label} qid:1 " + " ".join(f"{i}:{v}" for i, v in pairs) for label, pairs in lines]
    for line, (_, pairs) in zip(text, lines):
        _, _, (fids, values), _, repeats = _parse_line(line)
        assert dict(zip(fids, values)) == {i: float(v) for i, v in pairs}
        assert len(fids) == len(set(fids)) and repeats == len(pairs) - len(set(fids))
    path = _write(tmp_path_factory.mktemp("scan"), text)
    stats = scan_space(path)
    kept = {i for _, pairs in lines for i, _ in pairs}
    assert (stats.low, stats.high) == (min(kept), max(kept))
    out = read_and_validate(path)
    assert out.quarantine.num_rows == 0
    dense = np.asarray(out.ok.column("features").to_pylist()[0])
    base = 0 if min(kept) == 0 else 1
    for row, (_, pairs) in zip(dense, lines):
        expected = np.zeros(max(kept) - base + 1)
        for i, v in pairs:
            expected[i - base] = v
        assert np.array_equal(row, expected)


def test_the_first_example_and_the_warning(tmp_path):
    clean = _write(tmp_path, ["1 qid:1 1:1 2:2", "# 1:1 1:2 in a comment is no repeat"], "a.txt")
    dirty = _write(tmp_path, ["1 qid:1 1:1 2:2", "", "0 qid:1 2:1 2:3"], "b.txt")
    assert first_repeated_feature([clean]) is None
    assert first_repeated_feature([clean, dirty]) == f"{dirty}:3"
    line = repeated_features_warning(4, f"{dirty}:3")
    assert f"first at {dirty}:3" in line and "--repeated-features last" in line \
        and "--repeated-features quarantine" in line and "\n" not in line


def test_the_refusal_names_the_option_when_repeats_were_quarantined():
    reason = unusable_reason({"read": 14, "quarantined": 13, "scored": 1,
                              "duplicate_feature_ids": 40},
                             {Reason.UNPARSEABLE_LINE: 13})
    assert "top reason unparseable_line (13)" in reason
    assert "40 feature id(s) repeat" in reason and "--repeated-features last" in reason
    quiet = unusable_reason({"read": 14, "quarantined": 13, "scored": 1},
                            {Reason.UNPARSEABLE_LINE: 13})
    assert "--repeated-features" not in quiet
