"""TREC qrels and runs as trec_eval reads them, plus the binary forms IR toolkits save them in.

Every side file of a text input (qrels, runs, corpora, queries, rank_llm requests) is sniffed by
its first bytes before it is read as lines (`sniff_side_file`): Parquet and JSON dictionaries
are read here (ranx and pytrec_eval keep qrels and runs that way), other binary files and
compressions this package does not read (lz4, Snappy, zip, 7-Zip, ...) are refused with one line
naming what the file is and what was expected.

Text files are read as bytes and decoded line by line (`text_lines`), so a line holding bytes
that are not UTF-8 is counted (`non_utf8_lines`; its bad bytes read as U+FFFD), and blank and
`#` comment lines are counted as `skipped_lines`, as for feature files.

Number rules (trec_eval's, made strict): a relevance is a decimal number, finite; a negative
judgment (`-1`: judged not relevant, as in trec_eval's `qrels.rel_level`) is read as 0 (gain 0)
and counted (`negative_judgments`); a rank is a decimal integer (`1_0`, `nan`, `1e309`, `1.5`
are refused); a score is a decimal number that is finite and within float32's range (the
features are float32), so a best document never becomes a silent 0. A bad value is an error
naming `file:line`.
"""
from __future__ import annotations

import json
import math
import re
from typing import Iterator

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.text_features import is_float32_number

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d{1,18}$")
BOM = b"\xef\xbb\xbf"
SNIFF = 8192

RUN_SHAPE = "a TREC run (qid Q0 docid rank score tag, qid docid rank or qid docid)"
QRELS_SHAPE = "TREC qrels (qid iter docid rel or qid docid rel)"

# Files that are not text and that this package does not read: (magic, what it is, what to do).
_DECOMPRESS = "decompress it first (gzip, bz2, xz and zstd are read as they are)"
FOREIGN_MAGIC = (
    (b"\x04\x22\x4d\x18", "an lz4-compressed file", _DECOMPRESS),
    (b"\xff\x06\x00\x00sNaPpY", "a Snappy-framed file", _DECOMPRESS),
    (b"\x1f\x9d", "a Unix compress (.Z) file", _DECOMPRESS),
    (b"\x5d\x00\x00", "an LZMA-alone (.lzma) file", _DECOMPRESS),
    (b"PK\x03\x04", "a zip archive", "extract the file and name it"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "extract the file and name it"),
    (b"Rar!", "a RAR archive", "extract the file and name it"),
    (b"ARROW1", "an Arrow IPC (Feather) file", "save it as Parquet or text"),
    (b"\x89HDF", "an HDF5 file", "save it as Parquet or text"),
    (b"\x93NUMPY", "a NumPy array file", "save it as Parquet or text"),
    (b"SQLite format 3\x00", "an SQLite database", "export the table as Parquet or text"),
    (b"\x80\x02", "a Python pickle", "save it as Parquet, JSON or text"),
    (b"\x80\x03", "a Python pickle", "save it as Parquet, JSON or text"),
    (b"\x80\x04", "a Python pickle", "save it as Parquet, JSON or text"),
    (b"\x80\x05", "a Python pickle", "save it as Parquet, JSON or text"),
)


class TextCounts:
    """Counts a text reader gathers while it reads (the manifest's `counts.*`), handed out with
    the query batches: each batch carries what was counted since the previous one
    (`QueryBatch.skipped_lines` and `QueryBatch.counts`), so summing the batches gives the
    whole read's counts."""

    def __init__(self):
        self.pending: dict[str, int] = {}

    def add(self, name: str, n: int = 1) -> None:
        """Adds `n` to the count `name`."""
        if n:
            self.pending[name] = self.pending.get(name, 0) + int(n)

    def take(self) -> dict[str, int]:
        """The counts since the previous take (and clears them)."""
        out, self.pending = self.pending, {}
        return out


def sniff_side_file(path: str, role: str, expected: str, *, tables: bool = False) -> str:
    """What a side file is, by its first bytes: `parquet`, `json` (a JSON document starting
    with `{` or `[`) or `text`.

    Args:
      path: the file.
      role: how the user named it (`--qrels`, `--candidates`, `corpus`), for the error.
      expected: what it should hold, in words.
      tables: the caller reads Parquet (qrels and runs); otherwise Parquet is refused too.

    Raises:
      InputError: the file is missing, or is an archive, a compression this package does not
        read, Parquet where none is read, or another binary file (NUL bytes in its first
        8 KiB), naming what it is and what was expected.
    """
    if not fs.exists(path):
        raise InputError(path, f"{role} file not found")
    if fs.isdir(path):
        raise InputError(path, f"{role} is a folder; expected a file holding {expected}")
    with fs.open_read(path) as raw:
        head = raw.read(16)
    for magic, what, todo in FOREIGN_MAGIC:
        if head.startswith(magic):
            raise InputError(path, f"{role} is {what}, not {expected}; {todo}")
    from data_contracts.readers.detect import is_parquet_file

    if is_parquet_file(path):
        if not tables:
            raise InputError(path, f"{role} is a Parquet file, not {expected}")
        return "parquet"
    data, _ = fs.sniff(path, SNIFF)
    if len(data) > 262 and data[257:262] == b"ustar":
        raise InputError(path, f"{role} is a tar archive, not {expected}; extract the file "
                               "and name it")
    if b"\x00" in data:
        raise InputError(path, f"{role} is a binary file (NUL bytes in its first 8 KiB), not "
                               f"{expected}")
    start = data.lstrip(BOM).lstrip()
    return "json" if start[:1] in (b"{", b"[") else "text"


def text_lines(path: str, counts: TextCounts) -> Iterator[tuple[int, str]]:
    """(line number, line without its end) of a (possibly compressed) text file, decoded as
    UTF-8 line by line: a line with bytes that are not UTF-8 reads them as U+FFFD and is counted
    (`non_utf8_lines`); a leading byte-order mark is dropped."""
    with fs.open_input(path) as handle:
        for number, raw in enumerate(handle, 1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            raw = raw.rstrip(b"\r\n")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                counts.add("non_utf8_lines")
                line = raw.decode("utf-8", errors="replace")
            yield number, line


def _fields(path: str, counts: TextCounts) -> Iterator[tuple[int, list[str]]]:
    """(line number, whitespace-split fields) of a TREC-style file; blank and `#` lines are
    counted as `skipped_lines`."""
    for number, line in text_lines(path, counts):
        text = line.strip()
        if not text or text.startswith("#"):
            counts.add("skipped_lines")
            continue
        yield number, text.split()


def parse_number(value: str, where: str, what: str, *, float32: bool = False) -> float:
    """A decimal number that is finite (and, with `float32`, within float32's range).

    Raises:
      InputError: naming `where` (`file:line`) and the value.
    """
    if not _NUMBER.match(value):
        raise InputError(where, f"{what} {value!r} is not a decimal number")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(where, f"{what} {value!r} is not finite")
    if float32 and not is_float32_number(number):
        raise InputError(where, f"{what} {value!r} is beyond float32's range (|x| <= 3.4e38; "
                                "features are float32)")
    return number


def parse_rank(value: str, where: str) -> int:
    """A rank: a decimal integer of at most 18 digits.

    Raises:
      InputError: naming `where` and the value.
    """
    if not _INTEGER.match(value):
        raise InputError(where, f"rank {value!r} is not an integer")
    return int(value)


def _json_number(value, where: str, what: str, *, float32: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(where, f"{what} is {type(value).__name__} {value!r:.40}, not a number")
    number = float(value)
    if not math.isfinite(number) or (float32 and not is_float32_number(number)):
        raise InputError(where, f"{what} {value!r} is not finite"
                                + (" within float32's range" if float32 else ""))
    return number


def _id(value, where: str, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(where, f"{what} is {type(value).__name__} {value!r:.40}, not a string "
                                "or an integer")
    return str(value)


def load_json_document(path: str, problem: str, expected: str):
    """The one JSON document a file holds (read whole through the file-system layer).

    Raises:
      InputError: it does not parse: `PROBLEM (the parser's message); expected EXPECTED`.
    """
    try:
        with fs.open_input(path) as handle:
            return json.load(handle)
    except (ValueError, RecursionError) as exc:
        raise InputError(path, f"{problem} ({str(exc)[:80]}); expected {expected}") from None


def _json_dictionary(path: str, role: str, expected: str, float32: bool
                     ) -> Iterator[tuple[str, str, float, str]]:
    """(qid, docid, value, where) of a pytrec_eval/ranx `{qid: {docid: number}}` JSON file."""
    data = load_json_document(path, f"{role} starts like JSON but does not parse as one JSON "
                                    "document", f"{expected} or a JSON {{qid: {{docid: number}}}} "
                                    "dictionary")
    if isinstance(data, list):
        raise InputError(path, f"{role} is a JSON array, not {expected} nor a JSON "
                               "{qid: {docid: number}} dictionary (pytrec_eval, ranx)")
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise InputError(path, f"{role} is a JSON document but not a {{qid: {{docid: "
                               f"number}}}} dictionary (pytrec_eval, ranx); expected {expected}")
    for qid, docs in data.items():
        for doc, value in docs.items():
            where = f"{path}#{qid}/{doc}"
            yield qid, doc, _json_number(value, where, "the value", float32=float32), where


_PARQUET_COLUMNS = {
    "qid": ("q_id", "query_id", "qid"),
    "doc": ("doc_id", "docid", "docno"),
    "value": ("score", "relevance", "rel", "label"),
}


def _parquet_rows(path: str, role: str, expected: str, float32: bool
                  ) -> Iterator[tuple[str, str, float, str]]:
    """(qid, docid, value, where) of a ranx-style Parquet file (`q_id`, `doc_id`, `score`)."""
    import pyarrow.parquet as pq

    try:
        with fs.open_read(path) as raw:
            table = pq.read_table(raw)
    except Exception as exc:  # Arrow's errors: one line
        raise InputError(path, f"{role}: unreadable Parquet ({type(exc).__name__}: "
                               f"{str(exc)[:120]})") from None
    names = {n.lower(): n for n in table.column_names}
    picked = {}
    for part, options in _PARQUET_COLUMNS.items():
        found = next((names[o] for o in options if o in names), None)
        if found is None:
            raise InputError(path, f"{role} is a Parquet file with columns "
                                   f"{', '.join(table.column_names)}; expected ranx's layout "
                                   "q_id, doc_id, score (one row per judged or retrieved "
                                   f"document), or {expected}")
        picked[part] = table.column(found).to_pylist()
    for i, (qid, doc, value) in enumerate(zip(picked["qid"], picked["doc"], picked["value"])):
        where = f"{path}#row={i}"
        yield (_id(qid, where, "q_id"), _id(doc, where, "doc_id"),
               _json_number(value, where, "score", float32=float32), where)


_QRELS_HEADER_WORDS = ("score", "rel", "relevance", "label", "grade", "judgment", "judgement")
_HEADER_WORD = re.compile(r"^[A-Za-z_][\w.-]*$")


def _qrels_header(cols: list[str]) -> bool:
    """A header row (`query-id corpus-id score`): its last field is a word, not a number nor
    `nan`/`inf` (those are bad values, said as such)."""
    last = cols[-1]
    return bool(_HEADER_WORD.match(last)) and last.lower() not in ("nan", "inf", "infinity")


def read_qrels(path: str, counts: TextCounts | None = None, role: str = "--qrels"
               ) -> dict[str, dict[str, float]]:
    """TREC qrels: `qid iter docid rel` (4 columns) or `qid docid rel` (3, BEIR's TSV, whose
    `query-id corpus-id score` header is skipped); ranx's Parquet (`q_id`, `doc_id`, `score`)
    and pytrec_eval/ranx JSON dictionaries are read too.

    A negative judgment is read as 0 (non-relevant, trec_eval's reading) and counted in
    `counts` as `negative_judgments`; blank and `#` lines as `skipped_lines`.

    Returns:
      query id -> {document id: graded relevance >= 0}; a later line for the same pair wins.

    Raises:
      InputError: the file is missing, binary or of another shape (a TREC run is named as
        one), or a line has another column count or a relevance that is not a finite decimal
        number (with its line number).
    """
    counts = counts if counts is not None else TextCounts()
    kind = sniff_side_file(path, role, QRELS_SHAPE, tables=True)
    if kind == "parquet":
        triples = _parquet_rows(path, role, QRELS_SHAPE, False)
    elif kind == "json":
        triples = _json_dictionary(path, role, QRELS_SHAPE, False)
    else:
        triples = _text_qrels(path, counts, role)
    qrels: dict[str, dict[str, float]] = {}
    for qid, doc, rel, _ in triples:
        if rel < 0:
            counts.add("negative_judgments")
            rel = 0.0
        qrels.setdefault(qid, {})[doc] = rel
    return qrels


def _text_qrels(path: str, counts: TextCounts, role: str
                ) -> Iterator[tuple[str, str, float, str]]:
    first, q0_only, values = True, True, {}
    for number, cols in _fields(path, counts):
        where = f"{path}:{number}"
        if len(cols) >= 5:
            raise InputError(where, f"{role} line has {len(cols)} columns, the shape of "
                                    f"{RUN_SHAPE}, not {QRELS_SHAPE}; give the run as "
                                    "--candidates (or as --input with --input-format trec) "
                                    "and the judgments as --qrels")
        if len(cols) not in (3, 4):
            raise InputError(where, f"qrels line has {len(cols)} columns (expected qid iter "
                                    "docid rel or qid docid rel)")
        if first and _qrels_header(cols):
            first = False
            continue  # a header (BEIR's `query-id corpus-id score`)
        first = False
        qid, doc, rel = (cols[0], cols[2], cols[3]) if len(cols) == 4 else cols
        q0_only = q0_only and len(cols) == 4 and cols[1] == "Q0"
        value = parse_number(rel, where, "relevance")
        values.setdefault(qid, []).append(value)
        yield qid, doc, value, where
    if q0_only and values and _counts_ranks(values):
        raise InputError(path, f"{role} looks like a TREC run without scores (qid Q0 docid "
                               "rank: its last column counts 1..n in every query), not "
                               f"{QRELS_SHAPE}; give it as --candidates and the judgments as "
                               "--qrels")


def _counts_ranks(values: dict[str, list[float]]) -> bool:
    """Whether every query's values are exactly 1..n (ranks), n >= 5 somewhere."""
    return max(len(v) for v in values.values()) >= 5 and all(
        sorted(v) == list(range(1, len(v) + 1)) for v in values.values())


def _grades_repeat(values: dict[str, list[int]]) -> str | None:
    """A query whose rank values repeat while every value is a small grade (-1..10): qrels'
    shape (a run's ranks are distinct within a query)."""
    if any(not -1 <= x <= 10 for v in values.values() for x in v):
        return None
    return next((qid for qid, v in values.items() if len(set(v)) < len(v)), None)


def read_run(path: str, depth: int | None = None, counts: TextCounts | None = None,
             role: str = "--candidates") -> dict[str, list[tuple[str, float | None]]]:
    """A TREC run as each query's ranked (document id, score) list.

    Accepted lines: `qid Q0 docid rank score tag` (6 columns; fields after the tag are
    ignored and the lines counted as `run_extra_fields`, as trec_eval reads them; also 5
    without the tag), `qid Q0 docid rank` (4), `qid docid rank` (3, MS MARCO's run TSV) and
    `qid docid` (2, in file order). Also ranx's Parquet (`q_id`, `doc_id`, `score`) and JSON
    `{qid: {docid: score}}` dictionaries, ordered by score (highest first, ties in file order).
    A text run's list is ordered by the rank column where there is one (ties and 2-column runs
    in file order) and cut to its first `depth` entries; a score is None where the line gives
    none. Query order: first appearance.

    Raises:
      InputError: the file is missing, binary, qrels-shaped (3 or 4 columns whose values repeat
        within a query as grades do, or a `query-id corpus-id score` header), or a line has an
        unknown shape, a rank that is not an integer or a score that is not a finite float32
        number (with its line number).
    """
    counts = counts if counts is not None else TextCounts()
    kind = sniff_side_file(path, role, RUN_SHAPE, tables=True)
    if kind != "text":
        rows = (_parquet_rows if kind == "parquet" else _json_dictionary)(path, role, RUN_SHAPE,
                                                                           True)
        by_score: dict[str, list] = {}
        for qid, doc, score, _ in rows:
            by_score.setdefault(qid, []).append((doc, score))
        return {qid: sorted(ranked, key=lambda x: -x[1])[:depth]
                for qid, ranked in by_score.items()}
    entries: dict[str, list] = {}
    ranks_only: dict[str, list[int]] = {}  # 3/4-column lines without Q0: qrels' shape?
    first = True
    for number, cols in _fields(path, counts):
        where = f"{path}:{number}"
        score = None
        if first and len(cols) == 3 and cols[2].lower() in _QRELS_HEADER_WORDS:
            raise InputError(where, f"{role} looks like {QRELS_SHAPE}, not a run (it starts "
                                    f"with a header {' '.join(cols)!r} like BEIR's qrels TSV); "
                                    "give it as --qrels and the run as " + role)
        first = False
        if len(cols) >= 5:
            if len(cols) > 6:
                counts.add("run_extra_fields")
            qid, doc, rank = cols[0], cols[2], parse_rank(cols[3], where)
            score = parse_number(cols[4], where, "score", float32=True)
        elif len(cols) == 4:
            qid, doc, rank = cols[0], cols[2], parse_rank(cols[3], where)
            if cols[1] != "Q0":
                ranks_only.setdefault(qid, []).append(rank)
        elif len(cols) == 3:
            qid, doc, rank = cols[0], cols[1], parse_rank(cols[2], where)
            ranks_only.setdefault(qid, []).append(rank)
        elif len(cols) == 2:
            qid, doc, rank = cols[0], cols[1], number
        else:
            raise InputError(where, f"run line has {len(cols)} columns (expected qid Q0 docid "
                                    "rank score tag, qid docid rank or qid docid)")
        entries.setdefault(qid, []).append((rank, number, doc, score))
    repeated = _grades_repeat(ranks_only) if ranks_only else None
    if repeated is not None:
        raise InputError(path, f"{role} looks like {QRELS_SHAPE}, not a run (its values "
                               f"repeat within query {repeated!r} as relevance grades do; a "
                               "run's ranks are distinct); give it as --qrels and the run as "
                               + role)
    return {qid: [(doc, score) for _, _, doc, score in sorted(rows)][:depth]
            for qid, rows in entries.items()}


__all__ = ["FOREIGN_MAGIC", "QRELS_SHAPE", "RUN_SHAPE", "TextCounts",
           "parse_number", "parse_rank", "read_qrels", "read_run", "sniff_side_file",
           "text_lines"]
