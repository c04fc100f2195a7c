"""Line handling every line-based reader shares: the byte-order mark, decoding, comment and blank
lines, and the first lines of a file.

A line-based input (SVMlight/LETOR, JSON lines, CSV/TSV, group files) is read as bytes, split at
`\\n` with each line's byte offset kept (`iter_lines`), and decoded one line at a time
(`decode_line`: UTF-8, bad bytes replaced, a BOM at offset 0 and a trailing `\\r` dropped). A
decoded line that is blank or a `#` comment is not a record (`is_skipped`); readers count it in
`QueryBatch.skipped_lines`. `head_lines` gives the first data lines (after decompression) that
format detection and the CSV delimiter rule look at.
"""
from __future__ import annotations

from typing import Iterator

from data_contracts import fs

BOM = b"\xef\xbb\xbf"
READ_BLOCK = 1 << 20  # bytes read from a stream at a time
SNIFF_BYTES = 64 * 1024
SNIFF_LINES = 50


def iter_lines(stream, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line without its newline) of every line of a binary stream.

    Args:
      stream: a binary stream positioned at `offset`.
      offset: the byte offset of the stream's current position (offsets count from it).
    """
    pending = b""
    position = offset
    while True:
        chunk = stream.read(READ_BLOCK)
        if not chunk:
            break
        pending += chunk
        lines = pending.split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield position, line
            position += len(line) + 1
    if pending:
        yield position, pending


def decode_line(raw: bytes, offset: int) -> str:
    """One line's bytes as text: UTF-8 (bad bytes replaced), without a BOM at offset 0 and
    without a trailing `\\r`."""
    if offset == 0 and raw.startswith(BOM):
        raw = raw[len(BOM):]
    return raw.decode("utf-8", errors="replace").rstrip("\r")


def is_skipped(text: str) -> bool:
    """Whether a decoded line is not a record: blank or a `#` comment."""
    stripped = text.strip()
    return not stripped or stripped.startswith("#")


def head_lines(path: str, n_bytes: int = SNIFF_BYTES) -> tuple[list[str], bool]:
    """(the first data lines, decompressed, without BOM/comments/blanks; whether the file is
    longer than what was sniffed)."""
    head, _ = fs.sniff(path, n_bytes)
    truncated = len(head) >= n_bytes
    if head.startswith(BOM):
        head = head[len(BOM):]
    pieces = head.split(b"\n")
    if truncated and len(pieces) > 1:
        pieces = pieces[:-1]  # the last piece may be cut mid-line
    lines = []
    for piece in pieces:
        text = piece.decode("utf-8", errors="replace").rstrip("\r")
        if not is_skipped(text):
            lines.append(text)
        if len(lines) >= SNIFF_LINES:
            break
    return lines, truncated


__all__ = ["BOM", "READ_BLOCK", "decode_line", "head_lines", "is_skipped", "iter_lines"]
