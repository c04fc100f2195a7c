"""The feature-space scan of an SVMlight file split by byte range (the pipeline scans splits in
parallel) merges to the scan of the whole file, and the merge does not depend on arrival order."""
from __future__ import annotations

import random

import pytest

from data_contracts.readers import plan_splits
from data_contracts.readers.space import SpaceStats
from data_contracts.readers.svmlight_scan import scan_svmlight
from pipelines.space import MergeSpaceStats


def _write(path, seed: int) -> None:
    rng = random.Random(seed)
    lines = ["# Column indices are zero-based", ""]
    for q in range(40):
        for _ in range(rng.randint(1, 6)):
            ids = sorted(rng.sample(range(10, 60), rng.randint(1, 8)))  # a cut "15:" reads 5
            if rng.random() < 0.05:
                ids.append(500)  # the rare large id, somewhere in the middle of the file
            pairs = " ".join(f"{i}:{rng.random():.3f}" for i in ids)
            lines.append(f"{rng.randint(0, 4)} qid:{q} {pairs} # doc {rng.random():.2f}")
        if rng.random() < 0.1:
            lines.append("# a comment between queries")
    path.write_text("\n".join(lines) + "\n")


def _same(a: SpaceStats, b: SpaceStats) -> bool:
    return (a.low, a.high, a.declared_base, a.widths, a.names) == \
        (b.low, b.high, b.declared_base, b.widths, b.names)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("target", [7, 64, 301, 2000])
def test_byte_range_scans_merge_to_the_whole_file_scan(tmp_path, seed, target):
    path = tmp_path / "rank.txt"
    _write(path, seed)
    whole = scan_svmlight(str(path), max_feature_id=1000)
    plans = plan_splits(str(path), "svmlight", target_bytes=target)
    assert len(plans) > 1 and all("byte_range" in p for p in plans)
    merged = SpaceStats()
    for plan in plans:
        merged = merged.merge(scan_svmlight(str(path), 1000, byte_range=plan["byte_range"]))
    assert _same(merged, whole)
    assert whole.declared_base == 0 and whole.low >= 10 and whole.high == 500


def test_the_space_merge_follows_input_order_not_arrival_order():
    first, second = SpaceStats(), SpaceStats()
    first.add_ids(0, 9, "a.txt")
    second.add_ids(0, 9, "b.txt")  # ties: the first input by position names the file
    second.widths[5] = "b.txt"
    first.widths[5] = "a.txt"
    combine = MergeSpaceStats()
    items = [((1, 0, 0), second), ((0, 0, 0), first), ((0, 0, 100), None)]
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        acc = combine.create_accumulator()
        parts = [combine.add_input(combine.create_accumulator(), items[i]) for i in order]
        acc = combine.merge_accumulators([acc, *parts])
        out = combine.extract_output(acc)
        assert (out.low_file, out.high_file, out.widths[5]) == ("a.txt", "a.txt", "a.txt")


_TOKENS = ["1", "0", "qid:3", "qid:12", "7:0.5", "12:1", "0:2", "123456789012345:1", "a12:3",
           "12a:3", "3:", ":4", "9:9:9", "#", "#5:1", "#docid = 42:x", "\t8:1", "\r", "\x1c6:1",
           "\x0b11:2", "999:1", "-4:1", "4.5:1", "", " ", "#dôc 1:1", "\u00a05:1"]


def _adversarial(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randint(1, 120)):
        kind = rng.random()
        if kind < 0.05:
            lines.append(rng.choice(["# Column indices are one-based", "  #column indices are "
                                     "ZERO-based", "# column indices are zero-based!"]))
        elif kind < 0.1:
            lines.append("")
        else:
            lines.append(rng.choice(["", " ", "\t"]).join(
                rng.choice(_TOKENS) for _ in range(rng.randint(0, 9))))
    bom = "\ufeff" if rng.random() < 0.2 else ""
    return (bom + "\n".join(lines) + rng.choice(["", "\n", "\r\n"])).encode()


@pytest.mark.parametrize("block", [5, 64, 4 << 20])
@pytest.mark.parametrize("seed", range(30))
def test_the_vectorized_scan_finds_what_the_per_line_rule_finds(tmp_path, seed, block,
                                                                monkeypatch):
    """`scan_svmlight` (numpy over ASCII blocks) against `_FID` applied line by line to the
    decoded text (the rule the reader uses), whole and by byte range, on adversarial lines."""
    from data_contracts.readers import svmlight_scan

    monkeypatch.setattr(svmlight_scan, "_SCAN_BLOCK", block)
    rng = random.Random(seed)
    data = _adversarial(rng)
    path = tmp_path / "rank.txt"
    path.write_bytes(data)
    for limit in (1000, 10):
        reference = SpaceStats()
        low, high = svmlight_scan._line_ids(data, 0, limit, reference)
        whole = scan_svmlight(str(path), limit)
        assert (whole.low, whole.high, whole.declared_base) == (low, high,
                                                                reference.declared_base)
        cut = sorted(rng.sample(range(1, len(data) + 1), min(3, len(data))))
        bounds = [0, *cut, len(data)]
        merged = SpaceStats()
        for a, b in zip(bounds[:-1], bounds[1:]):
            if a < b:
                merged = merged.merge(scan_svmlight(str(path), limit, byte_range=(a, b)))
        assert (merged.low, merged.high, merged.declared_base) == (low, high,
                                                                   reference.declared_base)
