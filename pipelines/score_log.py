"""Pass 1 with an outside policy's rollouts (a log, OpenAI batch results, a live server): the
queries read without features, the rollouts joined to them per partition of the query ids,
verified and scored; small per-query rows out (pipelines.score's `SMALL_SCHEMA`).
"""
from __future__ import annotations

import dataclasses
import json
import zlib
from collections import Counter
from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curricula import diversity as div
from curricula.routing import informative_demonstrations
from curricula.staging import read_spilled, spill_table
from data_contracts.arrays import pad_queries
from data_contracts.quarantine import quarantine_row, quarantine_table
from data_contracts.readers import read_rollouts
from data_contracts.readers.batch_results import align_to_query
from data_contracts.reasons import Reason
from data_contracts.schema import QUERY_SCHEMA, ROLLOUT_SCHEMA
from data_contracts.teacher import teacher_scores
from data_contracts.validate import validate_rollouts
from difficulty.rewards import parse_reward
from pipelines.config import CurriculumConfig
from pipelines.dedupe import duplicate_rows
from pipelines.progress import count
from pipelines.score import SMALL_SCHEMA, _Pass1Fn, _small_rows
from pipelines.workers import WorkerFn


class ReadForLogFn(_Pass1Fn):
    """Pass 1 with a rollout log: one split read and validated; per query a featureless row
    (doc ids, labels, teacher; `_position`, `_location`, `_descriptor`, `_signature`), as one
    Arrow table per join partition of up to `QUERY_SPILL_ROWS` queries of the split
    (`split_by_partition`), spilled under the run's `_tmp/` (`spill_partition`): only
    (partition, (QUERIES, path)) goes through Beam. Readers' batches can be a few queries each
    (a Parquet row group), so they are gathered first: one file per batch and partition would
    be thousands of tiny files (object uploads, on a store).

    Descriptors depend on features and the teacher only, not on the band, so they are computed
    here for every query with an informative demonstration, before the rollouts are joined.
    """

    def process(self, split, space=None) -> Iterator:
        self._held: list[pa.Table] = []  # featureless tables of this split not spilled yet
        yield from super().process(split, space)
        yield from self._spill_held()

    def _spill_held(self) -> Iterator:
        """The held featureless rows spilled per partition, named by their first row's input
        position (unique in the run, the same on a rerun)."""
        if not self._held:
            return
        held, self._held = pa.concat_tables(self._held), []
        first = held.column("_position")[0].as_py()
        name = "queries-" + "_".join(str(x) for x in first)
        for part, table in split_by_partition(held):
            yield part, (QUERIES, spill_partition(table, self.root, part, name))

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
        featureless = (_featureless(ok)
                       .append_column("_position", pa.array(positions, pa.list_(pa.int64())))
                       .append_column("_location", pa.array(locations, pa.string()))
                       .append_column("_descriptor", pa.array(descs, pa.list_(pa.float32())))
                       .append_column("_signature", pa.array(sigs, pa.string())))
        self._held.append(featureless)
        if sum(t.num_rows for t in self._held) >= QUERY_SPILL_ROWS:
            yield from self._spill_held()
        if self.config.generate_with:
            yield from self._generate(ok)

    def _generate(self, ok: pa.Table) -> Iterator:
        """Live generation (pipelines.generate) for this batch: rollout rows keyed by partition
        (tagged `rollouts`), the reader's quarantine and counts."""
        from exports.prompts import load_template
        from pipelines.generate import generate_rollouts

        template = load_template(None, self.config.rollout_format)
        results, sent = generate_rollouts(ok, self.config, template)
        yield from _batch_outputs(results, {"server_calls": sent.calls,
                                            "server_cache_hits": sent.cache_hits,
                                            "server_retries": sent.retries})
        for part, rows in rows_by_partition(results.rollouts.to_pylist()):
            yield beam.pvalue.TaggedOutput(ROLLOUTS, (part, (ROWS, rows)))


def _featureless(ok: pa.Table) -> pa.Table:
    """`ok` with every document's feature vector emptied (the width-0 features of a query)."""
    n_docs = ok.column("doc_ids").combine_chunks().value_lengths().to_numpy()
    inner = pa.ListArray.from_arrays(pa.array(np.zeros(int(n_docs.sum()) + 1, np.int32)),
                                     pa.array([], pa.float32()))
    outer = np.concatenate([[0], np.cumsum(n_docs)]).astype(np.int32)
    empty = pa.ListArray.from_arrays(pa.array(outer), inner).cast(
        pa.list_(pa.list_(pa.float32())))
    index = ok.schema.get_field_index("features")
    return ok.set_column(index, ok.schema.field(index), empty)


ROLLOUTS = "rollouts"
# The join of rollouts to queries is per partition of the query ids (a stable crc32 of the id,
# JOIN_PARTITIONS of them), file-backed: each element is (partition, (kind, what)), where `what`
# is the path of one partition's rows of one read batch spilled as an Arrow IPC stream under
# the run's `_tmp/join/` (kinds QUERIES, TABLE), or a list of row dicts (ROWS: OpenAI batch
# results and live generation, which their readers hold whole in memory anyway). Beam holds
# paths only, so the runner's memory does not grow with the log. Any partition count gives the
# same bytes (each query is decided from its own rows only).
JOIN_PARTITIONS = 32
QUERIES, TABLE, ROWS, PRIORS = "queries", "table", "rows", "priors"
JOIN_FOLDER = "join"  # under the run's _tmp/ (curricula.staging.TMP_FOLDER)
QUERY_SPILL_ROWS = 16384  # featureless queries gathered per split before they are spilled


def partition_of(query_id) -> int:
    """The join partition of a query id: crc32 of its text (UTF-8) mod JOIN_PARTITIONS."""
    return zlib.crc32(str(query_id).encode("utf-8", "surrogatepass")) % JOIN_PARTITIONS


def split_by_partition(table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    """(partition, the table's rows of that partition) for each partition its query ids hit;
    each query id's partition is computed once per table (dictionary-encoded ids)."""
    if not table.num_rows:
        return
    ids = table.column("query_id").combine_chunks()
    encoded = pc.dictionary_encode(ids)
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    of_code = np.array([partition_of(q) for q in encoded.dictionary.to_pylist()] +
                       [partition_of(None)], np.int64)
    parts = of_code[codes]  # a null id (code -1) takes partition_of(None), the last entry
    order = np.argsort(parts, kind="stable")
    ordered = parts[order]
    table = table.take(pa.array(order))  # one take; each partition a slice of it
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(ordered)) + 1, [len(order)]])
    for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        yield int(ordered[start]), table.slice(start, stop - start)


def spill_partition(table: pa.Table, root: str, part: int, name: str) -> str:
    """Spills one partition's rows of one read batch for the join; returns the file's path.

    Args:
      table: the rows (all of partition `part`).
      root: the run's location (`curricula.staging.Publication.root`).
      part: the join partition.
      name: the batch's name, unique within the run and the same on a rerun of the same input
        (`_ScorePartitionFn` reads a partition's files in name order).

    Returns:
      `root/_tmp/join/PART/NAME.arrow` (deleted with `_tmp/` at commit).
    """
    return spill_table(table, root, f"{JOIN_FOLDER}/{part:05d}/{name}.arrow")


def rows_by_partition(rows: list[dict]) -> Iterator[tuple[int, list[dict]]]:
    """(partition, rows of that partition) of row dicts, in their order within a partition."""
    parts: dict = {}
    for row in rows:
        parts.setdefault(partition_of(row.get("query_id")), []).append(row)
    yield from sorted(parts.items(), key=lambda item: item[0])


# Reader counts of OpenAI batch results that go into the manifest's counts (results_quarantined
# is counted from the quarantine rows themselves, `manifest.quarantine_stats`).
BATCH_COUNTS = ("requests_sent", "requests_answered", "requests_failed", "requests_missing",
                "result_lines", "rollouts_truncated")


def _batch_outputs(results, extra: dict | None = None) -> Iterator:
    """A BatchResults' quarantine and statistics as tagged outputs: the reader's counts (as
    `BATCH_COUNTS`, plus `rollouts_returned`) and per round asked/answered/failed/missing."""
    if results.quarantine.num_rows:
        yield beam.pvalue.TaggedOutput("quarantine", results.quarantine)
    counts = Counter({name: results.counts[name] for name in BATCH_COUNTS})
    counts["rollouts_returned"] = results.counts["rollouts"]
    counts.update(extra or {})
    rounds: Counter = Counter()
    failed = set(results.failed.column("custom_id").to_pylist())
    missing = set(results.missing)
    answered = set(results.answered)
    from data_contracts.readers.batch_results import parse_custom_id

    for custom_id in results.sent:
        round_ = parse_custom_id(custom_id)[1]
        rounds[f"{round_}:asked"] += 1
        state = ("failed" if custom_id in failed else "missing" if custom_id in missing
                 else "answered")
        rounds[f"{round_}:{state}"] += 1
    count("requests_sent", results.counts["requests_sent"])
    yield beam.pvalue.TaggedOutput("stats", {"counts": counts, "rounds": rounds})


def _rollout_rows(source: tuple[int, str], config: CurriculumConfig, root: str) -> Iterator:
    """One rollout source's rows keyed by join partition: a rollout log (Parquet/JSONL), as
    paths of Arrow tables of ROLLOUT_SCHEMA spilled under `root/_tmp/join/`
    (`spill_partition`, one per read batch and partition), or OpenAI batch output lines
    (detected by content) read against the requests.json they answer, as row dicts."""
    from data_contracts.readers.batch_results import (find_requests, read_batch_results,
                                                      sniff_batch_output)

    index, path = source
    if sniff_batch_output(path):
        results = read_batch_results(path, find_requests(path, config.requests_for(index)))
        count("rollouts_read", results.rollouts.num_rows)
        yield from _batch_outputs(results)
        for part, rows in rows_by_partition(results.rollouts.to_pylist()):
            yield part, (ROWS, rows)
        return
    for batch, (table, bad) in enumerate(read_rollouts(path, batch_size=ROLLOUT_BATCH)):
        count("rollouts_read", table.num_rows + bad.num_rows)
        if bad.num_rows:
            yield beam.pvalue.TaggedOutput("quarantine", bad)
        name = f"rollouts-{index:04d}-{batch:08d}"
        for part, rows in split_by_partition(table):
            yield part, (TABLE, spill_partition(rows, root, part, name))


ROLLOUT_BATCH = 65536  # rollout rows read (and partitioned) at a time


def _recorded_prior_rows(_, config: CurriculumConfig) -> Iterator:
    """The prior the results' rounds were planned with, keyed by join partition: (partition,
    (PRIORS, {"round": R, "priors": {query id: [[weight, alpha, beta], ...]}})) for the
    queries of that partition with an informative recorded prior (`latest_recorded_priors`,
    the rule the next round's planner reads it back with); nothing without batch results or
    a recorded prior. Read once, here, so each partition's scorer gets only its own queries'
    priors.

    Raises:
      InputError: a results file's requests.json is missing or invalid (as `_rollout_rows`).
    """
    from data_contracts.readers.recorded_priors import latest_recorded_priors

    recorded = latest_recorded_priors(config.rollout_sources())
    if recorded is None:
        return
    parts: dict = {}
    for qid in recorded.query_ids():
        parts.setdefault(partition_of(qid), {})[qid] = recorded.informative_rows(qid)
    for part, priors in sorted(parts.items()):
        yield part, (PRIORS, {"round": recorded.round, "priors": priors})


class ScoreFromLog(beam.PTransform):
    """Joins an outside policy's rollouts to featureless queries, verifies them, scores.

    The join is per partition of the query ids (a CoGroupByKey of the paths of spilled Arrow
    tables of rollouts and of featureless query rows, never features, `JOIN_PARTITIONS`);
    inside a partition the queries whose rollouts are all plain generations in the fast
    permutation shape are parsed and scored vectorized (`_ScorePartitionFn`), every other
    query as `_ScoreJoinedFn` decides one query.
    The rollouts are every `--rollouts` file's (each round's results pool per query), or the
    rows live generation tagged in pass 1 (`generated`), or none (`--policy none`: every valid
    query becomes a `pending` row). A third stream carries the prior the results' latest
    requests round recorded (`_recorded_prior_rows`), so a query planned under it is banded
    as the planner bands it (difficulty.scoring.score_from_log's `priors`).
    Rollout logs and query rows are shuffled as files under `root/_tmp/join/`
    (`spill_partition`); the scoring step reads one partition's files at a time.
    Returns (small rows, quarantine tables, statistics).
    """

    def __init__(self, config: CurriculumConfig, root: str, launcher_pid: int | None = None,
                 generated=None):
        super().__init__()
        self.config, self.root = config, root
        self.launcher_pid, self.generated = launcher_pid, generated

    def expand(self, keyed_queries):
        cfg = self.config
        rollouts = (keyed_queries.pipeline
                    | "RolloutLog" >> beam.Create(list(enumerate(cfg.rollout_paths())))
                    | "ReadRollouts" >> beam.FlatMap(_rollout_rows, cfg, self.root).with_outputs(
                        "quarantine", "stats", main="rows"))
        rows = rollouts.rows
        if self.generated is not None:
            rows = (rows, self.generated) | "AllRollouts" >> beam.Flatten()
        priors = (keyed_queries.pipeline | "PriorSource" >> beam.Create([None])
                  | "RecordedPriors" >> beam.FlatMap(_recorded_prior_rows, cfg))
        joined = ({"query": keyed_queries, "rollouts": rows, PRIORS: priors}
                  | "JoinRollouts" >> beam.CoGroupByKey())
        scored = joined | "VerifyAndScore" >> beam.ParDo(
            _ScorePartitionFn(cfg, self.launcher_pid)).with_outputs("quarantine", "stats",
                                                                 main="scored")
        quarantine = ((rollouts.quarantine, scored.quarantine)
                      | "RolloutQuarantine" >> beam.Flatten())
        stats = (rollouts.stats, scored.stats) | "RolloutStats" >> beam.Flatten()
        return scored.scored, quarantine, stats


class _ScoreJoinedFn(WorkerFn):
    """The per-query rules of the join (the base of `_ScorePartitionFn`, which runs them for
    every query off its fast path): one query joined to its rollouts: verified, scored, routed
    (a small row); or, under
    `--policy none`, a `pending` row; or a quarantine row saying why it cannot be assessed.
    Verified queries are scored --batch-size at a time (`_flush`; the rest at the bundle's end),
    each row the same as scored alone.

    A rollout read from OpenAI batch results carries the candidate order its prompt listed: it
    is parsed against that order and mapped to the query's documents (`align_to_query`); an
    order that is not a permutation of the query's candidates (the requests were made from
    another run or input) quarantines the rollout (`candidate_order_mismatch`).
    """

    def __init__(self, config: CurriculumConfig, launcher_pid: int | None = None):
        super().__init__(launcher_pid)
        self.config = config
        self.routing = dataclasses.replace(config.routing, teacher_mode=config.teacher)
        # an LLM policy's loop (results of requests, a live server): a query with no valid
        # rollout yet is asked again next round, so it is pending, not quarantined
        self.loop = config.asks_again()

    def _source(self) -> str:
        return ", ".join(self.config.rollout_paths()) or str(self.config.generate_with)

    def _query(self, qid, grouped: dict) -> Iterator:
        """One query id's verdict from its occurrences (`grouped["query"]`: dicts of `query`,
        `position`, `location`, `descriptor`, `signature`) and rollout rows.

        A verified query waits in `_pending` to be scored, a pending one (`--policy none`, or
        nothing usable answered yet) in `_waiting` and one without rollouts in `_unassessed`:
        `_flush` yields each kind as one table, not one element per query.
        """
        occurrences = sorted(grouped["query"], key=lambda o: o["position"])
        # Sorted by id, then content: which of two rows sharing a rollout id is kept (the first)
        # must not depend on the order the join delivers them in.
        rows = sorted(grouped["rollouts"], key=lambda r: str(r["rollout_id"]))
        if len({str(r["rollout_id"]) for r in rows}) < len(rows):  # ties: order by content too
            rows.sort(key=lambda r: (str(r["rollout_id"]), json.dumps(r, sort_keys=True,
                                                                      default=str)))
        if len(occurrences) > 1:
            yield beam.pvalue.TaggedOutput("quarantine", duplicate_rows(
                qid, occurrences[0]["location"], [o["location"] for o in occurrences[1:]]))
        first = occurrences[0] if occurrences else None
        if first is not None and self.config.pending_only:
            self._unrolled(qid, first)
            return
        known = {qid: first["query"]["doc_ids"]} if first else {}
        if rows:
            rows = yield from self._verified(qid, rows, known)
        if first is None:
            return
        if not rows:
            self._unrolled(qid, first)
            return
        policy_id = rows[0].get("policy_id") or "log"
        self._pending.append((first, rows, policy_id, self._priors.get(qid)))
        if len(self._pending) >= self.config.batch_size:
            yield from self._flush()

    def _unrolled(self, qid, first: dict) -> None:
        """Files a query without a usable rollout (`first`: its first occurrence; only its
        `location`, `position` and `query["source"]` are read): a `pending` row under `--policy
        none`, or in an LLM policy's loop (asked, nothing usable came back: asked again next
        round); otherwise a `no_rollouts` quarantine row (the outside policy never ran it)."""
        if self.config.pending_only or self.loop:
            why = ("no policy rollouts yet (--policy none)" if self.config.pending_only
                   else "no valid rollout answered yet")
            self._waiting.append(_pending_row(first, qid, why))
            return
        self._unassessed.append(quarantine_row(
            Reason.NO_ROLLOUTS, step="rollouts", location=f"{self._source()}#query={qid}",
            query_id=qid, detail="the rollouts have no valid rollout for this query",
            raw={"query_id": qid}))

    def start_bundle(self):
        # (first occurrence, verified rows, policy id, recorded prior) of queries to score
        self._pending = []
        self._priors = {}  # query id -> (mixture rows, round) of this partition's queries
        self._waiting = []  # small rows (dicts) of pending queries
        self._unassessed = []  # quarantine rows (dicts) of queries without a valid rollout

    def finish_bundle(self):
        for out in self._flush():
            if isinstance(out, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(out.tag, _in_global_window(out.value))
            else:
                yield _in_global_window(out)

    def _flush(self) -> Iterator:
        """Scores the pending queries a group at a time and yields their small rows (and each
        decided round's statistics).

        A group is the queries with the same policy id, number of documents, number of judged
        labels and whether a generation is parsed: each padded to exactly its own width and
        scored with the columns a lone query would get, so a query's row does not depend on
        which others share its batch (the same bytes as scoring it alone). The pending queries'
        small rows and the quarantine rows of queries without rollouts come first, one table
        each (`_flush_unscored`).
        """
        from difficulty.generations import TRUNCATED
        from difficulty.scoring import score_from_log

        yield from self._flush_unscored()
        pending, self._pending = self._pending, []
        groups: dict = {}
        for first, rows, policy_id, prior in pending:
            query = first["query"]
            parsed = any((r.get("generation") is not None and r.get("ranking") is None)
                         or r.get("malformed") == TRUNCATED for r in rows)
            key = (policy_id, len(query["doc_ids"]), len(query.get("judged_labels") or ()),
                   parsed)
            groups.setdefault(key, []).append((first, rows, prior))
        for (policy_id, *_), members in groups.items():
            query = pa.Table.from_pylist([first["query"] for first, _, _ in members],
                                         schema=QUERY_SCHEMA)
            priors = [prior for _, _, prior in members]
            scored = score_from_log(query, [rows for _, rows, _ in members], policy_id,
                                    self.config.scoring(),
                                    priors if any(p is not None for p in priors) else None)
            decided = scored.column("decided").to_pylist()
            for (_, rows, _), done in zip(members, decided):
                rounds = [r["round"] for r in rows if r.get("round") is not None]
                if rounds and done:
                    yield beam.pvalue.TaggedOutput("stats", {"rounds": Counter({
                        f"{max(rounds)}:decided": 1})})
            firsts = [first for first, _, _ in members]
            scored = (scored.append_column("_descriptor", pa.array(
                          [f["descriptor"] for f in firsts], pa.list_(pa.float32())))
                      .append_column("_signature", pa.array([f["signature"] for f in firsts],
                                                            pa.string())))
            yield _small_rows(scored, [f["position"] for f in firsts],
                              [f["location"] for f in firsts], self.routing, self.config)

    def _flush_unscored(self) -> Iterator:
        """One table of the waiting queries' `pending` small rows (SMALL_SCHEMA) and one of the
        quarantine rows (`no_rollouts`) of the queries without a valid rollout, each only when
        it has rows; the rows are those a query alone gives, so sorted shards hold the same
        bytes whatever the batching."""
        waiting, self._waiting = self._waiting, []
        unassessed, self._unassessed = self._unassessed, []
        if waiting:
            count("pending", len(waiting))
            yield pa.Table.from_pylist(waiting, schema=SMALL_SCHEMA)
        if unassessed:
            count(f"quarantine_{Reason.NO_ROLLOUTS}", len(unassessed))
            yield beam.pvalue.TaggedOutput("quarantine", quarantine_table(unassessed))

    def _verified(self, qid: str, rows: list[dict], known: dict):
        """The rows that pass validation (a generator: quarantine tables are yielded, the kept
        rows returned); batch rows get `_align` (prompt position -> document index)."""
        extra = {r["rollout_id"]: r for r in rows if "candidate_order" in r}
        table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in ROLLOUT_SCHEMA}
                                      for r in rows], schema=ROLLOUT_SCHEMA)
        ok, bad = validate_rollouts(table, known, self._source(),
                                    reward_max=parse_reward(self.config.reward).max_reward)
        kept, mismatched = [], []
        for row in ok.to_pylist():
            full = extra.get(row["rollout_id"])
            if full is None:
                kept.append(row)
                continue
            align = align_to_query(full["candidate_order"], known[qid])
            if align is None:
                mismatched.append(quarantine_row(
                    Reason.CANDIDATE_ORDER_MISMATCH, step="rollouts",
                    location=f"{self._source()}#rollout={row['rollout_id']}", query_id=qid,
                    record_kind="rollout",
                    detail="the request listed candidates that are not this query's (made from "
                           "another run or input): its [k] cannot be read",
                    raw={"custom_id": full["custom_id"],
                         "candidate_order": full["candidate_order"][:50]}))
                continue
            kept.append({**full, "_align": align})
        if mismatched:
            bad = pa.concat_tables([bad, quarantine_table(mismatched)])
        if bad.num_rows:
            count("rollouts_quarantined", bad.num_rows)
            yield beam.pvalue.TaggedOutput("quarantine", bad)
        return kept



class _ScorePartitionFn(_ScoreJoinedFn):
    """One join partition: its featureless query tables and rollout tables (and row dicts).

    The rollouts are sorted by (query id, rollout id) with Arrow; a query is on the fast path
    when it occurs once among the valid queries, every one of its rollouts is a plain log row
    whose only outcome is a generation, its rollout ids are distinct, and the run parses
    permutations under a verifiable reward: such queries' generations are read
    (`generations.permutation_id_lists`: Arrow kernels for the common shape `[3] > [1] > ...`,
    the scalar reader for the rest) and scored together per (policy id, documents, judged
    labels) by `score_fast_permutations` (the bytes `score_from_log` gives them). Every other
    query id (duplicates, unknown ids, repeated rollout ids, rankings, logged rewards, OpenAI
    batch rows, live generation, `--policy none`, queries without rollouts) is decided by
    `_ScoreJoinedFn._query` from its rows as dicts.
    """

    def process(self, element) -> Iterator:
        _, grouped = element
        self._priors = {qid: (rows, found["round"]) for _, found in grouped.get(PRIORS, ())
                        for qid, rows in found["priors"].items()}
        queries = _read_partition([path for _, path in grouped["query"]])
        paths, extra = [], []
        for kind, data in grouped["rollouts"]:
            if kind == TABLE:
                paths.append(data)
            else:
                extra.extend(data)
        rollouts = _read_partition(paths)
        qids = queries.column("query_id").to_pylist() if queries is not None else []
        occurs: dict = {}
        for i, qid in enumerate(qids):
            occurs.setdefault(qid, []).append(i)
        fast: dict = {}  # query id -> (its rollouts' start, stop) in the sorted rollouts
        slow_rows: list = []  # indices into the sorted rollouts of the slow queries
        if rollouts is not None and rollouts.num_rows:
            order = pc.sort_indices(rollouts, sort_keys=[("query_id", "ascending"),
                                                         ("rollout_id", "ascending")])
            rollouts = rollouts.take(order)
            fast, slow_rows = self._fast_queries(rollouts, occurs, extra)
        yield from self._score_fast(queries, rollouts, fast, occurs)
        slow: dict = {}
        if slow_rows:
            picked = rollouts.take(pa.array(slow_rows, pa.int64()))
            for row in picked.select(ROLLOUT_SCHEMA.names).to_pylist():
                slow.setdefault(row["query_id"], []).append(row)
        for row in extra:
            slow.setdefault(row["query_id"], []).append(row)
        bare = [q for q in occurs if q not in fast and q not in slow and len(occurs[q]) == 1]
        self._bare(queries, bare, [occurs[q][0] for q in bare])
        bare = set(bare)
        waiting = [q for q in occurs if q not in fast and q not in bare]
        rows = (queries.take(pa.array([i for q in waiting for i in occurs[q]], pa.int64()))
                .to_pylist() if waiting else [])
        occurrences: dict = {}
        for row in rows:
            occurrences.setdefault(row["query_id"], []).append(_occurrence(row))
        for qid in list(occurrences) + [q for q in slow if q not in occurrences]:
            yield from self._query(qid, {"query": occurrences.get(qid, []),
                                         "rollouts": slow.get(qid, [])})
        yield from self._flush()

    def _bare(self, queries: pa.Table, qids: list, rows: list[int]) -> None:
        """The queries that occur once and have no rollout at all (`rows` of `queries`), filed
        by `_unrolled` from three columns (no row dicts of their documents): the rows
        `_query` gives them, at a fraction of the cost when most queries have no rollouts."""
        if not rows:
            return
        taken = queries.take(pa.array(rows, pa.int64()))
        n = taken.num_rows
        sources = (taken.column("source").to_pylist() if "source" in taken.column_names
                   else [None] * n)
        for qid, source, location, position in zip(
                qids, sources, taken.column("_location").to_pylist(),
                taken.column("_position").to_pylist()):
            self._unrolled(qid, {"query": {"source": source}, "location": location,
                                 "position": position})

    def _fast_queries(self, rollouts: pa.Table, occurs: dict, extra: list
                      ) -> tuple[dict, list]:
        """({query id: (start, stop)} of the fast queries, row indices of the others) of
        rollouts sorted by (query id, rollout id)."""
        n = rollouts.num_rows
        encoded = pc.dictionary_encode(rollouts.column("query_id").combine_chunks())
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        names = encoded.dictionary.to_pylist()
        starts = np.flatnonzero(np.concatenate([[True], codes[1:] != codes[:-1]]))
        stops = np.append(starts[1:], n)
        spec = parse_reward(self.config.reward)
        if (self.config.pending_only or self.config.rollout_format != "permutation"
                or spec.kind == "log"):
            return {}, list(range(n))
        plain = pc.is_valid(rollouts.column("generation")).to_numpy(zero_copy_only=False)
        for name in ("ranking", "reward", "passed"):
            plain &= pc.is_null(rollouts.column(name)).to_numpy(zero_copy_only=False)
        rids = rollouts.column("rollout_id").combine_chunks()
        repeat = np.zeros(n, bool)
        if n > 1:
            repeat[1:] = (pc.fill_null(pc.equal(rids[1:], rids[:-1]), False)
                          .to_numpy(zero_copy_only=False) & (codes[1:] == codes[:-1]))
        bad = np.add.reduceat((~plain | repeat).astype(np.int64), starts) > 0
        in_extra = {row["query_id"] for row in extra}
        fast, slow_rows = {}, []
        for j, (start, stop) in enumerate(zip(starts.tolist(), stops.tolist())):
            qid = names[codes[start]]
            if not bad[j] and len(occurs.get(qid, ())) == 1 and qid not in in_extra:
                fast[qid] = (start, stop)
            else:
                slow_rows.extend(range(start, stop))
        return fast, slow_rows

    def _score_fast(self, queries, rollouts, fast: dict, occurs: dict) -> Iterator:
        """The small rows of the fast queries, scored per (policy id, documents, judged
        labels) group with `score_fast_permutations`."""
        if not fast:
            return
        from difficulty.generations import permutation_id_lists
        from difficulty.scoring import score_fast_permutations

        qids = list(fast)
        rows = np.array([occurs[q][0] for q in qids], np.int64)
        n_docs = pc.list_value_length(queries.column("doc_ids")).to_numpy(
            zero_copy_only=False)[rows]
        if "judged_labels" in queries.column_names:
            n_judged = pc.fill_null(pc.list_value_length(queries.column("judged_labels")), 0
                                    ).to_numpy(zero_copy_only=False)[rows]
        else:
            n_judged = np.zeros(len(qids), np.int64)
        spans = np.array([fast[q] for q in qids], np.int64)
        policies = rollouts.column("policy_id").take(pa.array(spans[:, 0])).to_pylist()
        groups: dict = {}
        for j, policy in enumerate(policies):
            key = (policy or "log", int(n_docs[j]), int(n_judged[j]))
            groups.setdefault(key, []).append(j)
        schema_names = [f.name for f in QUERY_SCHEMA]
        for (policy_id, _, _), members in groups.items():
            members = np.array(members, np.int64)
            lengths = spans[members, 1] - spans[members, 0]
            picked = np.concatenate([np.arange(a, b) for a, b in spans[members].tolist()])
            owner = np.repeat(np.arange(members.size), lengths)
            counts, ids = permutation_id_lists(
                rollouts.column("generation").take(pa.array(picked)))
            taken = queries.take(pa.array(rows[members]))
            query = taken.select(schema_names).cast(QUERY_SCHEMA)
            scored = score_fast_permutations(query, owner, counts, ids, policy_id,
                                             self.config.scoring())
            scored = (scored.append_column("_descriptor", taken.column("_descriptor"))
                      .append_column("_signature", taken.column("_signature")))
            yield _small_rows(scored, taken.column("_position").to_pylist(),
                              taken.column("_location").to_pylist(), self.routing,
                              self.config)


def _read_partition(paths: list[str]) -> pa.Table | None:
    """One partition's spilled tables (`spill_partition`) read in path order and concatenated
    (None when there are none): the same rows in the same order whatever order the join
    delivered the paths in."""
    return pa.concat_tables([read_spilled(p) for p in sorted(paths)]) if paths else None


def _occurrence(row: dict) -> dict:
    """A query occurrence as `_ScoreJoinedFn._query` reads it, from a featureless row of
    `ReadForLogFn` (its `_`-prefixed columns hold the position, location and descriptor)."""
    return {"query": {k: v for k, v in row.items() if not k.startswith("_")},
            "position": row["_position"], "location": row["_location"],
            "descriptor": row["_descriptor"], "signature": row["_signature"]}


def _in_global_window(value):
    """`value` as finish_bundle must yield it: a WindowedValue in the global window."""
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.windowed_value import WindowedValue

    return WindowedValue(value, GlobalWindow().max_timestamp(), [GlobalWindow()])


def _pending_row(first: dict, qid: str, why: str) -> dict:
    """A query without a pass rate yet (`--policy none`, or every request of it failed): its
    small row (a dict in SMALL_SCHEMA's columns) in the `pending` phase."""
    query = first["query"]
    return {"query_id": qid, "source": query.get("source"), "location": first["location"],
            "position": first["position"], "policy_id": "none", "fate": "pending",
            "reason": f"pending: {why}"}
