"""Streaming readers into canonical query batches; memory bounded by the batch size.

Entry points:
  detect_format(path) -> layout name (by content; see readers.detect)
  read_queries(path, fmt, ...) -> Iterator[QueryBatch]
  scan_space / dataset_space -> the dataset's FeatureSpace (the per-format scans dispatched
    here; its types and rules in readers.space)
  plan_splits(path, fmt, target_bytes) -> read_queries keyword sets that split one file
  plan_inputs(paths, fmt, ...) -> InputPlan: layouts, space and read keywords of a whole run

The readers stay inside data_contracts: what they make is the canonical contract itself (query
batches in QUERY_SCHEMA, quarantine rows with reasons); they depend only on the contract's own
modules (schema, quarantine, reasons, errors, fs; text_features for text inputs), and outside
data_contracts only pipelines and trainers import them, through this package.

Inside, imports run one way: lines (BOM, decoding, comment lines, head lines), space (the
FeatureSpace types and their resolution) and base are used by the format readers (svmlight,
svmlight_scan, records, layout, rows, tabular, hf, rollouts, text), detect asks svmlight and
layout about files beside an input, and this module dispatches to all of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.readers.base import QueryBatch
from data_contracts.readers.detect import (LOOKS_LIKE, READABLE, detect_format, looks_like,
                                           not_queries_message)
from data_contracts.readers.hf import read_hf
from data_contracts.readers.layout import scan_table, table_layout
from data_contracts.readers.rollouts import read_rollouts
from data_contracts.readers.space import (DEFAULT_MAX_FEATURE_ID, FeatureSpace, SpaceStats,
                                          resolve_space)
from data_contracts.readers.svmlight import (GROUP_SUFFIXES, REPEATED_FEATURES,
                                             first_repeated_feature, group_file, has_qid,
                                             read_svmlight, repeated_features_warning)
from data_contracts.readers.svmlight_scan import scan_svmlight
from data_contracts.readers.tabular import TABLE_FORMATS, read_table_queries
from data_contracts.readers.text import (TEXT_FORMATS, TextOptions, apply_teacher_run,
                                         is_text_column_map, read_hf_text, read_text_queries)

FORMATS = ("auto",) + READABLE + TEXT_FORMATS


def _resolve_format(path: str, fmt: str) -> str:
    """`fmt`, detected when `auto`; a detected name (LOOKS_LIKE, `empty`) passes as it is."""
    if fmt not in FORMATS and fmt not in LOOKS_LIKE:
        raise InputError(path, f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    if fmt == "auto":
        return detect_format(path)
    if not fs.exists(path):
        raise InputError(path, "file not found")
    return fmt


def _query_file(path: str, fmt: str) -> str | None:
    """The group file an explicit lightgbm/xgboost format needs (InputError when absent)."""
    if fmt not in ("lightgbm", "xgboost"):
        return None
    found = group_file(path)
    suffix = ".query" if fmt == "lightgbm" else ".group"
    if found is None:
        raise InputError(path + suffix, f"group-size file not found ({fmt} layout needs "
                                        f"PATH{suffix})")
    return found


def read_queries(path: str, fmt: str = "auto", *, batch_size: int = 256,
                 column_map: Mapping[str, str] | None = None, source: str | None = None,
                 split: str | None = None, num_features: int | None = None,
                 space: FeatureSpace | None = None, byte_range: tuple[int, int] | None = None,
                 row_groups: list[int] | None = None, group_rows: bool = False,
                 max_feature_id: int = DEFAULT_MAX_FEATURE_ID,
                 id_prefix: str | None = None, text: TextOptions | None = None,
                 repeated_features: str = "last") -> Iterator[QueryBatch]:
    """Streams any supported input as canonical (not yet validated) query batches.

    Args:
      path: the input file or folder (local, gs://, s3://; compressed by magic bytes).
      fmt: one of FORMATS; `auto` detects it by content (`detect_format`).
      batch_size: queries per batch.
      column_map: contract column -> input column, for every tabular format (Parquet, CSV,
        JSONL, Hugging Face); see readers.tabular for the names of a rows table.
      source: the `source` column's value (default: the file name).
      split: the `split` column's value.
      num_features: dense width for SVMlight (prefer `space`).
      space: the dataset's feature space (`dataset_space`); None decides it from this file
        (for SVMlight a scan of the whole file, also when reading one `byte_range`: pass the
        space when reading splits).
      byte_range: (start, end) of one split of an uncompressed SVMlight file with qid (see
        `read_svmlight`); `plan_splits` makes them.
      row_groups: Parquet row groups to read (one split of a Parquet file).
      group_rows: group the rows of a query that are not adjacent, in memory per file
        (`--group-rows`), instead of refusing the file.
      max_feature_id: a larger SVMlight feature id quarantines its query
        (`feature_id_out_of_range`).
      id_prefix: the FILE of made-up `FILE:N` query ids of a group-file layout (default: the
        file's name; `plan_inputs` lengthens it when two inputs share a name).
      text: candidates, qrels and teacher run of text inputs (readers/text.py); its
        `teacher_run` also sets the demonstration order of feature inputs.
      repeated_features: an SVMlight feature id repeated on one line keeps its last value
        (`last`) or quarantines its query (`quarantine`); the repeats are counted in
        `QueryBatch.counts["duplicate_feature_ids"]` (`--repeated-features`).

    Raises:
      InputError: the input is unusable as a whole: missing, unknown or known-but-not-queries
        layout (`looks like TREC qrels: qid iter docno rel`), missing columns or group file,
        rows of a query not adjacent, a width mismatch.
    """
    fmt = _resolve_format(path, fmt)
    if fmt == "empty":
        return iter(())
    if fmt in LOOKS_LIKE:
        raise InputError(path, not_queries_message(path, fmt))
    if fmt in TEXT_FORMATS:
        return read_text_queries(path, fmt, text, batch_size=batch_size, source=source,
                                 split=split, column_map=column_map)
    if fmt == "hf" and is_text_column_map(column_map):
        return read_hf_text(path, column_map=column_map, options=text, batch_size=batch_size,
                            source=source, split=split)
    if text is not None and text.teacher_run:  # a feature input with a teacher run
        return apply_teacher_run(read_queries(
            path, fmt, batch_size=batch_size, column_map=column_map, source=source, split=split,
            num_features=num_features, space=space, byte_range=byte_range,
            row_groups=row_groups, group_rows=group_rows, max_feature_id=max_feature_id,
            id_prefix=id_prefix, repeated_features=repeated_features), text.teacher_run)
    if fmt in ("svmlight", "lightgbm", "xgboost"):
        return read_svmlight(path, batch_size=batch_size, query_file=_query_file(path, fmt),
                             num_features=num_features, source=source, split=split, space=space,
                             byte_range=byte_range, group_rows=group_rows,
                             max_feature_id=max_feature_id, id_prefix=id_prefix,
                             repeated=repeated_features)
    if byte_range is not None:
        raise InputError(path, f"byte ranges split only SVMlight files with qid, not {fmt}")
    if fmt in TABLE_FORMATS:
        return read_table_queries(path, fmt, batch_size=batch_size, column_map=column_map,
                                  source=source, split=split, row_groups=row_groups,
                                  group_rows=group_rows, space=space)
    return read_hf(path, batch_size=batch_size, column_map=column_map, source=source, split=split)


def scan_space(path: str, fmt: str = "auto", *, column_map: Mapping[str, str] | None = None,
               max_feature_id: int = DEFAULT_MAX_FEATURE_ID,
               byte_range: tuple[int, int] | None = None, **_ignored) -> SpaceStats:
    """What one input says about the dataset's feature space (one streaming pass for SVMlight,
    the schema only for tables); merge the results of every input with `SpaceStats.merge`.

    `byte_range` (an SVMlight split, `plan_splits`) scans only the lines starting in it; the
    scans of a file's splits merge to the whole file's.

    Extra keyword arguments (any read_queries keyword) are accepted and ignored, so a caller can
    pass the same keywords it reads with.
    """
    fmt = _resolve_format(path, fmt)
    if fmt in ("svmlight", "lightgbm", "xgboost"):
        return scan_svmlight(path, max_feature_id, byte_range=byte_range)
    if fmt in TABLE_FORMATS:
        return scan_table(path, fmt, column_map=column_map)
    return SpaceStats()


def dataset_space(paths: list[str], fmt: str = "auto", *, zero_based: bool | None = None,
                  column_map: Mapping[str, str] | None = None,
                  max_feature_id: int = DEFAULT_MAX_FEATURE_ID) -> FeatureSpace:
    """The one FeatureSpace of a dataset read from `paths` (scan, merge, resolve).

    Raises:
      InputError: as `resolve_space` (id 0 under --one-based; inputs of different widths), or
        an input is unusable (as `read_queries`).
    """
    stats = SpaceStats()
    for path in paths:
        fmt_here = _resolve_format(path, fmt)
        if fmt_here in LOOKS_LIKE:
            continue  # read_queries says what it looks like
        stats = stats.merge(scan_space(path, fmt_here, column_map=column_map,
                                       max_feature_id=max_feature_id))
    return resolve_space(stats, zero_based)


@dataclass
class InputPlan:
    """Everything a run needs to read its inputs as one dataset (made by `plan_inputs`).

    Attributes:
      space: the dataset's FeatureSpace (record `space.to_dict()` as the manifest's
        `feature_space`; start validation with `ValidationState(feature_width=space.width)`).
      layouts: input path -> what `detect_format` says it is (for `unusable_reason`).
      read_kwargs: the read_queries keywords every input is read with.
    """

    space: FeatureSpace
    layouts: dict
    fmt: str = "auto"
    read_kwargs: dict = field(default_factory=dict)
    id_prefixes: dict = field(default_factory=dict)

    def read(self, path: str, **overrides) -> Iterator[QueryBatch]:
        """read_queries(path) with the plan's format, space and keywords (`overrides` win:
        e.g. a split's `byte_range`)."""
        kwargs = {**self.read_kwargs, "space": self.space,
                  "id_prefix": self.id_prefixes.get(path), **overrides}
        return read_queries(path, self.fmt, **kwargs)


def unique_names(paths: list[str]) -> dict:
    """Path -> its shortest trailing part (`rank.txt`, `test/rank.txt`, ...) that no other path
    ends with, so made-up ids stay distinct across inputs that share a file name."""
    parts = {p: [x for x in p.replace("\\", "/").split("/") if x] for p in paths}
    out = {}
    for path, mine in parts.items():
        for n in range(1, len(mine) + 1):
            tail = mine[-n:]
            if all(other[-n:] != tail for q, other in parts.items() if q != path):
                break
        out[path] = "/".join(tail)
    return out


def plan_inputs(paths: list[str], fmt: str = "auto", *, zero_based: bool | None = None,
                column_map: Mapping[str, str] | None = None, group_rows: bool = False,
                max_feature_id: int = DEFAULT_MAX_FEATURE_ID, batch_size: int = 256,
                split: str | None = None, repeated_features: str = "last") -> InputPlan:
    """Detects every input, decides the dataset's feature space, and fixes the read keywords.

    Raises:
      InputError: an input is missing or of unknown layout, id 0 under `zero_based=False`, or
        inputs of different widths (one line each).
    """
    layouts = {}
    for path in paths:
        try:
            layouts[path] = detect_format(path)
        except InputError:
            if fmt == "auto":
                raise
            layouts[path] = "unknown"
    space = dataset_space(paths, fmt, zero_based=zero_based, column_map=column_map,
                          max_feature_id=max_feature_id)
    return InputPlan(space=space, layouts=layouts, fmt=fmt, read_kwargs={
        "batch_size": batch_size, "column_map": column_map, "split": split,
        "group_rows": group_rows, "max_feature_id": max_feature_id,
        "repeated_features": repeated_features},
        id_prefixes=unique_names(list(paths)))


def plan_splits(path: str, fmt: str = "auto", target_bytes: int = 64 << 20, *,
                group_rows: bool = False) -> list[dict]:
    """Keyword sets for `read_queries` that together read `path` once, each about
    `target_bytes` of input: `{"byte_range": (start, end)}` for an uncompressed SVMlight file
    with qid, `{"row_groups": [...]}` for a Parquet file, `{}` (the whole file) otherwise
    (compressed inputs, `.query`/`.group` layouts, `group_rows`, JSON lines, CSV, folders,
    one-row-per-document Parquet).
    """
    fmt = _resolve_format(path, fmt)
    if group_rows or fs.isdir(path):
        return [{}]
    if fmt == "svmlight":
        with fs.open_read(path) as raw:
            if fs.compression_of(raw.read(8)) is not None:
                return [{}]
        if group_file(path) is not None and not has_qid(path):
            return [{}]
        size = fs.size(path)
        step = max(1, int(target_bytes))
        bounds = list(range(0, size, step)) + [size]
        if len(bounds) <= 2:  # one split: read whole, so errors name lines, not bytes
            return [{}]
        return [{"byte_range": (a, b)} for a, b in zip(bounds[:-1], bounds[1:])]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        if table_layout(path, fmt) is not None:
            return [{}]  # one row per document: a query may span row groups

        with fs.open_read(path) as raw:
            meta = pq.ParquetFile(raw).metadata
        plans, current, held = [], [], 0
        for i in range(meta.num_row_groups):
            current.append(i)
            held += meta.row_group(i).total_byte_size
            if held >= target_bytes:
                plans.append({"row_groups": current})
                current, held = [], 0
        if current:
            plans.append({"row_groups": current})
        return plans or [{}]
    return [{}]


__all__ = ["FORMATS", "GROUP_SUFFIXES", "LOOKS_LIKE", "REPEATED_FEATURES", "FeatureSpace",
           "InputPlan", "QueryBatch", "SpaceStats", "TextOptions", "dataset_space",
           "detect_format", "first_repeated_feature", "looks_like", "not_queries_message", "plan_inputs", "plan_splits",
           "read_queries", "read_rollouts", "repeated_features_warning", "resolve_space",
           "scan_space"]
