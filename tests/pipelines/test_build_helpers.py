"""build_curriculum's plain helpers: manifest counts, worker errors, options (no pipeline run)."""
from __future__ import annotations

import os
from dataclasses import replace

import pytest

from data_contracts.errors import InputError
from data_contracts.manifest import check_counts
from pipelines.build_curriculum import config_from_args, make_parser, run
from pipelines.config import CurriculumConfig
from pipelines.manifest import _check_file_rows, make_manifest
from pipelines.options import pipeline_options, unknown_beam_args
from pipelines.run import _input_error_in, unusable_reason


def _summary(**counts) -> dict:
    return {"files": [], "stats": {"counts": counts}, "diversity_before": {}}


def test_read_is_counted_not_derived():
    # a query lost between reading and scoring must show up as a reconciliation problem
    manifest = make_manifest(CurriculumConfig(), _summary(read=10, quarantined=1, scored=8,
                                                          learnable=8, rl=8, rl_rows=8))
    assert manifest["counts"]["read"] == 10
    problems = check_counts(manifest["counts"])
    assert len(problems) == 1 and problems[0].startswith("read=10")


def test_file_rows_must_match_the_counts():
    counts = {"scored": 3, "imitation": 1, "rl_rows": 2, "dropped": 0, "quarantined": 0}
    files = [{"phase": "difficulty", "rows": 3}, {"phase": "imitation", "rows": 1},
             {"phase": "rl", "rows": 1}]
    problems = _check_file_rows({"counts": counts, "files": files})
    assert problems == ["rl files hold 1 rows, counts say 2"]
    files[-1]["rows"] = 2
    assert _check_file_rows({"counts": counts, "files": files}) == []


def test_input_error_is_recovered_from_a_worker_failure():
    original = InputError("/data/q.parquet", "required column missing", column="query_id")
    try:
        try:
            raise original
        except InputError:
            raise RuntimeError("wrapped by the runner")
    except RuntimeError as exc:  # in-process runners chain the original
        assert _input_error_in(exc) is original
    # a worker in another process passes only text, with Beam's step suffix
    text = ("Traceback ...\n  raise InputError(...)\nRuntimeError: data_contracts.errors."
            "InputError: /data/q.parquet: column 'query_id': required column missing "
            "[while running 'ReadAndValidate/ParDo(ReadAndValidateFn)']\n")
    found = _input_error_in(RuntimeError(text))
    assert isinstance(found, InputError)
    assert str(found) == "/data/q.parquet: column 'query_id': required column missing"
    assert found.path == "/data/q.parquet" and found.column == "query_id"
    found = _input_error_in(RuntimeError("InputError: /x.jsonl: file not found"))
    assert str(found) == "/x.jsonl: file not found"
    assert _input_error_in(RuntimeError("ZeroDivisionError: division by zero")) is None


def test_unknown_beam_args():
    assert unknown_beam_args(["--direct_running_mode=multi_processing",
                              "--direct_num_workers=2"]) == []
    assert unknown_beam_args(["--runner", "DataflowRunner", "--project", "p",
                              "--temp_location", "gs://b/t"]) == []
    assert unknown_beam_args(["--stratgy", "target"]) == ["--stratgy"]


def test_local_runs_use_fn_api_runner():
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    for args in ([], ["--runner=DirectRunner"], ["--direct_running_mode=multi_processing"]):
        _, runner = pipeline_options(args)
        assert isinstance(runner, FnApiRunner), args
    options, runner = pipeline_options(["--runner=DataflowRunner"])
    assert runner == "DataflowRunner"


def test_unusable_runs_are_named(tmp_path):
    """The run-level rule with each input's detected layout: nothing scored, too much
    quarantined, and the likely cause (a TREC qrels file) named."""
    config = CurriculumConfig()
    assert unusable_reason(config, {"read": 10, "scored": 0, "quarantined": 10},
                           {"label_out_of_range": 10}).startswith("nothing scored: 10 of 10")
    reason = unusable_reason(config, {"read": 10, "scored": 4, "quarantined": 6},
                             {"label_out_of_range": 6})
    assert "6 of 10 records quarantined (60%), more than --max-quarantine 0.5" in reason
    assert unusable_reason(config, {"read": 10, "scored": 6, "quarantined": 4}, {}) is None
    qrels = tmp_path / "qrels.test"
    qrels.write_text("q1 0 doc-a 0\nq1 0 doc-b 1\nq2 0 doc-c 2\n")
    config = CurriculumConfig(inputs=[str(qrels)], input_format="svmlight")
    reason = unusable_reason(config, {"read": 3, "scored": 0, "quarantined": 3},
                             {"unparseable_line": 3})
    assert "looks like TREC qrels" in reason, reason


def test_cli_flags_reach_the_config():
    args, beam_args = make_parser().parse_known_args(
        ["--input", "a.txt", "--k", "4", "--k-max", "12", "--no-adaptive", "--strategy", "target",
         "--target", "0.4", "--stages", "5", "--replay", "0.1", "--no-diversity",
         "--no-hard-to-imitation", "--teacher", "labels", "--direct_num_workers=2"])
    config = config_from_args(args)
    assert beam_args == ["--direct_num_workers=2"]
    assert (config.inputs, config.k, config.k_max, config.adaptive) == (["a.txt"], 4, 12, False)
    assert (config.order.strategy, config.order.target, config.order.stages,
            config.order.replay) == ("target", 0.4, 5, 0.1)
    assert not config.diversity.enabled and not config.routing.hard_to_imitation
    assert config.routing.teacher_mode == config.teacher == "labels"
    with pytest.raises(ValueError, match="--stages must be at least 1"):
        config_from_args(make_parser().parse_args(["--stages", "0"]))


@pytest.mark.parametrize("change,message", [
    (lambda c: replace(c, order=replace(c.order, strategy="random")), "unknown strategy"),
    (lambda c: replace(c, order=replace(c.order, replay=1.5)), "replay must be within"),
    (lambda c: replace(c, order=replace(c.order, stages=0)), "stages must be at least 1"),
    (lambda c: replace(c, diversity=replace(c.diversity, budget=-0.1)), "budget must be within"),
    (lambda c: replace(c, teacher="oracle"), "unknown teacher mode"),
    (lambda c: replace(c, shards=0), "shards must be at least 1"),
])
def test_run_refuses_bad_settings_before_starting(change, message, tmp_path):
    config = change(CurriculumConfig(out=str(tmp_path / "run")))
    with pytest.raises(ValueError, match=message):
        run(config)
    assert os.listdir(tmp_path) == []  # nothing staged, nothing published


def test_the_manifest_names_the_rewards_ideal(tmp_path):
    """#27: the manifest says which NDCG ideal the pass rates used, the default included."""
    from data_contracts.synthetic import SyntheticConfig
    from pipelines.build_curriculum import run
    from pipelines.config import CurriculumConfig
    from pipelines.manifest import reward_record

    assert reward_record("ndcg@10>=0.7")["ideal"] == "window"
    assert reward_record("ndcg@10>=0.7,ideal=qrels")["ideal"] == "qrels"
    manifest = run(CurriculumConfig(out=str(tmp_path / "r"),
                                    synthetic=SyntheticConfig(n_queries=40))).manifest
    assert manifest["reward"] == {"spec": "ndcg@10>=0.7", "name": "ndcg@10>=0.7",
                                  "ideal": "window"}
