"""Passages and queries of text inputs (JSON lines or TSV) and rank_llm requests, validated by
type record by record.

JSON field names (BEIR, MS MARCO-like JSONL, Pyserini/Anserini collections): the id is the
first of `_id`, `id`, `docid`, `qid` the record has, the text the first of `contents`, `text`,
`segment`, `passage`, `body` it has, with its `title` first when that is a non-empty string.
`--column-map doc_id=K,doc_text=K,doc_title=K` (corpora) and `query_id=K,query_text=K`
(queries files) name other keys. A record with none of the id keys is an error naming the keys
it has; one without a text key reads as an empty text (counted by the caller as
`empty_passages` / `empty_queries`).

Types: an id is a string or an integer; a text or title a string (a title may be null). Any
other type (null, a number, a boolean, an object; a string that is not valid Unicode) is a
`wrong_type` problem naming the line and the key, which quarantines the query that needs the
record (or the record itself when its id cannot be read), counted, never a traceback nor a
silent "None" or empty text.

Corpus hygiene, counted: a record whose id came before in the same file (`duplicate_ids`; the
later record is used, as BEIR's loader does), and among those the ids that were different
before decoding (`id_collisions`: `1` and `"1"`, `"d\\u0031"` and `"d1"`, or bytes that are not
UTF-8 read as U+FFFD). Only the ids a run needs are kept, so this is counted over them.

A fast path skips a JSON line whose id is not needed without parsing it; it applies only where
its answer is the full parse's: the id key is the record's first key, appears once in the line,
and its string decodes (otherwise the line is parsed in full).
"""
from __future__ import annotations

import json
import re
from typing import Iterator, Mapping

from data_contracts.errors import InputError
from data_contracts.readers.text_trec import (TextCounts, load_json_document, sniff_side_file,
                                              text_lines)
from data_contracts.reasons import Reason
from data_contracts.text_features import is_float32_number

ID_KEYS = ("_id", "id", "docid", "qid")
TEXT_KEYS = ("contents", "text", "segment", "passage", "body")
MAX_DEPTH = 32


class WrongType(ValueError):
    """A field of a record has a type the contract does not take (a `wrong_type` problem)."""


def type_name(value) -> str:
    """The JSON name of a value's type (`null`, `boolean`, `number`, `string`, `array`,
    `object`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def valid_str(value, key: str, *, nullable: bool = False) -> str | None:
    """`value` when it is a string (None when `nullable` and null); whether it is valid
    Unicode is `check_unicode`'s part (once per record).

    Raises:
      WrongType: naming the key and the type found.
    """
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise WrongType(f"`{key}` is {type_name(value)}, expected a string")
    return value


def check_unicode(*strings: str) -> None:
    """Raises WrongType when a string holds a lone surrogate (JSON's `\\ud800` parses to one;
    Arrow cannot store it)."""
    try:
        "".join(strings).encode("utf-8")
    except UnicodeEncodeError:
        raise WrongType("a string holds a lone surrogate escape, not valid Unicode") from None


def valid_id(value, key: str) -> str:
    """A record id: a string or an integer, as a string.

    Raises:
      WrongType: null, a float, a boolean, an array or object.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise WrongType(f"`{key}` is {type_name(value)}, expected a string or an integer")
    return valid_str(value, key)


def valid_score(value, key: str) -> float | None:
    """A first-stage score: a finite number within float32's range, or None when null.

    Raises:
      WrongType: a boolean, string, array or object, or a number that is not finite or
        overflows float32.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WrongType(f"`{key}` is {type_name(value)}, expected a number")
    if not is_float32_number(value):
        raise WrongType(f"`{key}` {value!r} is not a finite float32 number")
    return float(value)


def _depth_ok(line: str) -> bool:
    """Whether a JSON line nests at most MAX_DEPTH brackets, so deeper data never reaches
    json.loads' recursion. The count of opening brackets bounds the depth (fast); only a line
    with more is walked, strings skipped."""
    return line.count("{") + line.count("[") <= MAX_DEPTH or _depth_strict(line)


def _depth_strict(line: str) -> bool:
    depth, in_str, escape = 0, False, False
    for ch in line:
        if in_str:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def parse_json(line: str, where: str):
    """One JSON value of a line.

    Raises:
      InputError: not JSON, or nested deeper than MAX_DEPTH.
    """
    if not _depth_ok(line):
        raise InputError(where, f"not JSON this package reads (nested deeper than {MAX_DEPTH})")
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise InputError(where, f"not JSON ({getattr(exc, 'msg', str(exc))[:80]})") from None


def text_of(record: dict, text_key: str | None, title_key: str | None) -> str:
    """The passage (or query) text of a record: `title\\ntext`, or the text alone.

    Args:
      text_key: the mapped text key, or None for the first of TEXT_KEYS present.
      title_key: the mapped title key, or None for `title`.

    Raises:
      WrongType: the text is not a string, or the title neither a string nor null.
    """
    key = text_key
    if key is None:
        for key in TEXT_KEYS:
            if key in record:
                break
    body = valid_str(record[key], key) if key in record else ""
    tkey = title_key or "title"
    title = valid_str(record.get(tkey), tkey, nullable=True)
    return f"{title}\n{body}" if title and title.strip() else body


def _fast_id(keys: tuple[str, ...]) -> re.Pattern:
    """A line whose first key is one of `keys` with a plain JSON string value."""
    names = "|".join(re.escape(k) for k in keys)
    return re.compile(r'^\s*\{\s*"(' + names + r')"\s*:\s*"((?:[^"\\\x00-\x1f]|\\.)*)"'
                      r'\s*[,}]')


def _fast_skip(line: str, fast: re.Pattern, keys: tuple[str, ...], needed: set) -> bool:
    """Whether a JSON line's id is surely not needed, without parsing the line: its first key
    is an id key that occurs once, no id key of higher priority occurs anywhere in the line,
    and its string decodes to valid Unicode. Anything else: False (parse in full)."""
    hit = fast.match(line)
    if not hit:
        return False
    key, quick = hit.group(1, 2)
    if line.count(f'"{key}"') != 1:
        return False
    if key != keys[0] and any(f'"{k}"' in line for k in keys[:keys.index(key)]):
        return False
    if "\\" in quick:  # no escape: the JSON string is its text
        try:
            quick = json.loads(f'"{quick}"')
            quick.encode("utf-8")
        except (ValueError, UnicodeEncodeError):
            return False  # a bad escape, a lone surrogate: the full parse decides
    return quick not in needed


_RAW_ID: dict[str, re.Pattern] = {}


def _raw_id(line: str, key: str) -> str | None:
    """The id as written (its JSON token), when the key occurs once in the line."""
    marker = f'"{key}"'
    if line.count(marker) != 1:
        return None
    pattern = _RAW_ID.get(key)
    if pattern is None:
        pattern = _RAW_ID[key] = re.compile(re.escape(marker)
                                            + r'\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)')
    found = pattern.search(line)
    return found.group(1) if found else None


def read_texts(path: str, needed: set | None = None, *, counts: TextCounts | None = None,
               problems: list | None = None, column_map: Mapping[str, str] | None = None,
               kind: str = "doc", role: str | None = None) -> dict[str, str]:
    """Id -> text from a JSONL file (see the module docstring) or a TSV (`id\\ttext`, further
    columns joined as a title first: MS MARCO's `pid\\ttitle\\tpassage`).

    The file is streamed once; with `needed`, only those ids are kept (a JSONL line whose id is
    not needed is not even parsed, where the fast path applies).

    Args:
      needed: the ids to keep (None: all).
      counts: gets `skipped_lines` (blank lines), `non_utf8_lines`, `duplicate_ids`,
        `id_collisions`.
      problems: gets `(id or None, reason, "file:line", detail)` per record of a wrong type
        (the id None when the id itself is unusable).
      column_map: `doc_id`/`doc_text`/`doc_title` (kind `doc`) or `query_id`/`query_text`
        (kind `query`) -> the JSON key.
      kind: `doc` (a corpus) or `query` (a queries file).
      role: how the error names the file (default: corpus / queries file).

    Raises:
      InputError: the file is missing or binary, a JSONL line does not parse or has none of
        the id keys (naming the keys it has).
    """
    counts = counts if counts is not None else TextCounts()
    problems = problems if problems is not None else []
    column_map = column_map or {}
    role = role or ("corpus" if kind == "doc" else "queries file")
    id_key = column_map.get(f"{kind}_id")
    text_key = column_map.get(f"{kind}_text")
    title_key = column_map.get("doc_title") if kind == "doc" else None
    expected = "JSON lines (one {\"_id\": ..., \"text\": ...} per line) or a TSV (id<TAB>text)"
    is_json = sniff_side_file(path, role, expected) == "json"
    id_keys = (id_key,) if id_key else ID_KEYS
    fast = _fast_id(id_keys)
    out: dict[str, str] = {}
    forms: dict[str, str] = {}
    started = False  # a data line came before
    for number, line in text_lines(path, counts):
        if not line.strip():
            counts.add("skipped_lines")
            continue
        where = f"{path}:{number}"
        first, started = not started, True
        if not is_json:
            key, _, rest = line.partition("\t")
            if needed is None or key in needed:
                parts = rest.split("\t")
                _keep(out, forms, key, "\n".join(p for p in parts if p) if len(parts) > 1
                      else rest, key, counts)
            continue
        if needed is not None and _fast_skip(line, fast, id_keys, needed):
            continue
        if line.strip() in ("{", "[") or (first and line.lstrip().startswith("[")):
            raise InputError(where, f"{role} is a JSON document (pretty-printed or an array), "
                                    f"not {expected}")
        record = parse_json(line, where)
        if not isinstance(record, dict):
            raise InputError(where, f"a JSON {type_name(record)}, not a record object "
                                    f"({expected})")
        key = id_key or next((k for k in ID_KEYS if k in record), None)
        if key is None or key not in record:
            hint = f"map one with --column-map {kind}_id=NAME"
            raise InputError(where, f"record has no id key (looked for "
                                    f"{id_key or ', '.join(ID_KEYS)}; it has "
                                    f"{', '.join(map(str, record)) or 'no keys'}); {hint}")
        escaped = "\\u" in line  # only an escape makes a lone surrogate
        try:
            rid = valid_id(record[key], key)
            if escaped:
                check_unicode(rid)
        except WrongType as exc:
            problems.append((None, Reason.WRONG_TYPE, where, str(exc)))
            continue
        if needed is not None and rid not in needed:
            continue
        try:
            text = text_of(record, text_key, title_key)
            if escaped:
                check_unicode(text)
        except WrongType as exc:
            problems.append((rid, Reason.WRONG_TYPE, where, str(exc)))
            out.pop(rid, None)
            continue
        _keep(out, forms, rid, text, _raw_id(line, key), counts)
    return out


def _keep(out: dict, forms: dict, rid: str, text: str, form: str | None,
          counts: TextCounts) -> None:
    """Stores a record's text; a repeated id is counted, and as a collision when it was written
    differently before decoding (`form`: the id as written, None where not known). An id
    holding U+FFFD may come from bytes that are not UTF-8: its repeats count as collisions."""
    if "\ufffd" in rid:
        form = f"\ufffd{len(forms)}"  # what the bytes were is lost: never the same form
    if rid in forms:
        counts.add("duplicate_ids")
        if forms[rid] is not None and form is not None and forms[rid] != form:
            counts.add("id_collisions")
    forms[rid] = form
    out[rid] = text


# --- rank_llm requests --------------------------------------------------------------------

def rankllm_records(path: str, counts: TextCounts) -> Iterator[tuple[str, object]]:
    """(location, record or an InputError for a line that does not parse) of a rank_llm file:
    JSON lines, or a JSON array (RankGPT's and older rank_llm's `[{query, hits}, ...]`, read
    whole: memory = the file)."""
    expected = "rank_llm request JSON lines ({query: {text, qid}, candidates: [...]})"
    if sniff_side_file(path, "--input", expected) == "json" and _starts_array(path):
        data = load_json_document(path, "a JSON array that does not parse",
                                  f"{expected} or RankGPT's [{{query, hits}}] array")
        if not isinstance(data, list):
            raise InputError(path, f"a JSON document, not {expected}")
        for i, record in enumerate(data):
            yield f"{path}#{i}", record
        return
    for number, line in text_lines(path, counts):
        if not line.strip():
            counts.add("skipped_lines")
            continue
        where = f"{path}:{number}"
        try:
            yield where, parse_json(line, where)
        except InputError as exc:
            yield where, exc


def _starts_array(path: str) -> bool:
    from data_contracts import fs

    data, _ = fs.sniff(path, 4096)
    return data.lstrip(b"\xef\xbb\xbf").lstrip()[:1] == b"["


def rankllm_request(record, column_map: Mapping[str, str] | None = None
                    ) -> tuple[str, str, list[str], list[str], list]:
    """(qid, query text, doc ids, passages, scores) of one rank_llm request
    `{query: {text, qid}, candidates: [{docid, score, doc: {...}}]}` or RankGPT record
    `{query: TEXT, hits: [{qid, docid, score, content}]}`.

    Raises:
      KeyError: a needed key is missing (an `unparseable_record`).
      WrongType: a value of the wrong type (a `wrong_type` record).
    """
    column_map = column_map or {}
    if not isinstance(record, dict):
        raise WrongType(f"the record is a JSON {type_name(record)}, expected an object")
    if "hits" in record and "candidates" not in record:
        return _rankgpt_request(record, column_map)
    query, candidates = record["query"], record["candidates"]
    if not isinstance(query, dict):
        raise WrongType(f"`query` is {type_name(query)}, expected an object {{text, qid}}")
    qid = valid_id(query["qid"], "query.qid")
    text = valid_str(query["text"], "query.text")
    if not isinstance(candidates, list):
        raise WrongType(f"`candidates` is {type_name(candidates)}, expected an array")
    doc_ids, texts, scores = [], [], []
    for j, cand in enumerate(candidates):
        where = f"candidates[{j}]"
        if not isinstance(cand, dict):
            raise WrongType(f"`{where}` is {type_name(cand)}, expected an object")
        doc_ids.append(valid_id(cand["docid"], f"{where}.docid"))
        doc = cand.get("doc")
        if doc is None:
            doc = {}
        if not isinstance(doc, dict):
            raise WrongType(f"`{where}.doc` is {type_name(doc)}, expected an object "
                            "{contents or text or segment, title}")
        try:
            texts.append(text_of(doc, column_map.get("doc_text"), column_map.get("doc_title")))
        except WrongType as exc:
            raise WrongType(f"{where}.doc: {exc}") from None
        scores.append(valid_score(cand.get("score"), f"{where}.score"))
    check_unicode(qid, text, *doc_ids, *texts)
    return qid, text, doc_ids, texts, scores


def _rankgpt_request(record: dict, column_map: Mapping[str, str]):
    hits = record["hits"]
    if not isinstance(hits, list):
        raise WrongType(f"`hits` is {type_name(hits)}, expected an array")
    query = record["query"]
    text = valid_str(query.get("text") if isinstance(query, dict) else query, "query")
    qid = record.get("qid", query.get("qid") if isinstance(query, dict) else None)
    if qid is None:
        if not hits or not isinstance(hits[0], dict):
            raise KeyError("qid")
        qid = hits[0]["qid"]
    qid = valid_id(qid, "qid")
    doc_ids, texts, scores = [], [], []
    for j, hit in enumerate(hits):
        where = f"hits[{j}]"
        if not isinstance(hit, dict):
            raise WrongType(f"`{where}` is {type_name(hit)}, expected an object")
        doc_ids.append(valid_id(hit["docid"], f"{where}.docid"))
        key = column_map.get("doc_text") or ("content" if "content" in hit else None)
        texts.append(text_of(hit, key, column_map.get("doc_title")))
        scores.append(valid_score(hit.get("score"), f"{where}.score"))
    check_unicode(qid, text, *doc_ids, *texts)
    return qid, text, doc_ids, texts, scores


__all__ = ["ID_KEYS", "TEXT_KEYS", "WrongType", "check_unicode", "rankllm_records", "rankllm_request",
           "read_texts", "text_of", "type_name", "valid_id", "valid_score", "valid_str"]
