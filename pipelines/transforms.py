"""Beam PTransforms that compose the plain functions of data_contracts, difficulty and curricula.

The job runs in two passes over the input so that memory follows the batch, not the input:

- Pass 1 reads each split (`Split`: a file, a Parquet row-group range, a synthetic range) in
  parallel, validates and scores it, and keeps only small per-query rows (`SMALL_SCHEMA`: query
  id, input position, difficulty columns, fate, reason, demonstration descriptor; no features).
  Duplicates across splits are found on those rows (the first by input position wins), and
  routing quotas and stage boundaries come from combines over them.
- Pass 2 re-reads the splits, re-validates (deterministic), joins each query to its decision (a
  side input of small decision tuples keyed by query id, never features) and spills sorted pieces
  per shard (`SpillFn`); one finalize step per shard k-way merges them (`MergeShardFn`).

Elements are Arrow tables (one batch of queries each), never single rows; the duplicate check
groups tables of small rows by a hash bucket of the query id (`Dedupe`). Nothing that holds
every row's features is grouped.
"""
from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics
from apache_beam.transforms import window

from curricula import diversity as div
from curricula import ordering
from curricula.hashing import shard_of, stable_hash
from curricula.routing import dropped_rows, informative_demonstrations, route_fates
from curricula.staging import merge_pieces, write_piece
from data_contracts import fs
from data_contracts.arrays import list_lengths, pad_queries
from data_contracts.errors import InputError
from data_contracts.quarantine import quarantine_row, quarantine_table
from data_contracts.readers import (LOOKS_LIKE, detect_format, read_queries, read_rollouts,
                                    resolve_space, scan_space)
from data_contracts.readers import plan_splits as plan_file_splits
from data_contracts.readers.prefetch import prefetch
from data_contracts.reasons import Reason
from data_contracts.schema import (DIFFICULTY_FIELDS, DIFFICULTY_SCHEMA, DROPPED_SCHEMA,
                                   IMITATION_SCHEMA, POLICY_ID, QUARANTINE_SCHEMA, QUERY_ID,
                                   QUERY_SCHEMA, RL_SCHEMA, ROLLOUT_SCHEMA, SOURCE, conform)
from data_contracts.synthetic import _query as synthetic_query
from data_contracts.readers.base import rows_to_batch
from data_contracts.teacher import teacher_orders, teacher_scores
from data_contracts.synthetic_text import generate_text
from data_contracts.validate import ValidationState, validate_queries, validate_rollouts
from difficulty.rewards import parse_reward
from pipelines import coders  # noqa: F401 - registers the Arrow table coder
from pipelines.config import CurriculumConfig

METRICS_NAMESPACE = "build_curriculum"
PROGRESS_FOLDER = "_progress"
SPILL_BYTES = 64 << 20  # a pass-2 worker spills its buffered rows as pieces beyond this
SPLIT_ROWS = 2048  # queries per split of the embedded synthetic input
_LOG = logging.getLogger("pipelines.progress")

SCHEMAS = {"difficulty": DIFFICULTY_SCHEMA, "imitation": IMITATION_SCHEMA, "rl": RL_SCHEMA,
           "dropped": DROPPED_SCHEMA, "quarantine": QUARANTINE_SCHEMA}
PHASES = tuple(SCHEMAS)

# The small per-query row of pass 1: no features.
POSITION = pa.field("position", pa.list_(pa.int64()), nullable=False)
SMALL_SCHEMA = pa.schema(
    [QUERY_ID, SOURCE, pa.field("location", pa.string()), POSITION, POLICY_ID]
    + DIFFICULTY_FIELDS
    + [pa.field("fate", pa.string()), pa.field("reason", pa.string()),
       pa.field("weight", pa.float32()), pa.field("signature", pa.string()),
       pa.field("_descriptor", pa.list_(pa.float32()))])


def _count(name: str, value: int = 1) -> None:
    if value:
        Metrics.counter(METRICS_NAMESPACE, name).inc(int(value))


# --- workers end with their launcher ---------------------------------------------------------

_WATCHDOG: list = []


def _parent_of(pid: int) -> int | None:
    """The parent pid of `pid` from /proc (Linux), or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def launcher_chain(launcher_pid: int | None) -> list[int] | None:
    """The pids from this process's parent up to the launcher, if this is its local worker.

    Beam's multi-processing runner starts each worker through a shell (`/bin/sh -c python -m
    ...`), so the launcher is the worker's parent or, usually, its grandparent. Returns e.g.
    `[shell, launcher]`, or None in the launcher itself, in a process the launcher did not start
    (a remote worker) and where no launcher is known.
    """
    if launcher_pid is None or os.getpid() == launcher_pid:
        return None
    chain = [os.getppid()]
    while chain[-1] != launcher_pid and len(chain) < 3:
        parent = _parent_of(chain[-1])
        if parent is None or parent <= 1:
            return None
        chain.append(parent)
    return chain if chain[-1] == launcher_pid else None


def _chain_intact(chain: list[int]) -> bool:
    if os.getppid() != chain[0]:
        return False
    return all(_parent_of(child) == parent for child, parent in zip(chain, chain[1:]))


def die_with_launcher(launcher_pid: int | None) -> None:
    """In a local worker process (not the launcher), exits as soon as the launcher is gone.

    Beam's multi-processing workers are descendants of the launcher (through a shell); after a
    SIGKILL of the launcher a worker in the middle of a long bundle would go on with it for
    nothing. A daemon thread notices the re-parenting (a pid of the chain up to the launcher gets
    a new parent) within half a second and ends the worker.
    """
    chain = launcher_chain(launcher_pid)
    if chain is None or _WATCHDOG:
        return

    def watch() -> None:
        while True:
            if not _chain_intact(chain):
                os._exit(1)
            time.sleep(0.5)

    thread = threading.Thread(target=watch, name="die-with-launcher", daemon=True)
    thread.start()
    _WATCHDOG.append(thread)


_FAST_EXIT: list = []


def exit_without_teardown(launcher_pid: int | None) -> None:
    """In a local worker process, ends the process without interpreter teardown once it is done.

    Beam's local runner closes its workers one after another, each time waiting for the worker
    process to exit, and a worker that has imported torch, scikit-learn and Beam spends about
    1.3 s tearing its interpreter down (freeing every module's objects), so a 2-worker build
    ended 2.6 s after its last stage, and an 8-worker one would end 10 s after. An `atexit`
    hook, which runs after the harness has returned and its threads are joined (every bundle
    done, every file this project writes closed), flushes the logs and standard streams and
    calls `os._exit`: with 1 when an uncaught exception ended the worker (its traceback already
    printed), else 0. Remote workers (Dataflow) and the launcher are left alone.
    """
    if _FAST_EXIT or launcher_chain(launcher_pid) is None:
        return
    failed: list = []
    hook = sys.excepthook

    def note_failure(kind, value, trace):
        failed.append(kind)
        hook(kind, value, trace)

    def leave() -> None:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        os._exit(1 if failed else 0)

    sys.excepthook = note_failure
    atexit.register(leave)
    _FAST_EXIT.append(True)


_PINNED: list = []


def one_thread_per_worker(launcher_pid: int | None) -> None:
    """In a worker process (not the launcher), torch runs its operators on one thread.

    Beam parallelises across worker processes, one per core (Dataflow's Python harness runs one
    per vCPU; a local run has `--direct_num_workers`); torch's default of one intra-op thread per
    core on top of that oversubscribes the cores: on 2 cores, a 2-worker build of 8,000 queries x
    100 documents x 136 features took 37.9 s with 2 threads per worker and 27.7 s with 1. An
    in-process run (the default `in_memory` mode) keeps torch's default.
    """
    if (launcher_pid is not None and os.getpid() == launcher_pid) or _PINNED:
        return
    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy's BLAS and scikit-learn's OpenMP pools too
    _PINNED.append(True)


class _WorkerFn(beam.DoFn):
    """A DoFn that ends with its launcher (see `die_with_launcher`)."""

    def __init__(self, launcher_pid: int | None = None):
        self.launcher_pid = launcher_pid

    def setup(self):
        die_with_launcher(self.launcher_pid)
        one_thread_per_worker(self.launcher_pid)
        exit_without_teardown(self.launcher_pid)


# --- splits ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Split:
    """One unit of parallel reading.

    Attributes:
      input_index: which `--input` (0-based); -1 for the embedded synthetic input.
      path: the file to read (a file of the input; the input itself when it is one file).
      fmt: its resolved format.
      file_index: the file's index within its input (sorted by path).
      source: the `source` column's value (the input's name, whatever the split).
      start: first synthetic query, byte offset (SVMlight byte ranges) or first row group.
      end: one past the last of the same, or None for "to the end".
      row_groups: Parquet row groups to read, or None for all.
      byte_range: read bytes [start, end) of an SVMlight file with qid (the readers finish the
        last query past `end` and skip a partial first one).
    """

    input_index: int
    path: str
    fmt: str
    file_index: int = 0
    source: str | None = None
    start: int = 0
    end: int | None = None
    row_groups: tuple | None = None
    byte_range: bool = False

    @property
    def position(self) -> tuple[int, int, int]:
        """(input, file, start): splits in input order sort by this."""
        return (self.input_index, self.file_index, self.start)

    @property
    def name(self) -> str:
        return f"{self.input_index}-{self.file_index}-{self.start}"


def resolve_format(path: str, fmt: str) -> str:
    """The format of an input (`auto`: detected by content, local or remote).

    Raises:
      InputError: a known layout that holds no queries (`looks like TREC qrels: ...`).
    """
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt in LOOKS_LIKE and fmt != "empty":  # a known layout that holds no queries: say what it looks like
        raise InputError(path, f"looks like {LOOKS_LIKE[fmt]}; it holds no queries with "
                               "features to read")
    return fmt


def plan_splits(config: CurriculumConfig) -> list[Split]:
    """The splits of every input, in input order (the launcher plans; workers read).

    Every file (each Parquet file of a folder input too) is split by the readers' planner: byte
    ranges of SVMlight files with qid, row groups of canonical Parquet, whole otherwise; the
    embedded synthetic input by ranges of `SPLIT_ROWS` queries.
    """
    if not config.inputs and config.synthetic_kind == "text":  # built whole: one split
        return [Split(-1, "embedded:synthetic-text", "synthetic-text", 0, "synthetic-text")]
    if not config.inputs:
        n, step = config.synthetic.n_queries, SPLIT_ROWS
        return [Split(-1, "embedded:synthetic", "synthetic", 0, "synthetic", a,
                      min(n, a + step)) for a in range(0, n, step)]
    out = []
    for index, path in enumerate(config.inputs):
        fmt = resolve_format(path, config.input_format)
        if fmt == "parquet" and fs.isdir(path):
            files = [f for f in fs.list_files(path) if f.endswith(".parquet")
                     and fs.dirname(f).rstrip("/") == path.rstrip("/")]
            source = fs.basename(path.rstrip("/"))
            for i, f in enumerate(sorted(files)):
                out += _planned(Split(index, f, fmt, i, source), config)
        else:
            out += _planned(Split(index, path, fmt, 0, None), config)
    return out


SPLIT_BYTES = 64 << 20  # target input bytes per split (readers' planner)


def _planned(whole: Split, config: CurriculumConfig) -> list[Split]:
    plans = plan_file_splits(whole.path, whole.fmt, SPLIT_BYTES, group_rows=config.group_rows)
    out = []
    for plan in plans:
        if "byte_range" in plan:
            a, b = plan["byte_range"]
            out.append(dataclasses.replace(whole, start=int(a), end=int(b), byte_range=True))
        elif "row_groups" in plan:
            groups = tuple(int(g) for g in plan["row_groups"])
            out.append(dataclasses.replace(whole, start=groups[0], end=groups[-1] + 1,
                                           row_groups=groups))
        else:
            out.append(whole)
    return out or [whole]


def read_split(split: Split, config: CurriculumConfig, space=None) -> Iterator:
    """The QueryBatches of one split (not yet validated).

    Args:
      split: what to read.
      config: the run's configuration.
      space: the dataset's FeatureSpace (`dataset_space_of`), or None (each file decides).
    """
    if split.fmt == "synthetic":
        for a in range(split.start, split.end, config.batch_size):
            rows = [synthetic_query(config.synthetic, i)
                    for i in range(a, min(split.end, a + config.batch_size))]
            yield rows_to_batch(rows, [], step="read")
        return
    if split.fmt == "synthetic-text":
        yield from generate_text(config.synthetic_text(), config.batch_size)
        return
    kwargs = dict(batch_size=config.batch_size, column_map=config.column_map,
                  split=config.split, source=split.source, text=config.text_options())
    if split.row_groups is not None:
        kwargs["row_groups"] = list(split.row_groups)
    if split.byte_range:
        kwargs["byte_range"] = (split.start, split.end)
    if space is not None:
        kwargs["space"] = space
    kwargs.update(group_rows=config.group_rows, max_feature_id=config.max_feature_id)
    yield from read_queries(split.path, split.fmt, **kwargs)


# --- the dataset's feature space -------------------------------------------------------------

def scan_units(config: CurriculumConfig, splits: list) -> list[tuple]:
    """What the space scan reads, in input order: `(position, path, byte_range)`.

    An SVMlight file split by byte range is scanned split by split (in parallel: the scan is a
    full pass over the file); any other input is scanned whole, once (a table's scan reads only
    its schema).
    """
    units, whole = [], set()
    for split in splits:
        if split.byte_range:
            units.append((split.position, split.path, (split.start, split.end)))
        elif split.input_index not in whole:
            whole.add(split.input_index)
            units.append(((split.input_index, 0, 0), config.inputs[split.input_index], None))
    return sorted(units, key=lambda unit: unit[0])


def scan_input(unit: tuple, config: CurriculumConfig):
    """(position, what one scan unit says about the feature space: the readers' `scan_space`)."""
    position, path, byte_range = unit
    return position, scan_space(path, config.input_format, column_map=config.column_map,
                                max_feature_id=config.max_feature_id, byte_range=byte_range)


class MergeSpaceStats(beam.CombineFn):
    """Merges the scans' SpaceStats in input order (None: no dataset-wide space).

    The order decides which file a message names and whose feature names are kept, so the
    (small: one per scan unit) accumulator keeps every scan with its position and merges them
    sorted, whatever order the runner combines in.
    """

    def create_accumulator(self):
        return []

    def add_input(self, acc, positioned):
        return acc + [positioned]

    def merge_accumulators(self, accs):
        return [item for acc in accs for item in acc]

    def extract_output(self, acc):
        out = None
        for _, stats in sorted(acc, key=lambda item: item[0]):
            if stats is not None:
                out = stats if out is None else out.merge(stats)
        return out


def resolve_input_space(stats, config: CurriculumConfig):
    """The dataset's FeatureSpace from merged stats (None stays None)."""
    if stats is None:
        return None
    return resolve_space(stats, config.zero_based)


class DatasetSpace(beam.PTransform):
    """A pre-pass: the scan units (`scan_units`) scanned in parallel, merged in input order,
    resolved: a singleton FeatureSpace (or None)."""

    def __init__(self, config: CurriculumConfig, splits: list):
        super().__init__()
        self.config, self.splits = config, splits

    def expand(self, pbegin):
        cfg = self.config
        return (pbegin | "Inputs" >> beam.Create(scan_units(cfg, self.splits))
                | "ScanSpace" >> beam.Map(scan_input, cfg)
                | "MergeSpace" >> beam.CombineGlobally(MergeSpaceStats())
                | "ResolveSpace" >> beam.Map(resolve_input_space, cfg))


def space_dict(space) -> dict | None:
    """A FeatureSpace as the manifest records it, or None."""
    if space is None:
        return None
    return {"base": space.base, "width": space.width,
            "names": list(space.names) if space.names is not None else None}


def _progress(root: str, name: str) -> None:
    """Marks one split done (the launcher counts these markers for its progress line)."""
    fs.write_bytes(fs.join(root, PROGRESS_FOLDER, name), b"")


def validated_batches(split: Split, config: CurriculumConfig, space=None) -> Iterator:
    """(ok table, quarantine table, records read, skipped lines) per batch of a split.

    Validation state is per split (duplicates within a split are quarantined here, across splits
    by `Dedupe`), so pass 1 and pass 2 see exactly the same ok rows.
    """
    needs_labels = parse_reward(config.reward).kind != "log"
    state = ValidationState(label_min=config.label_min, label_max=config.label_max,
                            require_labels=needs_labels)
    for batch in prefetch(read_split(split, config, space)):
        read_bad = batch.quarantine.num_rows
        ok, bad = validate_queries(batch, state)
        rejected = set(bad.column("location").to_pylist()[read_bad:])
        ok_locations = [x for x in batch.locations if x not in rejected]
        yield ok, bad, batch.records, int(getattr(batch, "skipped_lines", 0)), ok_locations


# --- pass 1: read, validate, score; small rows out -------------------------------------------

def _small_rows(scored: pa.Table, positions: list, locations: list, routing, config
                ) -> pa.Table:
    """The small per-query rows of scored queries (routing decided; descriptors for candidates).

    `scored` may lack real features when its descriptors were computed earlier (`_descriptor`
    column present).
    """
    routed_fate, reasons, weights, signatures, descs = _route_small(scored, routing, config)
    columns = {"query_id": scored.column("query_id"), "source": scored.column("source"),
               "location": pa.array(locations, pa.string()),
               "position": pa.array(positions, pa.list_(pa.int64())),
               "policy_id": scored.column("policy_id")}
    for f in DIFFICULTY_FIELDS:
        columns[f.name] = scored.column(f.name)
    columns.update(fate=pa.array(routed_fate, pa.string()), reason=pa.array(reasons, pa.string()),
                   weight=pa.array(weights, pa.float32()),
                   signature=pa.array(signatures, pa.string()),
                   _descriptor=pa.array(descs, pa.list_(pa.float32())))
    return pa.Table.from_pydict(columns, schema=SMALL_SCHEMA)


def _route_small(scored: pa.Table, routing, config):
    """Per row: fate, reason, weight, signature, descriptor (the last three for imitation)."""
    n = scored.num_rows
    fate = ["rl"] * n
    reason = [""] * n
    weight: list = [None] * n
    signature: list = [None] * n
    desc: list = [None] * n
    has_desc = "_descriptor" in scored.column_names
    fates = route_fates(scored, routing)  # decisions only: the rows are not copied three ways
    for i in np.flatnonzero(fates.fate == "dropped"):
        fate[i], reason[i] = "dropped", fates.reason[i]
    rows = np.flatnonzero(fates.fate == "imitation")
    if rows.size:
        if has_desc:
            d = scored.column("_descriptor").to_pylist()
            s = scored.column("_signature").to_pylist()
            found = [(d[r], s[r]) for r in rows]
        else:
            imitation = scored.take(pa.array(rows))
            width = int(list_lengths(imitation.column("doc_ids")).max())
            vectors, names = div.descriptors(pad_queries(imitation),
                                             fates.teacher[rows][:, :width],
                                             config.diversity.max_dims)
            found = list(zip([v.tolist() for v in vectors], names))
        for i, w, (v, s) in zip(rows.tolist(), fates.weight[rows].tolist(), found):
            fate[i], weight[i], signature[i], desc[i] = "imitation", float(w), s, v
    return fate, reason, weight, signature, desc


def _stats(**counts) -> dict:
    return {"counts": Counter({k: int(v) for k, v in counts.items() if v})}


class _Pass1Fn(_WorkerFn):
    """What both pass-1 DoFns share: one split read and validated, its read/skipped counts and
    quarantine as tagged outputs, each batch's valid queries with their input positions handed
    to `_valid` (the subclass's part), the feature widths seen, and the split marked done."""

    QUARANTINE, STATS = "quarantine", "stats"

    def __init__(self, config: CurriculumConfig, root: str, launcher_pid: int | None = None):
        super().__init__(launcher_pid)
        self.config, self.root = config, root

    def process(self, split: Split, space=None) -> Iterator:
        seq = 0
        widths = Counter()
        for ok, bad, records, skipped, locations in validated_batches(split, self.config,
                                                                      space):
            _count("read", records)
            yield beam.pvalue.TaggedOutput(self.STATS, _stats(read=records, skipped_lines=skipped))
            if bad.num_rows:
                yield beam.pvalue.TaggedOutput(self.QUARANTINE, bad)
            if not ok.num_rows:
                continue
            positions = [[*split.position, seq + i] for i in range(ok.num_rows)]
            seq += ok.num_rows
            widths.update(_widths(ok))
            yield from self._valid(ok, positions, locations)
        if widths:
            yield beam.pvalue.TaggedOutput(self.STATS, {"feature_widths": widths})
        _progress(self.root, f"p1-{split.name}")
        _LOG.info("pass 1: split %s done", split.name)

    def _valid(self, ok: pa.Table, positions: list, locations: list) -> Iterator:
        raise NotImplementedError


@beam.typehints.with_output_types(pa.Table)
class ScoreSplitFn(_Pass1Fn):
    """Pass 1 with a policy: one split read, validated and scored; small rows out.

    Outputs: small rows (main), quarantine tables (`quarantine`), statistics (`stats`).
    """

    def __init__(self, config: CurriculumConfig, root: str, launcher_pid: int | None = None):
        super().__init__(config, root, launcher_pid)
        self.routing = dataclasses.replace(config.routing, teacher_mode=config.teacher)
        self.scorer = None

    def setup(self):
        super().setup()
        from difficulty.policy import PolicyScorer  # torch: imported by the workers only

        self.scorer = PolicyScorer(self.config.policy_spec())

    def _valid(self, ok: pa.Table, positions: list, locations: list) -> Iterator:
        from difficulty.scoring import score_with_policy

        scored, spent = score_with_policy(ok, self.scorer, self.config.scoring())
        _count("rollouts", spent)
        yield _small_rows(scored, positions, locations, self.routing, self.config)


def _widths(ok: pa.Table) -> Counter:
    inner = pc.list_flatten(ok.column("features"))
    if len(inner) == 0:
        return Counter()
    return Counter({int(pc.list_value_length(inner)[0].as_py()): ok.num_rows})


class ReadForLogFn(_Pass1Fn):
    """Pass 1 with a rollout log: one split read and validated; per query a featureless row
    (doc ids, labels, teacher, position) with its demonstration descriptor, keyed by query id.

    Descriptors depend on features and the teacher only, not on the band, so they are computed
    here for every query with an informative demonstration, before the rollouts are joined.
    """

    def _valid(self, ok: pa.Table, positions: list, locations: list) -> Iterator:
        scores, given = teacher_scores(ok, self.config.teacher)
        has = given & informative_demonstrations(ok, scores)
        descs: list = [None] * ok.num_rows
        sigs: list = [None] * ok.num_rows
        rows = np.flatnonzero(has)
        if rows.size:
            subset = ok.take(pa.array(rows))
            width = int(subset.column("doc_ids").combine_chunks().value_lengths()
                        .to_numpy().max())
            vectors, names = div.descriptors(pad_queries(subset), scores[rows][:, :width],
                                             self.config.diversity.max_dims)
            for j, r in enumerate(rows):
                descs[r], sigs[r] = vectors[j].tolist(), names[j]
        featureless = _featureless(ok)
        for i, qid in enumerate(ok.column("query_id").to_pylist()):
            yield (qid, {"query": featureless.slice(i, 1).to_pylist()[0],
                         "position": positions[i], "location": locations[i],
                         "descriptor": descs[i], "signature": sigs[i]})


def _featureless(ok: pa.Table) -> pa.Table:
    """`ok` with every document's feature vector emptied (the width-0 features of a query)."""
    n_docs = ok.column("doc_ids").combine_chunks().value_lengths().to_numpy()
    empty = pa.array([[[] for _ in range(int(n))] for n in n_docs],
                     pa.list_(pa.list_(pa.float32())))
    index = ok.schema.get_field_index("features")
    return ok.set_column(index, ok.schema.field(index), empty)


def _rollout_rows(path: str) -> Iterator:
    for table, bad in read_rollouts(path):
        _count("rollouts_read", table.num_rows + bad.num_rows)
        if bad.num_rows:
            yield beam.pvalue.TaggedOutput("quarantine", bad)
        for row in table.to_pylist():
            yield row["query_id"], row


class ScoreFromLog(beam.PTransform):
    """Joins an outside policy's rollouts to featureless queries, verifies them, scores.

    The join is per query (a CoGroupByKey of rollouts and small query rows, never features).
    Returns (small rows, quarantine tables).
    """

    def __init__(self, config: CurriculumConfig, launcher_pid: int | None = None):
        super().__init__()
        self.config, self.launcher_pid = config, launcher_pid

    def expand(self, keyed_queries):
        cfg = self.config
        rollouts = (keyed_queries.pipeline | "RolloutLog" >> beam.Create([cfg.rollouts])
                    | "ReadRollouts" >> beam.FlatMap(_rollout_rows).with_outputs(
                        "quarantine", main="rows"))
        joined = ({"query": keyed_queries, "rollouts": rollouts.rows}
                  | "JoinRollouts" >> beam.CoGroupByKey())
        scored = joined | "VerifyAndScore" >> beam.ParDo(
            _ScoreJoinedFn(cfg, self.launcher_pid)).with_outputs("quarantine", main="scored")
        quarantine = ((rollouts.quarantine, scored.quarantine)
                      | "RolloutQuarantine" >> beam.Flatten())
        return scored.scored, quarantine


class _ScoreJoinedFn(_WorkerFn):
    def __init__(self, config: CurriculumConfig, launcher_pid: int | None = None):
        super().__init__(launcher_pid)
        self.config = config
        self.routing = dataclasses.replace(config.routing, teacher_mode=config.teacher)

    def process(self, element) -> Iterator:
        qid, grouped = element
        occurrences = sorted(grouped["query"], key=lambda o: o["position"])
        # Sorted by id, then content: which of two rows sharing a rollout id is kept (the first)
        # must not depend on the order the join delivers them in.
        rows = sorted(grouped["rollouts"],
                      key=lambda r: (str(r["rollout_id"]), json.dumps(r, sort_keys=True,
                                                                     default=str)))
        if len(occurrences) > 1:
            yield beam.pvalue.TaggedOutput("quarantine", duplicate_rows(
                qid, occurrences[0]["location"], [o["location"] for o in occurrences[1:]]))
        first = occurrences[0] if occurrences else None
        known = {qid: first["query"]["doc_ids"]} if first else {}
        table = pa.Table.from_pylist(rows, schema=ROLLOUT_SCHEMA) if rows else None
        if table is not None:
            ok, bad = validate_rollouts(table, known, self.config.rollouts,
                                        reward_max=parse_reward(self.config.reward).max_reward)
            if bad.num_rows:
                _count("rollouts_quarantined", bad.num_rows)
                yield beam.pvalue.TaggedOutput("quarantine", bad)
            rows = ok.to_pylist()
        if first is None:
            return
        if not rows:  # the outside policy never ran this query: it cannot be assessed
            _count(f"quarantine_{Reason.NO_ROLLOUTS}")
            yield beam.pvalue.TaggedOutput("quarantine", quarantine_table([quarantine_row(
                Reason.NO_ROLLOUTS, step="rollouts", location=f"{self.config.rollouts}#query={qid}",
                query_id=qid, detail="the rollout log has no valid rollout for this query",
                raw={"query_id": qid})]))
            return
        query = pa.Table.from_pylist([first["query"]], schema=QUERY_SCHEMA)
        policy_id = rows[0].get("policy_id") or "log"
        from difficulty.scoring import score_from_log

        scored = score_from_log(query, [rows], policy_id, self.config.scoring())
        scored = (scored.append_column("_descriptor", pa.array([first["descriptor"]],
                                                               pa.list_(pa.float32())))
                  .append_column("_signature", pa.array([first["signature"]], pa.string())))
        yield _small_rows(scored, [first["position"]], [first["location"]], self.routing,
                          self.config)


# --- duplicates across splits ----------------------------------------------------------------

def duplicate_rows(qid: str, first_location: str, locations: list[str]) -> pa.Table:
    """Quarantine rows for later occurrences of a query id (the first by input order wins)."""
    return quarantine_table([quarantine_row(
        Reason.DUPLICATE_QUERY_ID, step="validate", location=loc, query_id=qid,
        detail=f"query id {qid!r} was already read at {first_location}",
        raw={"query_id": qid}) for loc in locations])


DEDUPE_BUCKETS = 32  # hash buckets of query ids the duplicate check groups small rows into


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


# --- decisions on small rows -----------------------------------------------------------------

def _where(table: pa.Table, fate: str) -> pa.Table:
    return table.filter(pc.equal(table.column("fate"), fate))


def having(fate: str):
    """A FlatMap keeping the small rows of one fate (empty tables are not passed on)."""
    def keep(table: pa.Table) -> Iterator[pa.Table]:
        rows = _where(table, fate)
        if rows.num_rows:
            yield rows

    return beam.FlatMap(keep)


class _SampleDescriptors(beam.CombineFn):
    """Keeps the `limit` descriptors with the smallest query hash: a sample independent of order."""

    def __init__(self, limit: int, seed: int):
        self.limit, self.seed = limit, seed

    def create_accumulator(self):
        return []

    def add_input(self, acc, table: pa.Table):
        for qid, desc in zip(table.column("query_id").to_pylist(),
                             table.column("_descriptor").to_pylist()):
            acc.append((stable_hash(qid, f"{self.seed}:fit"), qid, desc))
        return self._trim(acc)

    def _trim(self, acc):
        acc.sort()
        return acc[:self.limit]

    def merge_accumulators(self, accs):
        return self._trim([x for acc in accs for x in acc])

    def extract_output(self, acc):
        width = len(acc[0][2]) if acc else 0
        return np.array([d for _, _, d in acc], dtype=np.float32).reshape(len(acc), width)


class _SumCounters(beam.CombineFn):
    """Sums dict-of-counters statistics (a small global table)."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, stats: dict):
        for name, counter in stats.items():
            acc.setdefault(name, Counter()).update(counter)
        return acc

    def merge_accumulators(self, accs):
        out = {}
        for acc in accs:
            self.add_input(out, acc)
        return out

    def extract_output(self, acc):
        return {name: dict(counter) for name, counter in acc.items()}


def assign_clusters(table: pa.Table, centers: np.ndarray) -> pa.Table:
    """Demonstration candidates with their nearest behavior cluster (`diversity_cluster`)."""
    desc = pc.list_flatten(table.column("_descriptor")).to_numpy(zero_copy_only=False)
    clusters = div.assign(desc.astype(np.float32).reshape(table.num_rows, -1), centers)
    return table.append_column("diversity_cluster", pa.array(clusters, pa.int32()))


def _cluster_stats(table: pa.Table) -> dict:
    return {"clusters": Counter(table.column("diversity_cluster").to_pylist()),
            "signatures": Counter(table.column("signature").to_pylist())}


class SelectDemonstrationsFn(beam.DoFn):
    """Keeps demonstrations by per-cluster quota (from the global counts); the rest are dropped.

    Outputs decision tuples `(qid, ("imitation", position, cluster, signature, weight,
    pass_rate, band))` (main),
    dropped rows (`dropped`) and statistics (`stats`).
    """

    def __init__(self, config: CurriculumConfig):
        self.config = config

    def process(self, table: pa.Table, centers: np.ndarray, stats: dict) -> Iterator:
        cfg = self.config.diversity
        clusters = table.column("diversity_cluster").to_numpy()
        counts = np.zeros(len(centers))
        for cluster, n in stats.get("clusters", {}).items():
            counts[int(cluster)] = n
        probabilities = div.keep_probabilities(counts, cfg)
        keep = div.select(table.column("query_id").to_pylist(), clusters, probabilities,
                          self.config.seed)
        kept = table.filter(pa.array(keep))
        if (~keep).any():
            lost = table.filter(pa.array(~keep))
            reasons = [f"diversity_quota: cluster {c} thinned"
                       for c in lost.column("diversity_cluster").to_pylist()]
            yield beam.pvalue.TaggedOutput("dropped", dropped_rows(lost.drop_columns(["reason"]),
                                                                   reasons))
        if kept.num_rows:
            _count("imitation", kept.num_rows)
            yield beam.pvalue.TaggedOutput("stats", {
                "counts": Counter({"imitation": kept.num_rows}),
                "clusters_after": Counter(kept.column("diversity_cluster").to_pylist()),
                "signatures_after": Counter(kept.column("signature").to_pylist())})
            for row in kept.select(["query_id", "position", "diversity_cluster", "signature",
                                    "weight", "pass_rate", "band"]).to_pylist():
                yield row["query_id"], ("imitation", tuple(row["position"]),
                                        row["diversity_cluster"], row["signature"], row["weight"],
                                        row["pass_rate"], row["band"])


def _stage_stats(table: pa.Table, config: CurriculumConfig) -> dict:
    keys = ordering.order_keys(table.column("pass_rate").to_numpy(), config.order,
                               table.column("query_id").to_pylist(), config.seed)
    return {"keys": ordering.key_histogram(keys)}


class AssignStagesFn(beam.DoFn):
    """Order key and stages per RL query, from the global key histogram (replays included).

    Outputs decision tuples `(qid, ("rl", position, order_key, stages, pass_rate, band))` (main;
    `stages` starts with the query's own stage, then its replay stages) and statistics.
    """

    def __init__(self, config: CurriculumConfig):
        self.config = config

    def process(self, table: pa.Table, stats: dict) -> Iterator:
        order = self.config.order
        keys = ordering.order_keys(table.column("pass_rate").to_numpy(), order,
                                   table.column("query_id").to_pylist(), self.config.seed)
        histogram = Counter({float(k): v for k, v in stats["keys"].items()})
        stages = ordering.assign_stages(keys, ordering.stage_table(histogram, order.stages))
        qids = table.column("query_id").to_pylist()
        copies = ordering.replay_copies(qids, stages, order, self.config.seed)
        later: dict[int, list[int]] = {}
        for row, stage in copies:
            later.setdefault(row, []).append(stage)
        rates = table.column("pass_rate").to_numpy()
        _count("rl", table.num_rows)
        stage_rows = Counter(stages.tolist()) + Counter(s for _, s in copies)
        yield beam.pvalue.TaggedOutput("stats", {
            "counts": Counter({"rl": table.num_rows, "rl_rows": table.num_rows + len(copies),
                               "rl_replayed": len(copies)}),
            "stage_rows": stage_rows,
            "stage_pass_rates": Counter(f"{int(s)}:{r:.9f}" for s, r in zip(stages, rates))})
        positions = table.column("position").to_pylist()
        bands = table.column("band").to_pylist()
        for i, qid in enumerate(qids):
            yield qid, ("rl", tuple(positions[i]), float(keys[i]),
                        (int(stages[i]), *sorted(later.get(i, []))), float(rates[i]), bands[i])


# --- pass 2: re-read, join decisions, write ---------------------------------------------------

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
    imitation, rl = [], []
    for i, qid in enumerate(qids):
        decision = decisions.get(qid)
        if decision is None or tuple(positions[i]) != decision[1]:
            continue
        (imitation if decision[0] == "imitation" else rl).append((i, decision))
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


class WriteSplitFn(_WorkerFn):
    """Pass 2: one split re-read and re-validated; its imitation and RL rows, as (phase, table)."""

    def __init__(self, config: CurriculumConfig, root: str, launcher_pid: int | None = None):
        super().__init__(launcher_pid)
        self.config, self.root = config, root

    def process(self, split: Split, decisions: dict, space=None) -> Iterator:
        seq = 0
        for ok, _bad, _records, _skipped, _locations in validated_batches(split, self.config,
                                                                          space):
            if not ok.num_rows:
                continue
            positions = [(*split.position, seq + i) for i in range(ok.num_rows)]
            seq += ok.num_rows
            yield from pass2_rows(ok, positions, decisions, self.config)
        _progress(self.root, f"p2-{split.name}")
        _LOG.info("pass 2: split %s done", split.name)


def shard_keys(config: CurriculumConfig) -> list[tuple[str, int, int]]:
    """Every (phase, stage, shard) of a run: each is written, empty or not."""
    keys = []
    for phase in PHASES:
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


class SpillFn(_WorkerFn):
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


class MergeShardFn(_WorkerFn):
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


def difficulty_rows(small: pa.Table) -> pa.Table:
    return conform(small, DIFFICULTY_SCHEMA)


def dropped_of(small: pa.Table) -> Iterator[pa.Table]:
    """Dropped small rows as DROPPED_SCHEMA (their routing reason)."""
    rows = _where(small, "dropped")
    if rows.num_rows:
        yield dropped_rows(rows.drop_columns(["reason"]), rows.column("reason").to_pylist())

