"""The SVMlight feature-space scan: the smallest and largest feature id of a file (or of one byte
range of it), without parsing its records.

`scan_svmlight` is the first pass over an SVMlight/LETOR input (see readers.space for the rules
that turn the merged scans of a dataset into its FeatureSpace); `read_svmlight` is the second.
The scan reads the same tokens the reader does: ASCII digits followed by `:` at the start of a
line or after ASCII whitespace, in the part of a data line before `#`.
"""
from __future__ import annotations

import io
import re
from typing import Iterator

import numpy as np

from data_contracts import fs
from data_contracts.readers.lines import decode_line, is_skipped, iter_lines
from data_contracts.readers.space import DEFAULT_MAX_FEATURE_ID, SpaceStats

_FID = re.compile(r"(?:^|\s)([0-9]+):", re.ASCII)  # as _block_ids: ASCII digits, space
_DECLARED_BASE = re.compile(r"^\s*#.*column indices are (zero|one)-based", re.I)
_SCAN_BLOCK = 4 << 20  # bytes of whole lines scanned at once (plus a few int64s per colon)
_DECLARED_BASE_BYTES = re.compile(rb"(?im)^[ \t\x0b\x0c\r\x1c-\x1f]*#[^\n]*column indices are "
                                  rb"(zero|one)-based")
# bytes str.isspace() (and so `\s` in _FID) counts as whitespace among ASCII
_ASCII_SPACE = np.zeros(256, bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_ID_DIGITS = 18  # digits an int64 holds; an id with a non-zero digit beyond is huge


def _block_ids(data: bytes, max_feature_id: int) -> tuple[int | None, int | None]:
    """(smallest, largest) feature id at or below the limit in whole ASCII lines, vectorized.

    The same tokens as `_FID` on each line's part before `#`: digits followed by `:` that start
    the line or follow whitespace. Works from the colons, stepping back one byte at a time for
    the colons whose digit run goes on (ids are short: a few steps).
    """
    buf = np.frombuffer(data, np.uint8)
    colons = np.flatnonzero(buf == 58)
    if not len(colons):
        return None, None
    if b"#" in data:  # drop colons in comments: a '#' after the line's last newline
        hashes = np.concatenate([[-1], np.flatnonzero(buf == 35)])  # -1: none before
        newlines = np.concatenate([[-1], np.flatnonzero(buf == 10)])
        hash_at = hashes[np.searchsorted(hashes, colons) - 1]  # the last '#' before each colon
        newline_at = newlines[np.searchsorted(newlines, colons) - 1]
        colons = colons[hash_at <= newline_at]  # equal only when both are -1 (none)
        if not len(colons):
            return None, None
    # walk back from the colons one byte at a time while the digits last (ids are short)
    n = len(colons)
    value = np.zeros(n, np.int64)
    huge = np.zeros(n, bool)  # more digits than int64 holds (far above any limit)
    starter = np.zeros(n, np.uint8)  # the byte before the digits
    length = np.zeros(n, np.int64)
    active, k, scale = np.arange(n), 1, 1
    while len(active):
        at = colons[active] - k
        byte = np.where(at >= 0, buf[np.maximum(at, 0)], 10)  # the block starts a line
        is_digit = (byte >= 48) & (byte <= 57)
        ended = active[~is_digit]
        starter[ended], length[ended] = byte[~is_digit], k - 1
        active, byte = active[is_digit], byte[is_digit].astype(np.int64) - 48
        if k <= _ID_DIGITS:
            value[active] += byte * scale
        else:
            huge[active[byte != 0]] = True
        k, scale = k + 1, scale * 10 if k < _ID_DIGITS else scale
    value = value[(length >= 1) & _ASCII_SPACE[starter] & ~huge]
    value = value[value <= max_feature_id]
    if not len(value):
        return None, None
    return int(value.min()), int(value.max())


def _line_ids(data: bytes, offset: int, max_feature_id: int,
              stats: SpaceStats) -> tuple[int | None, int | None]:
    """`_block_ids` line by line on decoded text (blocks with non-ASCII bytes, a BOM); records a
    declared base in `stats`."""
    low = high = None
    for at, raw in iter_lines(io.BytesIO(data), offset):
        text = decode_line(raw, at)
        if is_skipped(text):
            declared = _DECLARED_BASE.search(text)
            if declared and stats.declared_base is None:
                stats.declared_base = 0 if declared.group(1).lower() == "zero" else 1
            continue
        fids = [f for f in map(int, _FID.findall(text.partition("#")[0])) if f <= max_feature_id]
        if fids:
            low = min(fids) if low is None else min(low, min(fids))
            high = max(fids) if high is None else max(high, max(fids))
    return low, high


def _whole_lines(stream, start: int, end: int | None) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) blocks of the whole lines that start in [start, end) (end None: to the
    end of the stream); `stream` is positioned at `start - 1` when start > 0."""
    pending, at = b"", start
    if start > 0:  # the rest of a line begun before start is not ours
        while True:
            chunk = stream.read(_SCAN_BLOCK)
            if not chunk:
                return
            i = chunk.find(b"\n")
            if i >= 0:
                pending = chunk[i + 1:]
                at = start + i  # chunk[0] is byte start - 1
                break
    while True:
        if end is not None and at + len(pending) >= end:
            i = pending.find(b"\n", max(0, end - 1 - at))  # the line holding byte end - 1 ends it
            if i >= 0:
                yield at, pending[:i + 1]
                return
        chunk = stream.read(_SCAN_BLOCK)
        if not chunk:
            if pending:
                yield at, pending
            return
        pending += chunk
        if end is None or at + len(pending) < end:
            i = pending.rfind(b"\n")
            if i >= 0:
                yield at, pending[:i + 1]
                at, pending = at + i + 1, pending[i + 1:]


def scan_svmlight(path: str, max_feature_id: int = DEFAULT_MAX_FEATURE_ID,
                  byte_range: tuple[int, int] | None = None) -> SpaceStats:
    """SpaceStats of an SVMlight file: smallest and largest feature id of its data lines.

    Ids above `max_feature_id` are left out (their query is quarantined when read). ASCII blocks
    are scanned with numpy (4.7x the speed of the regex per line, `benchmarks/bench_scan.py`); a
    block with other bytes (a BOM, UTF-8 in comments) line by line on decoded text, the same rule.

    Args:
      byte_range: (start, end): only the lines that start at a byte in [start, end) of an
        uncompressed file (a split's share: the scans of a file's splits merge, with
        `SpaceStats.merge`, to the scan of the whole file). None: the whole file.
    """
    stats = SpaceStats()
    low = high = None
    start, end = byte_range if byte_range is not None else (0, None)
    with fs.open_input(path) as stream:
        if start > 0:
            stream.seek(start - 1)
        for at, data in _whole_lines(stream, start, end):
            if data.isascii():
                lo, hi = _block_ids(data, max_feature_id)
                if stats.declared_base is None and b"#" in data:
                    declared = _DECLARED_BASE_BYTES.search(data)
                    if declared:
                        stats.declared_base = 0 if declared.group(1).lower() == b"zero" else 1
            else:
                lo, hi = _line_ids(data, at, max_feature_id, stats)
            if lo is not None:
                low = lo if low is None else min(low, lo)
                high = hi if high is None else max(high, hi)
    if low is not None:
        stats.add_ids(low, high, path)
    return stats


__all__ = ["scan_svmlight"]
