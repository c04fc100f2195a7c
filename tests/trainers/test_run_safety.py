"""Issue 25/27 trainer items: eval inputs of another kind, width or id base are one line naming
both (trainer and experiment); model selection says on stdout when it discards RL; a second
writer to one --out is refused; a resumed run's metrics hold each step once; reported NDCG
names its ideal (and ideal=qrels is honoured); --quick claims are labelled smoke runs; --out is
never nested in (or holding) another run."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from data_contracts.errors import InputError
from data_contracts.manifest import check_out_outside_runs
from data_contracts.synthetic import SyntheticConfig, generate_table
from difficulty.policy import base_policy
from difficulty.rewards import parse_reward
from trainers import experiment
from trainers.cli import main, selection_lines
from trainers.evaluate import group_diagnostics, ndcg_at_10
from trainers.staging import claim_work_folder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--bc-steps", "3", "--rl-steps", "3", "--eval-every", "2", "--diagnostic-rollouts", "4",
        "--train-sample", "20", "--threads", "1"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _svmlight(path, queries: int, ids: range, seed: int = 0) -> str:
    """A small SVMlight file with qid, labels 0..2 and the feature ids `ids`."""
    rng = np.random.default_rng(seed)
    lines = []
    for q in range(queries):
        for _ in range(6):
            feats = " ".join(f"{i}:{rng.random():.3f}" for i in ids)
            lines.append(f"{int(rng.integers(0, 3))} qid:{q} {feats}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _build(out: str, **kw) -> str:
    from dataclasses import replace

    from pipelines.build_curriculum import run
    from pipelines.config import CurriculumConfig

    config = CurriculumConfig(out=out, order=replace(CurriculumConfig().order, stages=2), **kw)
    run(config)
    return out


@pytest.fixture(scope="module")
def svm_run(tmp_path_factory) -> str:
    """A run built from a one-based SVMlight file with feature ids 1..5."""
    folder = tmp_path_factory.mktemp("svm")
    train = _svmlight(folder / "train.svm", 80, range(1, 6))
    return _build(str(folder / "run"), inputs=[train])


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> str:
    """A synthetic text run whose reward normalises NDCG by the qrels' ideal."""
    folder = tmp_path_factory.mktemp("text")
    return _build(str(folder / "run"), synthetic=SyntheticConfig(n_queries=60),
                  synthetic_kind="text", reward="ndcg@10>=0.5,ideal=qrels")


# --- 1. eval inputs of another kind, width or id base -------------------------------------

def test_feature_eval_input_for_a_text_run_is_one_line_naming_both(text_run, svm_run, tmp_path,
                                                                   capsys):
    feature_eval = _svmlight(tmp_path / "e.svm", 5, range(1, 6))
    assert main(["--manifest", text_run, "--out", str(tmp_path / "t"), "--eval-input",
                 feature_eval, *TINY]) == 2
    line = _one_error_line(capsys)
    assert "the eval input is features (svmlight)" in line and "is a text (synthetic-text" in line
    assert not os.path.exists(tmp_path / "t") and not os.path.exists(tmp_path / "t.partial")


@pytest.mark.parametrize("ids, words", [(range(1, 9), "the eval input has 8 features (ids 1..8)"),
                                        (range(0, 5), "uses feature id 0 (zero-based ids)")])
def test_eval_input_of_another_width_or_base_is_one_line_naming_both(svm_run, tmp_path, capsys,
                                                                     ids, words):
    path = _svmlight(tmp_path / "e.svm", 5, ids)
    assert main(["--manifest", svm_run, "--out", str(tmp_path / "t"), "--eval-input", path,
                 "--eval-format", "svmlight", *TINY]) == 2
    line = _one_error_line(capsys)
    assert words in line and "is a features (svmlight, 5 features, one-based ids 1..5) run" in line


def test_narrower_eval_input_is_read_in_the_runs_space(svm_run, tmp_path, capsys):
    path = _svmlight(tmp_path / "e.svm", 6, range(1, 4))  # never names features 4 and 5
    assert main(["--manifest", svm_run, "--out", str(tmp_path / "t"), "--eval-input", path,
                 *TINY]) == 0
    summary = json.load(open(tmp_path / "t" / "summary.json"))
    assert summary["sets"]["eval"]["queries"] > 0


def test_experiment_eval_input_of_another_base_is_one_line_and_takes_eval_format(
        tmp_path, capsys):
    train = _svmlight(tmp_path / "train.svm", 30, range(1, 6))
    test = _svmlight(tmp_path / "test.svm", 5, range(0, 5))
    assert experiment.main(["--input", train, "--eval-input", test, "--eval-format", "svmlight",
                            "--quick", "--taus", "0.5", "--seeds", "0", "--out",
                            str(tmp_path / "exp")]) == 2
    line = _one_error_line(capsys)
    assert "uses feature id 0" in line and f"--input {train} is a features" in line
    assert not os.path.exists(tmp_path / "exp") and not os.path.exists(tmp_path / "exp.partial")


# --- 2. model selection discarding RL is said on stdout ------------------------------------

def test_selection_lines_say_when_rl_is_discarded():
    kept = {"kept": "rl_start", "step": 3, "rl_discarded": True, "start_val_ndcg@10": 0.61,
            "best_rl_val_ndcg@10": 0.55, "best_rl_step": 5}
    (line,) = selection_lines(kept)
    assert "DISCARDED RL" in line and "step 3" in line and "0.6100" in line and "0.5500" in line
    (line,) = selection_lines(dict(kept, kept="rl_step", step=5, rl_discarded=False))
    assert "kept RL step 5" in line and "0.5500" in line and "0.6100" in line
    assert selection_lines(dict(kept, kept="no_rl")) == []


def test_trainer_stdout_names_the_kept_checkpoint_and_its_validation_numbers(svm_run, tmp_path,
                                                                              capsys):
    assert main(["--manifest", svm_run, "--out", str(tmp_path / "t"), *TINY,
                 "--rl-lr", "1.0"]) == 0
    out = capsys.readouterr().out
    summary = json.load(open(tmp_path / "t" / "summary.json"))
    sel = summary["rl_selection"]
    assert sel["step"] == summary["selected_step"]["rl"]
    assert sel["rl_discarded"] == (sel["step"] == summary["bc_steps_done"])
    curve = {p["step"]: p["val_ndcg_at_10"] for p in summary["learning_curve"]
             if p["phase"] == "rl"}
    assert sel["start_val_ndcg@10"] == curve[summary["bc_steps_done"]]
    (line,) = [x for x in out.splitlines() if "model selection" in x]
    assert line.strip() == selection_lines(sel)[0].strip()


# --- 3. a second writer to one --out -------------------------------------------------------

def test_second_writer_to_one_out_is_refused_and_the_first_runs_files_stay(svm_run, tmp_path,
                                                                          capsys):
    out = str(tmp_path / "t")
    lock = claim_work_folder(out + ".partial", False, out)  # a live run holds OUT.partial
    try:
        marker = os.path.join(out + ".partial", "metrics.jsonl")
        with open(marker, "w") as handle:
            handle.write('{"phase": "bc", "step": 1}\n')
        for extra in ([], ["--resume"]):
            assert main(["--manifest", svm_run, "--out", out, *TINY, *extra]) == 2
            assert "another run is writing to it" in _one_error_line(capsys)
            assert open(marker).read() == '{"phase": "bc", "step": 1}\n'
    finally:
        os.close(lock)
    assert main(["--manifest", svm_run, "--out", out, *TINY]) == 0  # the lock died with its run


def test_second_experiment_to_one_out_is_refused(tmp_path, capsys):
    train = _svmlight(tmp_path / "train.svm", 10, range(1, 4))
    out = str(tmp_path / "exp")
    lock = claim_work_folder(out + ".partial", False, out)
    try:
        assert experiment.main(["--input", train, "--eval-input", train, "--quick", "--out",
                                out]) == 2
        assert "another run is writing to it" in _one_error_line(capsys)
        assert os.path.isdir(out + ".partial")
    finally:
        os.close(lock)


# --- 4. resume: metrics hold each step once ------------------------------------------------

def _train(manifest: str, out: str, *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "trainers.train", "--manifest", manifest, "--out", out,
            "--bc-steps", "6", "--rl-steps", "4", "--checkpoint-every", "2", "--eval-every", "2",
            "--batch-queries", "16", "--diagnostic-rollouts", "4", "--train-sample", "20",
            *extra]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)


def _rows(path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in open(path)]


def test_resumed_run_cuts_metrics_back_to_its_checkpoint(svm_run, tmp_path):
    whole = _train(svm_run, str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    killed = _train(svm_run, str(tmp_path / "k"), "--stop-after", "4")
    assert killed.returncode == 3, killed.stderr
    # rows a killed run wrote after its last checkpoint (steps 5 and 6), the last one torn
    with open(tmp_path / "k.partial" / "metrics.jsonl", "a") as handle:
        handle.write('{"phase": "bc", "step": 5, "loss": 1.0}\n{"phase": "bc", "st')
    resumed = _train(svm_run, str(tmp_path / "k"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "from its checkpoint at step 4 (bc)" in resumed.stderr
    assert "2 rows written after the checkpoint dropped" in resumed.stderr
    rows = _rows(tmp_path / "k" / "metrics.jsonl")
    steps = [(r["phase"], r["step"]) for r in rows if r["phase"] in ("bc", "rl")]
    assert len(steps) == len(set(steps)) == 10
    assert rows == _rows(tmp_path / "whole" / "metrics.jsonl")


# --- 5. NDCG names its ideal; ideal=qrels is honoured ---------------------------------------

def _with_judged(table: pa.Table) -> pa.Table:
    """The table with `judged_labels` naming three more grade-2 documents than each window."""
    judged = [sorted(list(labels) + [2.0, 2.0, 2.0], reverse=True)
              for labels in table.column("labels").to_pylist()]
    column = pa.array(judged, pa.list_(pa.float32()))
    return table.set_column(table.column_names.index("judged_labels"), "judged_labels", column)


def test_ndcg_and_diagnostics_honour_the_qrels_ideal():
    table = _with_judged(generate_table(SyntheticConfig(n_queries=30)))
    model = base_policy(len(table.column("features")[0][0]), 0)
    window, qrels = parse_reward("ndcg@10>=0.5"), parse_reward("ndcg@10>=0.5,ideal=qrels")
    assert ndcg_at_10(model, table, qrels) < ndcg_at_10(model, table, window)
    assert ndcg_at_10(model, table, window) == ndcg_at_10(model, table)
    low = group_diagnostics(model, table, qrels, 8, 0, 1.0, 1)["pass_rate"]
    high = group_diagnostics(model, table, window, 8, 0, 1.0, 1)["pass_rate"]
    assert low < high


def test_rl_loss_reward_honours_the_qrels_ideal():
    from trainers.config import TrainConfig
    from trainers.data import ShardBatch
    from data_contracts.arrays import pad_queries
    from trainers.losses import rl_loss

    table = _with_judged(generate_table(SyntheticConfig(n_queries=30)))
    batch = ShardBatch(table, pad_queries(table), 0, 0)
    model = base_policy(batch.padded.features.shape[-1], 0)
    cfg = TrainConfig(group_size=8, kl_coef=0.0)
    _, window = rl_loss(model, None, batch, parse_reward("ndcg@10>=0.5"), cfg, stream=1)
    _, qrels = rl_loss(model, None, batch, parse_reward("ndcg@10>=0.5,ideal=qrels"), cfg,
                       stream=1)
    assert qrels["reward_mean"] < window["reward_mean"]


def test_trainer_reports_the_ideal_on_stdout_and_in_the_summary(text_run, tmp_path, capsys):
    assert main(["--manifest", text_run, "--out", str(tmp_path / "t"), *TINY]) == 0
    out = capsys.readouterr().out
    assert "test NDCG@10 (ideal=qrels)" in out and "validation NDCG@10 (ideal=qrels" in out
    summary = json.load(open(tmp_path / "t" / "summary.json"))
    assert summary["ndcg_ideal"] == "qrels"
    assert summary["ndcg_ideal_description"].startswith("ideal=qrels")


# --- 6. --quick claims are smoke runs (see also test_experiment_quick_runs_end_to_end) -------

def test_readme_evidence_quotes_no_quick_run():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    evidence = text.split("## What the evidence says")[1].split("\n## ")[0]
    claims = text.split("# Claims, measured on fixed query sets")[1]  # the generated block
    for section in (evidence, claims):
        assert "SMOKE RUN" not in section and "smoke run" not in section
    generated = re.findall(r"Generated by `python -m trainers\.experiment[^`]*`", claims)
    assert generated and not any("--quick" in g for g in generated)


# --- 7. --out never nested in, or holding, another run --------------------------------------

@pytest.mark.parametrize("inside", ["run", "trained", "holds_run"])
def test_out_nested_with_another_run_is_one_line(svm_run, tmp_path, capsys, inside):
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "summary.json").write_text("{}")
    (trained / "metrics.jsonl").write_text("")
    holder = tmp_path / "holder"
    (holder / "sub" / "inner").mkdir(parents=True)
    (holder / "sub" / "inner" / "claims.md").write_text("")
    out = {"run": os.path.join(os.path.dirname(svm_run), "other", "t"),
           "trained": str(trained / "deeper" / "t"), "holds_run": str(holder)}[inside]
    if inside == "run":  # a run folder other than the one trained on
        import shutil
        shutil.copytree(svm_run, os.path.join(os.path.dirname(svm_run), "other"),
                        dirs_exist_ok=True)
    assert main(["--manifest", svm_run, "--out", out, *TINY]) == 2
    line = _one_error_line(capsys)
    assert ("is inside" in line) != (inside == "holds_run")
    assert "holds" in line or "is inside" in line
    assert experiment.main(["--input", svm_run, "--eval-input", svm_run, "--out", out]) == 2
    assert "--out" in _one_error_line(capsys)


def test_the_nesting_rule_skips_the_commands_own_run_folders(tmp_path):
    out = tmp_path / "t"
    (out / "rescored").mkdir(parents=True)
    (out / "rescored" / "manifest.json").write_text("{}")
    check_out_outside_runs(str(out), "--out", own=("rescored",))
    with pytest.raises(InputError, match=r"holds the run folder .*rescored \(a run\)"):
        check_out_outside_runs(str(out), "--out")
