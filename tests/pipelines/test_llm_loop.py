"""The LLM policy's loop through the build (issue #22): `--policy none` -> `--to requests` ->
OpenAI batch results (`--rollouts`, every round) or a live server (`--generate-with`) -> pass
rates, counts reconciled, the next round's requests (undecided queries only)."""
from __future__ import annotations

import json
import shutil
import os
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_contracts.manifest import files_of, load_manifest
from data_contracts.readers.rollouts import read_rollouts
from exports.source import text_queries
from pipelines import build_curriculum, export
from pipelines.generate import GenerationOptions, send_requests

N_QUERIES = 8
K = 4
BASE = ["--synthetic", "text", "--synthetic-queries", str(N_QUERIES), "--stages", "2"]


def _build(out, *args) -> int:
    return build_curriculum.main([*BASE, "--out", str(out), *args])


def _phase(run, phase) -> pa.Table:
    manifest = load_manifest(str(run))
    tables = [pq.read_table(p) for p in files_of(manifest, phase)]
    return pa.concat_tables(tables) if tables else None


@pytest.fixture(scope="module")
def pending_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("loop") / "run0"
    assert _build(out, "--policy", "none") == 0
    return out


@pytest.fixture(scope="module")
def round0(pending_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("req0")
    assert export.main([str(pending_run), "--to", "requests", "--out", str(folder),
                        "--model", "pol", "--k", str(K)]) == 0
    return folder


def _labels(run) -> dict:
    table = text_queries(load_manifest(str(run)), str(run))
    return {r["query_id"]: dict(zip(r["doc_ids"], r["labels"])) for r in table.to_pylist()}


def _ideal_text(order, labels, worst=False) -> str:
    """The ideal ranking of a prompt's candidates (or its reverse: `worst`), as [k] in that
    prompt's numbering."""
    ranked = sorted(range(len(order)), key=lambda j: (-labels[order[j]], j))
    ranked = ranked[::-1] if worst else ranked
    return " > ".join(f"[{j + 1}]" for j in ranked)


def _answer(cid, text, finish="stop"):
    return {"custom_id": cid, "error": None, "response": {"status_code": 200, "body": {
        "model": "pol", "choices": [{"index": 0, "message": {"role": "assistant",
                                                           "content": text},
                                     "finish_reason": finish}]}}}


def _write_results(folder, lines, name="results.jsonl"):
    path = folder / name
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _requests(folder):
    record = json.loads((folder / "requests.json").read_text())
    lines = [json.loads(x) for x in (folder / "requests.jsonl").read_text().splitlines()]
    orders = {q["query_id"]: q["candidate_order"] for q in record["queries"]}
    return record, lines, orders


def test_policy_none_keeps_every_query_pending_and_requests_ask_all(pending_run, round0):
    manifest = load_manifest(str(pending_run))
    counts = manifest["counts"]
    assert manifest["rollouts"]["policy"] == "none"
    assert counts["scored"] == 0 and counts["read"] == N_QUERIES
    assert counts["pending"] == counts["unscored"] == counts["read"] - counts["quarantined"]
    pending = _phase(pending_run, "pending")
    assert pending.num_rows == N_QUERIES and pending.column("query_text").null_count == 0
    assert pending.column("pass_rate").null_count == N_QUERIES
    assert manifest["rollouts"]["pending"]["files"]
    record, lines, _ = _requests(round0)
    assert record["round"] == 0 and record["query_count"] == N_QUERIES
    assert len(lines) == N_QUERIES * K


def test_results_reconcile_and_truncated_failed_missing_are_counted(pending_run, round0, tmp_path):
    record, lines, orders = _requests(round0)
    labels = _labels(pending_run)
    out, expect = [], {"failed": 0, "missing": 0, "truncated": 0, "garbage": 0}
    for i, line in enumerate(lines):
        cid, qid = line["custom_id"], line["custom_id"].split(":", 4)[4]
        if i % 7 == 1:
            out.append({"custom_id": cid, "response": {"status_code": 500, "body": None},
                        "error": {"message": "server error"}})
            expect["failed"] += 1
        elif i % 7 == 2:
            expect["missing"] += 1
        elif i % 7 == 3:
            out.append(_answer(cid, "[1] > [2", finish="length"))
            expect["truncated"] += 1
        elif i % 7 == 4:
            out.append(_answer(cid, "I cannot rank these."))
            expect["garbage"] += 1
        else:
            out.append(_answer(cid, _ideal_text(orders[qid], labels[qid])))
    out.append({"response": {}})  # a line without custom_id: quarantined
    results = _write_results(round0, out, "results-reconcile.jsonl")
    run = tmp_path / "run1"
    assert _build(run, "--rollouts", str(results), "--requests", str(round0)) == 0
    m = load_manifest(str(run))
    c = m["counts"]
    assert c["requests_sent"] == len(lines)
    assert c["requests_failed"] == expect["failed"]
    assert c["requests_missing"] == expect["missing"]
    assert c["requests_sent"] == c["requests_answered"] + c["requests_failed"] + \
        c["requests_missing"]
    assert c["rollouts_truncated"] == expect["truncated"]
    assert m["malformed_reasons"] == {"truncated": expect["truncated"],
                                      "no_ranking": expect["garbage"]}
    assert c["results_quarantined"] == 1 and c["quarantined"] == 0
    difficulty = _phase(run, "difficulty")
    assert sum(difficulty.column("trials").to_pylist()) == c["requests_answered"]
    assert m["rollouts"]["rounds"][0]["asked"] == len(lines)
    assert m["rollouts"]["rounds"][0]["answered"] == c["requests_answered"]


def _qid(custom_id):
    return custom_id.split(":", 4)[4]


def _sample(custom_id):
    return int(custom_id.split(":")[3])


def _mostly_ideal(lines, orders, labels, all_pass=frozenset()):
    """Answers: the ideal ranking in each prompt's numbering, the worst for sample 0 (a group
    that is not all-pass: GRPO drops zero-variance groups), except for the `all_pass` queries
    (every sample ideal: too easy but, after 4 samples, undecided, and dropped from RL)."""
    return [_answer(x["custom_id"], _ideal_text(
        orders[_qid(x["custom_id"])], labels[_qid(x["custom_id"])],
        worst=_sample(x["custom_id"]) == 0 and _qid(x["custom_id"]) not in all_pass))
        for x in lines]


def _mixed(run, folder, name="results.jsonl"):
    """Results where the even-numbered queries (in id order) always pass, the others 3 of 4."""
    record, lines, orders = _requests(folder)
    easy = frozenset(sorted(orders)[::2])
    return _write_results(folder, _mostly_ideal(lines, orders, _labels(run), easy), name), easy


def test_order_travels_with_the_request_id(pending_run, round0, tmp_path):
    """Prompts rendered in a shuffled order and answered in that order pass when parsed
    against the recorded order; the same answers read against the query's own order would
    not; an order that is not the query's candidates is quarantined, never scored."""
    record, lines, orders = _requests(round0)
    labels = _labels(pending_run)
    rng = random.Random(3)
    shuffled = {}
    for entry in record["queries"]:
        order = list(entry["candidate_order"])
        rng.shuffle(order)
        shuffled[entry["query_id"]] = order
        entry["candidate_order"] = order
    folder = tmp_path / "shuffled"
    folder.mkdir()
    (folder / "requests.json").write_text(json.dumps(record))
    answers = _mostly_ideal(lines, shuffled, labels)
    results = _write_results(folder, answers)
    run = tmp_path / "run-shuffled"
    assert _build(run, "--rollouts", str(results)) == 0
    rates = _phase(run, "difficulty").column("successes").to_pylist()
    assert rates == [K - 1] * N_QUERIES  # every ideal answer passes against its own order
    # read against the unshuffled order (what a re-rendered prompt would give): fewer pass
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "requests.json").write_text((round0 / "requests.json").read_text())
    wrong = _write_results(plain, answers)
    run2 = tmp_path / "run-wrong"
    assert _build(run2, "--rollouts", str(wrong)) == 0
    assert sum(_phase(run2, "difficulty").column("successes").to_pylist()) < \
        (K - 1) * N_QUERIES
    # an order naming documents the query does not have: quarantined with its reason
    foreign = json.loads((folder / "requests.json").read_text())
    first = foreign["queries"][0]
    first["candidate_order"] = ["not-a-doc"] + first["candidate_order"][1:]
    other = tmp_path / "foreign"
    other.mkdir()
    (other / "requests.json").write_text(json.dumps(foreign))
    run3 = tmp_path / "run-foreign"
    assert _build(run3, "--rollouts", str(_write_results(other, answers))) == 0
    m = load_manifest(str(run3))
    assert m["quarantine_reasons"]["candidate_order_mismatch"] == K
    assert m["counts"]["pending"] >= 1  # that query has no valid rollout: asked again


def test_rounds_pool_and_a_decided_run_asks_nothing(pending_run, round0, tmp_path, capsys):
    results0, easy = _mixed(pending_run, round0, "results-round0.jsonl")
    run1 = tmp_path / "run1"
    assert _build(run1, "--rollouts", str(results0), "--requests", str(round0)) == 0
    difficulty = {r["query_id"]: r for r in _phase(run1, "difficulty").to_pylist()}
    undecided = {q for q, r in difficulty.items() if not r["decided"]}
    assert undecided == easy  # all-pass after 4 samples: not yet sure it is too easy
    pending = _phase(run1, "pending")  # dropped from RL (zero variance), texts kept
    assert set(pending.column("query_id").to_pylist()) == easy
    req1 = tmp_path / "req1"
    assert export.main([str(run1), "--to", "requests", "--out", str(req1), "--model", "pol",
                        "--k", str(K)]) == 0
    record1, lines1, _ = _requests(req1)
    asked = {q["query_id"] for q in record1["queries"]}
    assert record1["round"] == 1 and asked == undecided
    assert all(":1:" in x["custom_id"] for x in lines1)
    results1, _ = _mixed(run1, req1)
    run2 = tmp_path / "run2"
    assert _build(run2, "--rollouts", str(results0), "--rollouts", str(results1),
                  "--requests", str(round0), "--requests", str(req1)) == 0
    m = load_manifest(str(run2))
    assert [r["round"] for r in m["rollouts"]["rounds"]] == [0, 1]
    assert m["counts"]["requests_sent"] == N_QUERIES * K + len(lines1)
    trials = {r["query_id"]: r["trials"] for r in _phase(run2, "difficulty").to_pylist()}
    for q in asked:
        assert trials[q] == K + sum(_qid(x["custom_id"]) == q for x in lines1)
    # a run where every query reached k_max asks nothing, in one line, exit 0
    run3 = tmp_path / "run3"
    assert _build(run3, "--rollouts", str(results0), "--requests", str(round0),
                  "--k", str(K), "--k-max", str(K)) == 0
    assert load_manifest(str(run3))["counts"]["pending"] == len(easy)
    capsys.readouterr()
    req3 = tmp_path / "req3"
    assert export.main([str(run3), "--to", "requests", "--out", str(req3), "--model", "pol",
                        "--k", str(K)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith("nothing to ask")
    assert "do not submit" not in printed[0]
    assert not (req3 / "requests.jsonl").exists()
    # an OUT that holds an earlier round's export: kept (results may be read against its
    # requests.json through --requests), and the one line says its requests.jsonl is stale
    reused = tmp_path / "reused"
    reused.mkdir()
    for name in ("requests.jsonl", "requests.json"):
        shutil.copy(req1 / name, reused / name)
    before = (reused / "requests.jsonl").read_bytes()
    assert export.main([str(run3), "--to", "requests", "--out", str(reused), "--model", "pol",
                        "--k", str(K)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith("nothing to ask")
    assert printed[0].endswith(f"{reused / 'requests.jsonl'} is round 1's requests, already "
                               "asked: do not submit it again")
    assert (reused / "requests.jsonl").read_bytes() == before


def test_results_for_another_run_is_one_error_line(round0, tmp_path, capsys):
    _, lines, _ = _requests(round0)
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "requests.json").write_text((round0 / "requests.json").read_text())
    foreign = [_answer(x["custom_id"].replace(x["custom_id"].split(":")[1], "ffffffff"), "[1]")
               for x in lines]
    results = _write_results(folder, foreign)
    capsys.readouterr()
    assert _build(tmp_path / "run", "--rollouts", str(results)) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if not x.startswith("progress")]
    assert len(err) == 1 and err[0].startswith("error:") and "run ffffffff" in err[0]


def test_a_log_of_unknown_ids_says_unknown_query(tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"query_id": f"nope-{i}", "rollout_id": "r",
                                       "reward": 0.5}) + "\n" for i in range(3)))
    assert _build(tmp_path / "run", "--rollouts", str(log)) == 2
    err = capsys.readouterr().err
    assert "unknown_query" in err and "no_rollouts" not in err


def test_a_ranking_given_as_a_string_is_refused(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"query_id": "q", "rollout_id": "r", "ranking": "d1 d2"}) + "\n"
                   + json.dumps({"query_id": "q", "rollout_id": "s", "ranking": ["d1"]}) + "\n")
    kept, bad = [], []
    for table, quarantined in read_rollouts(str(log)):
        kept += table.to_pylist()
        bad += quarantined.to_pylist()
    assert [r["rollout_id"] for r in kept] == ["s"]
    assert len(bad) == 1 and "string where a list" in bad[0]["detail"]


# ---- live generation against a fake OpenAI-compatible server --------------------------------

class _FakeServer:
    """Canned answers by request body: the ideal permutation of the prompt's passages is not
    known to the server, so it answers `[1] > [2] > ...` (n from the prompt), a 500 on the first
    try of every 5th seed, and never answers (sleeps past the timeout) every 11th seed."""

    def __init__(self):
        self.hits = 0
        self.seen: dict[int, int] = {}
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                seed = body["seed"]
                with owner.lock:
                    owner.hits += 1
                    tries = owner.seen[seed] = owner.seen.get(seed, 0) + 1
                if seed % 11 == 0:
                    time.sleep(1.5)
                    return
                if seed % 5 == 0 and tries == 1:
                    self.send_response(500)
                    self.end_headers()
                    return
                n = body["messages"][-1]["content"].count("\n[")
                text = " > ".join(f"[{j}]" for j in range(1, n + 1))
                if seed % 7 == 0:
                    text = "no idea"
                answer = {"model": body["model"], "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "length" if seed % 13 == 0 else "stop"}]}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def fake_server():
    server = _FakeServer()
    yield server
    server.close()


LIVE = ["--k", str(K), "--model", "pol", "--request-timeout", "0.5", "--retries", "1",
        "--concurrency", "4"]


def test_live_generation_retries_counts_cache_and_matches_the_batch_path(
        pending_run, round0, fake_server, tmp_path):
    cache = tmp_path / "cache"
    live = tmp_path / "live"
    assert _build(live, "--generate-with", fake_server.url, *LIVE,
                  "--generation-cache", str(cache)) == 0
    m = load_manifest(str(live))
    c = m["counts"]
    _, lines, _ = _requests(round0)
    seeds = [x["body"]["seed"] for x in lines]
    timeouts = sum(s % 11 == 0 for s in seeds)
    assert c["requests_sent"] == N_QUERIES * K
    assert c["requests_failed"] == timeouts and c["requests_missing"] == 0
    assert c["rollouts_truncated"] == sum(s % 13 == 0 and s % 11 != 0 for s in seeds)
    assert c["server_retries"] == timeouts + sum(s % 5 == 0 and s % 11 != 0 for s in seeds)
    assert m["rollouts"]["source"] == "server"
    # a rerun asks the server only for what failed
    hits = fake_server.hits
    again = tmp_path / "again"
    assert _build(again, "--generate-with", fake_server.url, *LIVE,
                  "--generation-cache", str(cache)) == 0
    assert fake_server.hits - hits == 2 * timeouts
    assert load_manifest(str(again))["counts"]["server_cache_hits"] == N_QUERIES * K - timeouts
    # the same requests through the batch-file path: the same counts and difficulty
    options = GenerationOptions(url=fake_server.url, model="pol", k=K, timeout=0.5, retries=1,
                                backoff=0.01, cache=str(tmp_path / "cache2"))
    answers = send_requests(lines, options)
    results = _write_results(round0, answers, "results-live.jsonl")
    batch = tmp_path / "batch"
    assert _build(batch, "--rollouts", str(results), "--requests", str(round0)) == 0
    b = load_manifest(str(batch))["counts"]
    for name in ("requests_sent", "requests_answered", "requests_failed", "requests_missing",
                 "rollouts_truncated", "rollouts_malformed", "scored", "pending", "too_hard",
                 "learnable", "too_easy"):
        assert b.get(name, 0) == c.get(name, 0), name
    keep = ["query_id", "trials", "successes", "band"]
    assert _phase(batch, "difficulty").select(keep).to_pylist() == \
        _phase(live, "difficulty").select(keep).to_pylist()


def test_live_generation_is_refused_with_rollouts_or_policy_none(tmp_path, capsys):
    assert _build(tmp_path / "a", "--policy", "none", "--generate-with",
                  "http://127.0.0.1:9", "--model", "m") == 2
    assert _build(tmp_path / "b", "--generate-with", "ftp://x", "--model", "m") == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert len(err) == 2 and "--policy none" in err[0] and "http" in err[1]
    assert not os.path.exists(tmp_path / "a")
