"""Benchmark: the worst time per KB of the exported reward function (verl's `compute_score`:
parse + score) over adversarial completion families, against a plain linear scan of the same
text (`str.count`) and against one normal 20-candidate answer.

Each family is built at several sizes; the time per KB staying flat as the size grows is what
"linear" means here (a quadratic family's time per KB grows with its size). Times are the fastest
of `--repeats` runs in this process (timeit's rule: other jobs on a shared machine only ever add
time, and a median of a few runs under a varying load makes sizes measured minutes apart
incomparable); the load is printed and recorded.

Usage:
  python benchmarks/bench_reward_worst.py                       # sizes 16, 128, 1024 KB
  python benchmarks/bench_reward_worst.py --sizes 4 32 --repeats 3
  python benchmarks/bench_reward_worst.py --out runs/bench/reward-worst   # + results.md/.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import bench_out  # noqa: E402
from exports.rewards import compute_score, ground_truth_record  # noqa: E402

N = 20
NORMAL = "<think>[3] and [1] answer it; [2] is close.</think>\n<answer>" + " > ".join(
    f"[{k}]" for k in [3, 1, 2] + list(range(4, N + 1))) + "</answer>"
UNIT = 1024


def _fill(piece: str, size: int) -> str:
    return piece * max(1, size // len(piece))


FAMILIES = {
    "answer_tag_repeated": lambda s: _fill("<answer>", s),
    "answer_tags_then_close": lambda s: _fill("<answer>", s - 9) + "</answer>",
    "think_never_closed": lambda s: "<think>" + _fill("[1] > [2] ", s),
    "nested_brackets": lambda s: "[" * (s // 2) + "1" + "]" * (s // 2),
    "repeated_id": lambda s: _fill("[1] > ", s),
    "ids_5000_digits": lambda s: _fill("[" + "7" * 5000 + "] > ", s),
    "bare_5000_digits": lambda s: "<answer>" + _fill("9" * 5000 + ", ", s) + "</answer>",
    "unicode_digits": lambda s: _fill("[٣] > [١] > ", s),
    "binary_junk": lambda s: _fill(bytes(range(256)).decode("latin-1"), s),
    "open_list": lambda s: "[" + _fill("1, ", s),
    "closed_list": lambda s: "<answer>[" + _fill("2, ", s) + "1]</answer>",
    "spaces_then_junk": lambda s: "1" + " " * s + "x",
    "normal_answers": lambda s: _fill(NORMAL, s),
}


def _fastest(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 128, 1024],
                        help="completion sizes in KB")
    parser.add_argument("--repeats", type=int, default=5)
    bench_out.add_arguments(parser)
    args = parser.parse_args(argv)
    old_tags = 5000  # the answer-block regex of the old parser, on `<answer>` x this
    if args.smoke:
        args.sizes, args.repeats, old_tags = [1, 2, 4], 1, 500
    facts = bench_out.machine()
    truth = json.dumps(ground_truth_record(
        [f"d{j}" for j in range(N)], [2.0, 0.0, 3.0, 1.0] + [0.0] * (N - 4), None,
        "ndcg@10+0.2*recall@10+0.1*rbo>=0.8,ideal=qrels", "permutation", "repair", "value",
        [3.0, 3.0, 2.0, 1.0]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"compute_score worst case; {cores} cores visible, load {load:.2f}; "
          f"fastest of {args.repeats}")
    normal = _fastest(lambda: compute_score("s", NORMAL, truth), max(args.repeats, 50))
    print(f"one normal {N}-candidate answer ({len(NORMAL)} chars): {normal * 1e6:.0f} us")
    print(f"{'family':24s} {'KB':>6s} {'ms':>9s} {'us/KB':>9s} {'x scan':>8s} {'x normal':>9s}")
    worst = None
    growth, rows, raw = {}, [], {}
    for name, make in FAMILIES.items():
        per_kb, took_ms = [], []
        for size_kb in args.sizes:
            text = make(size_kb * UNIT)
            kb = len(text) / UNIT
            took = _fastest(lambda: compute_score("s", text, truth), args.repeats)
            scan = _fastest(lambda: text.count("["), args.repeats)
            value = compute_score("s", text, truth)
            assert isinstance(value, float) and 0.0 <= value <= 1.3, (name, value)
            per_kb.append(took / kb * 1e6)
            took_ms.append(took * 1e3)
            print(f"{name:24s} {kb:6.0f} {took * 1e3:9.2f} {per_kb[-1]:9.2f} "
                  f"{took / max(scan, 1e-9):8.1f} {took / normal:9.1f}")
            if worst is None or per_kb[-1] > worst[2]:
                worst = (name, kb, per_kb[-1], took / max(scan, 1e-9))
        growth[name] = per_kb[-1] / max(per_kb[0], 1e-9)
        rows.append([f"`{name}`", *(f"{v:.2f}" for v in per_kb), f"{took_ms[-1]:.2f}",
                     f"{growth[name]:.2f}x"])
        raw[name] = {"kb": args.sizes, "ms": took_ms, "us_per_kb": per_kb}
    print(f"worst: {worst[0]} at {worst[1]:.0f} KB, {worst[2]:.2f} us/KB "
          f"({worst[3]:.0f}x a str.count scan of the same text)")
    name, factor = max(growth.items(), key=lambda item: item[1])
    print(f"largest per-KB growth from {args.sizes[0]} to {args.sizes[-1]} KB: {name} "
          f"{factor:.2f}x (1x is linear; a quadratic family grows with the size ratio "
          f"{args.sizes[-1] / args.sizes[0]:.0f}x)")
    old = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
    text = "<answer>" * old_tags
    took = _fastest(lambda: old.findall(text), 1)
    now = _fastest(lambda: compute_score("s", text, truth), 3)
    print(f"for reference, the answer-block regex this replaced on <answer> x{old_tags}: "
          f"{took * 1e3:.0f} ms (now {now * 1e3:.2f} ms)")
    sizes = [f"us/KB at {kb} KB" for kb in args.sizes]
    bench_out.write(args.out, "bench_reward_worst.py", args, facts, [
        f"`compute_score` (parse + score against a {N}-candidate ground truth) per adversarial "
        f"completion family, fastest of {args.repeats} runs:",
        "",
        *bench_out.table(["family", *sizes, f"ms at {args.sizes[-1]} KB",
                          f"growth of us/KB, {args.sizes[-1] // args.sizes[0]}x the size"],
                         rows),
        "",
        f"One normal {N}-candidate answer: {normal * 1e3:.2f} ms. Worst time per KB in the table: "
        f"{worst[2]:.2f} us/KB. Largest growth: {factor:.2f}x (linear is 1x; a quadratic "
        f"family would grow {args.sizes[-1] // args.sizes[0]}x). The answer-block "
        f"regex this parser replaced took {took * 1e3:.0f} ms on `<answer>` x {old_tags} "
        f"(now {now * 1e3:.2f} ms).",
    ], {"families": raw, "normal_seconds": normal, "old_regex_seconds": took,
        "old_regex_tags": old_tags, "now_seconds": now})
    return 0


if __name__ == "__main__":
    sys.exit(main())
