"""Decisions on the small rows of pass 1, from global statistics (combiners over small rows):
demonstrations selected by per-cluster diversity quotas (`SelectDemonstrationsFn`), RL queries
given their order key and stages (`AssignStagesFn`), and the small rows that are shards as they
are (difficulty rows, routed-out dropped rows).

A decision is a small tuple keyed by query id (no features); pass 2 joins queries to them.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curricula import diversity as div
from curricula import ordering
from curricula.hashing import stable_hash
from curricula.routing import dropped_rows
from data_contracts.schema import DIFFICULTY_SCHEMA, conform
from pipelines import coders  # noqa: F401 - registers the Arrow table coder
from pipelines.config import CurriculumConfig
from pipelines.progress import count


def _where(table: pa.Table, fate: str) -> pa.Table:
    return table.filter(pc.equal(table.column("fate"), fate))


def having(fate: str):
    """A FlatMap keeping the small rows of one fate (empty tables are not passed on)."""
    def keep(table: pa.Table) -> Iterator[pa.Table]:
        rows = _where(table, fate)
        if rows.num_rows:
            yield rows

    return beam.FlatMap(keep)


class SampleDescriptors(beam.CombineFn):
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


class SumCounters(beam.CombineFn):
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


def cluster_stats(table: pa.Table) -> dict:
    """Counts of the clusters and signatures of assigned demonstrations (summed by SumCounters)."""
    return {"clusters": Counter(table.column("diversity_cluster").to_pylist()),
            "signatures": Counter(table.column("signature").to_pylist())}


class SelectDemonstrationsFn(beam.DoFn):
    """Keeps demonstrations by per-cluster quota (from the global counts); the rest are dropped.

    Outputs decision tuples `(qid, ("imitation", position, cluster, signature, weight,
    pass_rate, band))` (main),
    dropped rows (`dropped`) and statistics (`stats`). With `asks_again` (a run whose policy a
    later round can ask: batch results, a live server), a thinned query whose band is not
    decided also gets a pending decision (`pending_of`'s tuple), so the pending shard keeps its
    texts and the next `--to requests` can ask it; otherwise no round could ever decide it.
    """

    def __init__(self, config: CurriculumConfig, asks_again: bool = False):
        self.config = config
        self.asks_again = asks_again

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
            if self.asks_again:  # undecided and thinned: kept pending, a later round asks it
                undecided = lost.filter(pc.invert(pc.fill_null(lost.column("decided"), False)))
                yield from _pending_decisions(undecided, unscored=0)
        if kept.num_rows:
            count("imitation", kept.num_rows)
            yield beam.pvalue.TaggedOutput("stats", {
                "counts": Counter({"imitation": kept.num_rows}),
                "clusters_after": Counter(kept.column("diversity_cluster").to_pylist()),
                "signatures_after": Counter(kept.column("signature").to_pylist())})
            for row in kept.select(["query_id", "position", "diversity_cluster", "signature",
                                    "weight", "pass_rate", "band"]).to_pylist():
                yield row["query_id"], ("imitation", tuple(row["position"]),
                                        row["diversity_cluster"], row["signature"], row["weight"],
                                        row["pass_rate"], row["band"])


def stage_stats(table: pa.Table, config: CurriculumConfig) -> dict:
    """The histogram of RL queries' order keys (summed by SumCounters into stage boundaries)."""
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
        count("rl", table.num_rows)
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


def scored_only(small: pa.Table) -> Iterator[pa.Table]:
    """The scored small rows (not `--policy none`'s pending rows, which have no pass rate)."""
    rows = small.filter(pc.not_equal(small.column("fate"), "pending"))
    if rows.num_rows:
        yield rows


def pending_of(small: pa.Table, undecided_too: bool = True) -> Iterator:
    """Decision tuples `(qid, ("pending", position, pass_rate, band, trials, decided))` of the
    queries a later round may ask about that no imitation or RL shard holds with texts: every
    `--policy none` row, and the undecided rows routed out (dropped) of a run built from an LLM
    policy's results (`undecided_too`: a later round can ask again); and their statistics
    (`pending`, `unscored`). (Undecided demonstrations a diversity quota thins are kept pending
    by `SelectDemonstrationsFn`.)"""
    unscored = pc.equal(small.column("fate"), "pending")
    keep = unscored
    if undecided_too:
        keep = pc.or_(unscored, pc.and_(pc.equal(small.column("fate"), "dropped"),
                                        pc.invert(pc.fill_null(small.column("decided"), False))))
    yield from _pending_decisions(small.filter(keep),
                                  int(pc.sum(unscored.cast(pa.int64())).as_py() or 0))


def _pending_decisions(rows: pa.Table, unscored: int) -> Iterator:
    """Pending decision tuples of small `rows` (see `pending_of`) and their statistics (tagged
    `stats`); nothing for an empty table."""
    if not rows.num_rows:
        return
    yield beam.pvalue.TaggedOutput("stats", {"counts": Counter(
        {"pending": rows.num_rows, "unscored": unscored})})
    for row in rows.select(["query_id", "position", "pass_rate", "band", "trials",
                            "decided"]).to_pylist():
        yield row["query_id"], ("pending", tuple(row["position"]), row["pass_rate"],
                                row["band"], row["trials"], row["decided"])


def difficulty_rows(small: pa.Table) -> pa.Table:
    """Small rows as difficulty rows (DIFFICULTY_SCHEMA)."""
    return conform(small, DIFFICULTY_SCHEMA)


def dropped_of(small: pa.Table) -> Iterator[pa.Table]:
    """Dropped small rows as DROPPED_SCHEMA (their routing reason)."""
    rows = _where(small, "dropped")
    if rows.num_rows:
        yield dropped_rows(rows.drop_columns(["reason"]), rows.column("reason").to_pylist())
