"""Pass 1: each split read, validated and scored in parallel; small per-query rows out.

A small row (`SMALL_SCHEMA`) holds the query id, input position, difficulty columns, fate,
reason and demonstration descriptor, never features: everything after pass 1 decides on these.
With a policy, `ScoreSplitFn` samples and scores rollouts; with an outside policy's rollout log,
pipelines.score_log's `ReadForLogFn` keeps featureless queries and its `ScoreFromLog` joins the
log to them and scores.
"""
from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curricula import diversity as div
from curricula.routing import route_fates
from data_contracts.arrays import list_lengths, pad_queries
from data_contracts.schema import DIFFICULTY_FIELDS, POLICY_ID, QUERY_ID, SOURCE
from pipelines import coders  # noqa: F401 - registers the Arrow table coder
from pipelines.config import CurriculumConfig
from pipelines.manifest import PIPELINE_COUNTS
from pipelines.progress import count, mark_done
from pipelines.splits import Split, validated_batches
from pipelines.workers import WorkerFn

_LOG = logging.getLogger("pipelines.progress")

# The small per-query row of pass 1: no features.
POSITION = pa.field("position", pa.list_(pa.int64()), nullable=False)
SMALL_SCHEMA = pa.schema(
    [QUERY_ID, SOURCE, pa.field("location", pa.string()), POSITION, POLICY_ID]
    + DIFFICULTY_FIELDS
    + [pa.field("fate", pa.string()), pa.field("reason", pa.string()),
       pa.field("weight", pa.float32()), pa.field("signature", pa.string()),
       pa.field("_descriptor", pa.list_(pa.float32()))])


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


def reader_counts(counted: dict) -> dict:
    """A batch's reader counts (`QueryBatch.counts`) that the manifest's `counts` sums: the
    numbers only (pass 1 sums them; pass 2 re-reads and does not). `read`, `quarantined` and
    the other reconciled names are the pipeline's own and never taken from a reader.

    Raises:
      ValueError: a reader count named like one of the pipeline's own (a reader bug: it would
        break the reconciliation).
    """
    clash = sorted(set(counted) & set(PIPELINE_COUNTS))
    if clash:
        raise ValueError(f"a reader count is named {clash[0]!r}, a name the pipeline counts "
                         "itself")
    return {k: int(v) for k, v in counted.items()
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool)}


class _Pass1Fn(WorkerFn):
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
        for ok, bad, records, skipped, locations, counted in validated_batches(
                split, self.config, space):
            count("read", records)
            yield beam.pvalue.TaggedOutput(self.STATS, _stats(
                read=records, skipped_lines=skipped, **reader_counts(counted)))
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
        mark_done(self.root, f"p1-{split.name}")
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
        count("rollouts", spent)
        yield _small_rows(scored, positions, locations, self.routing, self.config)


def _widths(ok: pa.Table) -> Counter:
    inner = pc.list_flatten(ok.column("features"))
    if len(inner) == 0:
        return Counter()
    return Counter({int(pc.list_value_length(inner)[0].as_py()): ok.num_rows})
