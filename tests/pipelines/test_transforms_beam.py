"""The pipeline's DoFns and PTransforms under Beam (TestPipeline on FnApiRunner, assert_that)."""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import replace

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from data_contracts.schema import SCORED_QUERY_SCHEMA
from data_contracts.synthetic import SyntheticConfig, generate_table
from difficulty.policy import PolicyScorer
from difficulty.scoring import score_with_policy
from pipelines import transforms as T
from pipelines.config import CurriculumConfig
from tests.curricula.util import scored_row, scored_table


def _pipeline() -> BeamTestPipeline:
    return BeamTestPipeline(runner=FnApiRunner(), options=PipelineOptions([]))


def _ids(tables) -> list:
    return sorted(q for t in tables for q in t.column("query_id").to_pylist())


def _synthetic(n: int = 24) -> pa.Table:
    return generate_table(replace(SyntheticConfig(), n_queries=n))


def test_score_with_policy_fn_matches_the_plain_function_per_batch():
    config = CurriculumConfig(k=8, k_max=16)
    queries = _synthetic(24)
    batches = [queries.slice(0, 10), queries.slice(10, 14)]
    expected, _ = score_with_policy(queries, PolicyScorer(config.policy_spec()), config.scoring())
    want = sorted(zip(expected.column("query_id").to_pylist(),
                      expected.column("successes").to_pylist(),
                      expected.column("trials").to_pylist(),
                      expected.column("band").to_pylist()))

    def rows(tables):
        out = []
        for t in tables:
            assert t.schema.equals(SCORED_QUERY_SCHEMA)
            out += zip(t.column("query_id").to_pylist(), t.column("successes").to_pylist(),
                       t.column("trials").to_pylist(), t.column("band").to_pylist())
        return sorted(out)

    with _pipeline() as p:
        scored = (p | beam.Create(batches, reshuffle=False)
                  | beam.ParDo(T.ScoreWithPolicyFn(config)))
        assert_that(scored | beam.combiners.ToList() | beam.Map(rows), equal_to([want]))


def test_route_fn_splits_into_tagged_outputs():
    rows = [scored_row("rl-1", "learnable"), scored_row("rl-2", "learnable", seed=2),
            scored_row("zv", "learnable", zero_variance=True),
            scored_row("hard", "too_hard"), scored_row("hard-nodemo", "too_hard", labels=None),
            scored_row("easy", "too_easy")]
    table = scored_table(rows)
    config = CurriculumConfig()
    with _pipeline() as p:
        routed = (p | beam.Create([table.slice(0, 3), table.slice(3)], reshuffle=False)
                  | beam.ParDo(T.RouteFn(config)).with_outputs(
                      T.RouteFn.IMITATION, T.RouteFn.DROPPED, main="rl"))
        assert_that(routed.rl | "RlIds" >> beam.combiners.ToList() | "R" >> beam.Map(_ids),
                    equal_to([["rl-1", "rl-2"]]), label="rl")
        imitation = routed[T.RouteFn.IMITATION]
        assert_that(imitation | "ImIds" >> beam.combiners.ToList() | "I" >> beam.Map(_ids),
                    equal_to([["easy", "hard"]]), label="imitation")
        # imitation candidates carry what selection needs: weight, signature, descriptor
        assert_that(imitation | "Cols" >> beam.Map(
                        lambda t: {"weight", "signature", "_descriptor"} <= set(t.column_names)),
                    equal_to([True]), label="columns")
        dropped = routed[T.RouteFn.DROPPED] | "DropReasons" >> beam.FlatMap(
            lambda t: zip(t.column("query_id").to_pylist(), t.column("reason").to_pylist()))
        assert_that(dropped, equal_to([("zv", "zero_variance_group"),
                                       ("hard-nodemo", "too_hard: no demonstration")]),
                    label="dropped")


def test_assign_stages_fn_with_a_global_histogram_side_input():
    rng = np.random.default_rng(0)
    rates = (rng.integers(0, 17, size=60) + 1.0) / 18.0
    rows = [scored_row(f"q{i:02d}", "learnable", successes=int(round(r * 18 - 1)))
            for i, r in enumerate(rates)]
    table = scored_table(rows)
    config = CurriculumConfig()
    config = replace(config, order=replace(config.order, stages=3, replay=0.25))

    def check(tables):
        t = pa.concat_tables(tables)
        own = t.filter(pa.array([not r for r in t.column("replay").to_pylist()]))
        assert sorted(own.column("query_id").to_pylist()) == [f"q{i:02d}" for i in range(60)]
        stage = np.array(own.column("stage").to_pylist())
        rate = np.array(own.column("pass_rate").to_pylist())
        for s in range(2):
            assert rate[stage == s].min() >= rate[stage == s + 1].max()
        first = dict(zip(own.column("query_id").to_pylist(), stage))
        for qid, s, replay in zip(t.column("query_id").to_pylist(), t.column("stage").to_pylist(),
                                  t.column("replay").to_pylist()):
            if replay:
                assert s > first[qid]
        return True

    with _pipeline() as p:
        batches = p | beam.Create([table.slice(0, 25), table.slice(25)], reshuffle=False)
        stats = (batches | beam.Map(T._stage_stats, config)
                 | beam.CombineGlobally(T._SumCounters()))
        staged = batches | beam.ParDo(T.AssignStagesFn(config), beam.pvalue.AsSingleton(stats))
        assert_that(staged | beam.combiners.ToList() | beam.Map(check), equal_to([True]))


def test_write_shards_writes_each_shard_once(tmp_path):
    queries = _synthetic(30)
    config = CurriculumConfig(k=8, k_max=8, adaptive=False)
    scored, _ = score_with_policy(queries, PolicyScorer(config.policy_spec()), config.scoring())
    from data_contracts.schema import DIFFICULTY_SCHEMA, conform
    difficulty = conform(scored, DIFFICULTY_SCHEMA)
    root = str(tmp_path)
    with _pipeline() as p:
        files = (p | beam.Create([difficulty.slice(0, 11), difficulty.slice(11)], reshuffle=False)
                 | T.WriteShards("difficulty", root, 3))
        assert_that(files | beam.Map(lambda f: (f["phase"], f["stage"], f["shard"])),
                    equal_to([("difficulty", None, s) for s in range(3)]))
    written = sorted(os.listdir(tmp_path / "difficulty"))
    assert written == [f"part-{s:05d}.parquet" for s in range(3)]
    back = pa.concat_tables([pq.read_table(tmp_path / "difficulty" / f) for f in written])
    assert sorted(back.column("query_id").to_pylist()) == sorted(
        queries.column("query_id").to_pylist())


def test_read_and_validate_fn_quarantines_with_reasons(tmp_path):
    path = tmp_path / "queries.jsonl"
    good = {"query_id": "a", "doc_ids": ["x", "y"], "features": [[1.0], [2.0]],
            "labels": [1, 0]}
    lines = [json.dumps(good), json.dumps({**good, "labels": [9, 0]}),  # label out of range
             json.dumps(good), "{not json"]  # duplicate query id; unparseable
    path.write_text("\n".join(lines) + "\n")
    config = CurriculumConfig(inputs=[str(path)])
    with _pipeline() as p:
        read = (p | beam.Create([None])
                | beam.ParDo(T.ReadAndValidateFn(config)).with_outputs(
                    T.ReadAndValidateFn.QUARANTINE, main="ok"))
        assert_that(read.ok | "Ok" >> beam.FlatMap(lambda t: t.column("query_id").to_pylist()),
                    equal_to(["a"]), label="ok")
        reasons = read.quarantine | beam.FlatMap(lambda t: t.column("reason").to_pylist())
        assert_that(reasons, equal_to(["label_out_of_range", "duplicate_query_id",
                                       "unparseable_record"]), label="quarantine")
