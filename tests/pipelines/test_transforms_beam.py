"""The pipeline's DoFns and PTransforms under Beam (TestPipeline on FnApiRunner, assert_that)."""
from __future__ import annotations

import json
import os
from dataclasses import replace

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from curricula.staging import shard_path, write_shard
from data_contracts.schema import DIFFICULTY_SCHEMA, conform
from data_contracts.synthetic import SyntheticConfig, generate_table
from difficulty.policy import PolicyScorer
from difficulty.scoring import score_with_policy
from pipelines import transforms as T
from pipelines.config import CurriculumConfig
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
    splits = [T.Split(-1, "embedded:synthetic", "synthetic", 0, "synthetic", 0, 12),
              T.Split(-1, "embedded:synthetic", "synthetic", 0, "synthetic", 12, 24)]

    def rows(tables):
        out = []
        for t in tables:
            assert t.schema.equals(T.SMALL_SCHEMA)  # no features travel past pass 1
            out += zip(t.column("query_id").to_pylist(), t.column("successes").to_pylist(),
                       t.column("trials").to_pylist(), t.column("band").to_pylist())
        return sorted(out)

    with _pipeline() as p:
        small = (p | beam.Create(splits, reshuffle=False)
                 | beam.ParDo(T.ScoreSplitFn(config, str(tmp_path))).with_outputs(
                     "quarantine", "stats", main="small"))
        assert_that(small.small | beam.combiners.ToList() | beam.Map(rows), equal_to([want]))
    assert sorted(os.listdir(tmp_path / T.PROGRESS_FOLDER)) == ["p1--1-0-0", "p1--1-0-12"]


def test_duplicates_within_and_across_splits_first_by_input_order_wins(tmp_path):
    good = {"query_id": "a", "doc_ids": ["x", "y"], "features": [[1.0], [2.0]],
            "labels": [1, 0]}
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("\n".join([json.dumps(good), json.dumps({**good, "labels": [9, 0]}),
                                json.dumps(good), "{not json"]) + "\n")
    second.write_text(json.dumps({**good, "labels": [0, 1]}) + "\n")
    config = CurriculumConfig(inputs=[str(first), str(second)], k=4, k_max=4)
    splits = T.plan_splits(config)
    assert [s.position for s in splits] == [(0, 0, 0), (1, 0, 0)]
    with _pipeline() as p:
        read = (p | beam.Create(list(reversed(splits)))  # the order of arrival must not matter
                | beam.ParDo(T.ScoreSplitFn(config, str(tmp_path))).with_outputs(
                    "quarantine", "stats", main="small"))
        winners, duplicates = read.small | T.Dedupe(config.batch_size)
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
    return T._small_rows(table, [[0, 0, 0, i] for i in range(len(rows))],
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
        stats = (batches | beam.Map(T._stage_stats, config)
                 | beam.CombineGlobally(T._SumCounters()))
        staged = batches | beam.ParDo(T.AssignStagesFn(config),
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
                 | T.WriteShards(config, root, spill_bytes=0))
        assert_that(files | beam.Map(lambda f: (f["phase"], f["stage"], f["shard"])),
                    equal_to([(k[0], None if k[1] < 0 else k[1], k[2])
                              for k in T.shard_keys(config)]))
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
    assert empty.num_rows == 0 and empty.schema.equals(T.SCHEMAS["quarantine"])
    assert os.path.exists(os.path.join(root, shard_path("rl", 2, 2)))
