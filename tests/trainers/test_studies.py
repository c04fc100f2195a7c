"""`python -m trainers.studies`: the SFT-depth study and the RL sweep (`trainers/studies.py`)."""
from __future__ import annotations

import json
import os

import pytest

from trainers import readme_sync, studies

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _bc(points):
    return [{"phase": "bc", "step": s, "val_ndcg_at_10": v} for s, v in points]


def test_convergence_is_where_validation_stops_improving():
    # rises to 0.80 at step 30; later points wobble within 0.001 or fall
    curve = _bc([(0, 0.60), (10, 0.75), (20, 0.79), (30, 0.80), (40, 0.8008), (50, 0.78)])
    assert studies.convergence_step(curve) == (30, False)
    # a later gain larger than delta moves it
    curve = _bc([(0, 0.60), (10, 0.75), (20, 0.79), (30, 0.80), (40, 0.79), (50, 0.803)])
    assert studies.convergence_step(curve) == (50, True)  # still improving at the horizon
    assert studies.convergence_step(curve, delta=0.005) == (30, False)
    # step 0, RL points and missing validation values are not candidates
    curve = _bc([(0, 0.9), (10, 0.5), (20, None)]) + [
        {"phase": "rl", "step": 30, "val_ndcg_at_10": 0.99}]
    assert studies.convergence_step(curve) == (10, True)
    with pytest.raises(ValueError, match="no BC validation point"):
        studies.convergence_step(_bc([(0, 0.6)]))


def _row(name, seed, val, test):
    return {"study": "sweep", "name": name, "seed": seed, "val_ndcg@10": val, "ndcg@10": test}


def test_the_setting_is_chosen_on_validation_never_on_test():
    order = ["default", "a", "b"]
    rows = [_row("default", 0, 0.70, 0.70), _row("default", 1, 0.72, 0.70),
            _row("a", 0, 0.75, 0.60), _row("a", 1, 0.73, 0.61),  # best on validation
            _row("b", 0, 0.71, 0.90), _row("b", 1, 0.72, 0.95)]  # best on test
    assert studies.choose_setting(rows, order) == "a"
    # test numbers do not move the choice
    shuffled = [dict(r, **{"ndcg@10": 1.0 - r["ndcg@10"]}) for r in rows]
    assert studies.choose_setting(shuffled, order) == "a"
    # a tie on validation goes to the earlier setting (the default first)
    tied = [dict(r, **{"val_ndcg@10": 0.7}) for r in rows]
    assert studies.choose_setting(tied, order) == "default"
    with pytest.raises(ValueError, match="nothing to choose on"):
        studies.choose_setting([dict(r, **{"val_ndcg@10": None}) for r in rows], order)


def test_the_sweep_is_the_stated_full_factorial():
    grid = studies.settings()
    assert len(grid) == 2 * 3 * 2 * 2 and len({studies.setting_name(s) for s in grid}) == 24
    assert grid[0] == {"reward": "pass", "lr_factor": "1", "kl": "on", "steps_factor": 1}
    default = studies.setting_overrides(grid[0], {})
    assert default == {"rl_reward": "pass", "rl_lr": 1e-4, "kl_coef": 0.05, "rl_steps": 150}
    third = next(s for s in grid if s["lr_factor"] == "1/3" and s["kl"] == "off"
                 and s["steps_factor"] == 4 and s["reward"] == "graded")
    assert studies.setting_overrides(third, {"rl_steps": 12}) == {
        "rl_reward": "graded", "rl_lr": pytest.approx(1e-4 / 3), "kl_coef": 0.0, "rl_steps": 48}


def test_spearman_refuses_constant_or_tiny_inputs():
    assert studies.spearman([1, 2, 3, 4], [2, 4, 6, 9])[0] == pytest.approx(1.0)
    assert studies.spearman([1, 1, 1], [1, 2, 3]) == (None, None)
    assert studies.spearman([1, 2], [1, 2]) == (None, None)


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def quick_run(yahoo_train, yahoo_test, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("studies") / "quick")
    assert studies.main(["--input", yahoo_train, "--eval-input", yahoo_test, "--quick",
                         "--seeds", "0", "--out", out]) == 0
    return out


@pytest.mark.slow
def test_quick_studies_run_end_to_end(quick_run, capsys):
    assert sorted(os.listdir(quick_run)) == ["results.jsonl", "studies.md", "timings.jsonl"]
    assert not os.path.exists(quick_run + ".partial")
    rows = [json.loads(line) for line in _read(os.path.join(quick_run, "results.jsonl"))
            .splitlines()]
    kinds = [r["study"] for r in rows]
    assert kinds.count("convergence") == 1 and kinds.count("sft_depth") == 3
    assert kinds.count("bc") == 1 and kinds.count("sweep") == 24
    assert all(r["smoke"] is True for r in rows)
    conv = rows[kinds.index("convergence")]
    depth = [r for r in rows if r["study"] == "sft_depth"]
    assert [r["bc_steps"] for r in depth] == [max(1, round(f * conv["convergence_step"]))
                                              for f in studies.DEPTHS]
    for r in depth:  # pre-RL numbers with k = the RL group size (8 under --quick)
        pre = r["pre_rl"]["train_sample"]
        assert pre["k"] == 8 and pre["pass_rate"] <= pre["pass_at_k"] <= 1.0
        assert pre["entropy"] > 0 and 0.0 <= pre["informative_fraction"] <= 1.0
    report = _read(os.path.join(quick_run, "studies.md"))
    assert "SMOKE RUN" in report and "(chosen)" in report and "(default)" in report
    assert report.count("| pass, lr") + report.count("| graded, lr") >= 24
    timings = [json.loads(line) for line in _read(os.path.join(quick_run, "timings.jsonl"))
               .splitlines()]
    assert len(timings) == 1 + 1 + 6 + 1 + 24  # build, convergence, 3 x (BC, RL), BC, sweep


@pytest.mark.slow
def test_results_are_deterministic_and_one_cell_reproduces_its_rows(quick_run, yahoo_train,
                                                                   yahoo_test, tmp_path):
    """Two `--cell default` runs write byte-identical results.jsonl, whose rows are the full
    run's BC and default-setting rows."""
    outs = []
    for name in ("a", "b"):
        out = str(tmp_path / name)
        assert studies.main(["--input", yahoo_train, "--eval-input", yahoo_test, "--quick",
                             "--seeds", "0", "--cell", "default", "--out", out]) == 0
        outs.append(_read(os.path.join(out, "results.jsonl")))
    assert outs[0] == outs[1]
    cell = [json.loads(line) for line in outs[0].splitlines()]
    full = [json.loads(line) for line in _read(os.path.join(quick_run, "results.jsonl"))
            .splitlines()]
    default = studies.setting_name(studies.settings()[0])
    assert cell == [r for r in full if r["study"] == "bc"
                    or (r["study"] == "sweep" and r["name"] == default)]


def test_a_missing_input_is_one_error_line(tmp_path, capsys):
    code = studies.main(["--input", str(tmp_path / "none"), "--eval-input", str(tmp_path / "x"),
                         "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--input not found" in err[0]
    assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "out.partial")


def test_synthetic_text_runs_the_same_studies_on_the_embedded_set(tmp_path, capsys):
    """`--synthetic text`: the embedded text set, its held-out split as the test set (the
    regime where the untrained policy mostly fails); the report names it."""
    out = str(tmp_path / "text")
    assert studies.main(["--synthetic", "text", "--quick", "--seeds", "0", "--cell", "default",
                         "--out", out]) == 0
    rows = [json.loads(line) for line in _read(os.path.join(out, "results.jsonl")).splitlines()]
    assert [r["study"] for r in rows] == ["bc", "sweep"]
    assert all(r["ndcg@10"] is not None and r["pass_rate"] is not None for r in rows)
    report = _read(os.path.join(out, "studies.md"))
    assert "`python -m trainers.studies --synthetic text --tau 0.7 --seeds 0 --quick" in report
    assert "the embedded text generator's held-out split" in report


@pytest.mark.parametrize("argv, named", [
    (["--synthetic", "text", "--input", "x.txt"], "--input"),
    (["--synthetic", "text", "--synthetic-queries", "5"], "--synthetic-queries"),
    (["--synthetic-queries", "100", "--input", "a", "--eval-input", "b"], "--synthetic-queries"),
])
def test_synthetic_flags_that_do_not_fit_are_one_error_line(argv, named, tmp_path, capsys):
    assert studies.main(argv + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and named in err[0]
    assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "out.partial")


def _studies_blocks():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        found = [b for b in readme_sync.blocks(handle.read())
                 if b.command.startswith("python -m trainers.studies")]
    # the feature-LTR study (Yahoo) and the same study on the embedded text set
    assert sorted("--synthetic text" in b.command for b in found) == [False, True], \
        "the README needs the Yahoo and the --synthetic text trainers.studies blocks"
    return found


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1])
def test_one_cell_of_the_readme_study_reproduces(which, yahoo_dir, tmp_path, monkeypatch):
    """Reruns one cell of each README study (seed 0: BC and the default RL setting, full
    budgets) and checks its per-seed lines stand in the README's block; a whole study takes
    tens of minutes (regenerate it with the block's command, then `python -m
    trainers.readme_sync README.md --from OUT`)."""
    block = _studies_blocks()[which]
    argv = readme_sync.command_with_out(block.command, str(tmp_path / "cell"))
    assert argv[:2] == ["-m", "trainers.studies"]
    monkeypatch.chdir(REPO)  # the block's paths are relative to the repository
    assert studies.main(argv[2:] + ["--seeds", "0", "--cell", "default"]) == 0
    rows = [json.loads(line) for line in _read(str(tmp_path / "cell" / "results.jsonl"))
            .splitlines()]
    bc, default = rows
    name = studies.setting_name(studies.settings()[0])
    assert studies.seed_line(bc, "BC alone") in block.body
    assert studies.seed_line(default, f"default: {name}") in block.body
