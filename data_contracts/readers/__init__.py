"""Streaming readers into canonical query batches; memory bounded by the batch size."""
from __future__ import annotations

import os
from typing import Iterator, Mapping

from data_contracts.errors import InputError
from data_contracts.readers.base import QueryBatch
from data_contracts.readers.hf import read_hf
from data_contracts.readers.rollouts import read_rollouts
from data_contracts.readers.svmlight import _first_line_has_qid, read_svmlight
from data_contracts.readers.tabular import read_query_table_file

FORMATS = ("auto", "svmlight", "lightgbm", "parquet", "jsonl", "hf")


def detect_format(path: str) -> str:
    """Guesses an input's format from its name and layout.

    Raises:
      InputError: the path does not exist or its format cannot be told.
    """
    if not os.path.exists(path):
        raise InputError(path, "file not found")
    if os.path.isdir(path):
        if any(os.path.exists(os.path.join(path, f))
               for f in ("dataset_info.json", "dataset_dict.json")):
            return "hf"
        if any(f.endswith(".parquet") for f in os.listdir(path)):
            return "parquet"
        raise InputError(path, "unknown format: a folder that is neither a saved Hugging Face "
                               "dataset nor holds .parquet files")
    lower = path.lower()
    if lower.endswith(".parquet"):
        return "parquet"
    if lower.endswith((".jsonl", ".json")):
        return "jsonl"
    if os.path.exists(path + ".query") and not _first_line_has_qid(path):
        return "lightgbm"  # a file whose lines carry qid: keeps its own groups
    if lower.endswith((".txt", ".svm", ".svmlight", ".letor", ".train", ".test", ".vali")) or \
            "." not in os.path.basename(path):
        return "svmlight"
    raise InputError(path, "unknown format (expected svmlight, lightgbm, parquet, jsonl or hf; "
                           "name it with --input-format)")


def read_queries(path: str, fmt: str = "auto", *, batch_size: int = 256,
                 column_map: Mapping[str, str] | None = None, source: str | None = None,
                 split: str | None = None, num_features: int | None = None,
                 row_groups: list[int] | None = None) -> Iterator[QueryBatch]:
    """Streams any supported input as canonical (not yet validated) query batches.

    Args:
      path: the input file or folder.
      fmt: one of FORMATS; `auto` detects it.
      batch_size: queries per batch.
      column_map: for `hf`, contract column -> dataset column.
      source: the `source` column's value (default: the file name).
      split: the `split` column's value.
      num_features: dense width for SVMlight (default: found by a first pass).
      row_groups: for one Parquet file, read only these row groups (a split of the file).
    """
    if fmt not in FORMATS:
        raise InputError(path, f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt in ("svmlight", "lightgbm"):
        query_file = path + ".query" if fmt == "lightgbm" else None
        if fmt == "lightgbm" and not os.path.exists(query_file):
            raise InputError(query_file, "group-size file not found (lightgbm layout needs "
                                         "PATH.query)")
        return read_svmlight(path, batch_size=batch_size, query_file=query_file,
                             num_features=num_features, source=source, split=split)
    if fmt in ("parquet", "jsonl"):
        return read_query_table_file(path, fmt, batch_size, source, split,
                                     row_groups=row_groups if fmt == "parquet" else None)
    return read_hf(path, batch_size=batch_size, column_map=column_map, source=source, split=split)


__all__ = ["FORMATS", "QueryBatch", "detect_format", "read_queries", "read_rollouts"]
