"""The report reads as a user would need it: RL reward per stage, the curriculum the trainer used,
tables that fit, legends outside the data, single values as bars (inspection/report.py)."""
from __future__ import annotations

import json
import os
import shutil

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from inspection import report
from inspection.cli import main
from inspection.inspector import open_run
from tests.inspection.conftest import write_metrics

METRICS = ([{"phase": "diagnostic", "policy": p, "step": s, "ndcg_at_10": v, "entropy": e}
            for p, s, v, e in (("untrained", 0, 0.55, 30.0), ("bc", 10, 0.7, 25.0),
                               ("rl", 40, 0.76, 21.0))]
           + [{"phase": "bc", "step": s, "loss": 2.0 - s / 10} for s in range(1, 11)]
           + [{"phase": "rl", "step": s, "stage": (s - 11) // 10, "loss": 0.1, "entropy": 24.0,
               "reward_mean": 0.9 - 0.3 * ((s - 11) // 10) + s / 1000}
              for s in range(11, 41)])


@pytest.fixture()
def trained(small_run, tmp_path):
    """A training folder with metrics, a re-scored curriculum inside it and summary.json."""
    folder = write_metrics(tmp_path / "train", METRICS)
    rescored = os.path.join(folder, "rescored")
    shutil.copytree(small_run, rescored)
    manifest = json.load(open(os.path.join(rescored, "manifest.json")))
    for i, stage in enumerate(c for c in manifest["curriculum"] if c["phase"] == "rl"):
        stage["pass_rate_mean"] = 0.8 - 0.3 * i  # recognisably the re-scored one
    json.dump(manifest, open(os.path.join(rescored, "manifest.json"), "w"))
    json.dump({"rescored_manifest": os.path.join(rescored, "manifest.json")},
              open(os.path.join(folder, "summary.json"), "w"))
    return folder


def _drawn(fig):
    FigureCanvasAgg(fig).draw()
    return fig


def test_reward_is_one_panel_per_stage_with_the_trained_curriculum(small_run, trained):
    with open_run(small_run, trained) as ins:
        fig, caption = report.reward_figure(ins)
        used, stages = report.trained_curriculum(ins)
    axes = [ax for ax in fig.axes if ax.lines]
    assert len(axes) == 3  # stages 0, 1, 2
    assert [ax.get_title() for ax in axes] == ["stage 0 (pass rate 0.80)",
                                               "stage 1 (pass rate 0.50)",
                                               "stage 2 (pass rate 0.20)"]
    # Shared y: the step down at a harder stage is visible as a level, not a collapse.
    assert len({ax.get_ylim() for ax in axes}) == 1
    assert "re-scored curriculum" in used and "rescored" in used
    assert [round(s["pass_rate_mean"], 2) for s in stages] == [0.8, 0.5, 0.2]
    assert "stage 1: 10 steps" in caption


def test_report_names_the_rescored_curriculum(small_run, trained, tmp_path, capsys):
    path = tmp_path / "report.html"
    assert main([small_run, "--training", trained, "--report", str(path)]) == 0
    capsys.readouterr()
    text = path.read_text()
    assert "RL trained on the re-scored curriculum" in text
    assert os.path.join(trained, "rescored", "manifest.json") in text


def test_rescored_manifest_relative_to_the_training_folder(small_run, trained):
    json.dump({"rescored_manifest": "rescored/manifest.json"},  # as the trainer writes it
              open(os.path.join(trained, "summary.json"), "w"))
    with open_run(small_run, trained) as ins:
        used, stages = report.trained_curriculum(ins)
    assert os.path.realpath(os.path.join(trained, "rescored", "manifest.json")) in used
    assert [round(s["pass_rate_mean"], 2) for s in stages] == [0.8, 0.5, 0.2]
    json.dump({"rescored_manifest": "../elsewhere/manifest.json"},
              open(os.path.join(trained, "summary.json"), "w"))
    with open_run(small_run, trained) as ins:
        used, stages = report.trained_curriculum(ins)
    assert "could not be read" in used and stages == []


def test_rescored_manifest_outside_the_training_folder_is_named_not_read(small_run, trained):
    json.dump({"rescored_manifest": os.path.join(small_run, "manifest.json")},
              open(os.path.join(trained, "summary.json"), "w"))
    with open_run(small_run, trained) as ins:
        used, stages = report.trained_curriculum(ins)
    assert "outside the training folder" in used and stages == []


def test_without_summary_the_report_says_so(small_run, tmp_path):
    folder = write_metrics(tmp_path / "train", METRICS)
    with open_run(small_run, folder) as ins:
        used, stages = report.trained_curriculum(ins)
    assert "no summary.json" in used and len(stages) == 3


def test_single_values_per_policy_are_bars_not_points(small_run, tmp_path):
    folder = write_metrics(tmp_path / "train", [m for m in METRICS if m["phase"] == "diagnostic"])
    with open_run(small_run, folder) as ins:
        fig, caption = report.training_figure(ins, "ndcg_at_10", "NDCG@10")
    _drawn(fig)
    (ax,) = fig.axes
    assert len(ax.patches) == 3 and not ax.lines  # three bars, no near-empty line plot
    assert [t.get_text() for t in ax.get_yticklabels()] == ["untrained", "bc", "rl"]
    assert "per policy: untrained 0.55, bc 0.7, rl 0.76" in caption


def test_legends_never_cover_the_data(small_run, trained):
    with open_run(small_run, trained) as ins:
        figures = [report.pass_rate_figure(ins)[0], report.bands_figure(ins)[0],
                   report.stages_figure(ins)[0], report.diversity_figure(ins)[0],
                   report.training_figure(ins, "entropy", "entropy")[0],
                   report.training_figure(ins, "loss", "loss")[0]]
    checked = 0
    for fig in figures:
        _drawn(fig)
        renderer = fig.canvas.get_renderer()
        legends = [leg for leg in fig.legends] + [ax.get_legend() for ax in fig.axes
                                                  if ax.get_legend()]
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for ax in fig.axes:
                assert not box.overlaps(ax.get_window_extent(renderer)), ax.get_title()
            checked += 1
    assert checked >= 4


def test_wide_tables_are_transposed_to_fit(small_run, trained):
    with open_run(small_run, trained) as ins:
        training = ins.named("training")
        html = report.html_table(training)
        assert training.num_columns > 12 and 'class="transposed"' in html
        assert html.count("<tr>") == training.num_columns  # header + one row per column - 1
        stages = report.html_table(ins.named("stages"))
    assert 'class="transposed"' not in stages


def test_bars_name_their_query_set_and_a_curve_has_one_point_per_step(small_run, tmp_path):
    """Diagnostics of one policy on two query sets are two named bars (not one overwritten by
    the other), and the evaluation the trainer logs twice at the BC/RL boundary is one point."""
    rows = [{"phase": "diagnostic", "policy": "bc", "set": "eval", "step": 30, "ndcg_at_10": 0.8},
            {"phase": "diagnostic", "policy": "bc", "set": "train_sample", "step": 30,
             "ndcg_at_10": 0.7},
            {"phase": "eval", "step": 0, "ndcg_at_10": 0.4, "during": "bc"},
            {"phase": "eval", "step": 30, "ndcg_at_10": 0.8, "during": "bc"},
            {"phase": "eval", "step": 30, "ndcg_at_10": 0.8, "during": "rl"},
            {"phase": "eval", "step": 50, "ndcg_at_10": 0.85, "during": "rl"}]
    folder = write_metrics(tmp_path / "train", rows)
    with open_run(small_run, folder) as ins:
        fig, caption = report.training_figure(ins, "ndcg_at_10", "NDCG@10")
        _, informative = report.training_figure(ins, "informative_fraction", "informative")
    _drawn(fig)
    curve_ax, bar_ax = fig.axes
    (line,) = curve_ax.lines
    assert list(line.get_xdata()) == [0, 30, 50]
    assert [t.get_text() for t in bar_ax.get_yticklabels()] == [
        "bc on held-out eval queries", "bc on fixed training sample"]
    assert "eval: 3 points" in caption
    assert [t.get_text() for t in curve_ax.get_legend().get_texts()] == [
        "eval: held-out eval queries"]
    assert "Definition, informative-group fraction" in informative
    assert "do not all pass and do not all fail" in informative
