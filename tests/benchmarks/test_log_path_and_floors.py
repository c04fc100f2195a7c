"""bench_log_path.py and bench_floors.py run end to end at their --smoke sizes and write the
results.md / results.json the README quotes (no timing is asserted)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(tmp_path, script: str) -> tuple[str, str, dict]:
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, script, "--smoke", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, (out / "results.md").read_text(), json.loads(
        (out / "results.json").read_text())


@pytest.mark.slow
def test_log_path_benchmark_writes_its_ratios(tmp_path):
    """Three sizes (the log growing at fixed queries, the queries growing with it), build and
    raw script agreeing on every query's successes (the script raises otherwise), each larger
    size's time and RSS ratios with its shape, cores and load in results.md."""
    stdout, md, raw = _run(tmp_path, "benchmarks/bench_log_path.py")
    assert "ratio build/raw" in stdout
    assert "build/raw" in md and "peak RSS" in md and "cores, load average" in md
    assert raw["smoke"] is True
    sizes = raw["results"]["sizes"]
    assert [(s["queries"], s["samples"]) for s in sizes] == [(100, 4), (100, 16), (400, 4)]
    assert "queries fixed, log x4" in md and "queries x4 with the log" in md
    ratios = [line for line in md.splitlines() if line.startswith("- ")]
    assert len(ratios) == 2 and all("peak RSS" in line for line in ratios)  # one per larger
    for size in sizes:
        assert len(size["ratio"]) == size["pairs"] in (1, 2)
        assert size["ratio"] == pytest.approx([b / r for b, r in zip(size["build_s"],
                                                                      size["raw_s"])])
        assert size["peak_rss_bytes"][0] > 0
    assert md == open(tmp_path / "out" / "results.md").read()


@pytest.mark.slow
def test_floors_benchmark_writes_the_build_against_the_floors(tmp_path):
    stdout, md, raw = _run(tmp_path, "benchmarks/bench_floors.py")
    assert "build / sum" in md and "floor: forward" in md and "Build parts" in md
    assert raw["smoke"] is True
    result = raw["results"]["result"]
    assert set(result["floors"]) == {"read", "forward", "sample", "ndcg", "write"}
    total = sum(v[0] for v in result["floors"].values())
    assert result["floor_sum_s"][0] == pytest.approx(total)
    assert result["ratio"][0] == pytest.approx(result["build_s"][0] / total)
    assert "pass1" in result["parts"][0]
