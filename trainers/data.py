"""Streaming the curriculum's shards into the trainer: an IterableDataset over Parquet files.

Rows are read a record batch at a time (never a whole shard), in manifest order, and every batch
carries its position (file index, row offset) so a checkpoint can resume exactly where it stopped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset

from data_contracts import fs
from data_contracts.arrays import PaddedQueries, pad_queries
from data_contracts.schema import QUERY_SCHEMA


@dataclass
class ShardBatch:
    """A batch of curriculum rows, padded, with where it came from."""

    table: pa.Table
    padded: PaddedQueries
    file_index: int
    row_start: int

    @property
    def rows(self) -> int:
        return self.table.num_rows


class ShardStream(IterableDataset):
    """Streams rows of Parquet shards as padded batches, starting at a saved position.

    Args:
      files: shard paths, in curriculum order.
      batch_size: queries per batch.
      start: (file index, row offset) to resume from.
      columns: extra columns to read besides the query columns.
      keep: optional filter, table -> [rows] bool; rows it rejects are skipped before batching,
        and row offsets (positions) count only the rows it keeps.
    """

    def __init__(self, files: list[str], batch_size: int, start: tuple[int, int] = (0, 0),
                 columns: tuple[str, ...] = (),
                 keep: Callable[[pa.Table], np.ndarray] | None = None):
        super().__init__()
        self.files, self.batch_size, self.start = list(files), batch_size, start
        self.columns = [f.name for f in QUERY_SCHEMA] + list(columns)
        self.keep = keep

    def __iter__(self) -> Iterator[ShardBatch]:
        first_file, first_row = self.start
        for index in range(first_file, len(self.files)):
            with fs.open_read(self.files[index]) as handle:  # local, gs://, s3://
                yield from self._file(index, pq.ParquetFile(handle), first_file, first_row)

    def _file(self, index: int, parquet: pq.ParquetFile, first_file: int, first_row: int
              ) -> Iterator[ShardBatch]:
        """The batches of one shard (rows before `first_row` skipped in the first file)."""
        names = [c for c in self.columns if c in parquet.schema_arrow.names]
        offset = 0
        skip = first_row if index == first_file else 0
        pending: list[pa.Table] = []
        pending_rows, pending_start = 0, None
        for record_batch in parquet.iter_batches(batch_size=self.batch_size, columns=names):
            table = pa.Table.from_batches([record_batch])
            if self.keep is not None:
                table = table.filter(pa.array(np.asarray(self.keep(table), dtype=bool)))
            begin = offset
            offset += table.num_rows
            if offset <= skip:
                continue
            if begin < skip:
                table = table.slice(skip - begin)
                begin = skip
            if pending_start is None:
                pending_start = begin
            pending.append(table)
            pending_rows += table.num_rows
            while pending_rows >= self.batch_size:
                whole = pa.concat_tables(pending)
                head, rest = whole.slice(0, self.batch_size), whole.slice(self.batch_size)
                yield ShardBatch(head, pad_queries(head), index, pending_start)
                pending_start += self.batch_size
                pending, pending_rows = ([rest] if rest.num_rows else []), rest.num_rows
        if pending_rows:
            whole = pa.concat_tables(pending)
            yield ShardBatch(whole, pad_queries(whole), index, pending_start)


def to_tensors(padded: PaddedQueries) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features, mask, labels) as torch tensors."""
    return (torch.from_numpy(padded.features), torch.from_numpy(padded.mask),
            torch.from_numpy(padded.labels))
