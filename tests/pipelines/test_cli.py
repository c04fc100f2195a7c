"""The command line: the no-argument default run, --help, and one-line errors with a non-zero exit."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from data_contracts.manifest import load_manifest
from pipelines.build_curriculum import main
from pipelines.config import DEFAULT_OUT
from tests.conftest import REPO

DEFAULT_RUN_LIMIT_S = 60.0
FLAGS = ["--input", "--input-format", "--rollouts", "--policy", "--reward", "--k", "--k-max",
         "--adaptive", "--no-adaptive", "--temperature", "--seed", "--out", "--strategy",
         "--stages", "--target", "--replay", "--diversity", "--no-diversity"]


def _cli(args: list[str], cwd: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "pipelines.build_curriculum", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_no_argument_run_writes_the_default_run_within_a_minute(tmp_path):
    # no arguments at all, in an empty folder: the default run lands in ./runs/default
    started = time.monotonic()
    done = _cli([], cwd=str(tmp_path))
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    print(f"default run: {seconds:.1f}s wall (process start included)")
    assert seconds < DEFAULT_RUN_LIMIT_S
    out = tmp_path / DEFAULT_OUT
    manifest = load_manifest(str(out))
    assert manifest["inputs"][0]["path"] == "embedded:synthetic"
    assert manifest["counts"]["read"] == manifest["config"]["synthetic"]["n_queries"] == 800
    assert f"wrote {out}" in done.stdout
    assert "read 800 = quarantined 0 + scored 800" in done.stdout
    assert sorted(os.listdir(tmp_path)) == ["runs"]
    assert sorted(os.listdir(out.parent)) == ["default"]  # no staging folder left beside it


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in FLAGS:
        assert f"{flag} " in text or f"{flag}\n" in text or f"{flag}," in text, flag


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_missing_input(capsys, tmp_path):
    missing = str(tmp_path / "nope.txt")
    assert main(["--input", missing, "--out", str(tmp_path / "o")]) != 0
    line = _one_error_line(capsys)
    assert missing in line and "not found" in line
    assert not os.path.exists(tmp_path / "o")


def test_unknown_format_option(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["--input-format", "xlsx", "--out", str(tmp_path / "o")])
    assert exit_info.value.code != 0
    assert "xlsx" in _one_error_line(capsys)


def test_input_of_unknown_format(capsys, tmp_path):
    odd = tmp_path / "table.xlsx"
    odd.write_text("not a ranking file")
    assert main(["--input", str(odd), "--out", str(tmp_path / "o")]) != 0
    line = _one_error_line(capsys)
    assert str(odd) in line and "unknown format" in line


def test_unreadable_checkpoint(capsys, tmp_path):
    garbage = tmp_path / "policy.pt"
    garbage.write_bytes(os.urandom(256))
    assert main(["--policy", str(garbage), "--out", str(tmp_path / "o")]) != 0
    line = _one_error_line(capsys)
    assert str(garbage) in line and "checkpoint" in line


def test_output_path_that_is_a_file(capsys, tmp_path):
    afile = tmp_path / "out.txt"
    afile.write_text("keep")
    assert main(["--out", str(afile)]) != 0
    line = _one_error_line(capsys)
    assert str(afile) in line and "is a file" in line
    assert afile.read_text() == "keep"


def test_output_folder_that_is_not_a_run_is_never_replaced(capsys, tmp_path):
    folder = tmp_path / "mydata"
    folder.mkdir()
    (folder / "precious.csv").write_text("1,2,3")
    assert main(["--out", str(folder)]) != 0
    assert "not a run folder" in _one_error_line(capsys)
    assert (folder / "precious.csv").read_text() == "1,2,3"


def test_misspelled_option_is_an_error_not_a_silent_beam_option(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["--stratgy", "target", "--out", str(tmp_path / "o")])
    assert exit_info.value.code != 0
    assert "--stratgy" in _one_error_line(capsys)


def test_bad_number_is_one_line(capsys, tmp_path):
    assert main(["--k", "0", "--out", str(tmp_path / "o")]) != 0
    assert "--k must be at least 1" in _one_error_line(capsys)


def test_input_problem_found_inside_the_pipeline_is_one_line(capsys, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "queries.parquet"
    # canonical columns without query_id ({"qid", "x"} would now read as a rows table)
    pq.write_table(pa.table({"doc_ids": [["a"]], "features": [[[1.0]]]}), path)
    assert main(["--input", str(path), "--out", str(tmp_path / "o")]) != 0
    line = _one_error_line(capsys)
    assert str(path) in line and "query_id" in line
    assert not os.path.exists(tmp_path / "o")
    assert [p for p in os.listdir(tmp_path) if "staging" in p] == []


@pytest.mark.slow
def test_process_exit_code_and_stderr_for_a_missing_input(tmp_path):
    done = _cli(["--input", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o")],
                cwd=str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'missing.txt'}: file not found"]
    assert done.stdout == ""


@pytest.mark.parametrize("out", ["", " ", ".", "..", "/"])
def test_an_out_that_would_delete_the_current_folder_is_refused(capsys, tmp_path, monkeypatch,
                                                                out):
    # even a folder that looks like a run (a manifest.json) is not replaced when a run started
    # in it (or below it) names it: "" is the current folder to Python, ".." holds it
    here = tmp_path / "run" / "inside"
    here.mkdir(parents=True)
    for folder in (tmp_path / "run", here):
        (folder / "manifest.json").write_text("{}")
    monkeypatch.chdir(here)
    assert main(["--out", out]) != 0
    line = _one_error_line(capsys)
    assert "--out is" in line
    assert (here / "manifest.json").read_text() == "{}"
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_a_run_that_stages_nothing_fails_and_keeps_the_earlier_run(capsys, tmp_path):
    # all labels 0: no ranking passes NDCG@10 >= 0.7, every query is dropped as too hard
    out = tmp_path / "o"
    assert main(["--synthetic-queries", "40", "--out", str(out)]) == 0
    before = sorted(os.listdir(out))
    zero = tmp_path / "zero.txt"
    zero.write_text("".join(f"0 qid:{q} 1:{(q * 7 + d) % 5} 2:{d}\n"
                            for q in range(1, 21) for d in range(6)))
    assert main(["--input", str(zero), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert "nothing to train on" in line and "keeps its earlier run" in line
    assert sorted(os.listdir(out)) == before
    fresh = tmp_path / "fresh"
    assert main(["--input", str(zero), "--out", str(fresh)]) == 2
    assert _one_error_line(capsys).endswith(f"{fresh} was not created")
    assert not fresh.exists()


@pytest.mark.parametrize("argv,words", [
    (["--temperature", "0"], "temperature"), (["--temperature", "nan"], "temperature"),
    (["--hard-below", "0.9", "--easy-above", "0.5"], "below easy_above"),
    (["--hard-below", "nan"], "hard_below"), (["--confidence", "1.5"], "confidence"),
    (["--easy-weight", "-1"], "easy_weight"), (["--easy-weight", "nan"], "easy_weight"),
    (["--k", "20", "--k-max", "10"], "k_max"), (["--seed", "-1"], "seed"),
    (["--seed", str(2**40)], "seed"), (["--temperature", "1e-46"], "temperature"),
    (["--easy-weight", "1e39"], "easy_weight"), (["--k", "100000000", "--no-adaptive"], "k must"),
    (["--k-max", "100000000000"], "k_max must"), (["--stages", "100000000"], "stages must"),
    (["--prior", "learned"], "--budget-rule planned")])
def test_out_of_range_numbers_are_one_line_before_the_run(argv, words, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert words in _one_error_line(capsys)
    assert not os.path.exists(tmp_path / "o")


@pytest.mark.parametrize("mapping,words", [("qidd=topic", "'qidd'"), ("query_id", "NAME=COLUMN"),
                                           ("query_id=", "NAME=COLUMN")])
def test_a_column_map_the_readers_cannot_use_is_one_line(mapping, words, capsys, tmp_path):
    # a misspelt name used to be ignored: the run then read the columns by their own names
    assert main(["--column-map", mapping, "--out", str(tmp_path / "o")]) == 2
    assert words in _one_error_line(capsys)


def test_a_symlinked_out_is_refused_and_a_file_url_out_lands_where_it_names(capsys, tmp_path,
                                                                              monkeypatch):
    # a run replaces its folder: through a link it would replace the link (or fail at the end
    # on a dangling one); file:///PATH is PATH, not ./file:/PATH
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    for name in ("link", "dangling"):
        assert main(["--synthetic-queries", "30", "--out", str(tmp_path / name)]) == 2
        assert "symbolic link" in _one_error_line(capsys)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["--synthetic-queries", "30", "--out", f"file://{tmp_path / 'run'}"]) == 0
    load_manifest(str(tmp_path / "run"))
    assert os.listdir(here) == [] and os.listdir(tmp_path / "real") == []


def test_an_input_inside_the_out_folder_is_refused(capsys, tmp_path):
    # the rebuild would overwrite the very shard it reads (and the manifest's sha256 with it)
    out = tmp_path / "run"
    assert main(["--synthetic-queries", "40", "--out", str(out)]) == 0
    shard = sorted((out / "imitation").iterdir())[0]
    before = shard.read_bytes()
    assert main(["--input", str(shard), "--out", str(out)]) == 2
    assert "lies inside --out" in _one_error_line(capsys)
    assert shard.read_bytes() == before
