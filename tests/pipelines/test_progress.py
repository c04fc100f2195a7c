"""A build tells the user it is alive: a progress line on stderr every few seconds, terminal or
not, counted from the per-split markers its workers write into the run's location."""
from __future__ import annotations

import re

from pipelines import build_curriculum as B
from pipelines import progress


def test_progress_lines_on_stderr_while_the_build_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.2)
    out = tmp_path / "run"
    assert B.main(["--synthetic-queries", "200", "--k", "8", "--k-max", "8", "--out",
                   str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    lines = [x for x in err if x.startswith("progress:")]
    assert lines, err
    last = re.match(r"progress: \d+s, pass 1 \(read, score\) (\d+)/1 splits, pass 2 \(write\) "
                    r"(\d+)/1 splits", lines[-1])
    assert last, lines[-1]
    assert not (out / "_progress").exists()  # markers are not part of the run
