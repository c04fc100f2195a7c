"""The report commands' shared ending (trainers.staging.run_report_command)."""
from __future__ import annotations

import pytest

from data_contracts.errors import InputError
from trainers import experiment, studies
from trainers.staging import run_report_command


@pytest.mark.parametrize("main", [experiment.main, studies.main])
def test_bad_threads_is_one_error_line_before_any_work(main, capsys, tmp_path):
    assert main(["--synthetic", "features", "--out", str(tmp_path / "o"), "--threads", "0"]
                if main is experiment.main else
                ["--input", "x", "--eval-input", "y", "--out", str(tmp_path / "o"),
                 "--threads", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --threads must be within [1, 1024] (got 0)"]
    assert not (tmp_path / "o").exists()


def test_input_error_is_one_error_line(capsys):
    def run():
        raise InputError("train.txt", "not found")

    assert run_report_command(run, threads=1, files="a.md", quick=False, summary="a.md") == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == f"error: {InputError('train.txt', 'not found')}"
    assert captured.out == ""


@pytest.mark.parametrize("quick", [False, True])
def test_success_names_the_files_and_a_smoke_run(quick, capsys):
    assert run_report_command(lambda: "runs/r", threads=1, files="a.md, b.jsonl", quick=quick,
                              summary="a.md") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "wrote runs/r: a.md, b.jsonl"
    assert (len(out) == 2 and out[1].startswith("SMOKE RUN (--quick): not evidence")
            and "a.md and results.jsonl" in out[1]) if quick else len(out) == 1
