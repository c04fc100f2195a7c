"""The pipeline's steps (pass 1, dedupe, decide, write) under Beam (TestPipeline on FnApiRunner,
assert_that)."""
from __future__ import annotations

import json
import os
from dataclasses import replace

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from curricula.staging import shard_path, write_shard
from data_contracts.errors import InputError
from data_contracts.schema import DIFFICULTY_SCHEMA, conform
from data_contracts.synthetic import SyntheticConfig, generate_table
from difficulty.policy import PolicyScorer
from difficulty.scoring import score_with_policy
from pipelines.config import CurriculumConfig
from pipelines.decide import AssignStagesFn, SumCounters, stage_stats
from pipelines.dedupe import Dedupe, first_wins
from pipelines.progress import PROGRESS_FOLDER
from pipelines.score import POSITION, SMALL_SCHEMA, ScoreSplitFn, _small_rows
from pipelines.splits import Split, plan_splits
from pipelines.write import SCHEMAS, WriteShards, shard_keys
from tests.curricula.util import scored_row, scored_table


def _pipeline() -> BeamTestPipeline:
    return BeamTestPipeline(runner=FnApiRunner(), options=PipelineOptions([]))


def _synthetic(n: int = 24) -> pa.Table:
    return generate_table(replace(SyntheticConfig(), n_queries=n))


def test_score_split_fn_keeps_small_rows_that_match_the_plain_scoring(tmp_path):
    config = CurriculumConfig(k=8, k_max=16, synthetic=replace(SyntheticConfig(), n_queries=24),
                              batch_size=10)
    queries = _synthetic(24)
    expected, _ = score_with_policy(queries, PolicyScorer(config.policy_spec()), config.scoring())
    want = sorted(zip(expected.column("query_id").to_pylist(),
                      expected.column("successes").to_pylist(),
                      expected.column("trials").to_pylist(),
                      expected.column("band").to_pylist()))
    splits = [Split(-1, "embedded:synthetic", "synthetic", 0, "synthetic", 0, 12),
              Split(-1, "embedded:synthetic", "synthetic", 0, "synthetic", 12, 24)]

    def rows(tables):
        out = []
        for t in tables:
            assert t.schema.equals(SMALL_SCHEMA)  # no features travel past pass 1
            out += zip(t.column("query_id").to_pylist(), t.column("successes").to_pylist(),
                       t.column("trials").to_pylist(), t.column("band").to_pylist())
        return sorted(out)

    with _pipeline() as p:
        small = (p | beam.Create(splits, reshuffle=False)
                 | beam.ParDo(ScoreSplitFn(config, str(tmp_path))).with_outputs(
                     "quarantine", "stats", main="small"))
        assert_that(small.small | beam.combiners.ToList() | beam.Map(rows), equal_to([want]))
    assert sorted(os.listdir(tmp_path / PROGRESS_FOLDER)) == ["p1--1-0-0", "p1--1-0-12"]


def test_duplicates_within_and_across_splits_first_by_input_order_wins(tmp_path):
    good = {"query_id": "a", "doc_ids": ["x", "y"], "features": [[1.0], [2.0]],
            "labels": [1, 0]}
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("\n".join([json.dumps(good), json.dumps({**good, "labels": [9, 0]}),
                                json.dumps(good), "{not json"]) + "\n")
    second.write_text(json.dumps({**good, "labels": [0, 1]}) + "\n")
    config = CurriculumConfig(inputs=[str(first), str(second)], k=4, k_max=4)
    splits = plan_splits(config)
    assert [s.position for s in splits] == [(0, 0, 0), (1, 0, 0)]
    with _pipeline() as p:
        read = (p | beam.Create(list(reversed(splits)))  # the order of arrival must not matter
                | beam.ParDo(ScoreSplitFn(config, str(tmp_path))).with_outputs(
                    "quarantine", "stats", main="small"))
        winners, duplicates = read.small | Dedupe(config.batch_size)
        assert_that(winners | "Won" >> beam.FlatMap(
                        lambda t: zip(t.column("query_id").to_pylist(),
                                      t.column("location").to_pylist())),
                    equal_to([("a", f"{first}:1")]), label="winner")
        reasons = ((read.quarantine, duplicates) | beam.Flatten()
                   | beam.FlatMap(lambda t: zip(t.column("reason").to_pylist(),
                                                t.column("location").to_pylist())))
        assert_that(reasons, equal_to([("label_out_of_range", f"{first}:2"),
                                       ("duplicate_query_id", f"{first}:3"),
                                       ("unparseable_record", f"{first}:4"),
                                       ("duplicate_query_id", f"{second}:1")]),
                    label="quarantine")


def _small(rows: list[dict]) -> pa.Table:
    table = scored_table(rows)
    return _small_rows(table, [[0, 0, 0, i] for i in range(len(rows))],
                       [f"t:{i}" for i in range(len(rows))],
                       CurriculumConfig().routing, CurriculumConfig())


def test_assign_stages_fn_gives_decisions_from_a_global_histogram():
    rng = np.random.default_rng(0)
    rates = (rng.integers(0, 17, size=60) + 1.0) / 18.0
    small = _small([scored_row(f"q{i:02d}", "learnable", successes=int(round(r * 18 - 1)))
                    for i, r in enumerate(rates)])
    config = CurriculumConfig()
    config = replace(config, order=replace(config.order, stages=3, replay=0.25))

    def check(decisions):
        decisions = dict(decisions)
        assert sorted(decisions) == [f"q{i:02d}" for i in range(60)]
        own = {q: d[3][0] for q, d in decisions.items()}
        rate = {q: d[4] for q, d in decisions.items()}
        for s in range(2):
            assert min(rate[q] for q in own if own[q] == s) >= \
                max(rate[q] for q in own if own[q] == s + 1)
        replays = [d[3][1:] for d in decisions.values()]
        assert any(replays)
        assert all(all(s > d[3][0] for s in d[3][1:]) for d in decisions.values())
        return True

    with _pipeline() as p:
        batches = p | beam.Create([small.slice(0, 25), small.slice(25)], reshuffle=False)
        stats = (batches | beam.Map(stage_stats, config)
                 | beam.CombineGlobally(SumCounters()))
        staged = batches | beam.ParDo(AssignStagesFn(config),
                                      beam.pvalue.AsSingleton(stats)).with_outputs(
            "stats", main="decisions")
        assert_that(staged.decisions | beam.combiners.ToList() | beam.Map(check),
                    equal_to([True]))


def test_write_shards_spills_merges_and_writes_every_shard(tmp_path):
    queries = _synthetic(30)
    config = CurriculumConfig(k=8, k_max=8, adaptive=False, shards=3)
    scored, _ = score_with_policy(queries, PolicyScorer(config.policy_spec()), config.scoring())
    difficulty = conform(scored, DIFFICULTY_SCHEMA)
    root = str(tmp_path / "run")

    with _pipeline() as p:  # spill after every batch: several pieces per shard to merge
        files = (p | beam.Create([("difficulty", difficulty.slice(0, 11)),
                                  ("difficulty", difficulty.slice(11, 7)),
                                  ("difficulty", difficulty.slice(18))], reshuffle=False)
                 | WriteShards(config, root, spill_bytes=0))
        assert_that(files | beam.Map(lambda f: (f["phase"], f["stage"], f["shard"])),
                    equal_to([(k[0], None if k[1] < 0 else k[1], k[2])
                              for k in shard_keys(config)]))
    assert not os.path.exists(os.path.join(root, "_tmp")) or not any(
        files for _, _, files in os.walk(os.path.join(root, "_tmp")))
    written = sorted(os.listdir(os.path.join(root, "difficulty")))
    assert written == [f"part-{s:05d}.parquet" for s in range(3)]
    back = pa.concat_tables([pq.read_table(os.path.join(root, "difficulty", f))
                             for f in written])
    assert sorted(back.column("query_id").to_pylist()) == sorted(
        queries.column("query_id").to_pylist())
    # the merged shard has the bytes of the same rows written at once
    for s in range(3):
        rows = pq.read_table(os.path.join(root, shard_path("difficulty", None, s)))
        again = write_shard([rows.slice(0, 3), rows.slice(3)], "difficulty", None, s,
                            str(tmp_path / "again"), DIFFICULTY_SCHEMA)
        with open(os.path.join(root, again["path"]), "rb") as a, \
                open(tmp_path / "again" / again["path"], "rb") as b:
            assert a.read() == b.read()
    # phases without rows still have their files, empty, in their schema
    empty = pq.read_table(os.path.join(root, shard_path("quarantine", None, 0)))
    assert empty.num_rows == 0 and empty.schema.equals(SCHEMAS["quarantine"])
    assert os.path.exists(os.path.join(root, shard_path("rl", 2, 2)))


def _small_at(rows: list[tuple[str, list, str]]) -> pa.Table:
    """Small rows of the given (query id, position, location)."""
    table = _small([scored_row(q, "learnable") for q, _, _ in rows])
    table = table.set_column(table.schema.get_field_index("position"), POSITION,
                             pa.array([p for _, p, _ in rows], POSITION.type))
    return table.set_column(table.schema.get_field_index("location"), "location",
                            pa.array([loc for _, _, loc in rows], pa.string()))


DUPLICATED = [("b", [1, 0, 0, 0], "two.txt:1"), ("a", [0, 0, 0, 5], "one.txt:6"),
              ("a", [0, 0, 0, 2], "one.txt:3"), ("c", [0, 0, 0, 0], "one.txt:1"),
              ("b", [0, 1, 0, 3], "dir/f1:4"), ("a", [1, 0, 0, 1], "two.txt:2")]


def test_first_wins_keeps_the_first_row_by_input_position():
    won, duplicates = first_wins(_small_at(DUPLICATED))
    assert won.schema.equals(SMALL_SCHEMA)
    assert list(zip(won.column("query_id").to_pylist(), won.column("location").to_pylist())) \
        == [("a", "one.txt:3"), ("b", "dir/f1:4"), ("c", "one.txt:1")]
    assert sorted(zip(duplicates.column("location").to_pylist(),
                      duplicates.column("detail").to_pylist())) == [
        ("one.txt:6", "query id 'a' was already read at one.txt:3"),
        ("two.txt:1", "query id 'b' was already read at dir/f1:4"),
        ("two.txt:2", "query id 'a' was already read at one.txt:3")]
    assert set(duplicates.column("reason").to_pylist()) == {"duplicate_query_id"}


def test_first_wins_refuses_a_query_split_across_byte_ranges_of_one_file():
    rows = [("a", [0, 0, 0, 4], "f.txt:9"), ("a", [0, 0, 1000, 0], "f.txt:40")]
    with pytest.raises(InputError, match=r"query id 'a' has rows that are not adjacent "
                                         r"\(f\.txt:9 and f\.txt:40\)"):
        first_wins(_small_at(rows), frozenset({0}))
    won, duplicates = first_wins(_small_at(rows))  # not a byte-range input: a duplicate
    assert won.column("location").to_pylist() == ["f.txt:9"] and duplicates.num_rows == 1
    other_file = [("a", [0, 0, 0, 4], "f.txt:9"), ("a", [0, 1, 0, 0], "g.txt:1")]
    assert first_wins(_small_at(other_file), frozenset({0}))[1].num_rows == 1


@pytest.mark.parametrize("buckets", [1, 3, 32])
def test_dedupe_does_not_depend_on_buckets_or_arrival(buckets):
    rows = DUPLICATED + [(f"q{i:03d}", [2, 0, 0, i], f"three.txt:{i + 1}") for i in range(40)]
    tables = [_small_at(rows[i:i + 7]) for i in range(0, len(rows), 7)]
    with _pipeline() as p:
        winners, duplicates = (p | beam.Create(tables[::-1], reshuffle=False)
                               | Dedupe(batch_size=5, buckets=buckets))
        assert_that(winners | "Won" >> beam.FlatMap(lambda t: zip(
            t.column("query_id").to_pylist(), t.column("location").to_pylist(),
            [t.num_rows <= 5] * t.num_rows)),
            equal_to([("a", "one.txt:3", True), ("b", "dir/f1:4", True), ("c", "one.txt:1", True)]
                     + [(f"q{i:03d}", f"three.txt:{i + 1}", True) for i in range(40)]),
            label="winners")
        assert_that(duplicates | "Lost" >> beam.FlatMap(
            lambda t: t.column("location").to_pylist()),
            equal_to(["one.txt:6", "two.txt:1", "two.txt:2"]), label="duplicates")
