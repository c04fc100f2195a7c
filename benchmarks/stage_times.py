"""Where a build's wall time goes: runs `pipelines.build_curriculum` in this process with the local
FnApiRunner's bundle execution timed, and prints one JSON object of seconds per part.

The runner executes one fused stage at a time (each stage's bundles spread over the workers), so
the stage times plus the launcher's own time add up to the wall time. Parts:

  start     interpreter and imports up to the first stage (launcher), and planning
  scan      the feature-space scan stage; in a multi-process run, the first stages also pay
            for starting the workers and their imports
  pass1     read, validate, score (the `ReadAndScore` / `ReadForLog` stages)
  between   dedupe, cluster fit and selection, stage assignment, the decisions side input
  pass2     re-read and join, spill pieces (the `ReadAndJoin` stage)
  merge     merge every shard's pieces into its Parquet file
  finish    after the last stage: worker shutdown, manifest, commit

Usage (any build_curriculum arguments):
  python benchmarks/stage_times.py --input data.parquet --out /tmp/run \\
      --direct_running_mode=multi_processing --direct_num_workers=2
"""
from __future__ import annotations

import json
import os
import sys
import time

STARTED = time.perf_counter()
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

PARTS = ("start", "scan", "pass1", "between", "pass2", "merge", "finish")


def part_of(stage_name: str) -> str:
    """The part (see the module docstring) a fused stage's name belongs to."""
    if "ReadAndJoin" in stage_name:
        return "pass2"
    if "ReadAndScore" in stage_name or "ReadForLog" in stage_name:
        return "pass1"
    if "PiecesPerShard" in stage_name and "Merge" in stage_name:
        return "merge"
    if "DatasetSpace" in stage_name or stage_name.startswith("((((Splits-"):
        return "scan"
    return "between"


def main(argv: list[str]) -> dict:
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    stages: list[tuple[float, float, str]] = []
    execute = fn_runner.FnApiRunner._execute_bundle

    def timed(self, context, manager, bundle_input):
        began = time.perf_counter()
        try:
            return execute(self, context, manager, bundle_input)
        finally:
            stages.append((began, time.perf_counter() - began, manager.stage.name))

    fn_runner.FnApiRunner._execute_bundle = timed
    from pipelines.build_curriculum import main as build

    code = build(argv)
    ended = time.perf_counter()
    if code != 0:
        raise SystemExit(code)
    seconds = dict.fromkeys(PARTS, 0.0)
    for _, spent, name in stages:
        seconds[part_of(name)] += spent
    first = min(s[0] for s in stages)
    last = max(s[0] + s[1] for s in stages)
    seconds["start"] = first - STARTED
    seconds["finish"] = ended - last
    seconds["wall"] = ended - STARTED
    return {k: round(v, 2) for k, v in seconds.items()}


if __name__ == "__main__":
    result = main(sys.argv[1:])
    print(json.dumps(result), file=sys.stderr)
