"""Parses an LLM reranker's raw generation into a ranking of its prompt's candidates.

Two named formats (`--rollout-format`):

- `permutation` (RankGPT, RankZephyr, ReasonRank): a listwise permutation of the k-th candidates
  (1-based) in the order the prompt listed them, i.e. the candidate run's order (the query's
  `doc_ids`). When the text holds an `<answer>...</answer>` block (ReasonRank writes one after its
  `<think>...</think>` block) only the last answer block is read; otherwise, when it holds a
  closed `<think>` block, only the text after `</think>`; an unclosed `<think>` with no answer is
  no ranking. In that region the ranking is read in the first of these shapes that is there:
  1. a bracketed list of several ids, `[2, 1, 3]` or `[2 > 1 > 3]` (the last such list);
  2. bracketed ids, `[2] > [1] > [3]`: every `[k]` in order, text around and between them
     (`Ranking:`, `>`, commas, a closing remark) ignored;
  3. bare ids, `2 > 1 > 3` or `2, 1, 3`: the whole region (spaces and one final `.` aside) is ids
     separated by `>` or commas.
- `answer` (Rank-R1, setwise): `<answer>[k]</answer>`, the one candidate the model chose (the
  brackets are optional: `<answer>3</answer>`; the same id twice still names one candidate). The
  ranking is that candidate alone, a partial ranking of length 1; its repair keeps the first id in
  range.

A malformed output has a reason (the first that applies, in this order):

- `no_ranking`: no ranking in any shape (or no `<answer>` block for `answer`);
- `id_out_of_range`: some k is below 1 or above the number of candidates (an id of more than
  `MAX_ID_DIGITS` digits is out of range without being converted);
- `repeated_id`: some k appears twice;
- `missing_id`: a permutation that does not name every candidate;
- `multiple_answers`: an `answer` block naming more than one distinct candidate;
- `truncated`: the server cut the output at its max tokens (an OpenAI batch result with
  `finish_reason: "length"`; decided by the results reader, not by this parser): always a
  failed rollout, even under `repair`.

`--malformed fail` (the default) makes a malformed output a failed rollout (reward 0, not
passed): it is the policy's failure and belongs in its pass rate. `--malformed repair` applies the
usual repair of listwise rerankers (as in RankGPT's and rank_llm's post-processing): drop ids out
of range and repeats (the first occurrence is kept), then append the candidates not named, in
prompt order; an output with no ranking at all cannot be repaired and fails. Either way the reason
is counted.

The parser is total and linear: any text (or None, or bytes, decoded as UTF-8 with
replacement) gives a ParsedGeneration in time linear in its length. Every pattern is a sequence
of disjoint character classes (no nested ambiguity to backtrack over), a tag search that finds
no closing tag stops instead of retrying from the next opening one, and no id is converted from
more than MAX_ID_DIGITS digits. Digits are Unicode decimal digits (`[٣]` is 3), as Python reads
them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from data_contracts.readers.batch_results import TRUNCATED

ROLLOUT_FORMATS = ("permutation", "answer")
MALFORMED_MODES = ("fail", "repair")
# TRUNCATED: cut by the server's max tokens (finish_reason "length"; the results reader marks it)
MALFORMED_REASONS = ("no_ranking", "id_out_of_range", "repeated_id", "missing_id",
                     "multiple_answers", TRUNCATED)
MAX_ID_DIGITS = 9  # more candidates than any prompt holds; longer ids are out of range
OUT_OF_RANGE = -1  # what an id too long to convert becomes (below 1: out of range)

_ID = re.compile(r"\[\s*(-?\d+)\s*\]")
# a list is tried only where a `]` closes the bracket before any other bracket (the lookahead
# is one character class: no backtracking stack over an unclosed million-id list)
_LIST = re.compile(r"\[(?=[^\[\]]*\])\s*-?\d+(?:\s*[,>]\s*-?\d+)+\s*\]")
_BARE_LIST = re.compile(r"\s*-?\d+(?:\s*[,>]\s*-?\d+)*\s*(?:\.\s*)?")
_BARE = re.compile(r"-?\d+")
_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"</answer>", re.IGNORECASE)
_THINK_END = re.compile(r"</think>", re.IGNORECASE)
_THINK_START = re.compile(r"<think>", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedGeneration:
    """A generation's ranking and what was wrong with it.

    Attributes:
      ranking: candidate indices (0-based, into the prompt's order), best first; None when the
        output is a failed rollout (malformed under `fail`, or not repairable).
      reason: the malformation (one of MALFORMED_REASONS), None for a well-formed output.
      repaired: True when `ranking` was made by repairing a malformed output.
    """

    ranking: list[int] | None
    reason: str | None = None
    repaired: bool = False


def _last_answer(text: str) -> str | None:
    """The content of the last `<answer>...</answer>` block (blocks read left to right, each
    ending at the first `</answer>` after its opening tag), or None. Linear: once an opening tag
    has no closing tag after it, no later one has either, so the search stops."""
    found, pos = None, 0
    while True:
        opened = _ANSWER_OPEN.search(text, pos)
        if opened is None:
            return found
        closed = _ANSWER_CLOSE.search(text, opened.end())
        if closed is None:
            return found
        found, pos = text[opened.end():closed.start()], closed.end()


def _answer_region(text: str) -> str | None:
    answer = _last_answer(text)
    if answer is not None:
        return answer
    end = None
    for end in _THINK_END.finditer(text):
        pass
    if end is not None:
        return text[end.end():]
    if _THINK_START.search(text):
        return None  # still thinking: no answer was given
    return text


def to_id(digits: str) -> int:
    """An id from `-?\\d+` text; OUT_OF_RANGE when its value has more than MAX_ID_DIGITS digits
    (leading zeros aside): such text is never converted, so no integer-digits limit and no
    quadratic conversion."""
    negative = digits.startswith("-")
    value = digits[negative:].lstrip("0")
    if len(value) > MAX_ID_DIGITS:
        return OUT_OF_RANGE
    return -int(value or "0") if negative else int(value or "0")


def _to_ids(matches: list[str]) -> list[int]:
    # int() directly where the text is short (the common case: no call per id), else to_id
    return [int(m) if len(m) <= MAX_ID_DIGITS else to_id(m) for m in matches]


def _ids(text: str) -> list[int]:
    return _to_ids(_BARE.findall(text))


def permutation_ids(region: str) -> list[int]:
    """The 1-based ids of a permutation region, in the first shape it holds (module docstring):
    the last bracketed list of several ids, else every bracketed id, else a bare id list; [] for
    none."""
    last = None
    for last in _LIST.finditer(region):
        pass
    if last is not None:
        return _ids(last.group(0))
    singles = _ID.findall(region)
    if singles:
        return _to_ids(singles)
    tail = region.rstrip()
    tail = tail[:-1].rstrip() if tail.endswith(".") else tail
    if tail[-1:].isdigit() and _BARE_LIST.fullmatch(region):  # cheap refusal of most prose first
        return _ids(region)
    return []


def _check(ids: list[int], n: int, complete: bool) -> str | None:
    if not ids:
        return "no_ranking"
    if any(k < 1 or k > n for k in ids):
        return "id_out_of_range"
    if len(set(ids)) != len(ids):
        return "repeated_id"
    if complete and len(ids) != n:
        return "missing_id"
    return None


def repair(ids: list[int], n: int) -> list[int]:
    """The repaired permutation (0-based) of 1-based ids over `n` candidates.

    Drops ids out of 1..n and repeats (keeping the first occurrence), then appends the candidates
    not named, in prompt order.
    """
    seen: list[int] = []
    taken = set()
    for k in ids:
        if 1 <= k <= n and k not in taken:
            taken.add(k)
            seen.append(k - 1)
    return seen + [j for j in range(n) if j + 1 not in taken]


def parse_generation(text: str | None, n_candidates: int, fmt: str = "permutation",
                     malformed: str = "fail") -> ParsedGeneration:
    """Parses one generation against a prompt of `n_candidates` numbered candidates.

    Args:
      text: the raw generated text (None, or anything not text, counts as no ranking; bytes
        are decoded as UTF-8 with replacement).
      n_candidates: how many candidates the prompt listed ([1]..[n]).
      fmt: `permutation` or `answer` (see the module docstring).
      malformed: `fail` or `repair`.

    Returns:
      A ParsedGeneration (ranking 0-based, or None for a failed rollout).

    Raises:
      ValueError: unknown `fmt` or `malformed`.
    """
    if fmt not in ROLLOUT_FORMATS:
        raise ValueError(f"unknown rollout format {fmt!r} (expected one of {ROLLOUT_FORMATS})")
    if malformed not in MALFORMED_MODES:
        raise ValueError(f"unknown malformed mode {malformed!r} (expected one of "
                         f"{MALFORMED_MODES})")
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    elif not isinstance(text, str):
        text = ""
    if fmt == "answer":
        region = _last_answer(text)
        if region is None:
            return ParsedGeneration(None, "no_ranking")
        ids = _to_ids(_ID.findall(region)) or _ids(region)
        distinct = list(dict.fromkeys(ids))  # `[2] ... [2]` still names one candidate
        reason = _check(distinct, n_candidates, complete=False)
        if reason is None and len(distinct) > 1:
            reason = "multiple_answers"
        if reason is None:
            return ParsedGeneration([distinct[0] - 1])
        valid = [k for k in distinct if 1 <= k <= n_candidates]
        if malformed == "repair" and valid:
            return ParsedGeneration([valid[0] - 1], reason, repaired=True)
        return ParsedGeneration(None, reason)
    region = _answer_region(text)
    return permutation_of_ids(permutation_ids(region) if region is not None else [],
                              n_candidates, malformed)


def permutation_of_ids(ids: list[int], n_candidates: int, malformed: str = "fail"
                       ) -> ParsedGeneration:
    """The `permutation` format's verdict on a region's 1-based ids (`permutation_ids`): a
    ranking, or the first malformation that applies (repaired under `repair`)."""
    reason = _check(ids, n_candidates, complete=True)
    if reason is None:
        return ParsedGeneration([k - 1 for k in ids])
    if malformed == "repair" and reason != "no_ranking":
        return ParsedGeneration(repair(ids, n_candidates), reason, repaired=True)
    return ParsedGeneration(None, reason)


# Generations that are only bracketed ids separated by `>` (`[3] > [1] > [2]`, ASCII digits,
# at most MAX_ID_DIGITS each, ASCII blanks around): no `<answer>`/`<think>` tag, no bracketed
# list of several ids, so the module docstring's shape 2 reads them: every `[k]`, in order.
_BLANK = r"[ \t\n\r]*"
_BRACKETED = rf"\[{_BLANK}[0-9]{{1,{MAX_ID_DIGITS}}}{_BLANK}\]"
FAST_PERMUTATION = rf"^{_BLANK}{_BRACKETED}(?:{_BLANK}>{_BLANK}{_BRACKETED})*{_BLANK}$"


def fast_permutation_ids(texts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ids of every generation the fast shape covers, with Arrow string kernels (no Python
    per row); the rest are left to `parse_generation`.

    Args:
      texts: a pyarrow string array (or chunked array) of N generations (nulls allowed).

    Returns:
      (fast [N] bool: the row is in the `FAST_PERMUTATION` shape, whose ids `permutation_ids`
      reads as every `[k]` in order; counts [N] int64: its number of ids (0 where not fast);
      ids [sum(counts)] int64: the 1-based ids of the fast rows, row after row). For a fast
      row, `permutation_of_ids(its ids, n, malformed)` equals `parse_generation(text, n,
      "permutation", malformed)` (tests/difficulty/test_fast_permutation.py).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    fast = pc.fill_null(pc.match_substring_regex(texts, FAST_PERMUTATION), False)
    fast_np = fast.to_numpy(zero_copy_only=False)
    kept = pc.filter(texts, fast)
    counts = np.zeros(len(texts), np.int64)
    counts[fast_np], ids = _digit_runs(kept)
    return fast_np, counts, ids


def _digit_runs(texts) -> tuple[np.ndarray, np.ndarray]:
    """(runs per string [N], their values [sum]) of the ASCII digit runs of a string array
    without nulls, read from its UTF-8 bytes with numpy. Every run must be at most
    MAX_ID_DIGITS long and no run may cross two strings (true of the fast shape: it starts and
    ends with a bracket or a blank)."""
    import pyarrow as pa

    n = len(texts)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    wide = pa.types.is_large_string(texts.type)
    offsets = np.frombuffer(texts.buffers()[1], np.int64 if wide else np.int32)[
        texts.offset:texts.offset + n + 1].astype(np.int64)
    data = np.frombuffer(texts.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    offsets -= offsets[0]
    digit = (data - 48) < 10  # uint8: wraps below "0"
    first = digit.copy()
    first[1:] &= ~digit[:-1]
    last = digit.copy()
    last[:-1] &= ~digit[1:]
    starts, stops = np.flatnonzero(first), np.flatnonzero(last) + 1
    length = stops - starts
    values = np.zeros(len(starts), np.int64)
    for k in range(int(length.max(initial=0))):  # one pass per digit place
        more = np.flatnonzero(length > k)
        values[more] = values[more] * 10 + (data[starts[more] + k] - 48)
    if np.any(offsets[1:] == offsets[:-1]):  # an empty string has no run (reduceat needs >0)
        before = np.concatenate([[0], np.cumsum(first, dtype=np.int64)])
        return before[offsets[1:]] - before[offsets[:-1]], values
    return np.add.reduceat(first, offsets[:-1], dtype=np.int64), values


def permutation_id_lists(texts) -> tuple[np.ndarray, np.ndarray]:
    """The 1-based ids `parse_generation` reads from each generation in the `permutation`
    format: the fast shape with Arrow kernels (`fast_permutation_ids`), every other text with
    the scalar reader (`_answer_region`, `permutation_ids`).

    Args:
      texts: a pyarrow string array (or chunked array) of N generations (nulls allowed: no
        ranking).

    Returns:
      (counts [N] int64: ids per generation, 0 for no ranking; ids [sum(counts)] int64, row
      after row). `permutation_of_ids(ids of row r, n, malformed)` equals
      `parse_generation(texts[r], n, "permutation", malformed)`.
    """
    fast, counts, ids = fast_permutation_ids(texts)
    slow = np.flatnonzero(~fast)
    if not slow.size:
        return counts, ids
    import pyarrow as pa

    lists = []
    for text in texts.take(pa.array(slow)).to_pylist():
        region = _answer_region(text) if isinstance(text, str) else None
        lists.append(permutation_ids(region) if region is not None else [])
    counts[slow] = [len(x) for x in lists]
    starts = np.concatenate([[0], np.cumsum(counts)])
    out = np.empty(int(starts[-1]), np.int64)
    fast_rows = np.flatnonzero(fast)
    if fast_rows.size:  # the fast rows' ids, moved to their rows' places
        lengths = counts[fast_rows]
        at = np.repeat(starts[fast_rows] - np.concatenate([[0], np.cumsum(lengths)[:-1]]),
                       lengths) + np.arange(int(lengths.sum()))
        out[at] = ids
    for r, values in zip(slow.tolist(), lists):
        out[starts[r]:starts[r + 1]] = values
    return counts, out


def check_permutations(counts: np.ndarray, ids: np.ndarray, n: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """`_check` of many id lists against `n` candidates at once (the `permutation` format).

    Args:
      counts: [R] ids per list (0: no ranking).
      ids: [sum(counts)] the lists' 1-based ids, list after list.
      n: candidates of every list's prompt.

    Returns:
      (reason [R] int8: 0 well-formed, else 1 + the index in CHECK_REASONS of the first
      malformation that applies, in `_check`'s order; ranking [R, n] int64: the 0-based
      permutation of the well-formed rows, 0 elsewhere).
    """
    rows = len(counts)
    owner = np.repeat(np.arange(rows), counts)
    empty = counts == 0
    outside = (ids < 1) | (ids > n)
    out_of_range = np.bincount(owner, weights=outside, minlength=rows) > 0
    inside = ~out_of_range[owner]
    seen = np.bincount(owner[inside] * (n + 1) + ids[inside], minlength=rows * (n + 1))
    repeated = ~out_of_range & (seen.reshape(rows, n + 1).max(axis=1, initial=0) > 1)
    missing = ~out_of_range & ~repeated & (counts != n)
    reason = np.select([empty, out_of_range, repeated, missing], [1, 2, 3, 4], 0).astype(np.int8)
    ranking = np.zeros((rows, n), np.int64)
    ok = reason == 0
    ranking[ok] = ids[ok[owner]].reshape(-1, n) - 1
    return reason, ranking


CHECK_REASONS = ("no_ranking", "id_out_of_range", "repeated_id", "missing_id")


def malformed_stats(scored) -> dict:
    """Run statistics of parsed generations from scored rows (SCORED_QUERY_SCHEMA or
    DIFFICULTY_SCHEMA): `{"counts": {"rollouts_malformed": N}, "malformed_reasons": {reason: n}}`,
    summed over the rows whose `malformed_rollouts` is not null (Counters, so the pipeline's
    statistics combiner can add them across batches)."""
    import json
    from collections import Counter

    if "malformed_rollouts" not in scored.column_names:
        return {"counts": Counter(), "malformed_reasons": Counter()}
    counts = [n for n in scored.column("malformed_rollouts").to_pylist() if n is not None]
    reasons: Counter = Counter()
    for text in scored.column("malformed_reasons").to_pylist():
        if text:
            reasons.update(json.loads(text))
    return {"counts": Counter({"rollouts_malformed": sum(counts)} if counts else {}),
            "malformed_reasons": reasons}
