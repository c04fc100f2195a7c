"""Routing: every scored query gets exactly one fate, with a reason when it leaves the curriculum."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from curricula.routing import RoutingConfig, informative_demonstrations, route, route_fates
from data_contracts.teacher import teacher_scores
from tests.curricula.util import scored_row, scored_table


def _fates(routed) -> dict[str, str]:
    out = {}
    for fate, table in (("rl", routed.rl), ("imitation", routed.imitation),
                        ("dropped", routed.dropped)):
        for qid in table.column("query_id").to_pylist():
            assert qid not in out, f"{qid} has two fates ({out[qid]} and {fate})"
            out[qid] = fate
    return out


def _reasons(routed) -> dict[str, str]:
    return dict(zip(routed.dropped.column("query_id").to_pylist(),
                    routed.dropped.column("reason").to_pylist()))


def _mixed_table():
    rows = [
        scored_row("hard-demo", "too_hard"),
        scored_row("hard-nodemo", "too_hard", labels=None),
        scored_row("hard-teacher", "too_hard", labels=None, teacher=[0.1, 0.9, 0.5, 0.2]),
        scored_row("learn", "learnable"),
        scored_row("learn-zv", "learnable", zero_variance=True),
        scored_row("learn-notrials", "learnable", trials=0, successes=0),
        scored_row("easy-demo", "too_easy"),
        scored_row("easy-nodemo", "too_easy", labels=None),
        scored_row("hard-zeros", "too_hard", labels="zeros"),
        scored_row("easy-single", "too_easy", n_docs=1, labels=[3.0]),
    ]
    return scored_table(rows)


def test_every_query_has_exactly_one_fate_and_dropped_ones_a_reason():
    table = _mixed_table()
    routed = route(table, RoutingConfig())
    fates = _fates(routed)
    assert sorted(fates) == sorted(table.column("query_id").to_pylist())
    assert len(routed.imitation_weight) == routed.imitation.num_rows
    reasons = _reasons(routed)
    assert all(r.strip() for r in reasons.values()), reasons
    assert fates == {
        "hard-demo": "imitation", "hard-nodemo": "dropped", "hard-teacher": "imitation",
        "learn": "rl", "learn-zv": "dropped", "learn-notrials": "dropped",
        "easy-demo": "imitation", "easy-nodemo": "dropped", "hard-zeros": "dropped",
        "easy-single": "dropped",
    }


def test_drop_reasons_name_why():
    reasons = _reasons(route(_mixed_table(), RoutingConfig()))
    assert reasons["hard-nodemo"] == "too_hard: no demonstration"
    assert reasons["easy-nodemo"] == "too_easy: no demonstration"
    assert reasons["learn-zv"] == "zero_variance_group"
    assert reasons["learn-notrials"] == "no_rollouts"
    # all labels 0 or one document: every order is ideal, so the labels demonstrate nothing
    assert reasons["hard-zeros"].startswith("too_hard: uninformative demonstration")
    assert reasons["easy-single"].startswith("too_easy: uninformative demonstration")


def test_too_hard_with_demo_goes_to_imitation_without_it_is_dropped():
    table = scored_table([scored_row("a", "too_hard"), scored_row("b", "too_hard", labels=None)])
    routed = route(table, RoutingConfig())
    assert routed.imitation.column("query_id").to_pylist() == ["a"]
    assert routed.dropped.column("query_id").to_pylist() == ["b"]
    assert routed.rl.num_rows == 0


def test_hard_to_imitation_is_configurable():
    table = scored_table([scored_row("a", "too_hard"), scored_row("e", "too_easy")])
    routed = route(table, RoutingConfig(hard_to_imitation=False))
    assert _fates(routed) == {"a": "dropped", "e": "imitation"}
    assert _reasons(routed)["a"] == "too_hard: out of RL, imitation disabled"
    routed = route(table, RoutingConfig(easy_to_imitation=False))
    assert _fates(routed) == {"a": "imitation", "e": "dropped"}


def test_teacher_mode_none_means_no_demonstrations():
    routed = route(_mixed_table(), RoutingConfig(teacher_mode="none"))
    fates = _fates(routed)
    assert set(fates.values()) == {"rl", "dropped"}
    assert fates["learn"] == "rl"


def test_learnable_zero_variance_is_never_rl():
    rows = [scored_row(f"q{i}", "learnable", zero_variance=bool(i % 2)) for i in range(10)]
    routed = route(scored_table(rows), RoutingConfig())
    assert routed.rl.column("query_id").to_pylist() == [f"q{i}" for i in range(0, 10, 2)]
    assert set(_reasons(routed).values()) == {"zero_variance_group"}


def test_easy_weight_applies_to_easy_demonstrations_only():
    table = scored_table([scored_row("h", "too_hard"), scored_row("e", "too_easy")])
    routed = route(table, RoutingConfig(easy_weight=0.25))
    weights = dict(zip(routed.imitation.column("query_id").to_pylist(),
                       routed.imitation_weight.tolist()))
    assert weights == {"h": 1.0, "e": 0.25}


def _random_table(n: int, seed: int):
    """n scored queries of random band, size, labels and zero-variance flag."""
    rng = np.random.default_rng(seed)
    bands = ["too_hard", "learnable", "too_easy"]
    return scored_table([scored_row(f"q{i}", bands[rng.integers(3)],
                                    n_docs=int(rng.integers(1, 6)),
                                    labels=[None, "graded", "zeros"][rng.integers(3)],
                                    zero_variance=bool(rng.random() < 0.2), seed=i)
                         for i in range(n)])


def test_random_tables_partition_exactly():
    table = _random_table(200, seed=3)
    routed = route(table, RoutingConfig())
    fates = _fates(routed)
    assert len(fates) == 200
    band = dict(zip(table.column("query_id").to_pylist(), table.column("band").to_pylist()))
    for qid, fate in fates.items():
        if fate == "rl":
            assert band[qid] == "learnable"
        if fate == "imitation":
            assert band[qid] in ("too_hard", "too_easy")
    assert Counter(fates.values())["dropped"] == routed.dropped.num_rows


@pytest.mark.parametrize("scores,n_docs,expected", [
    ([3.0, 1.0, 0.0], 3, True), ([0.0, 0.0, 0.0], 3, False), ([2.0, 2.0], 2, False),
    ([4.0], 1, False), ([1.0, 1.0, 0.0], 3, True)])
def test_informative_demonstrations(scores, n_docs, expected):
    table = scored_table([scored_row("q", "too_hard", n_docs=n_docs, labels=scores)])
    padded, _ = teacher_scores(table, "labels")
    assert informative_demonstrations(table, padded).tolist() == [expected]


def test_no_filter_control_sends_too_hard_queries_to_rl_with_one_fate_each():
    table = _mixed_table()
    on, off = route(table, RoutingConfig()), route(table, RoutingConfig(filter_hard=False))
    fates_on, fates_off = _fates(on), _fates(off)
    hard = [q for q in fates_on if q.startswith("hard")]
    assert all(fates_off[q] == "rl" for q in hard)
    assert {q: f for q, f in fates_off.items() if q not in hard} == \
        {q: f for q, f in fates_on.items() if q not in hard}


@pytest.mark.parametrize("cfg", [RoutingConfig(), RoutingConfig(filter_hard=False),
                                 RoutingConfig(easy_weight=0.25, hard_to_imitation=False),
                                 RoutingConfig(teacher_mode="none")])
def test_route_fates_are_the_decisions_route_splits_by(cfg):
    table = _random_table(120, seed=5)
    fates, routed = route_fates(table, cfg), route(table, cfg)
    qids = table.column("query_id").to_pylist()
    assert dict(zip(qids, fates.fate.tolist())) == _fates(routed)
    dropped = fates.fate == "dropped"
    assert dict(zip(np.array(qids)[dropped].tolist(), fates.reason[dropped].tolist())) == \
        _reasons(routed)
    assert set(fates.reason[~dropped].tolist()) <= {""}
    imitation = fates.fate == "imitation"
    assert fates.weight[imitation].tolist() == routed.imitation_weight.tolist()
    width = routed.imitation_teacher.shape[1]
    np.testing.assert_array_equal(fates.teacher[imitation][:, :width], routed.imitation_teacher)
