"""Where a query's demonstration comes from: a teacher-scores column, the labels' ideal order, or none."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from data_contracts.arrays import list_lengths, pad_ragged

TEACHER_MODES = ("auto", "column", "labels", "none")


def teacher_scores(table: pa.Table, mode: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Per-document teacher scores as [B, D] (higher is better) and a [B] has-demonstration mask.

    Args:
      table: validated queries (QUERY_SCHEMA).
      mode: `column` uses `teacher_scores`, else `teacher_order` (position 0 scores highest);
        `labels` uses the labels (their ideal order); `auto` uses the column where a query has
        one and the labels otherwise; `none` gives no demonstrations.
    """
    if mode not in TEACHER_MODES:
        raise ValueError(f"unknown teacher mode {mode!r} (expected one of {TEACHER_MODES})")
    n_docs = list_lengths(table.column("doc_ids"))
    b, d = len(n_docs), int(n_docs.max()) if len(n_docs) else 0
    scores = np.zeros((b, d), dtype=np.float32)
    has = np.zeros(b, dtype=bool)
    if mode == "none" or b == 0:
        return scores, has
    if mode in ("column", "auto"):
        col_len = list_lengths(table.column("teacher_scores"))
        ok = col_len == n_docs
        if ok.any():
            scores[ok] = pad_ragged(table.column("teacher_scores"), n_docs)[ok]
            has |= ok
        order_len = list_lengths(table.column("teacher_order"))
        by_order = (order_len == n_docs) & ~has
        if by_order.any():
            order = pad_ragged(table.column("teacher_order"), n_docs, dtype=np.int64)
            for i in np.flatnonzero(by_order):  # position p of the order gets score n - p
                n = n_docs[i]
                scores[i, order[i, :n]] = np.arange(n, 0, -1, dtype=np.float32)
            has |= by_order
    if mode in ("labels", "auto"):
        lab_len = list_lengths(table.column("labels"))
        by_labels = (lab_len == n_docs) & ~has
        if by_labels.any():
            scores[by_labels] = pad_ragged(table.column("labels"), n_docs)[by_labels]
            has |= by_labels
    return scores, has


def teacher_orders(scores: np.ndarray, n_docs: np.ndarray) -> list[list[int]]:
    """Each query's teacher order (document indices, best first); ties keep input order."""
    orders = []
    for i, n in enumerate(n_docs):
        orders.append(np.argsort(-scores[i, :n], kind="stable").astype(np.int32).tolist())
    return orders
