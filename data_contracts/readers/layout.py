"""Which columns of a table input hold what: canonical query records, or one row per document
(RowsLayout), found by column names, `column_map`, or a CatBoost column description (`.cd`).

`table_layout` decides it from a file's schema (Parquet, CSV) or first record (JSONL); `scan_table`
is the feature-space scan of a table (its feature columns; list-column features are not scanned).
See readers.tabular for the layouts and readers.rows for reading a rows table.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Mapping

import pyarrow as pa

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.readers.lines import head_lines
from data_contracts.readers.records import csv_reader, json_records, open_parquet, parquet_files
from data_contracts.readers.space import SpaceStats

ROW_NAMES = {
    "query_id": ("query_id", "qid", "queryid", "query", "group_id", "groupid", "group",
                 "topic_id", "topic"),
    "doc_id": ("doc_id", "docid", "docno", "document_id", "doc", "document", "passage_id",
               "pid"),
    "label": ("label", "relevance", "rel", "target", "grade", "judgment", "y"),
    "features": ("features", "feature", "feature_vector", "vector", "x"),
}
# numeric columns that are not features: a saved pandas index, sample weights, fold numbers
NOT_FEATURES = ("", "index", "unnamed: 0", "level_0", "weight", "weights", "sample_weight",
                "fold")


def _column_names(path: str, fmt: str) -> tuple[list[str], dict]:
    """(column names, {name: arrow type or a sample value}) of a table input, cheaply."""
    if fmt == "parquet":
        schema = open_parquet(parquet_files(path)[0]).schema_arrow
        return schema.names, {f.name: f.type for f in schema}
    if fmt == "csv":
        reader = csv_reader(path, 1 << 16)
        return reader.schema.names, {f.name: f.type for f in reader.schema}
    for location, row, _, _ in json_records(path, "query"):
        if row is not None:
            return list(row), dict(row)
    return [], {}


def _is_nested(value) -> bool:
    if isinstance(value, pa.DataType):
        return pa.types.is_list(value) and pa.types.is_list(value.value_type) or \
            pa.types.is_large_list(value)
    return isinstance(value, list) and any(isinstance(v, list) for v in value)


@dataclass
class RowsLayout:
    """Which columns of a one-row-per-document table hold what.

    Attributes:
      query_id, doc_id, label: column names (doc_id / label None when absent).
      list_features: the name of one list column holding a document's features, else None.
      feature_columns: one column per feature, in file order (when list_features is None).
    """

    query_id: str
    doc_id: str | None = None
    label: str | None = None
    list_features: str | None = None
    feature_columns: list = field(default_factory=list)


def _find(names: list[str], wanted: tuple[str, ...]) -> str | None:
    lower = {n.lower(): n for n in names}
    for w in wanted:
        if w in lower:
            return lower[w]
    return None


def table_layout(path: str, fmt: str, column_map: Mapping[str, str] | None = None
                 ) -> RowsLayout | None:
    """The rows layout of a table input, or None when it is in the canonical columns.

    Raises:
      InputError: a rows table without a query id or feature columns, or a mapped column that
        is not there.
    """
    if fmt == "catboost":
        return catboost_layout(path)
    names, types = _column_names(path, fmt)
    cmap = dict(column_map or {})
    canonical_docs = cmap.get("doc_ids", "doc_ids")
    canonical_feats = cmap.get("features", "features")
    nested = canonical_feats in names and _is_nested(types.get(canonical_feats))
    if canonical_docs in names or nested:
        return None
    if fmt == "jsonl" and not _rows_record(names, types, cmap):
        return None  # no record parses, or the first one is a query record missing columns
    for key in ("query_id", "doc_id", "doc_ids", "label", "labels"):
        if key in cmap and cmap[key] not in names:
            raise InputError(path, f"mapped column not in file (has {names})", column=cmap[key])
    qid = cmap.get("query_id") or _find(names, ROW_NAMES["query_id"])
    if qid is None:
        raise InputError(path, f"no query id column (has {names[:12]}; name it with "
                               f"--column-map query_id=NAME)", column="query_id")
    doc = cmap.get("doc_id") or cmap.get("doc_ids") or _find(names, ROW_NAMES["doc_id"])
    label = cmap.get("label") or cmap.get("labels") or _find(names, ROW_NAMES["label"])
    used = {qid, doc, label}
    spec = cmap.get("features")
    layout = RowsLayout(query_id=qid, doc_id=doc, label=label)
    if spec is not None and ("*" in spec or "?" in spec or "|" in spec):
        patterns = spec.split("|")
        layout.feature_columns = [n for n in names if n not in used and
                                  any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    elif spec is not None:
        if spec not in names:
            raise InputError(path, f"mapped column not in file (has {names[:12]})", column=spec)
        if _is_list(types.get(spec)):
            layout.list_features = spec
        else:
            layout.feature_columns = [spec]
    else:
        listed = _find([n for n in names if _is_list(types.get(n))], ROW_NAMES["features"])
        if listed is not None:
            layout.list_features = listed
        else:
            candidates = [n for n in names if n not in used and not _not_feature(n)]
            texts = [n for n in candidates if _is_text(types.get(n))]
            numeric_texts = _mostly_numbers(path, fmt, texts) if texts else set()
            layout.feature_columns = [n for n in candidates if _is_numeric(types.get(n))
                                      or n in numeric_texts]
    if layout.list_features is None and not layout.feature_columns:
        raise InputError(path, f"no feature columns (has {names[:12]}; name them with "
                               f"--column-map features=COL|COL or features=PREFIX*)",
                         column="features")
    return layout


def _rows_record(names: list[str], values: dict, cmap: Mapping[str, str]) -> bool:
    """Whether a JSON record is one document's row: a scalar query id beside scalar or list
    features, and no `doc_ids` list."""
    qid = cmap.get("query_id") or _find(names, ROW_NAMES["query_id"])
    if qid is None or isinstance(values.get(qid), (list, dict)):
        return False
    others = [n for n in names if n != qid]
    return any(not isinstance(values.get(n), (list, dict)) or n == cmap.get("features")
               or n.lower() in ROW_NAMES["features"] for n in others)


def _not_feature(name: str) -> bool:
    lower = name.strip().lower()
    return lower in NOT_FEATURES or lower.startswith(("__index_level_", "unnamed:"))


def _is_list(value) -> bool:
    if isinstance(value, pa.DataType):
        return pa.types.is_list(value) or pa.types.is_large_list(value)
    return isinstance(value, list)


def _is_text(value) -> bool:
    if isinstance(value, pa.DataType):
        return pa.types.is_string(value) or pa.types.is_large_string(value)
    return isinstance(value, str)


TEXT_SAMPLE_ROWS = 1000  # values of a text column looked at to tell a feature from a text


def _mostly_numbers(path: str, fmt: str, columns: list[str]) -> set[str]:
    """The text columns whose first TEXT_SAMPLE_ROWS non-empty values are mostly (more than
    half) numbers: feature columns with a few bad cells (`abc`, `n/a`), whose rows are then
    quarantined one query at a time (`unparseable_record`), rather than text columns (titles,
    urls) that are not features. Decided from the file's head, so every split agrees."""
    sample: dict[str, list] = {c: [] for c in columns}
    if fmt == "csv":
        reader = csv_reader(path, 1 << 16)
        batch = reader.read_next_batch()
        for c in columns:
            sample[c] = batch.column(batch.schema.get_field_index(c)).to_pylist()
    elif fmt == "parquet":
        handle = open_parquet(parquet_files(path)[0])
        for batch in handle.iter_batches(batch_size=TEXT_SAMPLE_ROWS, columns=columns):
            for c in columns:
                sample[c] = batch.column(c).to_pylist()
            break
    else:
        seen = 0
        for _, row, _, _ in json_records(path, "query"):
            if row is None:
                continue
            for c in columns:
                sample[c].append(row.get(c))
            seen += 1
            if seen >= TEXT_SAMPLE_ROWS:
                break
    out = set()
    for c, values in sample.items():
        values = [v for v in values[:TEXT_SAMPLE_ROWS] if v is not None and str(v).strip()]
        good = sum(_is_number_text(v) for v in values)
        if values and 2 * good > len(values):
            out.add(c)
    return out


def _is_number_text(value) -> bool:
    """Whether a sampled cell reads as a number (`"0.5"`, `7`; not `abc`, lists, booleans)."""
    if isinstance(value, (bool, list, dict)):
        return False
    try:
        float(value)
    except (ValueError, TypeError):
        return False
    return True


def _is_numeric(value) -> bool:
    if isinstance(value, pa.DataType):
        return pa.types.is_integer(value) or pa.types.is_floating(value) or \
            pa.types.is_boolean(value) or pa.types.is_null(value)
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def scan_table(path: str, fmt: str, column_map: Mapping[str, str] | None = None) -> SpaceStats:
    """SpaceStats of a table input: its number of feature columns (and their names) when it has
    one column per feature; nothing for list-column features (not scanned)."""
    stats = SpaceStats()
    layout = table_layout(path, fmt, column_map)
    if layout is not None and layout.feature_columns:
        stats.widths[len(layout.feature_columns)] = path
        stats.names = tuple(layout.feature_columns)
    return stats


# CatBoost column roles (https://catboost.ai/docs/en/concepts/input-data_column-descfile)
_CD_QUERY = ("groupid", "queryid")
_CD_LABEL = ("label", "target")
_CD_DOC = ("sampleid", "docid")


def catboost_cd(path: str) -> str | None:
    """The CatBoost column description beside a TSV pool: `PATH.cd`, `STEM.cd`, `pool.cd`, or
    the only `.cd` file in its folder."""
    name = fs.basename(path)
    folder = fs.dirname(path) or "."
    stem = name.rsplit(".", 1)[0] if "." in name else name
    for candidate in (path + ".cd", fs.join(folder, stem + ".cd"), fs.join(folder, "pool.cd")):
        if fs.exists(candidate) and not fs.isdir(candidate):
            return candidate
    found = [f for f in fs.list_files(folder) if f.endswith(".cd")
             and fs.dirname(f) == folder] if fs.isdir(folder) else []
    return found[0] if len(found) == 1 else None


def catboost_layout(path: str, cd_path: str | None = None) -> RowsLayout:
    """The rows layout of a headerless CatBoost TSV pool from its column description file
    (`INDEX<TAB>TYPE[<TAB>NAME]` per line; unlisted columns are `Num`, as in CatBoost).

    Raises:
      InputError: no description file, a malformed one, or one naming no GroupId column.
    """
    cd_path = cd_path or catboost_cd(path)
    if cd_path is None:
        raise InputError(path, "a CatBoost TSV pool needs its column description (PATH.cd, "
                               "INDEX<TAB>TYPE per line) beside it")
    roles = {}
    with fs.open_text(cd_path) as handle:
        for number, line in enumerate(handle, 1):
            parts = line.strip().split("\t") if "\t" in line else line.split()
            if not parts or not parts[0] or parts[0].startswith("#"):
                continue
            if not parts[0].isdigit() or len(parts) < 2:
                raise InputError(cd_path, f"line {number}: expected INDEX<TAB>TYPE, got "
                                          f"{line.strip()!r}")
            roles[int(parts[0])] = parts[1].strip().lower()
    lines, _ = head_lines(path)
    sep = "\t" if lines and "\t" in lines[0] else ","
    n_columns = len(lines[0].split(sep)) if lines else 0
    layout = RowsLayout(query_id="")
    for i in range(n_columns):
        role, name = roles.get(i, "num"), f"f{i}"
        if role in _CD_QUERY:
            layout.query_id = name
        elif role in _CD_LABEL:
            layout.label = name
        elif role in _CD_DOC:
            layout.doc_id = name
        elif role == "num":
            layout.feature_columns.append(name)
    if not layout.query_id:
        raise InputError(cd_path, "names no GroupId (or QueryId) column: not a ranking pool")
    return layout


__all__ = ["NOT_FEATURES", "ROW_NAMES", "TEXT_SAMPLE_ROWS", "RowsLayout", "catboost_cd",
           "catboost_layout", "scan_table", "table_layout"]
