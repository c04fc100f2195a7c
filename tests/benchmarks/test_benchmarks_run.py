"""The benchmark scripts still run end to end on a small size (no timing is asserted here)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_adaptive_benchmark_reports_rollouts_and_agreement():
    out = _run("benchmarks/bench_adaptive.py", "--queries", "500")
    assert "fewer" in out and "same band" in out and "wrong among decided" in out


@pytest.mark.slow
def test_scoring_benchmark_reports_the_ratio():
    out = _run("benchmarks/bench_scoring.py", "--queries", "200", "--docs", "20",
               "--features", "16", "--repeats", "1")
    assert "ratio" in out.lower()


@pytest.mark.slow
def test_build_benchmark_reports_its_three_ratios():
    out = _run("benchmarks/bench_build.py", "--queries", "120", "--docs", "12", "--features",
               "8", "--scale", "2", "--repeat", "1")
    assert "ratio build/raw" in out and "peak RSS" in out and "speed-up" in out
    assert "where the time goes" in out and "pass1" in out and "merge" in out


def test_stage_times_split_the_whole_wall_time(tmp_path):
    """The parts a build's time is split into cover its wall time (nothing unaccounted)."""
    import json

    done = subprocess.run([sys.executable, "benchmarks/stage_times.py", "--synthetic-queries", "60",
                           "--out", str(tmp_path / "run")], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    parts = json.loads(done.stderr.strip().splitlines()[-1])
    names = ("start", "scan", "pass1", "between", "pass2", "merge", "finish")
    assert set(names) <= set(parts)
    assert parts["pass1"] > 0 and parts["pass2"] > 0 and parts["merge"] > 0
    assert abs(sum(parts[n] for n in names) - parts["wall"]) <= 0.1 * parts["wall"] + 0.1


def test_scan_benchmark_reports_the_ratio():
    out = _run("benchmarks/bench_scan.py", "--queries", "20", "--docs", "10", "--repeats", "1")
    assert "vectorized" in out and "per-line rule" in out and "ratio" in out


def test_forward_benchmark_reports_the_ratio():
    out = _run("benchmarks/bench_forward.py", "--queries", "40", "--docs", "30", "--features",
               "20", "--repeat", "1")
    assert "one call" in out and "chunked (" in out and out.strip().endswith("x")


def test_planned_budget_benchmark_writes_its_table(tmp_path):
    out = _run("benchmarks/bench_planned.py", "--smoke", "--out", str(tmp_path))
    markdown = (tmp_path / "results.md").read_text()
    assert markdown.splitlines()[0] in out
    for method in ("fixed-16", "rounds-16", "planned-4", "planned-4+prior"):
        assert f"| {method} |" in markdown
    rows = json.loads((tmp_path / "results.json").read_text())["results"]["rows"]
    assert all(r["method"] != "rounds-16" or r["share"] == 1.0 for r in rows)
    assert all(0.0 <= r["agreement"] <= 1.0 and r["rollouts"] > 0 for r in rows)
