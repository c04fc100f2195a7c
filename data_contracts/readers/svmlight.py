"""Streaming SVMlight/LETOR reader: with `qid:`, or without it plus a LightGBM `.query` or an
XGBoost `.group` file.

Layouts covered: MSLR-WEB10K/30K, MQ2007/MQ2008, Istella and Yahoo (`label qid:Q fid:val ...`,
optionally ending in `#docid = X`, or SVMrank's `# NAME`), and SVMlight without qid plus a group
file holding one group size per line (LightGBM's `PATH.query`, XGBoost's `PATH.group`).

Rules (docs/formats.md has them with examples):
  - `#` lines, blank lines and a UTF-8 byte-order mark are not records: skipped and counted in
    `QueryBatch.skipped_lines`.
  - a document's id is `docid = X` from its trailing comment, else the comment's first word, else
    (or when those repeat within the query) `QID:N`, N its position in the query.
  - a query of a group-file layout has a made-up id `FILE:N` (FILE the data file's name, N the
    group's index), so ids stay distinct across inputs.
  - the rows of one qid must be adjacent. A qid that comes back after another is refused with an
    InputError naming the line, unless `group_rows=True` (`--group-rows`), which groups the
    whole file in memory first.
  - sparse ids map into the dataset's FeatureSpace (`space`); an id above `max_feature_id` makes
    its query `feature_id_out_of_range` (never an allocation); an id outside the space's width
    is a width mismatch (InputError, one line).
  - a feature id repeated on one line (some toolkits write them; their readers keep the last
    value, scikit-learn refuses the file): `repeated="last"` (`--repeated-features last`, the
    default) keeps the last value and counts each repeat in `QueryBatch.counts`
    (`duplicate_feature_ids`); `repeated="quarantine"` makes the line's query
    `unparseable_line`, the detail naming the option (the repeats are counted too).
  - `byte_range=(start, end)` reads one split of an uncompressed file with qid: the queries whose
    first line starts in [start, end). See `read_svmlight`.

Memory is bounded by the batch size (except with `group_rows`). Lines are split, decoded and
skipped by readers.lines; the feature-space scan (the first pass) is readers.svmlight_scan.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.quarantine import quarantine_row
from data_contracts.readers.base import QueryBatch, QueryGrouper, rows_to_batch
from data_contracts.readers.lines import READ_BLOCK, decode_line, is_skipped, iter_lines
from data_contracts.readers.space import DEFAULT_MAX_FEATURE_ID, FeatureSpace, resolve_space
from data_contracts.readers.svmlight_scan import scan_svmlight
from data_contracts.reasons import Reason

_DOCID = re.compile(r"docid\s*=\s*(\S+)")
_QID = re.compile(r"(?:^|\s)qid:(\S+)")
_PAIRS = re.compile(r"[0-9]+:[^\s:]+(?:\s+[0-9]+:[^\s:]+)*")  # ids: ASCII digits only
GROUP_SUFFIXES = (".query", ".group")  # LightGBM, XGBoost
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zstd")
_HUGE_ID = 1 << 62
REPEATED_FEATURES = ("last", "quarantine")  # --repeated-features
_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
                     r"|[-+]?(?:inf|infinity|nan)", re.IGNORECASE)  # what float() reads, ASCII


class _LineError(ValueError):
    pass


def _parse_line(line: str, repeated: str = "last"
                ) -> tuple[float, str | None, tuple, str | None, int]:
    """(label, qid or None, (fids, values), document id or None, repeated ids) of one data line.

    The feature pairs are split in one go and converted with `map`; a line that does not parse
    that way is parsed token by token to say what is wrong. A feature id that comes back on the
    line keeps its last value (`repeated="last"`; the last element counts the repeats) or makes
    the line unparseable (`repeated="quarantine"`).

    Raises:
      _LineError: the line is not `label [qid:Q] fid:value ... [# comment]`, or repeats a
        feature id under `repeated="quarantine"`.
    """
    body, _, comment = line.partition("#")
    if not body.isascii() and any(c.isspace() for c in body if ord(c) > 127):
        # the feature-space scan splits on ASCII whitespace only: a token after U+00A0 would be
        # an id the scan never saw
        raise _LineError("non-ASCII whitespace between tokens")
    head = body.split(None, 1)
    try:
        label = float(head[0])
        rest = head[1].strip() if len(head) > 1 else ""
        if not (rest.isascii() and head[0].isascii()) or "_" in rest or "_" in head[0]:
            raise ValueError("not plain ASCII numbers")  # float() takes 1_0 and other digits
        qid = None
        if rest.startswith("qid:"):
            first = rest.split(None, 1)
            qid, rest = first[0][4:], (first[1] if len(first) > 1 else "")
            if not qid:
                raise ValueError("empty qid")
        if rest and ("qid:" in rest or not _PAIRS.fullmatch(rest)):
            raise ValueError("not plain fid:value pairs")
        parts = rest.replace(":", " ").split()
        fids = list(map(int, parts[0::2]))
        values = list(map(float, parts[1::2]))
        if fids and (min(fids) < 0 or max(fids) > _HUGE_ID):
            raise ValueError("negative or huge id")
        pairs, repeats = _last_values(fids, values, repeated)
        return label, qid, pairs, _comment_docid(comment), repeats
    except (ValueError, OverflowError, IndexError):
        pass
    return _parse_line_slowly(body, comment, repeated)


def _last_values(fids: list, values: list, repeated: str) -> tuple[tuple, int]:
    """((fids, values) with each id once, holding its last value; how many tokens repeated an
    id before them on the line).

    Raises:
      _LineError: an id repeats and `repeated` is "quarantine".
    """
    kept = dict(zip(fids, values))
    repeats = len(fids) - len(kept)
    if not repeats:
        return (fids, values), 0
    if repeated == "quarantine":
        fid = next(f for i, f in enumerate(fids) if f in fids[:i])
        raise _LineError(f"feature id {fid} repeats in the line (--repeated-features "
                         f"quarantine; --repeated-features last keeps its last value)")
    return (list(kept), list(kept.values())), repeats


_FID_TOKEN = re.compile(r"(?:^|\s)([0-9]+):", re.ASCII)  # the scan's id token


def _repeats_in(line: str) -> int:
    """Feature-id tokens of a line that repeat an id before them (a line that did not parse)."""
    ids = [int(f) for f in _FID_TOKEN.findall(line.partition("#")[0])]
    return len(ids) - len(set(ids))


def _comment_docid(comment: str) -> str | None:
    if not comment:
        return None
    match = _DOCID.search(comment)
    if match:
        return match.group(1)
    words = comment.split()
    return words[0] if words else None


def _parse_line_slowly(body: str, comment: str, repeated: str = "last"):
    docid = None
    if comment:
        match = _DOCID.search(comment)
        if match:
            docid = match.group(1)
        else:
            words = comment.split()
            docid = words[0] if words else None
    tokens = body.split()
    if not tokens:
        raise _LineError("no label")
    if not _NUMBER.fullmatch(tokens[0]):
        raise _LineError(f"label {tokens[0]!r} is not a number")
    label = float(tokens[0])
    qid = None
    fids, values = [], []
    for token in tokens[1:]:
        key, sep, value = token.partition(":")
        if not sep:
            raise _LineError(f"token {token!r} is not fid:value")
        if key == "qid":
            if qid is not None:
                raise _LineError(f"two qid tokens (qid:{qid} and {token!r})")
            qid = value
            continue
        if key.startswith("-") and key[1:].isascii() and key[1:].isdigit():
            raise _LineError(f"token {token!r}: a feature id is not negative")
        if not (key.isascii() and key.isdigit()):  # int() would take "+9", "1_0", " 9", "٩"
            raise _LineError(f"token {token!r}: a feature id is ASCII digits")
        if not _NUMBER.fullmatch(value):  # float() would take "1_0", "٩", "０.5"
            raise _LineError(f"token {token!r}: the value is not an ASCII number")
        values.append(float(value))
        fids.append(int(key))
    (fids, values), repeats = _last_values(fids, values, repeated)
    fids = [min(f, _HUGE_ID) for f in fids]  # still above any --max-feature-id: quarantined
    return label, qid, (fids, values), docid, repeats


def first_repeated_feature(paths: list[str]) -> str | None:
    """`FILE:LINE` of the first data line, over `paths` in order, that repeats a feature id
    (None: no SVMlight line does). Reads until it finds one: call it when the readers counted
    repeats (`duplicate_feature_ids`) to show the user an example."""
    for path in paths:
        if not fs.exists(path) or fs.isdir(path):
            continue
        with fs.open_input(path) as stream:
            for number, (offset, raw) in enumerate(iter_lines(stream), 1):
                text = decode_line(raw, offset)
                if not is_skipped(text) and _repeats_in(text):
                    return f"{path}:{number}"
    return None


def repeated_features_warning(count: int, example: str | None, repeated: str = "last") -> str:
    """The one line that tells the user about repeated feature ids (without `warning: `)."""
    where = f" (first at {example})" if example else ""
    if repeated == "quarantine":
        return (f"{count} feature id(s) repeat on their SVMlight line{where}; their queries "
                f"were quarantined (--repeated-features quarantine; --repeated-features last "
                f"keeps each id's last value)")
    return (f"{count} feature id(s) repeat on their SVMlight line{where}; each kept its last "
            f"value (--repeated-features last; --repeated-features quarantine refuses such "
            f"queries)")


def group_file(path: str) -> str | None:
    """The LightGBM `.query` or XGBoost `.group` file beside `path`, if there is one.

    `data.txt.gz` also finds `data.txt.query` / `data.txt.group`.
    """
    stems = [path]
    lower = path.lower()
    for suffix in _COMPRESSED_SUFFIXES:
        if lower.endswith(suffix):
            stems.append(path[: -len(suffix)])
    for stem in stems:
        for suffix in GROUP_SUFFIXES:
            if fs.exists(stem + suffix):
                return stem + suffix
    return None


def _group_sizes(path: str) -> list[int]:
    if not fs.exists(path):
        raise InputError(path, "group-size file not found (expected one integer per line)")
    sizes = []
    with fs.open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip().lstrip("\ufeff")
            if not text or text.startswith("#"):
                continue
            if not text.isdigit():
                raise InputError(path, f"line {number}: expected a non-negative integer group size, "
                                       f"got {text!r}")
            sizes.append(int(text))
    return sizes


@dataclass
class _Group:
    query_id: str
    first: int  # line number (whole-file reads) or byte offset (byte-range reads)
    labels: list = field(default_factory=list)
    doc_ids: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # (where, message, raw line)
    wheres: list = field(default_factory=list)  # (location, "line N" / "byte N") of each row


def _line_start(raw, p: int) -> int:
    """Offset of the first byte of the line holding byte `p` of a seekable binary stream."""
    position = p
    while position > 0:
        step = min(READ_BLOCK, position)
        raw.seek(position - step)
        block = raw.read(step)
        i = block.rfind(b"\n")
        if i >= 0:
            return position - step + i + 1
        position -= step
    return 0


def _line_at(raw, offset: int) -> bytes:
    """The line starting at byte `offset`, without its newline."""
    raw.seek(offset)
    out = b""
    while True:
        block = raw.read(64 * 1024)
        if not block:
            return out
        i = block.find(b"\n")
        if i >= 0:
            return out + block[:i]
        out += block


def _qid_before(path: str, start: int) -> str | None:
    """The qid of the last data line that starts before byte `start` (None: there is none)."""
    with fs.open_read(path) as raw:
        position = start
        while position > 0:
            first = _line_start(raw, position - 1)
            text = decode_line(_line_at(raw, first), first)
            if not is_skipped(text):
                match = _QID.search(text.partition("#")[0])
                if match:
                    return match.group(1)
            position = first
    return None


def read_svmlight(
    path: str, *, batch_size: int = 256, query_file: str | None = None,
    num_features: int | None = None, source: str | None = None, split: str | None = None,
    space: FeatureSpace | None = None, byte_range: tuple[int, int] | None = None,
    group_rows: bool = False, max_feature_id: int = DEFAULT_MAX_FEATURE_ID,
    id_prefix: str | None = None, repeated: str = "last",
) -> Iterator[QueryBatch]:
    """Streams an SVMlight/LETOR file (possibly compressed) as canonical query batches.

    Args:
      path: the data file (local or remote; gzip/bz2/xz/zstd by magic bytes).
      batch_size: queries per batch.
      query_file: group sizes (LightGBM `.query` / XGBoost `.group`); when None, the one beside
        `path` is used if the lines carry no `qid:`.
      num_features: dense width (kept for callers that know it; `space` is preferred).
      source: value of the `source` column (defaults to the file name).
      split: value of the `split` column.
      space: the dataset's feature space; None scans this file alone.
      byte_range: (start, end) byte offsets of one split of an uncompressed file with qid. The
        split starts at the first line at or after `start` whose qid differs from the qid of the
        last data line before `start` (so split 0 starts at 0), and reads past `end` to finish
        its last query: it holds exactly the queries whose first line starts in [start, end).
        Comment, blank and qid-less lines are counted by the split whose range holds them, so
        the splits of a file together read what the whole file reads. Locations are then
        `PATH@OFFSET` (byte offsets) instead of `PATH:LINE`.
      group_rows: group the rows of each qid in memory (memory: the whole file) instead of
        refusing a file whose rows of one qid are not adjacent.
      max_feature_id: larger feature ids make their query `feature_id_out_of_range`.
      id_prefix: FILE of the made-up `FILE:N` ids of a group-file layout (default: the name).
      repeated: a feature id repeated on a line keeps its last value (`last`) or quarantines
        its query (`quarantine`); either way each repeat is counted in
        `QueryBatch.counts["duplicate_feature_ids"]`.

    Yields:
      QueryBatch: queries (not yet validated), quarantine rows for records that could not be
      built, the count of skipped (comment, blank) lines, and in `counts` the repeated
      feature ids (`duplicate_feature_ids`) of the lines read since the previous batch.

    Raises:
      InputError: missing file or group file, group sizes that do not match the data, a qid
        whose rows are not adjacent, a feature id outside `space`, a byte range on a layout
        that cannot be split.
    """
    if repeated not in REPEATED_FEATURES:
        raise ValueError(f"repeated={repeated!r}: expected one of {', '.join(REPEATED_FEATURES)}")
    if not fs.exists(path):
        raise InputError(path, "file not found")
    if fs.isdir(path):
        raise InputError(path, "is a folder, not an SVMlight file")
    source = source or fs.basename(path)
    if query_file is None and not has_qid(path):
        query_file = group_file(path)
    sizes = _group_sizes(query_file) if query_file else None
    if byte_range is not None and (sizes is not None or group_rows or _compressed(path)):
        raise InputError(path, "byte ranges split only uncompressed SVMlight files with qid "
                               "(read a compressed, group-file or --group-rows input whole)")
    if space is None:
        space = resolve_space(scan_svmlight(path, max_feature_id))
    if num_features is not None:
        space = FeatureSpace(base=space.base, width=num_features, names=space.names)
    base, width = space.base, space.width or 0
    return _read(path, batch_size=batch_size, sizes=sizes, query_file=query_file,
                 source=source, split=split, base=base, width=width, byte_range=byte_range,
                 group_rows=group_rows, max_feature_id=max_feature_id,
                 name=id_prefix or fs.basename(path), repeated=repeated)


def _compressed(path: str) -> bool:
    with fs.open_read(path) as raw:
        return fs.compression_of(raw.read(8)) is not None


def has_qid(path: str, lines: int = 64) -> bool:
    """Whether any of the first data lines carries a `qid:` token (the qid layout)."""
    seen = 0
    with fs.open_input(path) as stream:
        for offset, raw in iter_lines(stream):
            text = decode_line(raw, offset)
            if is_skipped(text):
                continue
            if _QID.search(text.partition("#")[0]):
                return True
            seen += 1
            if seen >= lines:
                break
    return False


def _doc_ids(group: _Group) -> list[str]:
    given = group.doc_ids
    if all(d is not None for d in given) and len(set(given)) == len(given):
        return list(given)
    return [f"{group.query_id}:{i}" for i in range(len(given))]


def _read(path, *, batch_size, sizes, query_file, source, split, base, width, byte_range,
          group_rows, max_feature_id, name, repeated) -> Iterator[QueryBatch]:
    by_offset = byte_range is not None
    start, end = byte_range if by_offset else (0, None)

    def where(number: int, offset: int) -> tuple[str, str]:
        if by_offset:
            return f"{path}@{offset}", f"byte {offset}"
        return f"{path}:{number}", f"line {number}"

    def finish(group: _Group) -> dict:
        location = group.wheres[0][0]
        if group.errors:
            loc, message, raw = group.errors[0]
            return {"query_id": group.query_id, "_error": (
                Reason.UNPARSEABLE_LINE, loc, f"{message} ({len(group.errors)} bad line(s))", raw)}
        n = len(group.rows)
        cols = [np.asarray(f, dtype=np.int64) for f, _ in group.rows]
        for i, c in enumerate(cols):
            if c.size and c.max() > max_feature_id:
                return {"query_id": group.query_id, "_error": (
                    Reason.FEATURE_ID_OUT_OF_RANGE, group.wheres[i][0],
                    f"feature id {int(c.max())} is above the limit {max_feature_id} "
                    f"(--max-feature-id)", "")}
        flat = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        if flat.size and (flat.min() < base or flat.max() >= base + width):
            i = next(i for i, c in enumerate(cols)
                     if c.size and (c.min() < base or c.max() >= base + width))
            bad = int(cols[i].min()) if cols[i].min() < base else int(cols[i].max())
            raise InputError(path, f"{group.wheres[i][1]}: feature id {bad} is outside the "
                                   f"dataset's feature space (base {base}, width {width}: ids "
                                   f"{base}..{base + width - 1}); read every file of the "
                                   f"dataset with one space (--zero-based/--one-based)")
        dense = np.zeros((n, width), dtype=np.float32)
        rows = np.repeat(np.arange(n), [len(c) for c in cols])
        vals = np.concatenate([np.asarray(v, dtype=np.float32) for _, v in group.rows]) \
            if n else np.zeros(0, np.float32)
        dense[rows, flat - base] = vals
        return {"query_id": group.query_id, "doc_ids": _doc_ids(group), "features": dense,
                "labels": group.labels, "source": source, "split": split, "_location": location}

    stray: list[dict] = []
    skipped = repeats = 0

    def flush(rows: list[dict]) -> QueryBatch:
        nonlocal stray, skipped, repeats
        batch = rows_to_batch(rows, stray, step="read")
        batch.skipped_lines = skipped
        if repeats:
            batch.counts["duplicate_feature_ids"] = repeats
        stray, skipped, repeats = [], 0, 0
        return batch

    def owned(offset: int) -> bool:
        return offset >= start and (end is None or offset < end)

    grouper = QueryGrouper(path, group_rows, batch_size, finish)
    group: _Group | None = None
    group_index = 0
    remaining = sizes[0] if sizes else 0
    prev_qid = _qid_before(path, start) if by_offset and start > 0 else None
    if prev_qid is not None:
        grouper.seen[prev_qid] = f"before byte {start}"
    skipping = prev_qid is not None  # lines continuing the previous split's last query

    stream = fs.open_input(path)
    partial = by_offset and start > 0
    if partial:  # from the byte before: the first piece is the rest of a line begun earlier
        stream.seek(start - 1)
    try:
        number = 0
        for offset, raw in iter_lines(stream, start - 1 if partial else 0):
            if partial:
                partial = False
                continue
            number += 1
            text = decode_line(raw, offset)
            if is_skipped(text):
                if owned(offset):
                    skipped += 1
                continue
            try:
                label, qid, pairs, docid, repeat = _parse_line(text, repeated)
                error = None
            except _LineError as exc:
                repeat = _repeats_in(text) if repeated == "quarantine" else 0
                label, qid, pairs, docid, error = 0.0, None, ([], []), None, str(exc)
                if sizes is None:  # qid layout: attribute the line by its qid token
                    match = _QID.search(text.partition("#")[0])
                    qid = match.group(1) if match else None
            at = where(number, offset)
            if sizes is not None:
                while remaining == 0:
                    group_index += 1
                    if group_index >= len(sizes):
                        raise InputError(query_file, f"group sizes sum to fewer rows than "
                                                     f"{path} holds (line {number})")
                    remaining = sizes[group_index]
                qid = f"{name}:{group_index}"
                remaining -= 1
            elif qid is None:
                if owned(offset):
                    stray.append(quarantine_row(
                        Reason.UNPARSEABLE_LINE, step="read", location=at[0], record_kind="line",
                        detail=error or "line has no qid:", raw=text))
                continue
            if skipping:
                if qid == prev_qid:
                    continue
                skipping = False
            if group is None or group.query_id != qid:
                if end is not None and offset >= end:
                    break  # the next query starts in the next split
                group = grouper.group_for(qid, at[1], lambda: _Group(
                    query_id=qid, first=offset if by_offset else number))
                for rows in grouper.batches():
                    yield flush(rows)
            repeats += repeat  # counted by the split that reads the line's query
            if error:
                group.errors.append((at[0], error, text))
            group.labels.append(label)
            group.doc_ids.append(docid)
            group.rows.append(pairs)
            group.wheres.append(at)
    finally:
        stream.close()
    if sizes is not None and (group_index < len(sizes) - 1 or remaining):
        leftover = remaining + sum(sizes[group_index + 1:])
        if any(sizes[group_index + 1:]) or remaining:
            raise InputError(query_file, f"group sizes promise {leftover} more rows than {path} "
                                         f"holds")
    for rows in grouper.batches(final=True):
        yield flush(rows)
    if stray or skipped or repeats:
        yield flush([])
