"""OpenAI batch output lines (vLLM run-batch, SGLang, the OpenAI Batch API) -> rollout rows.

The requests this package writes (`python -m pipelines.export RUN --to requests`) name each line
with a `custom_id` (`make_custom_id`) and record, in `requests.json`, the candidate order each
query's prompt listed. A result is matched to its request by `custom_id` only (never by line
order) and carries that recorded order, so its `[k]` is read against the order it was asked
with, never against a re-rendered prompt.

Result lines are detected by content (`is_batch_output_record`): an object with `custom_id` and
`response` or `error`. Both layouts are read:

  {"id", "custom_id", "response": {"status_code": 200, "request_id",
                                   "body": {"model", "choices": [...], "usage"}}, "error": null}
  {"id", "custom_id", "response": {"model", "choices": [...]}}     (older vLLM examples)

Each choice (`n > 1` gives several) is one rollout: `rollout_id` = custom_id + "#" + the choice's
index, `generation` = `message.content` (a `message.reasoning_content` that a server's reasoning
parser split off is put back in front as `<think>...</think>`). A choice cut by
`finish_reason: "length"` is a malformed rollout: its row has `malformed = "truncated"`. A line
with an `error`, no response or `status_code != 200` is a failed request (counted, not a
rollout). A line that is not JSON, has no `custom_id`, names a request the requests file does not
hold, or repeats an answered request is a quarantine row. Counts reconcile:

  requests_sent == requests_answered + requests_failed + requests_missing
"""
from __future__ import annotations

import json
import urllib.parse
import dataclasses
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.quarantine import quarantine_row, quarantine_table
from data_contracts.schema import QUERY_ID, ROLLOUT_SCHEMA

CUSTOM_ID_PREFIX = "rc"
REQUESTS_KIND = "rerank-curriculum requests"
REQUESTS_VERSION = 1
TRUNCATED = "truncated"  # the malformation of a choice cut by finish_reason "length"

# Quarantine reasons of result lines (record_kind "result").
NO_CUSTOM_ID = "no_custom_id"
UNKNOWN_REQUEST = "unknown_request"
DUPLICATE_RESULT = "duplicate_result"
UNPARSEABLE_LINE = "unparseable_line"

# ROLLOUT_SCHEMA's columns (ranking, reward, passed null: the generation is parsed when scored)
# and what a result adds.
BATCH_ROLLOUT_SCHEMA = pa.schema(list(ROLLOUT_SCHEMA) + [
    pa.field("candidate_order", pa.list_(pa.string()), nullable=False),
    pa.field("custom_id", pa.string(), nullable=False),
    pa.field("round", pa.int32(), nullable=False),
    pa.field("sample", pa.int32(), nullable=False),
    pa.field("choice", pa.int32(), nullable=False),
    pa.field("finish_reason", pa.string()),
    pa.field("malformed", pa.string()),
])
FAILED_SCHEMA = pa.schema([
    QUERY_ID, pa.field("custom_id", pa.string(), nullable=False),
    pa.field("status_code", pa.int32()), pa.field("error", pa.string()),
    pa.field("location", pa.string(), nullable=False)])


def make_custom_id(run_tag: str, round_: int, sample: int, query_id: str) -> str:
    """`rc:<run_tag>:<round>:<sample>:<query id, percent-escaped>` (':' in an id is safe)."""
    return (f"{CUSTOM_ID_PREFIX}:{run_tag}:{int(round_)}:{int(sample)}:"
            f"{urllib.parse.quote(query_id, safe='')}")


def parse_custom_id(custom_id: object) -> tuple[str, int, int, str] | None:
    """(run_tag, round, sample, query_id) of a custom_id made by `make_custom_id`, else None."""
    if not isinstance(custom_id, str):
        return None
    parts = custom_id.split(":", 4)
    if len(parts) != 5 or parts[0] != CUSTOM_ID_PREFIX or not parts[2].isascii() or \
            not parts[2].isdigit() or not parts[3].isascii() or not parts[3].isdigit():
        return None
    query_id = urllib.parse.unquote(parts[4], errors="strict") if parts[4] else ""
    if not query_id:
        return None
    return parts[1], int(parts[2]), int(parts[3]), query_id


@dataclass(frozen=True)
class RequestIndex:
    """What a requests.json says was asked: custom_id -> (query id, candidate order, round,
    sample), the run tag and the record itself."""

    path: str
    run_tag: str
    record: dict
    requests: dict  # custom_id -> (query_id, candidate_order, round, sample)


def load_requests(path: str) -> RequestIndex:
    """Reads a requests.json (or the folder that holds it) written by `--to requests`.

    Raises:
      InputError: missing, not JSON, not a requests record, or a query entry without a
        candidate order or samples.
    """
    if fs.isdir(path):
        path = fs.join(path, "requests.json")
    if not fs.isfile(path):
        raise InputError(path, "requests.json not found (written by `python -m pipelines.export "
                               "RUN --to requests`)")
    try:
        record = json.loads(fs.read_bytes(path).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(path, f"not valid JSON ({exc})") from None
    return index_requests(record, path)


def index_requests(record: object, path: str) -> RequestIndex:
    """A requests record (the object of a requests.json, or one made in memory by live
    generation) as a RequestIndex; `path` names it in messages and quarantine rows.

    Raises:
      InputError: see `load_requests`.
    """
    if not isinstance(record, dict) or record.get("kind") != REQUESTS_KIND:
        raise InputError(path, f"not a requests record (kind {REQUESTS_KIND!r})")
    if record.get("version") != REQUESTS_VERSION:
        raise InputError(path, f"requests version {record.get('version')!r}, this code reads "
                               f"{REQUESTS_VERSION}")
    tag = record.get("run", {}).get("tag") if isinstance(record.get("run"), dict) else None
    round_ = record.get("round")
    if not isinstance(tag, str) or not tag or not isinstance(round_, int):
        raise InputError(path, "requests record without run.tag or round")
    requests = {}
    for i, entry in enumerate(record.get("queries") or []):
        ok = isinstance(entry, dict) and isinstance(entry.get("query_id"), str) and \
            isinstance(entry.get("candidate_order"), list) and entry["candidate_order"] and \
            all(isinstance(d, str) for d in entry["candidate_order"]) and \
            isinstance(entry.get("samples"), list) and \
            all(isinstance(s, int) and s >= 0 for s in entry["samples"])
        if not ok:
            raise InputError(path, f"queries[{i}]: needs query_id, candidate_order (doc ids) and "
                                   "samples", column="queries")
        order = tuple(entry["candidate_order"])
        for sample in entry["samples"]:
            requests[make_custom_id(tag, round_, sample, entry["query_id"])] = (
                entry["query_id"], order, round_, sample)
    if len(requests) != record.get("requests"):
        raise InputError(path, f"lists {len(requests)} requests, its count says "
                               f"{record.get('requests')!r}", column="requests")
    return RequestIndex(path, tag, record, requests)


def find_requests(results_path: str, requests_path: str | None = None) -> RequestIndex:
    """The requests a results file answers: `requests_path` (requests.json or its folder) when
    given, else a requests.json beside the results file.

    Raises:
      InputError: neither is there (one line saying which option names it).
    """
    if requests_path is None:
        beside = fs.join(fs.dirname(results_path), "requests.json")
        if not fs.isfile(beside):
            raise InputError(results_path, "OpenAI batch output lines are read against the "
                                           "requests.json they answer: pass --requests "
                                           "DIR/requests.json (written by --to requests)")
        requests_path = beside
    return load_requests(requests_path)


def answered_requests(sources) -> Iterator[tuple[str, RequestIndex]]:
    """(results file, the requests it answers) of each OpenAI batch-output file among `sources`
    ((rollout file, its requests.json or None for the one beside it), in order); a file that
    is not batch output (`sniff_batch_output`: a plain rollout log) answers no requests and is
    skipped.

    Raises:
      InputError: a batch-output file's requests.json is missing or invalid (`find_requests`).
    """
    for path, requests_path in sources:
        if sniff_batch_output(path):
            yield path, find_requests(path, requests_path)


def check_result_rounds(sources) -> None:
    """Refuses a set of results files whose rounds do not fit together, before anything is read.

    Each results file (OpenAI batch output, `sniff_batch_output`; a plain rollout log answers no
    requests and is skipped) answers one round's requests.json. A round's requests are counted
    once: two files answering the same round (the same file twice, or a requests.json replaced
    by another round's) would count them twice. A round that `--to requests` planned from a
    build (its record's `plan` is set) was planned from the results of every earlier round:
    round R > 0 without round R - 1 would band its queries on part of their samples and plan
    the next round from the wrong tallies. (A round asked with an explicit `--round` has no
    `plan` and needs no earlier round.)

    Args:
      sources: (results file, the requests.json it answers or None for the one beside it).

    Raises:
      InputError: a round answered by two files, or a planned round without the round before
        it (or see `find_requests`).
    """
    rounds: dict[int, tuple[str, dict]] = {}
    for path, index in answered_requests(sources):
        round_ = index.record["round"]
        if round_ in rounds:
            raise InputError(path, f"answers round {round_}, as {rounds[round_][0]} does "
                                   f"(requests {index.path}): give each round's results once, "
                                   "each beside its own requests.json")
        rounds[round_] = (path, index.record)
    for round_, (path, record) in sorted(rounds.items()):
        if round_ > 0 and record.get("plan") is not None and round_ - 1 not in rounds:
            raise InputError(path, f"round {round_} was planned from the results of rounds "
                                   f"0..{round_ - 1}; give round {round_ - 1}'s results too "
                                   "(--rollouts once per round)")


def is_batch_output_record(obj: object) -> bool:
    """Whether one parsed JSON line is an OpenAI batch output line (custom_id + response/error)."""
    return isinstance(obj, dict) and "custom_id" in obj and ("response" in obj or "error" in obj)


def sniff_batch_output(path: str) -> bool:
    """Whether a file's first non-blank line is an OpenAI batch output line (by content)."""
    if fs.isdir(path) or not fs.isfile(path):
        return False
    with fs.open_text(path) as handle:
        for line in handle:
            if line.strip():
                try:
                    return is_batch_output_record(json.loads(line))
                except (ValueError, RecursionError):
                    return False
    return False


def _text(content: object) -> str | None:
    """A message's content as text (a list of content parts is joined)."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def _generation(message: dict) -> str | None:
    content = _text(message.get("content"))
    reasoning = _text(message.get("reasoning_content") or message.get("reasoning"))
    if reasoning and "<think>" not in (content or ""):
        return f"<think>{reasoning}</think>\n{content or ''}"
    return content


def _body(line: dict) -> tuple[dict | None, int | None, str | None]:
    """(response body, status code, error text) of one result line; body None = failed."""
    response, error = line.get("response"), line.get("error")
    status = None
    if isinstance(response, dict):
        status = response.get("status_code")
        body = response.get("body") if "body" in response or "status_code" in response \
            else response  # the older layout: choices right under response
    else:
        body = None
    if error:
        return None, status, json.dumps(error, sort_keys=True) if not isinstance(error, str) \
            else error
    if status is not None and status != 200:
        return None, status, f"status_code {status}"
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        return None, status, "no response body with choices"
    return body, status if status is not None else 200, None


@dataclass
class BatchResults:
    """What `read_batch_results` returns.

    Attributes:
      rollouts: one row per choice (BATCH_ROLLOUT_SCHEMA), in results-file order.
      quarantine: result lines that could not be used (QUARANTINE_SCHEMA, record_kind "result").
      failed: failed requests (FAILED_SCHEMA): an error line or a status other than 200.
      counts: requests_sent, requests_answered, requests_failed, requests_missing, result_lines,
        results_quarantined, rollouts, rollouts_truncated; sent = answered + failed + missing.
      missing: custom_ids sent and never answered (sorted).
      sent: every custom_id the requests asked (sorted).
      answered: the custom_ids answered (sorted; an answer may hold no choice).
    """

    rollouts: pa.Table
    quarantine: pa.Table
    failed: pa.Table
    counts: dict
    missing: list
    sent: list = dataclasses.field(default_factory=list)
    answered: list = dataclasses.field(default_factory=list)


def read_batch_results(path: str, requests: RequestIndex) -> BatchResults:
    """Reads OpenAI batch output lines against the requests they answer.

    Args:
      path: the results file (JSON lines; compressed is fine).
      requests: the requests.json they answer (`load_requests`).

    Returns:
      BatchResults (see there); a request answered twice keeps its first answer (later lines are
      quarantined `duplicate_result`); a request answered after a failed line counts as answered.

    Raises:
      InputError: the file is missing, or no line matches the requests while some name requests
        of another run (a results file for another run).
    """
    if not fs.isfile(path):
        raise InputError(path, "results file not found")
    rows, quarantined, failed = [], [], {}
    answered: set[str] = set()
    other_runs: set[str] = set()
    lines = 0
    with fs.open_text(path) as handle:
        for number, text in enumerate(handle, 1):
            if not text.strip():
                continue
            lines += 1
            where = f"{path}:{number}"

            def bad(reason, detail, query_id=None):
                quarantined.append(quarantine_row(reason, step="read", location=where,
                                                  query_id=query_id, record_kind="result",
                                                  detail=detail, raw=text.strip()))
            try:
                line = json.loads(text)
            except (ValueError, RecursionError) as exc:
                bad(UNPARSEABLE_LINE, f"not JSON ({exc})")
                continue
            if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str) or \
                    not line["custom_id"]:
                bad(NO_CUSTOM_ID, "a result line without a custom_id cannot be matched")
                continue
            custom_id = line["custom_id"]
            asked = requests.requests.get(custom_id)
            if asked is None:
                parsed = parse_custom_id(custom_id)
                if parsed is not None and parsed[0] != requests.run_tag:
                    other_runs.add(parsed[0])
                bad(UNKNOWN_REQUEST, f"custom_id {custom_id!r} names no request in "
                                     f"{requests.path}", parsed[3] if parsed else None)
                continue
            query_id, order, round_, sample = asked
            if custom_id in answered:
                bad(DUPLICATE_RESULT, f"request {custom_id!r} was answered on an earlier line",
                    query_id)
                continue
            body, status, error = _body(line)
            if body is None:
                failed[custom_id] = {"query_id": query_id, "custom_id": custom_id,
                                     "status_code": status, "error": error, "location": where}
                continue
            failed.pop(custom_id, None)  # a retry answered it
            answered.add(custom_id)
            model = body.get("model") if isinstance(body.get("model"), str) else None
            for position, choice in enumerate(body["choices"]):
                choice = choice if isinstance(choice, dict) else {}
                index = choice.get("index")
                index = index if isinstance(index, int) and not isinstance(index, bool) \
                    else position
                message = choice.get("message") if isinstance(choice.get("message"), dict) \
                    else {}
                finish = choice.get("finish_reason")
                finish = finish if isinstance(finish, str) else None
                rows.append({"query_id": query_id, "rollout_id": f"{custom_id}#{index}",
                             "generation": _generation(message), "policy_id": model,
                             "candidate_order": list(order), "custom_id": custom_id,
                             "round": round_, "sample": sample, "choice": index,
                             "finish_reason": finish,
                             "malformed": TRUNCATED if finish == "length" else None})
    if lines and not answered and not failed and other_runs:
        raise InputError(path, f"these results answer requests of run {sorted(other_runs)[0]}, "
                               f"not those in {requests.path} (run {requests.run_tag})")
    sent = len(requests.requests)
    missing = sorted(set(requests.requests) - answered - set(failed))
    rollouts = pa.Table.from_pylist(rows, schema=BATCH_ROLLOUT_SCHEMA)
    counts = {"requests_sent": sent, "requests_answered": len(answered),
              "requests_failed": len(failed), "requests_missing": len(missing),
              "result_lines": lines, "results_quarantined": len(quarantined),
              "rollouts": rollouts.num_rows,
              "rollouts_truncated": sum(r["malformed"] == TRUNCATED for r in rows)}
    assert counts["requests_sent"] == (counts["requests_answered"] + counts["requests_failed"]
                                       + counts["requests_missing"])
    return BatchResults(rollouts, quarantine_table(quarantined),
                        pa.Table.from_pylist(sorted(failed.values(),
                                                    key=lambda r: r["custom_id"]),
                                             schema=FAILED_SCHEMA),
                        counts, missing, sorted(requests.requests), sorted(answered))


def align_to_query(candidate_order: list[str], doc_ids: list[str]) -> list[int] | None:
    """[n] index into the query's `doc_ids` of each prompt position, or None when the recorded
    candidate order is not a permutation of the query's candidates (the run changed since the
    requests were made: the result cannot be read).

    A generation parsed against the prompt (`parse_generation(text, len(candidate_order))`)
    gives prompt positions p; `doc_ids[align[p]]` is the document it named.
    """
    where = {d: j for j, d in enumerate(doc_ids)}
    if len(candidate_order) != len(doc_ids) or len(where) != len(doc_ids):
        return None
    out = [where.get(d) for d in candidate_order]
    if None in out or len(set(out)) != len(out):
        return None
    return out
