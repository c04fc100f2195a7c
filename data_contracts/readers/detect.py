"""Tells an input's layout by its content (never by its name): magic bytes, then its first lines.

`detect_format` returns one of READABLE (a reader exists) or one of LOOKS_LIKE (a layout that is
known but is not queries with features, or needs a part that is missing); `read_queries` turns
the latter into a one-line InputError saying what the input looks like, and
`data_contracts.usable.unusable_reason` names it when a forced format read nothing usable.
"""
from __future__ import annotations

import json
import re

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.readers.layout import catboost_cd
from data_contracts.readers.lines import head_lines
from data_contracts.readers.svmlight import GROUP_SUFFIXES, group_file

READABLE = ("svmlight", "lightgbm", "xgboost", "parquet", "jsonl", "csv", "catboost", "hf")

# Layouts told apart but not read as queries here; the text is what the error says it looks like.
LOOKS_LIKE = {
    "trec-qrels": "TREC qrels: qid iter docno rel",
    "trec-run": "TREC run: qid Q0 docno rank score tag",
    "svmlight-no-qid": "SVMlight without qid: label fid:value ..., which needs its group "
                       "sizes in PATH.query (LightGBM) or PATH.group (XGBoost) beside it",
    "catboost-tsv": "CatBoost-style TSV/CSV without a header: label, group id, features, "
                    "which needs its column description PATH.cd (INDEX<TAB>TYPE per line, "
                    "with a GroupId) beside it, or a header row naming the columns",
    "group-sizes": "a LightGBM .query / XGBoost .group file: one query's row count per line, "
                   "not data",
    "json-qrels": "a JSON qrels or run dictionary: {qid: {docno: relevance or score}} (ranx, "
                  "pytrec_eval)",
    "empty": "an empty file (no records)",
}

HF_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")
_QID = re.compile(r"(?:^|\s)qid:\S")
_INT = re.compile(r"^-?\d+$")
_COUNT = re.compile(r"^[0-9]+$")  # a group size
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?(nan|inf)$", re.I)


def looks_like(fmt: str) -> str | None:
    """What a LOOKS_LIKE layout is, in words (None for a readable format)."""
    return LOOKS_LIKE.get(fmt)


def is_parquet_file(path: str) -> bool:
    """Whether a file starts with Parquet's magic bytes (`PAR1`).

    Raises:
      InputError: the Parquet is inside gzip/bz2/xz/zstd: Parquet is read by seeking to its
        footer, which a compressed stream cannot do.
    """
    head, compression = fs.sniff(path, 4)
    if head == b"PAR1" and compression:
        raise InputError(path, f"a {compression} file holding Parquet: Parquet is read by "
                               "seeking to its footer, which a compressed stream cannot do; "
                               "decompress it (Parquet compresses its own pages)")
    return head == b"PAR1"


def _svm_like(line: str) -> bool:
    tokens = line.partition("#")[0].split()
    return bool(tokens) and all(":" in t for t in tokens[1:]) and (
        len(tokens) > 1 or bool(_NUMBER.match(tokens[0])))


def _qrels_like(line: str) -> bool:
    t = line.split()
    return len(t) == 4 and bool(_INT.match(t[3])) and (bool(_INT.match(t[1])) or t[1] == "Q0") \
        and ":" not in t[1]


def _run_like(line: str) -> bool:
    t = line.split()
    return len(t) == 6 and bool(_INT.match(t[3])) and bool(_NUMBER.match(t[4]))


def _table_like(lines: list[str]) -> str | None:
    """`csv` for a delimited table with a header row, `catboost-tsv` for a headerless TSV."""
    first = lines[0]
    for sep in ("\t", ","):
        if sep in first:
            fields = [f.strip().strip('"') for f in first.split(sep)]
            if len(fields) < 2:
                continue
            if any(len(line.split(sep)) != len(fields) for line in lines[1:]):
                continue  # not a table: rows of different lengths
            header = any(f and not _NUMBER.match(f) for f in fields[:1] + fields[2:])
            if header:
                return "csv"
            return "catboost-tsv"  # CatBoost pools: tab by default, any delimiter
    return None


def detect_format(path: str) -> str:
    """The input's layout, by content.

    Order: a folder (saved Hugging Face dataset, or Parquet files under it); Parquet magic
    `PAR1`; then the first data lines after decompression (gzip/bz2/xz/zstd by magic bytes),
    a UTF-8 BOM, `#` comments and blank lines: a JSON object -> `jsonl` (`json-qrels` when it
    maps query ids to {docno: number} dictionaries); any `qid:` token ->
    `svmlight`; every line one non-negative integer -> `group-sizes` (a LightGBM `.query` /
    XGBoost `.group` file given as the data); no qid but a `.query` / `.group` file beside ->
    `lightgbm` / `xgboost`;
    `label fid:value ...` without qid and no group file -> `svmlight-no-qid`; four columns
    `qid iter docno rel` -> `trec-qrels`; six `qid Q0 docno rank score tag` -> `trec-run`; a
    comma- or tab-separated header row -> `csv`; a headerless numeric TSV -> `catboost` when a
    CatBoost column description (`.cd`) is beside it, else `catboost-tsv`; nothing at all ->
    `empty`.

    Returns:
      One of READABLE or of LOOKS_LIKE.

    Raises:
      InputError: the path does not exist, or its layout cannot be told (one line).
    """
    if not fs.exists(path):
        raise InputError(path, "file not found")
    if fs.isdir(path):
        files = fs.list_files(path)
        names = {fs.basename(f) for f in files}
        if "queries.jsonl" in names and names & {"corpus.jsonl", "corpus.jsonl.gz"}:
            return "beir"  # read by readers/text.py
        if names & set(HF_MARKERS):
            return "hf"
        if any(f.lower().endswith(".parquet") for f in files):
            return "parquet"
        raise InputError(path, "unknown format: a folder that is neither a saved Hugging Face "
                               "dataset nor holds .parquet files")
    if is_parquet_file(path):
        return "parquet"
    if path.lower().endswith(".parquet"):
        raise InputError(path, "not a readable Parquet file (no PAR1 magic bytes)")
    lines, _ = head_lines(path)
    if not lines:
        return "empty"
    first = lines[0].strip()
    if first in ("{", "[") or first.startswith("["):
        raise InputError(path, "a JSON document, not JSON lines (one query or row object per "
                               "line is expected)")
    if first.startswith("{"):
        record = first_record(path)
        if record and all(isinstance(v, dict) and v and all(
                isinstance(x, (int, float)) for x in v.values()) for v in record.values()):
            return "json-qrels"
        return "jsonl"
    if any(_QID.search(line.partition("#")[0]) for line in lines):
        return "svmlight"
    if all(_COUNT.match(line.strip()) for line in lines):
        return "group-sizes"
    groups = group_file(path)
    if groups is not None:
        return "xgboost" if groups.endswith(".group") else "lightgbm"
    if 2 * sum(map(_svm_like, lines)) >= len(lines):  # most lines: a few may be broken
        return "svmlight-no-qid"
    if all(_qrels_like(line) for line in lines):
        return "trec-qrels"
    if all(_run_like(line) for line in lines):
        return "trec-run"
    table = _table_like(lines)
    if table == "catboost-tsv":
        return "catboost" if catboost_cd(path) is not None else table
    if table is not None:
        return table
    fs.check_decompresses(path)  # damaged compressed data reads as garbage before it fails
    raise InputError(path, "unknown format (not SVMlight/LETOR, a LightGBM/XGBoost group layout, "
                           "Parquet, JSON lines, CSV/TSV with a header, nor a saved Hugging Face "
                           "dataset; name it with --input-format)")


def not_queries_message(path: str, fmt: str) -> str:
    """The one-line reason (without the path) that an input of a LOOKS_LIKE layout is refused:
    what it looks like, and for a group-size file the data file it belongs beside (the same
    name without `.query` / `.group`, when that file exists)."""
    if fmt != "group-sizes":
        return f"looks like {LOOKS_LIKE[fmt]}; it holds no queries with features to read"
    stem = next((path[: -len(s)] for s in GROUP_SUFFIXES if path.lower().endswith(s)), None)
    if stem is not None and fs.exists(stem) and not fs.isdir(stem):
        where = (f"it belongs beside its data file {stem}: give --input {stem} (the group "
                 f"sizes beside it are found by name)")
    else:
        where = ("it belongs beside its data file DATA, named DATA.query (LightGBM) or "
                 "DATA.group (XGBoost): give --input DATA")
    return (f"is a group-size file (LightGBM .query / XGBoost .group: one query's row count "
            f"per line), not data; {where}")


def first_record(path: str) -> dict | None:
    """The first JSON object of a JSON-lines file (None when it does not parse)."""
    lines, _ = head_lines(path)
    try:
        record = json.loads(lines[0]) if lines else None
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


__all__ = ["LOOKS_LIKE", "READABLE", "detect_format", "first_record", "is_parquet_file",
           "looks_like", "not_queries_message"]
