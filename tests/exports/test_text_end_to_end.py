"""End to end on the text fixture: a curriculum from text with the in-pipeline policy and one
from an LLM rollout log (malformed outputs counted as failures), both exported for verl and TRL;
every export loads with datasets; the exported reward functions score as the pipeline did."""
from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest

from data_contracts.errors import InputError
from difficulty.generations import parse_generation
from exports.build import export_run
from exports.rewards import compute_score, ranking_reward
from pipelines import export as export_cli
from pipelines.build_curriculum import main as build_main
from pipelines.build_curriculum import run
from pipelines.config import CurriculumConfig
from tests.pipelines.helpers import phase_table
from tests.text_fixture import make_text_fixture

pytestmark = pytest.mark.slow
pytrec_eval = pytest.importorskip("pytrec_eval", reason="pytrec-eval-terrier not installed")
datasets = pytest.importorskip("datasets", reason="datasets not installed")

REWARD = "ndcg@10>=0.6"


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return make_text_fixture(str(tmp_path_factory.mktemp("text")))


@pytest.fixture(scope="module")
def runs(fx, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    common = dict(inputs=[fx["beir"]], input_format="beir", candidates=fx["run"],
                  teacher_run=fx["teacher"], reward=REWARD, k=8, k_max=16, stages=None)
    common.pop("stages")
    policy = run(CurriculumConfig(**common, policy="base", out=str(root / "policy")))
    logged = run(CurriculumConfig(**common, rollouts=fx["rollouts"], out=str(root / "log")))
    return policy, logged


def _load(path):
    return datasets.load_dataset("parquet", data_files={"train": path}, split="train")


def _counts(result):
    c = result.manifest["counts"]
    assert c["read"] == c["quarantined"] + c["scored"]
    assert c["scored"] == c["imitation"] + c["rl"] + c["dropped"]
    return c


def test_policy_run_scores_every_text_query(runs, fx):
    policy, _ = runs
    c = _counts(policy)
    assert c["read"] == len(fx["data"]["run"]) and c["quarantined"] == 0
    rl = phase_table(policy.out, "rl")
    assert rl.column("doc_texts").null_count == 0  # passages travel to the RL shards


def test_rollout_log_counts_reconcile_and_malformed_outputs_are_failures(runs, fx):
    _, logged = runs
    c = _counts(logged)
    assert c["scored"] == len(fx["data"]["run"]) and c["rollouts_quarantined"] == 0
    formats = [i["format"] for i in logged.manifest["inputs"]]
    assert formats == ["beir", "candidates", "teacher_run", "rollouts"]
    diff = phase_table(logged.out, "difficulty")
    assert sum(diff.column("trials").to_pylist()) == fx["rollouts_total"]
    assert sum(diff.column("malformed_rollouts").to_pylist()) == sum(fx["malformed"].values())
    reasons = Counter()
    for text in diff.column("malformed_reasons").to_pylist():
        reasons.update(json.loads(text))
    assert dict(reasons) == fx["malformed"]
    assert c["rollouts_malformed"] == sum(fx["malformed"].values())  # and in the manifest
    assert logged.manifest["malformed_reasons"] == fx["malformed"]
    # Independent check: each well-formed rollout's NDCG@10 from pytrec_eval (qrels restricted to
    # the candidates, as the pipeline's labels are), malformed ones failures.
    data = fx["data"]
    expected = Counter()
    for line in open(fx["rollouts"]):
        row = json.loads(line)
        qid = row["query_id"]
        docs = [d for d, _ in data["run"][qid]]
        parsed = parse_generation(row["generation"], len(docs))
        if parsed.ranking is None:
            continue
        run_ = {qid: {docs[j]: float(len(docs) - r) for r, j in enumerate(parsed.ranking)}}
        qrels = {qid: {d: int(data["qrels"][qid].get(d, 0)) for d in docs}}
        ndcg = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run_)
        expected[qid] += ndcg[qid]["ndcg_cut_10"] >= 0.6 - 1e-12
    got = dict(zip(diff.column("query_id").to_pylist(), diff.column("successes").to_pylist()))
    assert got == {q: expected.get(q, 0) for q in got}


@pytest.mark.parametrize("to", ["verl", "trl"])
@pytest.mark.parametrize("which", [0, 1])
def test_exports_load_with_datasets_in_curriculum_order(runs, tmp_path, to, which):
    from trainers.train import is_validation

    result = runs[which]
    out = str(tmp_path / to)
    record = export_run(result.out, to, out)
    again = export_run(result.out, to, str(tmp_path / "again"))
    assert again == record  # same run, same bytes (the record holds every file's sha256)
    imitation = phase_table(result.out, "imitation").to_pylist()
    rl = phase_table(result.out, "rl").to_pylist()
    val = lambda q: bool(is_validation([q], 0.2)[0])  # noqa: E731  the trainer's rule
    stages = [e for e in result.manifest["curriculum"] if e["phase"] == "rl" and e["rows"]]
    stage_rows = {e["stage"]: sum(1 for r in rl if r["stage"] == e["stage"]
                                  and not val(r["query_id"])) for e in stages}
    sft_ids = sorted({r["query_id"] for r in imitation + rl if not val(r["query_id"])})
    val_ids = sorted({r["query_id"] for r in imitation + rl if val(r["query_id"])})
    assert record["order"] == ["imitation.parquet"] + [
        f"rl/stage-{s:02d}.parquet" for s, n in stage_rows.items() if n]
    assert len([n for n in stage_rows.values() if n]) >= 2
    columns = {("verl", "imitation"): {"messages", "data_source", "weight", "query_id"},
               ("verl", "rl"): {"data_source", "prompt", "ability", "reward_model",
                                "extra_info"},
               ("trl", "imitation"): {"prompt", "completion", "weight", "query_id"},
               ("trl", "rl"): {"prompt", "ground_truth", "query_id", "stage", "pass_rate",
                               "band", "order_key", "replay"}}
    for entry in record["files"] + [record["validation"]]:
        ds = _load(os.path.join(out, entry["path"]))
        phase = "rl" if entry["phase"] == "validation" else entry["phase"]
        assert set(ds.column_names) == columns[(to, phase)]
        assert len(ds) == entry["rows"]
        if entry["phase"] == "imitation":  # --sft all: every training query with a teacher
            assert sorted(ds["query_id"]) == sft_ids
        elif entry["phase"] == "validation":
            ids = [r["extra_info"]["query_id"] for r in ds] if to == "verl" else ds["query_id"]
            assert ids == val_ids
        else:
            assert len(ds) == stage_rows[entry["stage"]]
        if len(ds):
            prompt = (ds[0]["messages"][:-1] if to == "verl" and phase == "imitation"
                      else ds[0]["prompt"])
            assert prompt[-1]["role"] == "user" and "[1] " in prompt[-1]["content"]
    assert record["lengths"]["unit"] == "words" and record["lengths"]["prompt"]["max"] > 0
    assert record["batch_size"]["train_batch_size"] <= min(
        n for n in stage_rows.values() if n)
    if to == "verl":
        rl_files = [f for f in record["files"] if f["phase"] == "rl" and f["rows"]]
        ds = _load(os.path.join(out, rl_files[0]["path"]))
        info = ds[0]["extra_info"]
        assert info["stage"] == rl_files[0]["stage"] and info["policy_id"]
        assert info["interval_low"] <= info["pass_rate"] <= info["interval_high"]
        keys = [r["extra_info"]["order_key"] for r in ds]
        assert keys == sorted(keys)
        truth = json.loads(ds[0]["reward_model"]["ground_truth"])
        assert truth["doc_ids"] == info["doc_ids"] and truth["reward"] == REWARD
        assert truth["output"] == "pass"  # the default reward is the pass the rates count
        command = record["commands"]["verl>=0.9"]
        assert "reward.custom_reward_function.path=" in command and "data.shuffle=False" in \
            command and "data.val_files=$OUT/val.parquet" in command


def test_exported_rewards_score_rollouts_as_the_pipeline_did(runs, fx, tmp_path):
    _, logged = runs
    out = str(tmp_path / "verl")
    export_run(logged.out, "verl", out, output="value", val_fraction=0.0)
    trl_out = str(tmp_path / "trl")
    export_run(logged.out, "trl", trl_out, output="value", val_fraction=0.0)
    passed_out = str(tmp_path / "pass")
    export_run(logged.out, "verl", passed_out, val_fraction=0.0)
    diff = {r["query_id"]: r for r in phase_table(logged.out, "difficulty").to_pylist()}
    by_query: dict[str, list[str]] = {}
    for line in open(fx["rollouts"]):
        row = json.loads(line)
        by_query.setdefault(row["query_id"], []).append(row["generation"])
    # verl loads the exported reward_fn.py by path: it is the same function
    import importlib.util

    spec = importlib.util.spec_from_file_location("verl_reward", os.path.join(out, "reward_fn.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.compute_score is compute_score
    checked = 0
    for name in sorted(os.listdir(os.path.join(out, "rl"))):
        verl_rows = pq.read_table(os.path.join(out, "rl", name)).to_pylist()
        trl_rows = pq.read_table(os.path.join(trl_out, "rl", name)).to_pylist()
        pass_rows = pq.read_table(os.path.join(passed_out, "rl", name)).to_pylist()
        for vrow, trow, prow in zip(verl_rows, trl_rows, pass_rows):
            qid = vrow["extra_info"]["query_id"]
            gens = by_query[qid]
            verl = [compute_score(vrow["data_source"], g, vrow["reward_model"]["ground_truth"],
                                  vrow["extra_info"]) for g in gens]
            trl = ranking_reward([[{"role": "assistant", "content": g}] for g in gens],
                                 ground_truth=[trow["ground_truth"]] * len(gens))
            assert verl == trl
            assert np.mean(verl) == pytest.approx(diff[qid]["reward_mean"], abs=1e-9)
            passes = [compute_score("s", g, prow["reward_model"]["ground_truth"]) for g in gens]
            assert set(passes) <= {0.0, 1.0}
            assert sum(passes) == diff[qid]["successes"]  # rewarded as the pass rates counted
            checked += 1
    assert checked > 0


def test_command_lines_synthetic_text_build_and_export(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert build_main(["--synthetic", "text", "--synthetic-queries", "40", "--k", "4",
                       "--k-max", "8", "--out", out]) == 0
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["counts"]["read"] == 40
    assert export_cli.main([out, "--to", "trl", "--out", str(tmp_path / "trl")]) == 0
    assert "imitation.parquet" in capsys.readouterr().out
    # exports never go inside a run; a feature run has no texts to export
    assert export_cli.main([out, "--to", "verl", "--out", os.path.join(out, "x")]) == 2
    features = str(tmp_path / "features")
    assert build_main(["--synthetic-queries", "20", "--k", "4", "--k-max", "4",
                       "--out", features]) == 0
    with pytest.raises(InputError, match="no query and passage texts"):
        export_run(features, "verl", str(tmp_path / "none"))
    assert export_cli.main([features, "--to", "requests", "--model", "m", "--out",
                            str(tmp_path / "none")]) == 2
    assert "no query and passage texts" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["RUN", "--to", "verl"], ["RUN", "--to", "openrlhf",
                                                             "--out", "x"]])
def test_export_usage_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        export_cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
