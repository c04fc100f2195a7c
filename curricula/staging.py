"""Deterministic Parquet shards, a staging folder, and publish-by-rename.

Same rows in, same bytes out: rows are sorted within a shard by a stable key, the writer's
settings are fixed, and file names come from (phase, stage, shard) alone. A run writes into a
hidden staging folder beside the output; `publish` renames it into place after the manifest is
written, so the output folder always holds one complete run (or nothing), never a mix.
"""
from __future__ import annotations

import os
import shutil
import uuid

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data_contracts.errors import InputError
from data_contracts.manifest import MANIFEST_NAME, sha256_file

SORT_KEYS = {
    "difficulty": [("query_id", "ascending")],
    "imitation": [("query_id", "ascending")],
    "rl": [("order_key", "ascending"), ("query_id", "ascending"), ("replay", "ascending")],
    "dropped": [("query_id", "ascending")],
    "quarantine": [("step", "ascending"), ("location", "ascending"), ("reason", "ascending"),
                   ("query_id", "ascending"), ("raw", "ascending")],
}


def shard_path(phase: str, stage: int | None, shard: int) -> str:
    """Relative path of a shard: `rl/stage-01/part-00003.parquet`, `imitation/part-00000.parquet`."""
    folder = phase if stage is None else os.path.join(phase, f"stage-{stage:02d}")
    return os.path.join(folder, f"part-{shard:05d}.parquet")


def write_shard(tables: list[pa.Table], phase: str, stage: int | None, shard: int, root: str,
                schema: pa.Schema) -> dict:
    """Concatenates, sorts and writes one shard; returns its manifest entry."""
    table = pa.concat_tables([t.cast(schema) for t in tables]) if tables else schema.empty_table()
    table = table.take(pc.sort_indices(table, sort_keys=SORT_KEYS[phase]))
    relative = shard_path(phase, stage, shard)
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path, compression="zstd", compression_level=3, row_group_size=4096,
                   write_statistics=True, use_dictionary=True)
    return {"path": relative, "rows": table.num_rows, "sha256": sha256_file(path),
            "phase": phase, "stage": stage, "shard": shard}


def check_output_path(out: str) -> None:
    """Fails with one line when the output path cannot be a run folder.

    A run replaces the folder whole, so an existing folder must be an earlier run (it holds a
    manifest.json) or empty: a folder of other files is never deleted by a publish.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(out, "output path is a file (expected a folder, or a path to create)")
    if os.path.isdir(out) and os.listdir(out) and \
            not os.path.isfile(os.path.join(out, MANIFEST_NAME)):
        raise InputError(out, f"output folder exists and is not a run folder (no {MANIFEST_NAME})"
                              "; a run replaces its folder whole, so name a new or empty folder")
    parent = os.path.dirname(os.path.abspath(out))
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise InputError(parent, "parent of the output path is a file")


_HELD: dict[str, int] = {}  # staging folder -> open descriptor holding its lock


def _try_lock(path: str) -> int | None:
    """An exclusive advisory lock on a folder (None: another live process holds it).

    The kernel drops the lock when its holder dies, SIGKILL included, so a locked staging folder
    belongs to a run still in progress and an unlocked one to a run that was killed.
    """
    if fcntl is None:  # no flock (Windows): every staging folder counts as left behind
        return -1
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _release(staging: str) -> None:
    fd = _HELD.pop(os.path.abspath(staging), None)
    if fd is not None and fd >= 0:
        os.close(fd)


def new_staging(out: str) -> str:
    """A fresh hidden staging folder beside `out` (same filesystem, so rename is atomic).

    The folder stays locked by this process until `publish` or `discard`, so `clean_stale` of
    another run of the same `out` never removes it while this run writes into it.
    """
    check_output_path(out)
    parent, name = os.path.split(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{name}.staging-{uuid.uuid4().hex[:12]}")
    os.makedirs(staging)
    _HELD[staging] = _try_lock(staging)
    return staging


def discard(staging: str) -> None:
    """Removes a staging folder that will not be published (a failed run) and drops its lock."""
    shutil.rmtree(staging, ignore_errors=True)
    _release(staging)


def publish(staging: str, out: str) -> None:
    """Moves a complete staging folder into place; an earlier run there is replaced whole.

    The old run is first renamed aside, then the new one renamed in, then the old one removed: at
    no moment does `out` hold a mix of runs.
    """
    out = os.path.abspath(out)
    old = None
    if os.path.exists(out):
        old = f"{os.path.join(os.path.dirname(out), '.' + os.path.basename(out))}.old-" \
              f"{uuid.uuid4().hex[:12]}"
        os.rename(out, old)
    os.rename(staging, out)
    _release(staging)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def clean_stale(out: str) -> None:
    """Tidies what killed runs of `out` left: staging folders are removed; a run renamed aside by
    a publish that was killed before renaming the new one in is put back when `out` is missing.
    A staging folder still locked by a live run (see `new_staging`) is left alone.
    """
    parent, name = os.path.split(os.path.abspath(out))
    if not os.path.isdir(parent):
        return
    for entry in sorted(os.listdir(parent)):
        path = os.path.join(parent, entry)
        if entry.startswith(f".{name}.old-") and not os.path.exists(out):
            os.rename(path, out)
        elif entry.startswith(f".{name}.staging-"):
            fd = _try_lock(path)
            if fd is None:
                continue  # a run in progress
            shutil.rmtree(path, ignore_errors=True)
            if fd >= 0:
                os.close(fd)
        elif entry.startswith(f".{name}.old-"):
            shutil.rmtree(path, ignore_errors=True)
