"""Validation: every query record ends ok or quarantined with a reason; nothing is dropped silently.

Checks run column-wise on Arrow offsets and flat numpy values, so a batch costs a few vectorized
passes rather than a Python loop over documents. The first failing check (in the order of
`Reason.QUERY_REASONS`; a duplicate query id is decided last, see `validate_queries`) names the
record's reason; `detail` says what was found.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data_contracts.quarantine import quarantine_row, quarantine_table
from data_contracts.readers.base import QueryBatch
from data_contracts.reasons import Reason
from data_contracts.schema import QUARANTINE_SCHEMA


@dataclass
class ValidationState:
    """What validation remembers across the batches of one input stream.

    Attributes:
      label_min, label_max: the declared label range (inclusive).
      feature_width: the dataset's feature width; set by the first valid query when None.
      seen_query_ids: query ids already accepted (a repeat is quarantined, the first one kept).
      require_labels: a query without labels is quarantined (`missing_labels`): a reward that
        verifies rankings against labels cannot score it.
    """

    label_min: float = 0.0
    label_max: float = 4.0
    require_labels: bool = False
    feature_width: int | None = None
    seen_query_ids: set = field(default_factory=set)


def _array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One array; a single chunk is used as it is (combine_chunks would copy it)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _lengths(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return pc.fill_null(pc.list_value_length(_array(column)), -1).to_numpy(zero_copy_only=False)


def _flat(column) -> pa.Array:
    return pc.list_flatten(_array(column))


def _per_row_any(bad_flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """For flat per-element flags and per-row lengths (-1 for null rows), any() per row."""
    counts = np.maximum(lengths, 0)
    if not bad_flat.any():
        return np.zeros(len(counts), dtype=bool)
    owner = np.repeat(np.arange(len(counts)), counts)
    return np.bincount(owner[bad_flat], minlength=len(counts)) > 0


def _bad_doc_ids(column, lengths: np.ndarray) -> np.ndarray:
    """Per row, whether a document id is null, empty or repeated within it (False for null rows).

    Vectorized: ids are dictionary-encoded and (row, id code) pairs sorted to find repeats.
    """
    n = len(lengths)
    flat = _flat(column)
    if len(flat) == 0:
        return np.zeros(n, dtype=bool)
    owner = np.repeat(np.arange(n, dtype=np.int64), np.maximum(lengths, 0))
    bad = pc.fill_null(pc.equal(flat, ""), True).to_numpy(zero_copy_only=False)
    codes = pc.fill_null(pc.dictionary_encode(flat).indices, -1).to_numpy(
        zero_copy_only=False).astype(np.int64)
    keys = np.sort(owner * (int(codes.max()) + 2) + codes + 1)
    repeated = keys[1:][keys[1:] == keys[:-1]] // (int(codes.max()) + 2)
    out = np.bincount(owner[bad], minlength=n) > 0
    out[repeated] = True
    return out


def _detail(query_id, reason: str, **facts) -> str:
    return json.dumps(facts, default=str)


def validate_queries(batch: QueryBatch, state: ValidationState, step: str = "validate"
                     ) -> tuple[pa.Table, pa.Table]:
    """Splits a batch into (ok queries, quarantine rows).

    A record's reason is its first failing check in this order (that of
    `Reason.QUERY_REASONS`): empty query id, no documents, length mismatch, ragged features
    (within the query, then against the dataset width), no features (width 0), non-finite
    features, label out of
    range, duplicate document id, bad teacher. A duplicate query id is decided last, among
    records that pass every other check, so an invalid record never claims an id: the first
    valid occurrence wins. The dataset width is the width of the first valid query of the
    stream; records before it are not held to it. The outcome does not depend on batch size.

    Args:
      batch: queries as read, with their locations and any quarantine rows from reading (which
        are passed through).
      state: the stream's validation state (updated: seen ids, feature width).
      step: step name written into quarantine rows.

    Returns:
      (ok, quarantine): ok in QUERY_SCHEMA; quarantine in QUARANTINE_SCHEMA holding the batch's
      read-time rejects plus this step's, one row per rejected record.
    """
    table = batch.queries
    n = table.num_rows
    if n == 0:
        return table, batch.quarantine
    checks: list = []  # (reason, mask, message) in precedence order

    def check(code: str, mask: np.ndarray, message) -> None:
        checks.append((code, np.asarray(mask, dtype=bool), message))

    ids = table.column("query_id").to_pylist()
    check(Reason.EMPTY_QUERY_ID, np.array([q is None or str(q).strip() == "" for q in ids]),
          "query_id is empty")

    n_docs = _lengths(table.column("doc_ids"))
    check(Reason.NO_DOCUMENTS, n_docs <= 0, "the query has no documents")

    feat_rows = _lengths(table.column("features"))
    check(Reason.LENGTH_MISMATCH, feat_rows != n_docs,
          lambda i: f"{n_docs[i]} doc ids but {feat_rows[i]} feature rows")
    per_document = [name for name in ("labels", "teacher_scores", "teacher_order", "doc_texts",
                                      "first_stage_ranks", "first_stage_scores")
                    if name in table.column_names]
    for name in per_document:
        lengths = _lengths(table.column(name))
        check(Reason.LENGTH_MISMATCH, (lengths >= 0) & (lengths != n_docs),
              lambda i, name=name, lengths=lengths: f"{n_docs[i]} doc ids but {lengths[i]} {name}")

    # Feature width: every document row of every query must have the dataset's width.
    inner = _flat(table.column("features"))
    widths = pc.fill_null(pc.list_value_length(inner), -1).to_numpy(zero_copy_only=False)
    doc_owner = np.repeat(np.arange(n), np.maximum(feat_rows, 0))
    has_docs = feat_rows > 0
    lo = np.full(n, np.iinfo(np.int64).max)
    hi = np.full(n, -1)
    if widths.size:  # per-query min and max width (reduceat over each query's documents)
        docs = np.maximum(feat_rows, 0)
        starts = (np.cumsum(docs) - docs)[has_docs]
        lo[has_docs] = np.minimum.reduceat(widths, starts)
        hi[has_docs] = np.maximum.reduceat(widths, starts)
    ragged = has_docs & ((lo != hi) | (lo < 0))
    check(Reason.RAGGED_FEATURES, ragged,
          lambda i: f"feature rows of widths {lo[i]}..{hi[i]} in one query")
    width_check = len(checks)  # the dataset-width check goes here once the width is known
    check(Reason.NO_FEATURES, has_docs & ~ragged & (lo == 0),
          "the documents have no features (a judgment list? features are needed to rank)")

    values = pc.list_flatten(inner).to_numpy(zero_copy_only=False) if widths.size else np.zeros(0)
    if values.dtype.kind != "f":
        values = values.astype(np.float64)
    non_finite = np.flatnonzero(~np.isfinite(values))  # float32 or 64: the same verdict
    # owner of each bad value: its document (by the documents' value offsets), then query
    value_doc = np.searchsorted(np.cumsum(np.maximum(widths, 0)), non_finite, side="right")
    check(Reason.NON_FINITE_FEATURES, np.bincount(doc_owner[value_doc], minlength=n) > 0,
          "NaN or infinite feature values")

    labels_len = _lengths(table.column("labels"))
    if (labels_len > 0).any():
        labels = _flat(table.column("labels"))
        lab = pc.fill_null(labels, np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
        out = ~((lab >= state.label_min) & (lab <= state.label_max))
        check(Reason.LABEL_OUT_OF_RANGE, _per_row_any(out, labels_len),
              f"labels outside [{state.label_min:g}, {state.label_max:g}] or missing")
    judged_len = (_lengths(table.column("judged_labels")) if "judged_labels" in table.column_names
                  else np.full(n, -1))
    if (judged_len > 0).any():  # the ideal of ideal=qrels rewards (difficulty/rewards.py)
        judged = pc.fill_null(_flat(table.column("judged_labels")), np.nan).to_numpy(
            zero_copy_only=False).astype(np.float64)
        out = ~((judged >= state.label_min) & (judged <= state.label_max))
        check(Reason.LABEL_OUT_OF_RANGE, _per_row_any(out, judged_len),
              f"judged_labels outside [{state.label_min:g}, {state.label_max:g}] or missing")
    if state.require_labels:
        check(Reason.MISSING_LABELS, labels_len < 0,
              "no labels, and the reward verifies rankings against labels")

    check(Reason.DUPLICATE_DOC_ID, _bad_doc_ids(table.column("doc_ids"), n_docs),
          "repeated or empty document ids within the query")

    teacher_len = _lengths(table.column("teacher_scores"))
    if (teacher_len > 0).any():
        ts = pc.fill_null(_flat(table.column("teacher_scores")), np.nan).to_numpy(
            zero_copy_only=False).astype(np.float64)
        check(Reason.BAD_TEACHER, _per_row_any(~np.isfinite(ts), teacher_len),
              "teacher_scores holds NaN, infinite or missing values")
    order_len = _lengths(table.column("teacher_order"))
    if (order_len > 0).any():
        orders = table.column("teacher_order").to_pylist()
        not_perm = np.array([o is not None and sorted(x if x is not None else -1 for x in o)
                             != list(range(len(o))) for o in orders])
        check(Reason.BAD_TEACHER, not_perm, "teacher_order is not a permutation of 0..n-1")

    # The dataset width: set by the first query passing every other check; only the records
    # after it are held to it (as if the stream were validated one record at a time).
    held = np.ones(n, dtype=bool)
    if state.feature_width is None:
        failed = np.zeros(n, dtype=bool)
        for _, mask, _ in checks:
            failed |= mask
        candidates = np.flatnonzero(has_docs & ~failed)
        if candidates.size:
            state.feature_width = int(lo[candidates[0]])
            held = np.arange(n) > candidates[0]
        else:
            held[:] = False
    width = state.feature_width
    checks.insert(width_check, (
        Reason.RAGGED_FEATURES, held & has_docs & ~ragged & (lo != (width or 0)),
        lambda i: f"feature width {lo[i]}, the dataset's is {width}"))

    reason = np.full(n, None, dtype=object)
    detail = np.full(n, "", dtype=object)
    for code, mask, message in checks:
        fresh = mask & (reason == None)  # noqa: E711 - elementwise on an object array
        for i in np.flatnonzero(fresh):
            reason[i] = code
            detail[i] = message(i) if callable(message) else message

    # Duplicates across the stream: the first valid occurrence wins.
    for i, qid in enumerate(ids):
        if reason[i] is None:
            if qid in state.seen_query_ids:
                reason[i] = Reason.DUPLICATE_QUERY_ID
                detail[i] = f"query id {qid!r} was already read"
            else:
                state.seen_query_ids.add(qid)

    ok_mask = np.array([r is None for r in reason])
    bad_rows = [quarantine_row(reason[i], step=step, location=batch.locations[i],
                               query_id=ids[i], detail=detail[i],
                               raw=_summary(table, i)) for i in np.flatnonzero(~ok_mask)]
    quarantine = batch.quarantine
    if bad_rows:
        quarantine = pa.concat_tables([quarantine, quarantine_table(bad_rows)])
    return (table if ok_mask.all() else table.filter(pa.array(ok_mask))), quarantine


def _summary(table: pa.Table, i: int) -> dict:
    """The record, as JSON-able values (quarantine rows keep at most RAW_LIMIT characters)."""
    return table.slice(i, 1).to_pylist()[0]


__all__ = ["ValidationState", "validate_queries", "QUARANTINE_SCHEMA"]


def validate_rollouts(rollouts: pa.Table, known_docs: dict, source: str,
                      step: str = "rollouts", reward_max: float | None = None
                      ) -> tuple[pa.Table, pa.Table]:
    """Splits rollouts into (ok, quarantine) against the valid queries they refer to.

    Args:
      rollouts: a table in ROLLOUT_SCHEMA.
      known_docs: query id -> that query's document ids, for every valid query.
      source: the log's path, for quarantine locations.
      step: step name written into quarantine rows.
      reward_max: the largest reward the run's reward can give (1 for NDCG, hit@1 and `log`;
        the sum of the weights for a composite); None skips the range check.

    A rollout is quarantined when its query is unknown, when its ranking names a document the
    query does not have or names one twice, when its rollout id repeats within its query, or
    when its logged reward lies outside [0, reward_max] (`reward_out_of_range`).
    """
    rows = rollouts.to_pylist()
    keep, bad, seen = [], [], set()
    for i, row in enumerate(rows):
        qid, rid, ranking = row["query_id"], row["rollout_id"], row["ranking"]
        location = f"{source}#rollout={rid}"
        problem = None
        if qid not in known_docs:
            problem = (Reason.UNKNOWN_QUERY, f"query {qid!r} is not among the valid queries")
        elif (qid, rid) in seen:
            problem = (Reason.DUPLICATE_ROLLOUT_ID, f"rollout id {rid!r} repeats for query {qid!r}")
        elif reward_max is not None and row.get("reward") is not None and not (
                0.0 <= row["reward"] <= reward_max):
            problem = (Reason.REWARD_OUT_OF_RANGE, f"reward {row['reward']!r} is outside "
                                                   f"[0, {reward_max:g}] (the run's reward)")
        elif ranking is not None:
            docs = known_docs[qid]
            docset = docs if isinstance(docs, (set, frozenset)) else set(docs)
            unknown = [d for d in ranking if d not in docset]
            if unknown:
                problem = (Reason.UNKNOWN_DOCUMENT, f"ranking names unknown documents {unknown[:5]}")
            elif len(set(ranking)) != len(ranking):
                problem = (Reason.REPEATED_DOCUMENT, "ranking names a document more than once")
        if problem:
            bad.append(quarantine_row(problem[0], step=step, location=location, query_id=qid,
                                      record_kind="rollout", detail=problem[1], raw=row))
        else:
            seen.add((qid, rid))
            keep.append(i)
    return rollouts.take(pa.array(keep, type=pa.int64())), quarantine_table(bad)
