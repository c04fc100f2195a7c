"""Files from the wild, end to end (#25). `--repeated-features`: a file whose every line writes a feature id twice builds
(last value kept) with one warning line naming the option and the first such line, and the count
and the example in the manifest; `quarantine` refuses it with one error line naming the option. A group-size file given as `--input` is one
line naming the data file it belongs beside."""
from __future__ import annotations

import json
import os

from pipelines.build_curriculum import main


def _repeating_file(tmp_path) -> tuple[str, int]:
    """(path, repeats): 20 queries of 6 documents, every line writing id 2 twice."""
    path = tmp_path / "toolkit.txt"
    lines = [f"{(q + d) % 5} qid:{q} 1:{d / 6:.3f} 2:0 3:{(q * d) % 7} 2:{(q + d) % 5}"
             for q in range(1, 21) for d in range(6)]
    path.write_text("# written by a toolkit that repeats ids\n" + "\n".join(lines) + "\n")
    return str(path), len(lines)


def test_repeated_ids_keep_the_last_value_with_one_warning_and_a_manifest_count(capsys, tmp_path):
    path, repeats = _repeating_file(tmp_path)
    out = tmp_path / "run"
    assert main(["--input", path, "--out", str(out)]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(err) == 1, err
    assert f"first at {path}:2" in err[0] and "--repeated-features" in err[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["duplicate_feature_ids"] == repeats
    assert manifest["counts"]["quarantined"] == 0
    assert manifest["examples"] == {"duplicate_feature_ids": f"{path}:2"}
    assert manifest["config"]["repeated_features"] == "last"


def test_quarantine_refuses_the_file_and_the_error_names_the_option(capsys, tmp_path):
    path, repeats = _repeating_file(tmp_path)
    out = tmp_path / "run"
    assert main(["--input", path, "--out", str(out), "--repeated-features", "quarantine"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "top reason unparseable_line" in lines[0]
    assert f"{repeats} feature id(s) repeat" in lines[0]
    assert "--repeated-features last" in lines[0]
    assert not os.path.exists(out)


def test_a_group_file_given_as_input_is_one_line_naming_the_data_file(capsys, tmp_path):
    data = tmp_path / "rank.train"
    data.write_text("".join(f"{d % 3} 1:{d / 4:.2f} 2:{q}\n" for q in range(3) for d in range(4)))
    (tmp_path / "rank.train.query").write_text("4\n4\n4\n")
    assert main(["--input", str(data) + ".query", "--out", str(tmp_path / "run")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == [f"error: {data}.query: is a group-size file (LightGBM .query / XGBoost "
                     f".group: one query's row count per line), not data; it belongs beside its "
                     f"data file {data}: give --input {data} (the group sizes beside it are "
                     f"found by name)"]
