"""Checkpoints and logs: atomic checkpoints (model, optimizer, RNG states, position, best-so-far),
loading one to resume, the metrics.jsonl log and the progress lines on stderr.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict

import numpy as np
import torch

from data_contracts.errors import InputError


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": _numpy_state()}


def _numpy_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))


def save_checkpoint(path: str, model, optimizer, position: dict, extra: dict) -> None:
    """Atomically writes model, optimizer, RNG states and curriculum position."""
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "model_config": asdict(model.config),
                "optimizer": optimizer.state_dict(), "rng": rng_state(),
                "position": position, **extra}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str, model) -> dict:
    """Loads a checkpoint (safely: tensors and plain values only) and puts its weights in `model`.

    Returns:
      The checkpoint's dict (optimizer, rng, position, summary, best_* and elapsed entries).

    Raises:
      InputError: a corrupt or unsafe checkpoint, or one of another model.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
    except Exception as exc:  # corrupt, unsafe (refused by weights_only) or another model
        first = (str(exc).splitlines() or [""])[0][:200]
        raise InputError(path, f"cannot resume from this checkpoint "
                               f"({type(exc).__name__}: {first})") from None
    return state


def cut_metrics(path: str, size: int | None, step: int) -> int:
    """Cuts a killed run's metrics.jsonl back to its checkpoint, so a resumed run writes each
    step's rows once: to `size` bytes (the log's length when the checkpoint was saved), or, for a
    checkpoint that did not record it, to the rows whose `step` is at most `step` (and drops a
    torn last line).

    Returns:
      The number of rows dropped.
    """
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as handle:
        data = handle.read()
    if size is not None and 0 <= size <= len(data):
        kept = data[:size]
    else:
        kept = b"".join(line for line in data.splitlines(keepends=True)
                        if line.endswith(b"\n") and _step_of(line) <= step)
    dropped = len(data.splitlines()) - len(kept.splitlines())
    with open(path + ".tmp", "wb") as handle:
        handle.write(kept)
    os.replace(path + ".tmp", path)
    return dropped


def _step_of(line: bytes) -> float:
    try:
        return float(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return float("inf")  # a torn or foreign line: dropped


class MetricsLog:
    """Per-step metrics as JSON lines (DuckDB reads them with read_json_auto)."""

    def __init__(self, path: str, append: bool):
        self.handle = open(path, "a" if append else "w", encoding="utf-8")

    def size(self) -> int:
        """Bytes written so far (recorded in each checkpoint: where a resumed run cuts back to)."""
        self.handle.flush()
        return self.handle.tell()

    def write(self, **row) -> None:
        self.handle.write(json.dumps({k: v for k, v in row.items() if v is not None}) + "\n")
        self.handle.flush()


class Progress:
    """A progress line on stderr every `seconds` (also when stderr is not a terminal)."""

    def __init__(self, label: str, total: int, seconds: float):
        self.label, self.total, self.seconds = label, total, seconds
        self.last = time.monotonic()

    def update(self, step: int, **info) -> None:
        now = time.monotonic()
        if now - self.last >= self.seconds or step == self.total:
            self.last = now
            extra = ", ".join(f"{k} {v:.4f}" for k, v in info.items() if v is not None)
            print(f"{self.label}: step {step}/{self.total}" + (f", {extra}" if extra else ""),
                  file=sys.stderr, flush=True)
