"""Pass 2: each split re-read and re-validated, its queries joined to their decisions, and every
shard written: rows are spilled as sorted pieces per shard (`SpillFn`) and one step per shard
k-way merges them into its Parquet file (`MergeShardFn`); `WriteShards` wires the two.
"""
from __future__ import annotations

import logging
from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.transforms import window

from curricula.hashing import shard_of
from curricula.staging import merge_pieces, write_piece
from data_contracts.schema import (DIFFICULTY_SCHEMA, DROPPED_SCHEMA, IMITATION_SCHEMA,
                                   PENDING_SCHEMA, QUARANTINE_SCHEMA, RL_SCHEMA, conform)
from data_contracts.teacher import teacher_orders, teacher_scores
from pipelines import coders  # noqa: F401 - registers the Arrow table coder
from pipelines.config import CurriculumConfig
from pipelines.progress import mark_done
from pipelines.splits import Split, validated_batches
from pipelines.workers import WorkerFn

SPILL_BYTES = 64 << 20  # a pass-2 worker spills its buffered rows as pieces beyond this
_LOG = logging.getLogger("pipelines.progress")

SCHEMAS = {"difficulty": DIFFICULTY_SCHEMA, "imitation": IMITATION_SCHEMA, "rl": RL_SCHEMA,
           "dropped": DROPPED_SCHEMA, "quarantine": QUARANTINE_SCHEMA,
           "pending": PENDING_SCHEMA}
PHASES = tuple(SCHEMAS)


def pass2_rows(ok: pa.Table, positions: list, decisions: dict, config: CurriculumConfig
               ) -> Iterator[tuple[str, pa.Table]]:
    """(phase, rows) of the imitation and RL shards for one validated batch.

    Args:
      ok: validated queries (QUERY_SCHEMA) as pass 1 saw them.
      positions: each row's input position.
      decisions: query id -> decision tuple (see `SelectDemonstrationsFn`, `AssignStagesFn`);
        a query whose decision names another position is a duplicate and is skipped.
    """
    qids = ok.column("query_id").to_pylist()
    imitation, rl, pending = [], [], []
    for i, qid in enumerate(qids):
        decision = decisions.get(qid)
        if decision is None or tuple(positions[i]) != decision[1]:
            continue
        {"imitation": imitation, "rl": rl, "pending": pending}[decision[0]].append((i, decision))
    if pending:  # ("pending", position, pass_rate, band, trials, decided)
        rows = ok.take(pa.array([i for i, _ in pending]))
        d = [decision for _, decision in pending]
        for j, (name, kind) in enumerate((("pass_rate", pa.float64()), ("band", pa.string()),
                                          ("trials", pa.int32()), ("decided", pa.bool_()))):
            rows = rows.append_column(name, pa.array([x[2 + j] for x in d], kind))
        yield "pending", conform(rows, PENDING_SCHEMA)
    if imitation:
        rows = ok.take(pa.array([i for i, _ in imitation]))
        scores, _ = teacher_scores(rows, config.teacher)
        n_docs = rows.column("doc_ids").combine_chunks().value_lengths().to_numpy()
        orders = teacher_orders(scores, n_docs)
        index = rows.schema.get_field_index("teacher_order")
        rows = rows.set_column(index, rows.schema.field(index),
                               pa.array(orders, pa.list_(pa.int32())))
        d = [decision for _, decision in imitation]
        rows = (rows.append_column("pass_rate", pa.array([x[5] for x in d], pa.float64()))
                .append_column("band", pa.array([x[6] for x in d], pa.string()))
                .append_column("diversity_cluster", pa.array([x[2] for x in d], pa.int32()))
                .append_column("signature", pa.array([x[3] for x in d], pa.string()))
                .append_column("weight", pa.array([x[4] for x in d], pa.float32())))
        yield "imitation", conform(rows, IMITATION_SCHEMA)
    if rl:
        take, stage, key, replay, rate, band = [], [], [], [], [], []
        for i, decision in rl:
            for j, s in enumerate(decision[3]):
                take.append(i)
                stage.append(s)
                key.append(decision[2])
                replay.append(j > 0)
                rate.append(decision[4])
                band.append(decision[5])
        rows = ok.take(pa.array(take))
        rows = (rows.append_column("pass_rate", pa.array(rate, pa.float64()))
                .append_column("band", pa.array(band, pa.string()))
                .append_column("stage", pa.array(stage, pa.int32()))
                .append_column("order_key", pa.array(key, pa.float64()))
                .append_column("replay", pa.array(replay, pa.bool_())))
        yield "rl", conform(rows, RL_SCHEMA)


class WriteSplitFn(WorkerFn):
    """Pass 2: one split re-read and re-validated; its imitation and RL rows, as (phase, table)."""

    def __init__(self, config: CurriculumConfig, root: str, launcher_pid: int | None = None):
        super().__init__(launcher_pid)
        self.config, self.root = config, root

    def process(self, split: Split, decisions: dict, space=None) -> Iterator:
        seq = 0
        # pass 2 re-reads: the reader's counts were summed in pass 1 (score.py) only
        for ok, *_ in validated_batches(split, self.config, space):
            if not ok.num_rows:
                continue
            positions = [(*split.position, seq + i) for i in range(ok.num_rows)]
            seq += ok.num_rows
            yield from pass2_rows(ok, positions, decisions, self.config)
        mark_done(self.root, f"p2-{split.name}")
        _LOG.info("pass 2: split %s done", split.name)


def has_pending(config: CurriculumConfig) -> bool:
    """Whether a run writes `pending` shards: an LLM policy's loop (`--policy none`, results
    or live generation), whose later rounds ask about queries the other phases may not hold
    with texts."""
    return bool(config.pending_only or config.rollout_paths() or config.generate_with)


def shard_keys(config: CurriculumConfig) -> list[tuple[str, int, int]]:
    """Every (phase, stage, shard) of a run: each is written, empty or not."""
    keys = []
    for phase in PHASES if has_pending(config) else PHASES[:-1]:
        stages = range(config.order.stages) if phase == "rl" else [-1]
        keys += [(phase, s, h) for s in stages for h in range(config.shards)]
    return keys


def _keyed_shards(table: pa.Table, phase: str, shards: int) -> Iterator[tuple]:
    """((phase, stage, shard), piece) for each shard a batch touches."""
    if table.num_rows == 0:
        return
    ids = (table.column("location") if phase == "quarantine" else table.column("query_id"))
    shard = shard_of([str(x) for x in ids.to_pylist()], shards)
    stage = (table.column("stage").to_numpy() if phase == "rl"
             else np.full(table.num_rows, -1))
    for s in np.unique(stage):
        for h in np.unique(shard[stage == s]):
            mask = (stage == s) & (shard == h)
            yield (phase, int(s), int(h)), table.filter(pa.array(mask))


class SpillFn(WorkerFn):
    """Buffers (phase, table) rows per shard and spills sorted pieces under the run's location.

    Emits (shard key, piece path) when a piece is written: at most `SPILL_BYTES` are held.
    """

    def __init__(self, root: str, shards: int, launcher_pid: int | None = None,
                 limit: int = SPILL_BYTES):
        super().__init__(launcher_pid)
        self.root, self.shards, self.limit = root, shards, limit

    def start_bundle(self):
        self.buffer: dict[tuple, list[pa.Table]] = {}
        self.held = 0

    def process(self, element) -> Iterator:
        phase, table = element
        for key, piece in _keyed_shards(table, phase, self.shards):
            self.buffer.setdefault(key, []).append(piece)
            self.held += piece.nbytes
        if self.held > self.limit:
            yield from self._spill()

    def _spill(self) -> Iterator:
        for key in sorted(self.buffer):
            phase, stage, shard = key
            table = pa.concat_tables(self.buffer[key])
            yield key, write_piece(table, phase, None if stage < 0 else stage, shard, self.root)
        self.buffer, self.held = {}, 0

    def finish_bundle(self):
        for key, path in self._spill():
            yield window.GlobalWindows.windowed_value((key, path))


class MergeShardFn(WorkerFn):
    """Finalizes one shard: k-way merges its pieces (none: an empty file of the schema)."""

    def __init__(self, root: str, launcher_pid: int | None = None):
        super().__init__(launcher_pid)
        self.root = root

    def process(self, element) -> Iterator[dict]:
        (phase, stage, shard), grouped = element
        pieces = sorted(p for p in grouped["pieces"])
        yield merge_pieces(pieces, phase, None if stage < 0 else stage, shard, self.root,
                           SCHEMAS[phase])


class WriteShards(beam.PTransform):
    """Writes every shard of a run from (phase, table) elements; outputs manifest file entries.

    Applied to a PCollection or to a tuple of them: each is spilled where it is produced (the
    spill fuses with its producer), so rows with features are never materialized between steps;
    only piece paths are flattened and grouped.
    """

    def __init__(self, config: CurriculumConfig, root: str, launcher_pid: int | None = None,
                 spill_bytes: int = SPILL_BYTES):
        super().__init__()
        self.config, self.root, self.launcher_pid = config, root, launcher_pid
        self.spill_bytes = spill_bytes

    def expand(self, phase_tables):
        sources = (list(phase_tables) if isinstance(phase_tables, tuple)
                   else [phase_tables])
        pipeline = sources[0].pipeline
        # Not reshuffled: a runner that hands grouped keys to workers in arrival order (the local
        # FnApiRunner deals them round-robin) gets them in `shard_keys` order, which puts shard h
        # of every phase on worker h mod workers: the large shards spread evenly.
        keys = pipeline | "ShardKeys" >> beam.Create([(k, None) for k in shard_keys(self.config)],
                                                     reshuffle=False)
        spill = SpillFn(self.root, self.config.shards, self.launcher_pid, self.spill_bytes)
        pieces = [source | f"Spill{i}" >> beam.ParDo(spill) for i, source in enumerate(sources)]
        pieces = pieces | "AllPieces" >> beam.Flatten()
        return ({"keys": keys, "pieces": pieces} | "PiecesPerShard" >> beam.CoGroupByKey()
                | "Merge" >> beam.ParDo(MergeShardFn(self.root, self.launcher_pid)))


def tag(phase: str):
    """A Map turning tables of `phase` into (phase, table) elements for `WriteShards`."""
    return beam.Map(lambda table: (phase, table))
