"""Sampling requests: one OpenAI batch line per sample, prompts from the one renderer, the
candidate order recorded per query, deterministic bytes, one-line errors."""
from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from data_contracts.errors import InputError
from data_contracts.readers.batch_results import load_requests, parse_custom_id
from exports.build import export_run
from exports.requests import RequestOptions, export_requests
from pipelines import export as export_cli
from pipelines.build_curriculum import main as build_main
from tests.pipelines.helpers import phase_table


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("req") / "run")
    assert build_main(["--synthetic", "text", "--synthetic-queries", "30", "--k", "4",
                       "--k-max", "4", "--out", out]) == 0
    return out


def _lines(folder):
    with open(os.path.join(folder, "requests.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_one_line_per_sample_with_the_order_recorded(text_run, tmp_path):
    out = str(tmp_path / "req")
    assert export_cli.main([text_run, "--to", "requests", "--out", out, "--model", "m",
                            "--k", "3", "--max-tokens", "64"]) == 0
    lines = _lines(out)
    index = load_requests(out)
    record = index.record
    queries = {}
    for phase in ("imitation", "rl"):
        for row in phase_table(text_run, phase).to_pylist():
            queries[row["query_id"]] = row["doc_ids"]
    assert record["query_count"] == len(queries) and record["requests"] == 3 * len(queries)
    assert len(lines) == record["requests"] == len(index.requests)
    assert {e["query_id"]: e["candidate_order"] for e in record["queries"]} == queries
    seen = set()
    for line in lines:
        assert set(line) == {"custom_id", "method", "url", "body"}
        assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
        assert set(line["body"]) == {"model", "messages", "temperature", "max_tokens", "seed"}
        assert line["body"]["max_tokens"] == 64 and line["body"]["model"] == "m"
        tag, round_, sample, qid = parse_custom_id(line["custom_id"])
        assert tag == record["run"]["tag"] and round_ == 0 and 0 <= sample < 3
        assert index.requests[line["custom_id"]][0] == qid
        seen.add(line["custom_id"])
    assert len(seen) == len(lines)
    assert len({line["body"]["seed"] for line in lines}) > len(lines) // 2  # samples differ


def test_requests_and_rl_export_render_the_same_prompt(text_run, tmp_path):
    export_requests(text_run, str(tmp_path / "req"), RequestOptions(model="m", k=1))
    record = export_run(text_run, "trl", str(tmp_path / "trl"), val_fraction=0.0)
    by_query = {line["custom_id"].rsplit(":", 1)[1]: line["body"]["messages"]
                for line in _lines(str(tmp_path / "req"))}
    stage = next(f for f in record["files"] if f["phase"] == "rl")
    rows = pq.read_table(os.path.join(tmp_path, "trl", stage["path"])).to_pylist()
    assert rows and all(r["prompt"] == by_query[r["query_id"]] for r in rows)


def test_same_run_and_options_same_bytes_and_a_chosen_plan(text_run, tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    for out in (a, b):
        export_requests(text_run, out, RequestOptions(model="m", k=2, seed=5))
    for name in ("requests.jsonl", "requests.json"):
        assert open(os.path.join(a, name), "rb").read() == open(os.path.join(b, name),
                                                                  "rb").read()
    qid = load_requests(a).record["queries"][0]["query_id"]
    export_requests(text_run, a, RequestOptions(model="m", round=2), wanted=[(qid, [4, 7])])
    index = load_requests(a)
    assert sorted(index.requests.values(), key=lambda v: v[3]) == [
        (qid, tuple(index.record["queries"][0]["candidate_order"]), 2, 4),
        (qid, tuple(index.record["queries"][0]["candidate_order"]), 2, 7)]
    assert not os.path.exists(os.path.join(b, "x"))
    with pytest.raises(InputError, match="not in the run"):
        export_requests(text_run, a, RequestOptions(model="m"), wanted=[("nope", [0])])


@pytest.mark.parametrize("argv, match", [
    (["--to", "requests", "--out", "{tmp}/r"], "--model"),
    (["--to", "requests", "--out", "{tmp}/r", "--model", "m", "--k", "0"], "--k"),
    (["--to", "requests", "--out", "{tmp}/r", "--model", "m", "--temperature", "-1"],
     "--temperature"),
    (["--to", "requests", "--out", "{tmp}/file.txt", "--model", "m"], "is a file"),
    (["--to", "verl", "--out", "{tmp}/file.txt"], "is a file"),
    (["--to", "trl", "--out", "{run}/x"], "inside the run"),
    (["--to", "trl", "--out", "{tmp}/r", "--passage-tokens", "5"], "--tokenizer"),
])
def test_bad_options_are_one_error_line(text_run, tmp_path, capsys, argv, match):
    (tmp_path / "file.txt").write_text("mine")
    argv = [a.format(tmp=tmp_path, run=text_run) for a in argv]
    try:
        code = export_cli.main([text_run] + argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and match in err[0], err
    assert (tmp_path / "file.txt").read_text() == "mine"


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        export_cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: pass)", "(default: all)", "(default: column)", "(default: 8)",
                    "(default: 2048)", "(default: 300)", "(default: 1)", "(default: 0)"):
        assert default in text, default
