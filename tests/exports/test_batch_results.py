"""OpenAI batch output lines -> rollout rows, matched by custom_id against requests.json: both
layouts, n > 1 choices, failed requests counted, truncated choices marked, foreign and
id-less lines quarantined, counts reconciled, a results file for another run refused, and the
candidate order travelling with the request id."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from data_contracts.errors import InputError
from data_contracts.readers.batch_results import (REQUESTS_KIND, align_to_query, find_requests,
                                                  load_requests, make_custom_id,
                                                  parse_custom_id, read_batch_results,
                                                  sniff_batch_output)
from data_contracts.readers.rollouts import read_rollouts
from difficulty.generations import parse_generation
from difficulty.rewards import ndcg_of_rankings
from exports.prompts import Template, WordCut, render_prompt

DOCS = {"q:1": ["a", "b", "c"], "q/2": ["x", "y"], "q3": ["m", "n"]}


def _requests(tmp_path, orders=None, samples=(0, 1), tag="abcd1234"):
    orders = orders or DOCS
    record = {"kind": REQUESTS_KIND, "version": 1, "run": {"tag": tag}, "round": 1,
              "requests": len(orders) * len(samples),
              "queries": [{"query_id": q, "candidate_order": o, "samples": list(samples)}
                          for q, o in sorted(orders.items())]}
    path = tmp_path / "requests.json"
    path.write_text(json.dumps(record))
    return str(path)


def _choice(text, index=0, finish="stop"):
    return {"index": index, "message": {"role": "assistant", "content": text},
            "finish_reason": finish}


def _new(cid, *choices, status=200):
    return {"id": "b1", "custom_id": cid, "error": None,
            "response": {"status_code": status, "request_id": "r",
                         "body": {"model": "pol", "choices": list(choices)}}}


def test_custom_ids_round_trip_with_colons_and_slashes():
    cid = make_custom_id("abcd1234", 3, 7, "q:1/ü %")
    assert cid.startswith("rc:abcd1234:3:7:") and cid.count(":") == 4
    assert parse_custom_id(cid) == ("abcd1234", 3, 7, "q:1/ü %")
    for bad in (None, 5, "x", "rc:t:a:1:q", "rc:t:1:1:", "other:t:1:1:q"):
        assert parse_custom_id(bad) is None


def test_results_map_by_custom_id_and_counts_reconcile(tmp_path):
    index = load_requests(_requests(tmp_path))
    cid = {(q, s): make_custom_id("abcd1234", 1, s, q) for q in DOCS for s in (0, 1)}
    lines = [
        _new(cid[("q:1", 1)], _choice("[2] > [1] > [3]"), _choice("[1] > [2] > [3]", 1)),
        {"custom_id": cid[("q:1", 0)], "response": {"model": "old", "choices": [
            _choice("[3] > [2]", finish="length")]}},                       # older layout
        {"id": "b", "custom_id": cid[("q/2", 0)], "error": {"code": "x", "message": "boom"},
         "response": None},                                                   # failed
        _new(cid[("q/2", 1)], status=500),                                   # failed
        _new(cid[("q/2", 1)], _choice("[1] > [2]")),                         # a retry answered
        _new(cid[("q:1", 1)], _choice("again")),                             # duplicate
        _new("rc:abcd1234:1:9:q3", _choice("[1]")),                          # never asked
        {"response": {"status_code": 200}},                                  # no custom_id
        "not json",
    ]
    path = tmp_path / "results.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + "\n\n")
    assert sniff_batch_output(str(path))
    got = read_batch_results(str(path), index)
    c = got.counts
    assert c == {"requests_sent": 6, "requests_answered": 3, "requests_failed": 1,
                 "requests_missing": 2, "result_lines": 9, "results_quarantined": 4,
                 "rollouts": 4, "rollouts_truncated": 1}
    assert c["requests_sent"] == c["requests_answered"] + c["requests_failed"] + \
        c["requests_missing"]
    rows = got.rollouts.to_pylist()
    assert [r["rollout_id"] for r in rows] == [cid[("q:1", 1)] + "#0", cid[("q:1", 1)] + "#1",
                                              cid[("q:1", 0)] + "#0", cid[("q/2", 1)] + "#0"]
    assert rows[0]["query_id"] == "q:1" and rows[0]["candidate_order"] == ["a", "b", "c"]
    assert rows[0]["policy_id"] == "pol" and rows[2]["policy_id"] == "old"
    assert [r["malformed"] for r in rows] == [None, None, "truncated", None]
    assert rows[0]["ranking"] is None and rows[0]["generation"] == "[2] > [1] > [3]"
    assert got.failed.to_pylist()[0]["query_id"] == "q/2"
    assert "boom" in got.failed.to_pylist()[0]["error"]
    assert sorted(got.missing) == sorted([cid[("q3", 0)], cid[("q3", 1)]])
    reasons = got.quarantine.column("reason").to_pylist()
    assert sorted(reasons) == ["duplicate_result", "no_custom_id", "unknown_request",
                               "unparseable_line"]
    assert all(":" in loc for loc in got.quarantine.column("location").to_pylist())


def test_reasoning_content_is_put_back_in_front(tmp_path):
    index = load_requests(_requests(tmp_path, samples=(0,)))
    cid = make_custom_id("abcd1234", 1, 0, "q3")
    line = _new(cid, {"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "<answer>[2] > [1]</answer>",
        "reasoning_content": "n is better"}})
    (tmp_path / "r.jsonl").write_text(json.dumps(line) + "\n")
    row = read_batch_results(str(tmp_path / "r.jsonl"), index).rollouts.to_pylist()[0]
    assert row["generation"] == "<think>n is better</think>\n<answer>[2] > [1]</answer>"


def test_results_for_another_run_are_one_error(tmp_path):
    index = load_requests(_requests(tmp_path))
    other = make_custom_id("ffff0000", 1, 0, "q3")
    (tmp_path / "r.jsonl").write_text(json.dumps(_new(other, _choice("[1] > [2]"))) + "\n")
    with pytest.raises(InputError, match="run ffff0000"):
        read_batch_results(str(tmp_path / "r.jsonl"), index)


def test_requests_are_found_or_named(tmp_path):
    _requests(tmp_path)
    results = tmp_path / "r.jsonl"
    results.write_text("")
    assert find_requests(str(results)).run_tag == "abcd1234"
    elsewhere = tmp_path / "sub"
    elsewhere.mkdir()
    (elsewhere / "r.jsonl").write_text("")
    with pytest.raises(InputError, match="--requests"):
        find_requests(str(elsewhere / "r.jsonl"))
    assert find_requests(str(elsewhere / "r.jsonl"), str(tmp_path)).run_tag == "abcd1234"
    (tmp_path / "requests.json").write_text('{"kind": "x"}')
    with pytest.raises(InputError, match="not a requests record"):
        load_requests(str(tmp_path))


def test_the_rollout_reader_points_batch_lines_to_their_reader(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(_new("rc:t:0:0:q", _choice("[1]"))) + "\n")
    with pytest.raises(InputError, match="requests.json"):
        list(read_rollouts(str(path)))


def test_an_order_asked_is_the_order_parsed():
    """Candidates rendered in one order and parsed in another cannot pass unnoticed: the order
    travels with the request, and a generation is read against it."""
    doc_ids, labels = ["d0", "d1", "d2", "d3"], np.array([[0.0, 0.0, 1.0, 2.0]])
    template = Template(user="{passages}", cut=WordCut(0))
    prompt = render_prompt(template, "q", doc_ids, ["t0", "t1", "t2", "t3"], order=[3, 2, 1, 0])
    assert prompt.candidate_order == ["d3", "d2", "d1", "d0"]
    generation = "[1] > [2] > [3] > [4]"  # the ideal ranking, in the order it was asked
    positions = parse_generation(generation, 4).ranking
    align = align_to_query(prompt.candidate_order, doc_ids)
    right = np.array([[[align[p] for p in positions]]])
    wrong = np.array([[positions]])  # read against the run's order instead
    mask = np.ones((1, 4), dtype=bool)
    assert ndcg_of_rankings(right, labels, mask, 10)[0, 0] == pytest.approx(1.0)
    assert ndcg_of_rankings(wrong, labels, mask, 10)[0, 0] < 0.7
    assert align_to_query(["d0", "d1"], doc_ids) is None  # the run's candidates changed
    assert align_to_query(["d0", "d1", "d2", "d9"], doc_ids) is None
