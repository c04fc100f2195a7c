"""The experiment on text: the embedded text set (`--synthetic text`) and real text inputs (a BEIR
folder with its candidates and teacher runs) run the same arms and verdicts as feature LTR; a flag
that does not fit the inputs is one `error:` line; the equal-compute control's numbers are what
the trainings' logs say."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from data_contracts.arrays import pad_queries
from data_contracts.synthetic import SyntheticConfig, generate_table
from data_contracts.synthetic_text import SyntheticTextConfig, write_beir
from trainers import claims, experiment
from trainers.data import ShardBatch
from trainers.train import TrainConfig, train, within_budget

QUICK_TEXT = ["--synthetic", "text", "--synthetic-queries", "60", "--quick", "--taus", "0.7",
              "--seeds", "0"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8")]


@pytest.fixture(scope="module")
def quick_text(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("exp") / "text")
    assert experiment.main(QUICK_TEXT + ["--out", out]) == 0
    return out


def test_synthetic_text_experiment_runs_every_arm_on_the_held_out_split(quick_text):
    for name in ("claims.md", "results.jsonl", "equal_compute.jsonl", "text_summary.md",
                 "timings.jsonl", "ndcg_vs_rollouts.png", "legibility.png"):
        assert os.path.getsize(os.path.join(quick_text, name)) > 0, name
    rows = _rows(os.path.join(quick_text, "results.jsonl"))
    arms = {r["arm"]: r for r in rows if "tau" in r}
    assert set(arms) == set(experiment.ARMS)
    refs = {r["arm"]: r for r in rows if "tau" not in r}
    assert {"lambdamart", "best_feature", "random"} <= set(refs)
    assert refs["lambdamart"].get("ndcg@10") is not None  # on the build's IR features
    for row in arms.values():  # fixed sets: the generator's held-out split and input sample
        assert row["sets"]["eval"] == {"description": "synthetic text held-out split",
                                       "queries": 300}
        assert row["sets"]["train_sample"]["description"] == \
            "synthetic text training input, hash sample"
    assert arms["bc_rl"]["ndcg@10_after_bc"] == arms["bc"]["ndcg@10"]
    # the regime the claim is about: the untrained policy mostly fails at tau 0.7
    assert arms["bc"]["diagnostics"]["eval"]["untrained"]["pass_rate"] < 0.2
    summary = open(os.path.join(quick_text, "text_summary.md")).read()
    assert "SMOKE RUN" in summary and "--synthetic text --synthetic-queries 60" in summary
    assert "| 0.7 | untrained |" in summary and "At equal RL rollouts" in summary
    claims_md = open(os.path.join(quick_text, "claims.md")).read()
    assert "## Equal compute" in claims_md


def test_equal_compute_arms_spend_their_partners_rollouts(quick_text):
    rows = _rows(os.path.join(quick_text, "equal_compute.jsonl"))
    by = {r["arm"]: r for r in rows}
    assert set(by) == {"bc_rl", "bc_rl_nofilter_eq", "rl", "rl_nofilter_eq"}
    g = experiment.QUICK["group_size"]
    for arm, partner in claims.EQUAL_COMPUTE.items():
        budget = by[partner]["rollouts"]
        assert by[arm]["budget"] == budget and by[partner]["budget"] is None
        stages = 3  # the default build's stages: each may round its share up to whole groups
        assert budget <= by[arm]["rollouts"] < budget + stages * g
        for r in (by[arm], by[partner]):
            assert r["rl_groups"] * g == r["rollouts"]
            assert r["informative_fraction"] == r["informative_groups"] / r["rl_groups"]
    train_folder = os.path.join(quick_text, "train", "tau0.7-seed0")
    summary = json.load(open(os.path.join(train_folder, "bc_rl_nofilter_eq", "summary.json")))
    assert summary["rl_plan"]["segment_rollouts"] and sum(
        summary["rl_plan"]["segment_rollouts"]) == by["bc_rl"]["rollouts"]
    assert summary["ndcg@10"]["bc"] == by["bc_rl"]["ndcg@10_rl_start"]  # both start at BC


@pytest.mark.slow
def test_same_seed_same_results(quick_text, tmp_path):
    again = str(tmp_path / "again")
    assert experiment.main(QUICK_TEXT + ["--out", again]) == 0
    for name in ("results.jsonl", "equal_compute.jsonl", "text_summary.md"):
        with open(os.path.join(quick_text, name), "rb") as a, \
                open(os.path.join(again, name), "rb") as b:
            assert a.read() == b.read(), name


def test_rl_groups_count_each_steps_groups(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [{"phase": "eval", "rollouts": 0},
             {"phase": "rl", "rollouts": 16, "informative_fraction": 0.5},  # 2 groups, 1 inf.
             {"phase": "rl", "rollouts": 48, "informative_fraction": 0.25},  # 4 groups, 1
             {"phase": "diagnostic", "informative_fraction": 0.9},
             {"phase": "rl", "rollouts": 64, "informative_fraction": 1.0}]  # 2 groups, 2
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert experiment.rl_groups(str(path), 8) == {"rl_groups": 8, "informative_groups": 4,
                                                  "informative_fraction": 0.5}
    path.write_text(json.dumps({"phase": "bc", "loss": 1.0}) + "\n")
    assert experiment.rl_groups(str(path), 8)["informative_fraction"] is None


def _eq_row(arm, seed, rollouts, start, end, informative):
    return {"arm": arm, "tau": 0.7, "seed": seed, "rollouts": rollouts, "ndcg@10_rl_start": start,
            "ndcg@10_rl_end": end, "informative_fraction": informative,
            "rl_steps": 150 if arm == "bc_rl" else 40 + seed}


def test_equal_compute_table_and_verdicts_on_a_small_case():
    rows = []
    for seed, (filtered, unfiltered) in enumerate([((0.80, 0.60), (0.78, 0.40)),
                                                    ((0.82, 0.70), (0.79, 0.50))]):
        rows += [_eq_row("bc_rl", seed, 1000, 0.75, filtered[0], filtered[1]),
                 _eq_row("bc_rl_nofilter_eq", seed, 1008, 0.75, unfiltered[0], unfiltered[1])]
    assert claims.gain_per_1000(rows[0]) == pytest.approx(0.05)
    assert [(a["seed"], b["seed"]) for a, b in claims.equal_pairs(rows, "bc_rl_nofilter_eq",
                                                                 0.7)] == [(0, 0), (1, 1)]
    text = "\n".join(claims._equal_compute(rows, [0.7]))
    assert "| bc_rl | 0.7 | 1000 (1000..1000) | 150 (150..150) | 0.810 (0.800..0.820) | " \
           "0.0600 (0.0500..0.0700) | 0.650 (0.600..0.700) |" in text
    assert "| bc_rl_nofilter_eq | 0.7 | 1008 (1008..1008) | 40 (40..41) | 0.785 (0.780..0.790) |" \
        in text
    # NDCG differences +0.02 and +0.03; informative fraction +0.20 both seeds
    assert "reaches a higher test NDCG@10 (from BC: bc_rl vs bc_rl_nofilter_eq) | confirmed: " \
           "+0.025 (+0.020..+0.030) |" in text
    assert "non-zero advantage (from BC: bc_rl vs bc_rl_nofilter_eq) | confirmed: +0.200 " \
           "(+0.200..+0.200) |" in text
    assert "(RL alone: rl vs rl_nofilter_eq) | n/a |" in text  # that pair was not run
    rows[3]["ndcg@10_rl_end"] = 0.94  # seed 1's unfiltered arm now wins by 0.12
    assert "higher test NDCG@10 (from BC: bc_rl vs bc_rl_nofilter_eq) | not reproduced: " \
           "-0.050 (-0.120..+0.020)" in "\n".join(claims._equal_compute(rows, [0.7]))


def test_a_rollout_budget_cuts_the_last_batch_to_what_it_pays_for(small_run, tmp_path):
    table = generate_table(SyntheticConfig(n_queries=10))
    batch = ShardBatch(table, pad_queries(table), 1, 20)
    cut = within_budget(batch, 100, 60, 16)  # 40 rollouts left: 3 groups of 16
    assert (cut.rows, cut.file_index, cut.row_start) == (3, 1, 20)
    assert cut.table.column("query_id").to_pylist() == table.column("query_id").to_pylist()[:3]
    assert cut.padded.features.shape[0] == 3
    assert within_budget(batch, None, 60, 16) is batch
    assert within_budget(batch, 1000, 60, 16) is batch
    summary = train(TrainConfig(manifest=small_run, out=str(tmp_path / "t"), bc_steps=2,
                                rl_steps=1000, rl_rollouts=600, group_size=8, eval_every=50,
                                diagnostic_rollouts=4, train_sample=20))
    budgets = summary["rl_plan"]["segment_rollouts"]
    assert sum(budgets) == 600
    assert 600 <= summary["rollouts"] < 600 + len(budgets) * 8  # within G-1 per stage


def _beir(tmp_path, split, n):
    return write_beir(str(tmp_path / split), SyntheticTextConfig(n_queries=n, split=split))


def test_text_flags_that_do_not_fit_the_inputs_are_one_line(yahoo_train, yahoo_test, tmp_path,
                                                           capsys):
    beir = _beir(tmp_path, "heldout", 20)
    cases = [
        (["--synthetic", "text", "--input", yahoo_train], "drop --input"),
        (["--synthetic", "text", "--candidates", beir["run"]], "drop --candidates"),
        (["--synthetic-queries", "100", "--input", yahoo_train, "--eval-input", yahoo_test],
         "--synthetic only"),
        ([], "give --input TRAIN and --eval-input TEST"),
        (["--input", yahoo_train, "--eval-input", yahoo_test, "--candidates", beir["run"]],
         "are for text inputs"),
        (["--input", yahoo_train, "--eval-input", beir["folder"], "--eval-format", "beir"],
         "the eval input is text"),
        (["--input", beir["folder"], "--input-format", "beir", "--candidates", beir["run"],
          "--eval-input", yahoo_test], "the eval input is features"),
    ]
    for argv, words in cases:
        out = tmp_path / "e"
        assert experiment.main(argv + ["--out", str(out)]) == 2, argv
        line = _one_error_line(capsys)
        assert words in line, (argv, line)
        assert not out.exists() and not (tmp_path / "e.partial").exists()


@pytest.mark.slow
def test_a_beir_folder_with_its_runs_is_an_experiment_input(tmp_path, capsys):
    train_set, test_set = _beir(tmp_path, "train", 80), _beir(tmp_path, "heldout", 40)
    out = tmp_path / "exp"
    assert experiment.main([
        "--input", train_set["folder"], "--input-format", "beir", "--candidates",
        train_set["run"], "--teacher-run", train_set["teacher"], "--candidate-depth", "20",
        "--eval-input", test_set["folder"], "--eval-format", "beir", "--eval-candidates",
        test_set["run"], "--quick", "--taus", "0.7", "--seeds", "0", "--out", str(out)]) == 0
    rows = _rows(out / "results.jsonl")
    arms = {r["arm"]: r for r in rows if "tau" in r}
    assert set(arms) == set(experiment.ARMS)
    assert arms["bc"]["sets"]["eval"] == {"description": "heldout (--eval-input)", "queries": 40}
    assert "the build's input" in arms["bc"]["sets"]["train_sample"]["description"]
    refs = {r["arm"]: r for r in rows if "tau" not in r}
    assert np.isfinite(refs["lambdamart"]["ndcg@10"]) and np.isfinite(
        refs["best_feature"]["ndcg@10"])
    assert "--input-format" not in (out / "text_summary.md").read_text()  # names files only
    assert "--candidates run.trec --teacher-run teacher.trec --eval-candidates run.trec " \
           "--candidate-depth 20" in (out / "claims.md").read_text()
