"""Streaming SVMlight/LETOR reader, with `qid:` or with a LightGBM-style `.query` file.

Layouts covered: MSLR-WEB10K/30K, MQ2007/MQ2008, Istella and Yahoo (`label qid:Q fid:val ...`,
optionally ending in `#docid = X`), and SVMlight without qid plus a `.query` file holding one group
size per line (LightGBM's convention). Sparse feature ids become a dense width with zeros.

Memory is bounded by the batch size: one pass finds the feature width (unless given), a second
pass builds queries one at a time and yields them in batches.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from data_contracts.errors import InputError
from data_contracts.quarantine import quarantine_row
from data_contracts.readers.base import QueryBatch, rows_to_batch
from data_contracts.reasons import Reason

_DOCID = re.compile(r"docid\s*=\s*(\S+)")
_FID = re.compile(r"(?:^|\s)(\d+):")


class _LineError(ValueError):
    pass


def _parse_line(line: str) -> tuple[float, str | None, tuple[list, list], str | None]:
    """(label, qid or None, ([fid], [value]), docid or None) of one line."""
    body, _, comment = line.partition("#")
    docid = None
    if comment:
        match = _DOCID.search(comment)
        if match:
            docid = match.group(1)
    tokens = body.split()
    if not tokens:
        raise _LineError("no label")
    try:
        label = float(tokens[0])
    except ValueError:
        raise _LineError(f"label {tokens[0]!r} is not a number") from None
    qid = None
    fids, values = [], []
    for token in tokens[1:]:
        key, sep, value = token.partition(":")
        if not sep:
            raise _LineError(f"token {token!r} is not fid:value")
        if key == "qid":
            qid = value
            continue
        try:
            fids.append(int(key))
            values.append(float(value))
        except ValueError:
            raise _LineError(f"token {token!r} is not fid:value") from None
    pairs = (fids, values)
    return label, qid, pairs, docid


def scan_feature_ids(path: str) -> tuple[int, int]:
    """(smallest, largest) feature id in an SVMlight file, in one streaming pass."""
    low, high = None, 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            ids = _FID.findall(line.partition("#")[0])
            if ids:
                ints = list(map(int, ids))
                high = max(high, max(ints))
                low = min(ints) if low is None else min(low, min(ints))
    return (1 if low is None else low), high


def _first_line_has_qid(path: str) -> bool:
    """Whether the first non-blank line carries a `qid:` token (the qid layout)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                return re.search(r"(?:^|\s)qid:", line.partition("#")[0]) is not None
    return False


@dataclass
class _Group:
    query_id: str
    first_line: int
    labels: list = field(default_factory=list)
    doc_ids: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # (line number, message, raw line)


def _group_sizes(path: str) -> list[int]:
    if not os.path.exists(path):
        raise InputError(path, "group-size file not found (expected one integer per line)")
    sizes = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if not text:
                continue
            if not text.isdigit():
                raise InputError(path, f"line {number}: expected a non-negative integer group size, "
                                       f"got {text!r}")
            sizes.append(int(text))
    return sizes


def read_svmlight(
    path: str, *, batch_size: int = 256, query_file: str | None = None,
    num_features: int | None = None, source: str | None = None, split: str | None = None,
) -> Iterator[QueryBatch]:
    """Streams an SVMlight/LETOR file as canonical query batches.

    Args:
      path: the data file.
      batch_size: queries per batch.
      query_file: LightGBM group sizes; defaults to `path + ".query"` when that exists and lines
        carry no `qid:`.
      num_features: dense width; found by a first pass when not given. Feature ids are 1-based
        unless the file uses id 0, in which case they are 0-based.
      source: value of the `source` column (defaults to the file name).
      split: value of the `split` column.

    Yields:
      QueryBatch: queries (not yet validated) and quarantine rows for lines that could not be
      attributed to any query.
    """
    if not os.path.exists(path):
        raise InputError(path, "file not found")
    source = source or os.path.basename(path)
    low, high = scan_feature_ids(path)
    offset = 0 if low == 0 else 1
    width = num_features if num_features is not None else high + 1 - offset
    if query_file is None and os.path.exists(path + ".query") and not _first_line_has_qid(path):
        query_file = path + ".query"
    sizes = _group_sizes(query_file) if query_file else None

    def finish(group: _Group) -> dict:
        location = f"{path}:{group.first_line}"
        if group.errors:
            line_no, message, raw = group.errors[0]
            return {"query_id": group.query_id, "_error": (Reason.UNPARSEABLE_LINE,
                    f"{path}:{line_no}", f"{message} ({len(group.errors)} bad line(s))", raw)}
        dense = np.zeros((len(group.rows), width), dtype=np.float32)
        rows = np.concatenate([np.full(len(f), i) for i, (f, _) in enumerate(group.rows)])
        cols = np.concatenate([np.asarray(f, dtype=np.int64) for f, _ in group.rows]) - offset
        vals = np.concatenate([np.asarray(v, dtype=np.float32) for _, v in group.rows])
        if cols.size and (cols.min() < 0 or cols.max() >= width):
            # a feature id past the declared width is a bad record, not a crash
            return {"query_id": group.query_id, "_error": (
                Reason.RAGGED_FEATURES, location,
                f"feature ids outside width {width}", "")}
        dense[rows.astype(np.int64), cols] = vals
        doc_ids = [d if d is not None else f"{group.query_id}:{i}"
                   for i, d in enumerate(group.doc_ids)]
        return {"query_id": group.query_id, "doc_ids": doc_ids, "features": dense,
                "labels": group.labels, "source": source, "split": split, "_location": location}

    pending: list[dict] = []
    stray: list[dict] = []
    group: _Group | None = None
    group_index = 0
    remaining = sizes[0] if sizes else 0

    def flush():
        nonlocal pending, stray
        batch = rows_to_batch(pending, stray, step="read")
        pending, stray = [], []
        return batch

    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                label, qid, pairs, docid = _parse_line(line)
                error = None
            except _LineError as exc:
                label, qid, pairs, docid, error = 0.0, None, ([], []), None, str(exc)
                if sizes is None:  # qid layout: try to attribute the line by its qid token
                    match = re.search(r"\bqid:(\S+)", line)
                    qid = match.group(1) if match else None
            if sizes is not None:
                while remaining == 0:
                    group_index += 1
                    if group_index >= len(sizes):
                        raise InputError(query_file, f"group sizes sum to fewer rows than "
                                                     f"{path} holds (line {number})")
                    remaining = sizes[group_index]
                qid = str(group_index)
                remaining -= 1
            elif qid is None:
                stray.append(quarantine_row(
                    Reason.UNPARSEABLE_LINE, step="read", location=f"{path}:{number}",
                    record_kind="line", detail=error or "line has no qid:", raw=line.rstrip("\n")))
                continue
            if group is None or group.query_id != qid:
                if group is not None:
                    pending.append(finish(group))
                    if len(pending) >= batch_size:
                        yield flush()
                group = _Group(query_id=qid, first_line=number)
            if error:
                group.errors.append((number, error, line.rstrip("\n")))
            group.labels.append(label)
            group.doc_ids.append(docid)
            group.rows.append(pairs)
    if sizes is not None and (group_index < len(sizes) - 1 or remaining):
        leftover = remaining + sum(sizes[group_index + 1:])
        if any(sizes[group_index + 1:]) or remaining:
            raise InputError(query_file, f"group sizes promise {leftover} more rows than {path} "
                                         f"holds")
    if group is not None:
        pending.append(finish(group))
    if pending or stray:
        yield flush()
