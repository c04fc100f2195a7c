"""The worst-case reward benchmark runs end to end on small sizes (no timing is asserted)."""
from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_worst_case_benchmark_reports_every_family_and_the_worst():
    done = subprocess.run([sys.executable, "benchmarks/bench_reward_worst.py", "--sizes", "2", "8",
                           "--repeats", "1"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "worst:" in out and "us/KB" in out and "cores visible" in out
    assert "largest per-KB growth" in out
    for family in ("answer_tag_repeated", "ids_5000_digits", "unicode_digits", "binary_junk",
                   "nested_brackets", "think_never_closed", "repeated_id"):
        assert family in out
