"""Half (b) of the README's rule for measured blocks (`trainers.readme_sync`): each benchmark
block's command, rerun with `--smoke` (sizes cut to seconds), still writes a results.md of its
committed record's shape (same lines, rows and words; numbers masked). Half (a), README ==
record, is tests/trainers/test_readme_numbers.py. No timing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

from trainers import readme_sync

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LTR = os.path.join(os.path.dirname(REPO), "shared", "data", "ltr-yahoo-sample", "rank.train")
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import bench_out  # noqa: E402

# smokes that start Beam worker processes or read the Yahoo sample: tens of seconds, not seconds
SLOW = ("--only rss", "--only workers", "bench_budget.py")


def _measured_blocks() -> list:
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        found = [b for b in readme_sync.blocks(handle.read()) if b.measured]
    return [pytest.param(b, id=os.path.basename(b.out),
                         marks=[pytest.mark.slow] if any(s in b.command for s in SLOW) else [])
            for b in found]


def _smoke(argv: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *argv, "--smoke"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.parametrize("block", _measured_blocks())
def test_a_smoke_run_of_each_quoted_benchmark_writes_its_records_shape(block, tmp_path):
    if ("bench_budget.py" in block.command or "bench_planned.py" in block.command) \
            and not os.path.exists(LTR):
        pytest.skip(f"the Yahoo sample is absent ({LTR}): the record's ltr rows cannot be written")
    out = tmp_path / "out"
    _smoke(readme_sync.command_with_out(block.command, str(out)))
    with open(out / "results.json", encoding="utf-8") as handle:
        record = json.load(handle)
    assert record["smoke"] is True and record["results"]
    assert readme_sync.shape_difference(block, str(out), REPO) is None


def test_a_record_from_another_script_has_another_shape(tmp_path):
    """The shape check can fail: bench_verify's smoke output against bench_forward's record."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        forward = next(b for b in readme_sync.blocks(handle.read())
                       if b.measured and "bench_forward.py" in b.command)
    _smoke(["benchmarks/bench_verify.py", "--out", str(tmp_path)])
    assert "line 1 of the record" in readme_sync.shape_difference(forward, str(tmp_path), REPO)


@pytest.mark.slow
def test_the_scoring_benchmark_writes_its_out(tmp_path):
    _smoke(["benchmarks/bench_scoring.py", "--out", str(tmp_path)])
    text = (tmp_path / "results.md").read_text()
    assert "| pipeline (read Parquet" in text and "| raw (" in text and "Ratio pipeline/raw" in text


def test_an_out_that_is_a_file_is_one_error_line(tmp_path):
    (tmp_path / "f").write_text("x")
    done = subprocess.run([sys.executable, "benchmarks/bench_verify.py", "--smoke", "--out",
                           str(tmp_path / "f")], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: --out {tmp_path / 'f'} exists and is not "
                                                f"a folder"]


def test_results_md_ends_with_when_where_and_under_which_load(tmp_path):
    facts = {"cores": 2, "date": "2026-12-06 14:00 UTC", "load_average": [3.5, 2.0, 1.0]}

    args = argparse.Namespace(smoke=False, out=str(tmp_path), n=3)
    bench_out.write(str(tmp_path), "bench_x.py", args, facts,
                    bench_out.table(["a", "b"], [["x", "1.0"]]), {"t": [1.0]})
    assert (tmp_path / "results.md").read_text() == (
        "| a | b |\n|---|---|\n| x | 1.0 |\n\n"
        "Measured 2026-12-06 14:00 UTC on 2 cores, load average 3.50 (1 min) at the start.\n")
    record = json.loads((tmp_path / "results.json").read_text())
    assert record == {"script": "bench_x.py", "smoke": False, "args": {"n": 3, "smoke": False},
                      "machine": facts, "results": {"t": [1.0]}}
