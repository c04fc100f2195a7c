"""Canonical query tables as padded numpy arrays, the form the policy, sampler and rewards use."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass
class PaddedQueries:
    """A batch of queries padded to its longest query.

    Attributes:
      query_ids: B query ids.
      features: [B, D, F] float32, zeros where padded.
      mask: [B, D] bool, True for real documents.
      labels: [B, D] float32, zeros where padded or where the input has no labels.
      has_labels: [B] bool.
      n_docs: [B] int64.
    """

    query_ids: list
    features: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    has_labels: np.ndarray
    n_docs: np.ndarray


def _combined(column) -> pa.Array:
    """One array; a single chunk is used as it is (combine_chunks would copy it)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def list_lengths(column) -> np.ndarray:
    """Per-row lengths of a list column (0 for nulls), as int64."""
    return pc.fill_null(pc.list_value_length(_combined(column)), 0).to_numpy().astype(np.int64)


def pad_ragged(column, n_docs: np.ndarray, fill: float = 0.0, dtype=np.float32) -> np.ndarray:
    """A list<number> column as [B, max(n_docs)], `fill` where missing or padded."""
    b, d = len(n_docs), int(n_docs.max()) if len(n_docs) else 0
    out = np.full((b, d), fill, dtype=dtype)
    array = _combined(column)
    lengths = list_lengths(array)
    valid = lengths == n_docs
    if valid.any():
        flat = pc.list_flatten(array.filter(pa.array(valid))).to_numpy(zero_copy_only=False)
        rows = np.repeat(np.flatnonzero(valid), n_docs[valid])
        cols = _positions(n_docs[valid])
        out[rows, cols] = flat.astype(dtype, copy=False)
    return out


def _positions(lengths: np.ndarray) -> np.ndarray:
    """0..len-1 for each length, concatenated."""
    total = int(lengths.sum())
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total) - starts


def pad_queries(table: pa.Table) -> PaddedQueries:
    """Pads a validated query table (QUERY_SCHEMA) into arrays, without a Python loop over rows."""
    n_docs = list_lengths(table.column("doc_ids"))
    b = table.num_rows
    d = int(n_docs.max()) if b else 0
    features_col = _combined(table.column("features"))
    inner = pc.list_flatten(features_col)
    width = int(pc.list_value_length(inner)[0].as_py()) if len(inner) else 0
    flat = pc.list_flatten(inner).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if b and (n_docs == d).all():  # no padding: the flat values are the array, row-major
        features = np.array(flat.reshape(b, d, width), dtype=np.float32)  # an owned copy
        mask = np.ones((b, d), dtype=bool)
    else:
        features = np.zeros((b, d, width), dtype=np.float32)
        rows = np.repeat(np.arange(b), n_docs)
        cols = _positions(n_docs)
        features[rows, cols] = flat.reshape(-1, width) if width else flat.reshape(len(rows), 0)
        mask = np.zeros((b, d), dtype=bool)
        mask[rows, cols] = True
    labels_len = list_lengths(table.column("labels"))
    return PaddedQueries(
        query_ids=table.column("query_id").to_pylist(), features=features, mask=mask,
        labels=pad_ragged(table.column("labels"), n_docs), has_labels=labels_len == n_docs,
        n_docs=n_docs,
    )
