"""Beam PTransforms that compose the plain functions of data_contracts, difficulty and curricula.

Elements are Arrow tables (one batch of queries each), never single rows: Beam's per-element cost
is paid once per batch. Every PTransform here is thin; the logic lives in the packages it calls.
"""
from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from curricula import diversity as div
from curricula import ordering
from curricula.hashing import shard_of, stable_hash
from curricula.routing import dropped_rows, route
from curricula.staging import write_shard
from data_contracts.arrays import pad_queries
from data_contracts.quarantine import quarantine_row, quarantine_table
from data_contracts.readers import read_queries, read_rollouts
from data_contracts.readers.prefetch import prefetch
from data_contracts.reasons import Reason
from data_contracts.schema import (DIFFICULTY_SCHEMA, DROPPED_SCHEMA, IMITATION_SCHEMA,
                                   QUARANTINE_SCHEMA, RL_SCHEMA, ROLLOUT_SCHEMA, conform)
from data_contracts.synthetic import generate
from data_contracts.synthetic_text import generate_text
from data_contracts.teacher import teacher_orders
from data_contracts.validate import ValidationState, validate_queries, validate_rollouts
from difficulty.policy import PolicyScorer
from difficulty.rewards import parse_reward
from difficulty.scoring import score_from_log, score_with_policy
from pipelines import coders  # noqa: F401 - registers the Arrow table coder
from pipelines.config import CurriculumConfig

METRICS_NAMESPACE = "build_curriculum"


def _count(name: str, value: int = 1) -> None:
    if value:
        Metrics.counter(METRICS_NAMESPACE, name).inc(int(value))


@beam.typehints.with_output_types(pa.Table)
class ReadAndValidateFn(beam.DoFn):
    """Reads every input in order and validates it: ok batches out, quarantine as a tagged output.

    Inputs are read sequentially in one DoFn so duplicate query ids are caught across files; the
    scoring that follows is what runs in parallel.
    """

    QUARANTINE = "quarantine"

    def __init__(self, config: CurriculumConfig):
        self.config = config

    def _batches(self):
        cfg = self.config
        if not cfg.inputs:
            if cfg.synthetic_kind == "text":
                yield from generate_text(cfg.synthetic_text(), cfg.batch_size)
                return
            yield from generate(cfg.synthetic, cfg.batch_size)
            return
        for path in cfg.inputs:
            yield from read_queries(path, cfg.input_format, batch_size=cfg.batch_size,
                                    column_map=cfg.column_map, split=cfg.split,
                                    text=cfg.text_options())

    def process(self, _unused) -> Iterator:
        # A reward verified against labels cannot score an unlabelled query: quarantine it.
        needs_labels = parse_reward(self.config.reward).kind != "log"
        state = ValidationState(label_min=self.config.label_min, label_max=self.config.label_max,
                                require_labels=needs_labels)
        for batch in prefetch(self._batches()):
            _count("read", batch.records)
            ok, bad = validate_queries(batch, state)
            if bad.num_rows:
                for reason, n in Counter(bad.column("reason").to_pylist()).items():
                    _count(f"quarantine_{reason}", n)
                yield beam.pvalue.TaggedOutput(self.QUARANTINE, bad)
            if ok.num_rows:
                yield ok


@beam.typehints.with_output_types(pa.Table)
class ScoreWithPolicyFn(beam.DoFn):
    """Samples rollouts and estimates difficulty per batch; the policy is built once per worker."""

    def __init__(self, config: CurriculumConfig):
        self.config = config
        self.scorer = None

    def setup(self):
        self.scorer = PolicyScorer(self.config.policy_spec())

    def process(self, queries: pa.Table) -> Iterator[pa.Table]:
        scored, spent = score_with_policy(queries, self.scorer, self.config.scoring())
        _count("rollouts", spent)
        for band, n in Counter(scored.column("band").to_pylist()).items():
            _count(f"band_{band}", n)
        yield scored


def _explode_queries(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    # `take`, not `slice`: a pickled slice carries its whole batch's buffers, so a join of N
    # queries would move N copies of the batch.
    for i, qid in enumerate(table.column("query_id").to_pylist()):
        yield qid, table.take(pa.array([i], pa.int64()))


def _rollout_rows(path: str) -> Iterator:
    for table, bad in read_rollouts(path):
        _count("rollouts_read", table.num_rows + bad.num_rows)
        if bad.num_rows:
            _count("rollouts_quarantined", bad.num_rows)
            yield beam.pvalue.TaggedOutput("quarantine", bad)
        for row in table.to_pylist():
            yield row["query_id"], row


class ScoreFromLog(beam.PTransform):
    """Joins an outside policy's rollouts to their queries, verifies them, estimates difficulty.

    The join is per query (a CoGroupByKey), the one place rows move one by one.
    """

    def __init__(self, config: CurriculumConfig):
        super().__init__()
        self.config = config

    def expand(self, queries):
        cfg = self.config
        rollouts = (queries.pipeline | "RolloutLog" >> beam.Create([cfg.rollouts])
                    | "ReadRollouts" >> beam.FlatMap(_rollout_rows).with_outputs(
                        "quarantine", main="rows"))
        keyed = queries | "KeyQueries" >> beam.FlatMap(_explode_queries)
        joined = ({"query": keyed, "rollouts": rollouts.rows}
                  | "JoinRollouts" >> beam.CoGroupByKey())
        scored = joined | "VerifyAndScore" >> beam.ParDo(_ScoreJoinedFn(cfg)).with_outputs(
            "quarantine", main="scored")
        quarantine = ((rollouts.quarantine, scored.quarantine)
                      | "RolloutQuarantine" >> beam.Flatten())
        return scored.scored, quarantine


class _ScoreJoinedFn(beam.DoFn):
    def __init__(self, config: CurriculumConfig):
        self.config = config

    def process(self, element) -> Iterator:
        qid, grouped = element
        query_tables = list(grouped["query"])
        # Sorted by id, then content: which of two rows sharing a rollout id is kept (the first)
        # must not depend on the order the join delivers them in.
        rows = sorted(grouped["rollouts"],
                      key=lambda r: (str(r["rollout_id"]), json.dumps(r, sort_keys=True,
                                                                     default=str)))
        known = {qid: query_tables[0].column("doc_ids")[0].as_py()} if query_tables else {}
        table = pa.Table.from_pylist(rows, schema=ROLLOUT_SCHEMA) if rows else None
        if table is not None:
            ok, bad = validate_rollouts(table, known, self.config.rollouts)
            if bad.num_rows:
                _count("rollouts_quarantined", bad.num_rows)
                yield beam.pvalue.TaggedOutput("quarantine", bad)
            rows = ok.to_pylist()
        if not query_tables:
            return
        if not rows:  # the outside policy never ran this query: it cannot be assessed
            _count(f"quarantine_{Reason.NO_ROLLOUTS}")
            yield beam.pvalue.TaggedOutput("quarantine", quarantine_table([quarantine_row(
                Reason.NO_ROLLOUTS, step="rollouts", location=f"{self.config.rollouts}#query={qid}",
                query_id=qid, detail="the rollout log has no valid rollout for this query",
                raw={"query_id": qid})]))
            return
        policy_id = rows[0].get("policy_id") or "log"
        scored = score_from_log(query_tables[0], [rows], policy_id, self.config.scoring())
        _count(f"band_{scored.column('band')[0].as_py()}")
        yield scored


@beam.typehints.with_output_types(pa.Table)
class RouteFn(beam.DoFn):
    """Routes scored batches: RL candidates (main), imitation candidates, dropped."""

    IMITATION, DROPPED = "imitation", "dropped"

    def __init__(self, config: CurriculumConfig):
        self.config = config
        self.routing = dataclasses.replace(config.routing, teacher_mode=config.teacher)

    def process(self, scored: pa.Table) -> Iterator:
        routed = route(scored, self.routing)
        if routed.dropped.num_rows:
            yield beam.pvalue.TaggedOutput(self.DROPPED, routed.dropped)
        if routed.imitation.num_rows:
            yield beam.pvalue.TaggedOutput(self.IMITATION, self._describe(routed))
        if routed.rl.num_rows:
            yield routed.rl

    def _describe(self, routed) -> pa.Table:
        """Imitation candidates with teacher order, weight, behavior descriptor and signature."""
        table, scores = routed.imitation, routed.imitation_teacher
        batch = pad_queries(table)
        desc, signatures = div.descriptors(batch, scores, self.config.diversity.max_dims)
        orders = teacher_orders(scores, batch.n_docs)
        index = table.schema.get_field_index("teacher_order")
        table = table.set_column(index, table.schema.field(index),
                                 pa.array(orders, pa.list_(pa.int32())))
        return (table.append_column("weight", pa.array(routed.imitation_weight, pa.float32()))
                .append_column("signature", pa.array(signatures, pa.string()))
                .append_column("_descriptor", pa.array(list(desc), pa.list_(pa.float32()))))


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


@beam.typehints.with_output_types(pa.Table)
class SelectDemonstrationsFn(beam.DoFn):
    """Keeps demonstrations by per-cluster quota (from the global counts); the rest are dropped."""

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
            yield beam.pvalue.TaggedOutput("dropped", dropped_rows(lost, reasons))
        if kept.num_rows:
            _count("imitation", kept.num_rows)
            yield conform(kept, IMITATION_SCHEMA)


def _stage_stats(table: pa.Table, config: CurriculumConfig) -> dict:
    keys = ordering.order_keys(table.column("pass_rate").to_numpy(), config.order)
    return {"keys": ordering.key_histogram(keys)}


@beam.typehints.with_output_types(pa.Table)
class AssignStagesFn(beam.DoFn):
    """Order key and stage per RL row, from the global key histogram; replays copy rows forward."""

    def __init__(self, config: CurriculumConfig):
        self.config = config

    def process(self, table: pa.Table, stats: dict) -> Iterator[pa.Table]:
        order = self.config.order
        keys = ordering.order_keys(table.column("pass_rate").to_numpy(), order)
        histogram = Counter({float(k): v for k, v in stats["keys"].items()})
        stage_of = ordering.stage_table(histogram, order.stages)
        stages = ordering.assign_stages(keys, stage_of)
        qids = table.column("query_id").to_pylist()
        copies = ordering.replay_copies(qids, stages, order, self.config.seed)
        rows = np.concatenate([np.arange(table.num_rows), [r for r, _ in copies]]).astype(int)
        out = table.take(pa.array(rows))
        out = (out.append_column("stage", pa.array(
                    np.concatenate([stages, [s for _, s in copies]]).astype(np.int32)))
               .append_column("order_key", pa.array(keys[rows], pa.float64()))
               .append_column("replay", pa.array([False] * table.num_rows + [True] * len(copies))))
        _count("rl", table.num_rows)
        yield conform(out, RL_SCHEMA)


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


SCHEMAS = {"difficulty": DIFFICULTY_SCHEMA, "imitation": IMITATION_SCHEMA, "rl": RL_SCHEMA,
           "dropped": DROPPED_SCHEMA, "quarantine": QUARANTINE_SCHEMA}


class WriteShards(beam.PTransform):
    """Writes one phase's tables as deterministic Parquet shards; outputs manifest file entries."""

    def __init__(self, phase: str, root: str, shards: int):
        super().__init__()
        self.phase, self.root, self.shards = phase, root, shards

    def expand(self, tables):
        phase, root, schema = self.phase, self.root, SCHEMAS[self.phase]

        def write(element) -> dict:
            (name, stage, shard), pieces = element
            return write_shard(list(pieces), name, None if stage < 0 else stage, shard, root,
                               schema)

        return (tables
                | f"Key{phase}" >> beam.FlatMap(_keyed_shards, phase, self.shards)
                | f"Group{phase}" >> beam.GroupByKey()
                | f"Write{phase}" >> beam.Map(write))

