"""Duplicates across splits: of the small rows sharing a query id, the first by input position
wins and the later ones are quarantined (`Dedupe`, `first_wins`).
"""
from __future__ import annotations

from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa

from curricula.hashing import stable_hash
from data_contracts.errors import InputError
from data_contracts.quarantine import quarantine_row, quarantine_table
from data_contracts.reasons import Reason
from data_contracts.schema import QUARANTINE_SCHEMA
from pipelines import coders  # noqa: F401 - registers the Arrow table coder

DEDUPE_BUCKETS = 32  # hash buckets of query ids the duplicate check groups small rows into


def duplicate_rows(qid: str, first_location: str, locations: list[str]) -> pa.Table:
    """Quarantine rows for later occurrences of a query id (the first by input order wins)."""
    return quarantine_table([quarantine_row(
        Reason.DUPLICATE_QUERY_ID, step="validate", location=loc, query_id=qid,
        detail=f"query id {qid!r} was already read at {first_location}",
        raw={"query_id": qid}) for loc in locations])


def _bucketed(table: pa.Table, buckets: int) -> Iterator[tuple[int, pa.Table]]:
    """(bucket, rows) for each bucket of query ids a table of small rows touches."""
    if table.num_rows == 0:
        return
    bucket = np.array([stable_hash(q, "dedupe") % buckets
                       for q in table.column("query_id").to_pylist()])
    for b in np.unique(bucket):
        yield int(b), table.filter(pa.array(bucket == b))


def first_wins(table: pa.Table, ranged: frozenset = frozenset()) -> tuple[pa.Table, pa.Table]:
    """Small rows without their duplicates: the first row of a query id by input position wins.

    Args:
      table: small rows (SMALL_SCHEMA) of any number of query ids, in any order.
      ranged: inputs split by byte range, where one query id in two splits of the same file
        means rows that are not adjacent.

    Returns:
      (the winning rows sorted by query id, quarantine rows for the later ones).

    Raises:
      InputError: a query id of a byte-range input has rows in two splits of one file.
    """
    qids = table.column("query_id").to_pylist()
    rows_of: dict[str, list[int]] = {}
    for i, qid in enumerate(qids):
        rows_of.setdefault(qid, []).append(i)
    positions = table.column("position").to_pylist()
    locations = table.column("location").to_pylist()
    winners, quarantine = [], []
    for qid in sorted(rows_of):
        rows = sorted(rows_of[qid], key=lambda i: positions[i])
        first = rows[0]
        for later in rows[1:]:
            if positions[later][0] in ranged and positions[later][:2] == positions[first][:2]:
                where = locations[later].rsplit(":", 1)[0]
                raise InputError(where, f"query id {qid!r} has rows that are not adjacent "
                                        f"({locations[first]} and {locations[later]})")
        if len(rows) > 1:
            quarantine.append(duplicate_rows(qid, locations[first],
                                             [locations[i] for i in rows[1:]]))
        winners.append(first)
    won = table.take(pa.array(winners, pa.int64()))
    return won, (pa.concat_tables(quarantine) if quarantine
                 else QUARANTINE_SCHEMA.empty_table())


class Dedupe(beam.PTransform):
    """Small rows grouped by query id; the first by input position wins, later ones quarantined.

    Tables move, not rows: each table of small rows is cut by a stable hash of the query id into
    `DEDUPE_BUCKETS` buckets, and each bucket's rows (small rows carry no features) are checked
    together by `first_wins`.

    In an input split by byte ranges (SVMlight with qid, whose queries are runs of adjacent
    lines), one query id in two splits of the same file means rows that are not adjacent: that
    fails the run with an InputError naming both places, as the reader does within a split.

    Returns (winning small rows as tables of at most `batch_size` rows, quarantine tables).
    """

    def __init__(self, batch_size: int, byte_range_inputs: frozenset = frozenset(),
                 buckets: int = DEDUPE_BUCKETS):
        super().__init__()
        self.batch_size = batch_size
        self.byte_range_inputs = frozenset(byte_range_inputs)
        self.buckets = buckets

    def expand(self, small):
        ranged, batch_size, buckets = self.byte_range_inputs, self.batch_size, self.buckets

        def pick(element):
            _, tables = element
            won, duplicates = first_wins(pa.concat_tables(list(tables)), ranged)
            if duplicates.num_rows:
                yield beam.pvalue.TaggedOutput("quarantine", duplicates)
            for start in range(0, won.num_rows, batch_size):
                yield won.slice(start, batch_size)

        picked = (small
                  | "ByBucket" >> beam.FlatMap(_bucketed, buckets).with_output_types(
                      beam.typehints.Tuple[int, pa.Table])
                  | "GroupIds" >> beam.GroupByKey()
                  | "FirstWins" >> beam.FlatMap(pick).with_output_types(pa.Table).with_outputs(
                      "quarantine", main="rows"))
        return picked.rows, picked.quarantine
