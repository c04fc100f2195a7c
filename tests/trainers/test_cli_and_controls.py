"""The trainer's command line (one-line errors, nothing half-made, help, progress) and the
experiment's controls (shuffled order keeps every RL row; the no-filter arm keeps BC's data)."""
from __future__ import annotations

import json
import os
import shutil

import pyarrow.parquet as pq
import pytest

from data_contracts.manifest import files_of, load_manifest
from trainers import experiment
from trainers.cli import main, make_parser
from trainers.train import TrainConfig, train

TINY = ["--bc-steps", "3", "--rl-steps", "3", "--eval-every", "2", "--diagnostic-rollouts", "4",
        "--train-sample", "20"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("argv", [["--bogus"], ["--bc-steps", "many"], ["--bc-loss", "mse"]])
def test_usage_errors_are_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    _one_error_line(capsys)


@pytest.mark.parametrize("argv,option", [
    (["--rl-lr", "-1"], "--rl-lr"), (["--bc-lr", "nan"], "--bc-lr"),
    (["--kl-coef", "-0.5"], "--kl-coef"), (["--group-size", "1"], "--group-size"),
    (["--diagnostic-rollouts", "0"], "--diagnostic-rollouts"), (["--seed", "-3"], "--seed"),
    (["--temperature", "inf"], "--temperature"), (["--temperature", "1e-46"], "--temperature"),
    (["--bc-lr", "1e39"], "--bc-lr"), (["--kl-coef", "1e39"], "--kl-coef"),
    (["--group-size", "100000000"], "--group-size"),
    (["--diagnostic-rollouts", "100000000"], "--diagnostic-rollouts")])
def test_out_of_range_numbers_are_refused_before_training(argv, option, small_run, tmp_path,
                                                          capsys):
    assert main(["--manifest", small_run, "--out", str(tmp_path / "t"), *argv]) == 2
    assert option in _one_error_line(capsys)
    assert not (tmp_path / "t").exists() and not (tmp_path / "t.partial").exists()


def _write(path, text: str) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return str(path)


@pytest.mark.parametrize("case", ["empty", "wide", "checkpoint", "inside_run"])
def test_unusable_inputs_are_one_line_exit_2_and_leave_no_output(small_run, tmp_path, capsys,
                                                                 case):
    out = tmp_path / "t"
    argv = ["--manifest", small_run, "--out", str(out), *TINY]
    if case == "empty":
        argv += ["--eval-input", _write(tmp_path / "empty.svm", ""), "--eval-format", "svmlight"]
    elif case == "wide":  # a feature id far beyond the curriculum's width
        argv += ["--eval-input", _write(tmp_path / "wide.svm", "1 qid:1 900:0.5\n0 qid:1 3:0.1\n"),
                 "--eval-format", "svmlight"]
    elif case == "checkpoint":
        argv += ["--init", _write(tmp_path / "not-a-checkpoint.pt", "hello")]
    else:
        argv[3] = os.path.join(small_run, "training")
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert not os.path.exists(argv[3]) and not os.path.exists(argv[3] + ".partial"), line


def test_help_gives_every_option_a_description_and_default():
    for action in make_parser()._actions:
        if action.dest == "help":
            continue
        assert action.help and "default" in action.help, action.dest


def test_progress_lines_on_stderr_and_summary_names_its_sets(small_run, tmp_path, capsys):
    argv = ["--manifest", small_run, "--out", str(tmp_path / "t"), *TINY,
            "--progress-seconds", "0"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "bc: step 3/3" in captured.err and "rl: step 3/3" in captured.err
    assert "synthetic test split" in captured.out  # what the test NDCG is measured on
    assert str(tmp_path / "t" / "summary.json") in captured.out
    summary = json.load(open(tmp_path / "t" / "summary.json"))
    assert summary["sets"]["rl_queries"]["description"].count("POLICY-SELECTED") == 1


def test_summary_says_why_test_ndcg_is_missing(small_run, tmp_path):
    manifest = json.load(open(os.path.join(small_run, "manifest.json")))
    copy = tmp_path / "run"
    shutil.copytree(small_run, copy)
    manifest["inputs"][0]["format"] = "parquet"  # not synthetic: no built-in test split
    manifest["config"]["synthetic"] = None
    json.dump(manifest, open(copy / "manifest.json", "w"))
    try:
        summary = train(TrainConfig(manifest=str(copy), out=str(tmp_path / "t"), bc_steps=2,
                                    rl_steps=2, eval_every=1, diagnostic_rollouts=4))
    except Exception as exc:  # the manifest check may refuse an edited manifest
        pytest.skip(f"edited manifest refused: {exc}")
    assert summary["sets"]["eval"] == {"missing": "no --eval-input"}
    assert summary["ndcg@10"]["rl"] is None


def test_shuffled_rl_order_trains_on_exactly_the_curriculum_rows(small_run, tmp_path):
    out = tmp_path / "t"
    summary = train(TrainConfig(manifest=small_run, out=str(out), bc_steps=2, rl_steps=4,
                                eval_every=2, diagnostic_rollouts=4, rl_order="shuffled"))
    manifest = load_manifest(small_run)
    rows = sorted(q for f in files_of(manifest, "rl")
                  for q in pq.read_table(f, columns=["query_id"]).column("query_id").to_pylist())
    shuffled = pq.read_table(out / "rl-shuffled.parquet").column("query_id").to_pylist()
    assert sorted(shuffled) == rows and shuffled != rows
    assert summary["rl_plan"] == {"order": "shuffled", "segment_rows": [len(rows)],
                                  "segment_steps": [4]}


@pytest.mark.slow
def test_experiment_quick_runs_end_to_end(yahoo_train, yahoo_test, tmp_path, capsys):
    out = tmp_path / "exp"
    assert experiment.main(["--input", yahoo_train, "--eval-input", yahoo_test, "--quick",
                            "--taus", "0.7", "--seeds", "0", "--out", str(out)]) == 0
    for name in ("claims.md", "results.jsonl", "timings.jsonl", "ndcg_vs_rollouts.png",
                 "legibility.png"):
        assert (out / name).stat().st_size > 0, name
    rows = [json.loads(line) for line in open(out / "results.jsonl")]
    arms = {r["arm"]: r for r in rows if "tau" in r}
    assert set(arms) == set(experiment.ARMS)
    assert {"lambdamart", "best_feature", "random"} <= {r["arm"] for r in rows}
    # BC's data is identical with and without the filter: the same BC checkpoint starts both
    for arm in ("bc_rl", "bc_rl_nofilter", "bc_rl_shuffled"):
        assert arms[arm]["ndcg@10_after_bc"] == arms["bc"]["ndcg@10"]
        assert arms[arm]["diagnostics"]["eval"]["bc"] == arms["bc"]["diagnostics"]["eval"]["rl"]
    assert arms["bc_rl_nofilter"]["rl_plan"]["segment_rows"] != arms["bc_rl"]["rl_plan"][
        "segment_rows"]  # ... while RL's data differs (too_hard queries added)
    claims = (out / "claims.md").read_text()
    assert "| (smoke run) BC then RL beats BC alone (NDCG@10) |" in claims
    assert any(v in claims for v in ("confirmed", "not reproduced", "contradicted"))
    assert not os.path.exists(str(out) + ".partial")
    # a --quick run is labelled a smoke run everywhere (stdout, claims.md, results.jsonl) and
    # its NDCG names its ideal
    assert "SMOKE RUN (--quick): not evidence" in capsys.readouterr().out
    assert claims.splitlines()[0].endswith("(SMOKE RUN: not evidence)")
    assert "SMOKE RUN (--quick): not evidence" in claims
    assert "## Test NDCG@10 (ideal=window) (smoke run)" in claims
    table = claims.split("## Claims")[1].split("\n## ")[0]
    verdicts = [r for r in table.splitlines() if r.startswith("| ") and "claim |" not in r]
    assert verdicts and all(r.startswith("| (smoke run) ") for r in verdicts)
    assert all(r["smoke"] is True and r["ideal"] == "window" for r in rows)


def test_compressed_eval_input_is_read_like_the_plain_one_or_refused_in_one_line(
        yahoo_train, yahoo_test, tmp_path, capsys):
    """gzip is decompressed by magic bytes (data_contracts.fs); whatever the reader makes of it,
    the trainer answers with the plain file's numbers or one `error:` line and exit 2."""
    import gzip

    from pipelines.build_curriculum import run
    from pipelines.config import CurriculumConfig

    run(CurriculumConfig(inputs=[yahoo_train], out=str(tmp_path / "run")))
    packed = tmp_path / "rank.test.gz"
    with open(yahoo_test, "rb") as src, gzip.open(packed, "wb") as dst:
        dst.write(src.read())
    for name in ("rank.test.query", "rank.test.gz.query"):
        shutil.copy(yahoo_test + ".query", tmp_path / name)
    base = ["--manifest", str(tmp_path / "run"), *TINY]
    assert main(base + ["--out", str(tmp_path / "a"), "--eval-input", yahoo_test]) == 0
    capsys.readouterr()
    code = main(base + ["--out", str(tmp_path / "b"), "--eval-input", str(packed)])
    if code == 2:
        _one_error_line(capsys)
        assert not os.path.exists(tmp_path / "b")
    else:
        assert code == 0
        a = json.load(open(tmp_path / "a" / "summary.json"))
        b = json.load(open(tmp_path / "b" / "summary.json"))
        assert a["ndcg@10"] == b["ndcg@10"] and b["sets"]["eval"]["queries"] == 50


def test_resume_from_a_corrupt_checkpoint_is_one_line(small_run, tmp_path, capsys):
    partial = tmp_path / "t.partial"
    partial.mkdir()
    (partial / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert main(["--manifest", small_run, "--out", str(tmp_path / "t"), *TINY, "--resume"]) == 2
    assert "cannot resume" in _one_error_line(capsys)
    assert partial.exists() and not (tmp_path / "t").exists()  # the killed run's folder stays


@pytest.mark.parametrize("argv", [["--taus", "1.5"], ["--taus", "a,b"], ["--seeds", ""]])
def test_experiment_usage_errors_are_one_line(argv, tmp_path, capsys):
    base = ["--input", "x", "--eval-input", "y", "--out", str(tmp_path / "e")]
    try:
        code = experiment.main(base + argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    _one_error_line(capsys)
    assert not (tmp_path / "e").exists()


def test_experiment_help_gives_every_option_a_description_and_default():
    for action in experiment.make_parser()._actions:
        if action.dest != "help":
            assert action.help and ("default" in action.help or "required" in action.help), \
                action.dest


def test_rl_rollout_budget_ends_rl_when_spent(small_run, tmp_path):
    summary = train(TrainConfig(manifest=small_run, out=str(tmp_path / "t"), bc_steps=2,
                                rl_steps=1000, rl_rollouts=600, group_size=8, eval_every=50,
                                diagnostic_rollouts=4, train_sample=20))
    budgets = summary["rl_plan"]["segment_rollouts"]
    assert sum(budgets) == 600
    assert 600 <= summary["rollouts"] < 600 + len(budgets) * 32 * 8  # at most a batch over each
    assert summary["rl_steps_done"] < 1000
    assert summary["learning_curve"][-1]["rollouts"] == summary["rollouts"]


@pytest.mark.parametrize("out", ["foreign", "marked", "work", "nested", "link", "", "."])
def test_experiment_out_that_is_not_an_experiments_folder_is_refused(out, tmp_path, capsys,
                                                                     monkeypatch):
    # replacing OUT deletes it: a folder of other files (one with an experiment's claims.md
    # among them), a user's OUT.partial, the current folder, "" (the same)
    monkeypatch.chdir(tmp_path)
    for name in ("foreign", "marked", "work.partial"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "notes.txt").write_text("keep me")
    (tmp_path / "marked" / "claims.md").write_text("#")
    (tmp_path / "nested" / "train").mkdir(parents=True)  # an experiment's folder names ...
    (tmp_path / "nested" / "claims.md").write_text("#")
    (tmp_path / "nested" / "train" / "mymodel.pt").write_text("keep me")  # ... a user's file
    os.symlink(tmp_path / "marked", tmp_path / "link")
    (tmp_path / "claims.md").write_text("looks like an experiment's, but is the current folder")
    code = experiment.main(["--input", "x", "--eval-input", "y", "--out", out])
    assert code == 2
    line = _one_error_line(capsys)
    assert "--out" in line or "OUT.partial" in line, line
    for name in ("foreign", "marked", "work.partial"):
        assert (tmp_path / name / "notes.txt").read_text() == "keep me"
    assert (tmp_path / "nested" / "train" / "mymodel.pt").read_text() == "keep me"
    assert (tmp_path / "claims.md").exists()


def test_resume_without_a_killed_run_says_it_starts_from_the_beginning(small_run, tmp_path,
                                                                        capsys):
    assert main(["--manifest", small_run, "--out", str(tmp_path / "t"), *TINY, "--resume"]) == 0
    assert "no killed run to continue" in capsys.readouterr().err
    assert (tmp_path / "t" / "summary.json").exists()
