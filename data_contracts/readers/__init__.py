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
from data_contracts.readers.text import (TEXT_FORMATS, TextOptions, apply_teacher_run,
                                         is_text_column_map, read_hf_text, read_text_queries)

FORMATS = ("auto", "svmlight", "lightgbm", "parquet", "jsonl", "hf") + TEXT_FORMATS


def detect_format(path: str) -> str:
    """Guesses an input's format from its name and layout.

    Raises:
      InputError: the path does not exist or its format cannot be told.
    """
    if not os.path.exists(path):
        raise InputError(path, "file not found")
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "queries.jsonl")) and any(
                os.path.exists(os.path.join(path, f)) for f in ("corpus.jsonl", "corpus.jsonl.gz")):
            return "beir"
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
                 text: TextOptions | None = None) -> Iterator[QueryBatch]:
    """Streams any supported input as canonical (not yet validated) query batches.

    Args:
      path: the input file or folder.
      fmt: one of FORMATS; `auto` detects it.
      batch_size: queries per batch.
      column_map: for `hf`, contract column -> dataset column.
      source: the `source` column's value (default: the file name).
      split: the `split` column's value.
      num_features: dense width for SVMlight (default: found by a first pass).
      text: candidates, qrels and teacher run of text inputs (readers/text.py); its
        `teacher_run` also sets the demonstration order of feature inputs.
    """
    if fmt not in FORMATS:
        raise InputError(path, f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt in TEXT_FORMATS:
        return read_text_queries(path, fmt, text, batch_size=batch_size, source=source,
                                 split=split)
    if fmt == "hf" and is_text_column_map(column_map):
        return read_hf_text(path, column_map=column_map, options=text, batch_size=batch_size,
                            source=source, split=split)
    if text is not None and text.teacher_run:  # a feature input with a teacher run
        return apply_teacher_run(read_queries(path, fmt, batch_size=batch_size,
                                              column_map=column_map, source=source, split=split,
                                              num_features=num_features), text.teacher_run)
    if fmt in ("svmlight", "lightgbm"):
        query_file = path + ".query" if fmt == "lightgbm" else None
        if fmt == "lightgbm" and not os.path.exists(query_file):
            raise InputError(query_file, "group-size file not found (lightgbm layout needs "
                                         "PATH.query)")
        return read_svmlight(path, batch_size=batch_size, query_file=query_file,
                             num_features=num_features, source=source, split=split)
    if fmt in ("parquet", "jsonl"):
        return read_query_table_file(path, fmt, batch_size, source, split)
    return read_hf(path, batch_size=batch_size, column_map=column_map, source=source, split=split)


__all__ = ["FORMATS", "QueryBatch", "TextOptions", "detect_format", "read_queries",
           "read_rollouts"]
