"""The unit readers yield: a batch of (not yet validated) queries plus quarantine rows."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pyarrow as pa

from data_contracts.errors import InputError
from data_contracts.quarantine import quarantine_row, quarantine_table
from data_contracts.schema import QUARANTINE_SCHEMA, QUERY_SCHEMA


@dataclass
class QueryBatch:
    """Queries in QUERY_SCHEMA as read, with where each came from, and rows already rejected.

    Attributes:
      queries: a table in QUERY_SCHEMA (content not yet validated).
      locations: one `file:line` / `file#record` per query row.
      quarantine: a table in QUARANTINE_SCHEMA of records rejected while reading.
      skipped_lines: lines read since the previous batch that are not records (comments,
        blank lines, a line holding only a byte-order mark); counted, never quarantined.
      counts: other counts gathered since the previous batch, name -> number, to be summed
        over the batches into the manifest's `counts` (text inputs: `unjudged`,
        `empty_queries`, `empty_passages`, `negative_judgments`, `run_extra_fields`,
        `non_utf8_lines`, `duplicate_ids`, `id_collisions`; readers/text.py).
    """

    queries: pa.Table
    locations: list[str]
    quarantine: pa.Table = field(default_factory=QUARANTINE_SCHEMA.empty_table)
    skipped_lines: int = 0
    counts: dict = field(default_factory=dict)

    @property
    def records(self) -> int:
        """Records this batch accounts for: queries plus quarantined records."""
        return self.queries.num_rows + self.quarantine.num_rows


def _as_matrix(m) -> np.ndarray | None:
    """`m` as a 2-D numeric array, or None when it is not one (ragged, nulls, strings, ...).

    An empty list is a query with no documents: a (0, 0) matrix.
    """
    if isinstance(m, np.ndarray):
        arr = m
    else:
        try:
            arr = np.asarray(m)
        except (ValueError, TypeError):  # ragged nesting: numpy refuses it
            return None
    if arr.dtype.kind not in "fiub":  # strings, None, mixed objects: let Arrow judge them
        return None
    if arr.ndim == 2:
        return arr
    if arr.ndim == 1 and arr.size == 0:
        return arr.reshape(0, 0)
    return None


def nested_float_array(matrices: Sequence, inner: pa.DataType = pa.float32()) -> pa.Array:
    """list<list<float32>> from a sequence of 2-D arrays (None gives a null), vectorized.

    A matrix that is not a 2-D numeric array (ragged python lists, null rows or values) falls
    back to Arrow's own conversion so the validator, not the reader, reports it; a value Arrow
    cannot convert either (a string, a scalar) raises `pa.ArrowInvalid`/`pa.ArrowTypeError`.
    """
    mats = []
    for m in matrices:
        if m is None:
            mats.append(None)
            continue
        arr = _as_matrix(m)
        if arr is None:
            return pa.array([None if x is None else x.tolist() if isinstance(x, np.ndarray)
                             else x for x in matrices], type=pa.list_(pa.list_(inner)))
        mats.append(arr)
    rows = [0 if m is None else m.shape[0] for m in mats]
    widths = np.concatenate([np.full(m.shape[0], m.shape[1], dtype=np.int64)
                             for m in mats if m is not None] or [np.zeros(0, np.int64)])
    flat = np.concatenate([m.reshape(-1).astype(np.float32) for m in mats if m is not None]
                          or [np.zeros(0, np.float32)])
    inner_offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int32)
    inner_list = pa.ListArray.from_arrays(pa.array(inner_offsets), pa.array(flat, type=inner))
    outer_offsets = np.concatenate([[0], np.cumsum(rows)]).astype(np.int32)
    mask = pa.array([m is None for m in mats], type=pa.bool_())
    return pa.ListArray.from_arrays(pa.array(outer_offsets), inner_list, mask=mask)


def rows_to_batch(rows: list[dict], stray: list[dict], step: str) -> QueryBatch:
    """Builds a QueryBatch from reader rows; a row with an `_error` becomes a quarantine row.

    Args:
      rows: dicts with QUERY_SCHEMA keys and `_location`, or `{query_id, _error: (reason,
        location, detail, raw)}` for a record the reader could not build.
      stray: quarantine rows for records that belong to no query.
      step: the step name written into quarantine rows.
    """
    good, locations, bad = [], [], list(stray)
    for row in rows:
        if "_error" in row:
            reason, location, detail, raw = row["_error"]
            bad.append(quarantine_row(reason, step=step, location=location,
                                      query_id=row.get("query_id"), detail=detail, raw=raw))
        else:
            good.append(row)
            locations.append(row.get("_location", ""))
    columns = {}
    for fld in QUERY_SCHEMA:
        values = [r.get(fld.name) for r in good]
        if fld.name == "features":
            columns[fld.name] = nested_float_array(values)
        else:
            columns[fld.name] = pa.array(values, type=fld.type)
    table = pa.Table.from_pydict(columns, schema=QUERY_SCHEMA)
    return QueryBatch(table, locations, quarantine_table(bad))


class QueryGrouper:
    """Gathers consecutive rows into queries, the way every row-per-document reader needs it.

    The rows of one query must be adjacent: a query id that comes back after another is refused
    (InputError naming both places and `--group-rows`), unless `group_rows`, which keeps every
    query of the input open (memory: the whole input) and finishes them all at the end, in
    first-seen order. Finished queries wait in `pending` until `batches` hands them out.

    Args:
      path: the input, named in the error.
      group_rows: merge the rows of a query that are not adjacent instead of refusing.
      batch_size: queries per batch handed out.
      finish: turns an open group into a reader row for `rows_to_batch`.
      noun: how the error names a query id (`qid 7`, `query 'a'`).
    """

    def __init__(self, path: str, group_rows: bool, batch_size: int, finish, noun: str = "qid"):
        self.path, self.group_rows, self.batch_size = path, group_rows, batch_size
        self.finish, self.noun = finish, noun
        self.current = None
        self.groups: dict = {}
        self.seen: dict = {}  # query id -> where its rows began
        self.pending: list[dict] = []

    def group_for(self, qid: str, place: str, make):
        """The open group the next row of `qid` (found at `place`) belongs to.

        Args:
          make: builds a new group (called only for a query id not seen before).
        """
        if self.current is not None and self.current.query_id == qid:
            return self.current
        if self.current is not None and not self.group_rows:
            self.pending.append(self.finish(self.current))
        if qid in self.seen:
            if not self.group_rows:
                shown = qid if self.noun == "qid" else repr(qid)
                raise InputError(self.path, f"{place}: rows of {self.noun} {shown} are not "
                                            f"adjacent (its rows began at {self.seen[qid]}, "
                                            f"another came between); sort by query id or pass "
                                            f"--group-rows to group them in memory")
            self.current = self.groups[qid]
        else:
            self.current = make()
            self.seen[qid] = place
            if self.group_rows:
                self.groups[qid] = self.current
        return self.current

    def batches(self, final: bool = False):
        """Lists of finished reader rows, `batch_size` each (at the end: also the rest).

        Args:
          final: the input is done: finish the open group(s) first and hand out everything.
        """
        if final:
            if self.group_rows:
                self.pending.extend(self.finish(g) for g in self.groups.values())
                self.groups = {}
            elif self.current is not None:
                self.pending.append(self.finish(self.current))
            self.current = None
        while len(self.pending) >= self.batch_size or (final and self.pending):
            chunk = self.pending[:self.batch_size]
            self.pending = self.pending[self.batch_size:]
            yield chunk
