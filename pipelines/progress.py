"""What a running build tells: Beam counters, split-done markers and the launcher's progress line.

Workers count what they read and decide (`count`, under `METRICS_NAMESPACE`) and mark each split
done per pass (`mark_done`: an empty object under the run's `PROGRESS_FOLDER`). The launcher
prints a line from those markers every few seconds while the pipeline runs (`Progress`) and
totals the counters once it has finished (`metrics_of`).
"""
from __future__ import annotations

import sys
import threading
import time

from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

from data_contracts import fs

METRICS_NAMESPACE = "build_curriculum"
PROGRESS_FOLDER = "_progress"
PROGRESS_SECONDS = 5.0


def count(name: str, value: int = 1) -> None:
    """Adds `value` to the Beam counter `name` of this job (0 adds nothing)."""
    if value:
        Metrics.counter(METRICS_NAMESPACE, name).inc(int(value))


def mark_done(root: str, name: str) -> None:
    """Marks one split done (the launcher counts these markers for its progress line)."""
    fs.write_bytes(fs.join(root, PROGRESS_FOLDER, name), b"")


class Progress:
    """A line on stderr every few seconds while the pipeline runs (also when not a terminal):
    splits done per pass, counted from the markers workers write into the run's location."""

    def __init__(self, root: str, splits: int, every: float | None = None,
                 enabled: bool = True):
        self.root, self.splits, self.enabled = root, splits, enabled
        self.every = every or PROGRESS_SECONDS
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def __enter__(self):
        if self.enabled:
            self.thread.start()
        return self

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            try:
                names = [fs.basename(f) for f in
                         fs.list_files(fs.join(self.root, PROGRESS_FOLDER))]
            except Exception:  # a listing that fails only skips a line
                continue
            one = sum(n.startswith("p1-") for n in names)
            two = sum(n.startswith("p2-") for n in names)
            print(f"progress: {time.monotonic() - self.started:.0f}s, pass 1 (read, score) "
                  f"{one}/{self.splits} splits, pass 2 (write) {two}/{self.splits} splits",
                  file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.enabled:
            self.thread.join(timeout=self.every + 1)


def metrics_of(result) -> dict:
    """The job's counters by name (committed, else attempted), or {} where the runner has none."""
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    except Exception:  # some runners do not report metrics
        return {}
    out: dict[str, int] = {}
    for counter in counters.get("counters", []):
        out[counter.key.metric.name] = out.get(counter.key.metric.name, 0) + int(
            counter.committed if counter.committed is not None else counter.attempted)
    return dict(sorted(out.items()))
