"""Helpers shared by the pipeline tests: reading a run's phases, hashing its files."""
from __future__ import annotations

import hashlib
import os

import pyarrow as pa
import pyarrow.parquet as pq

from data_contracts.manifest import MANIFEST_NAME, files_of, load_manifest
from data_contracts.schema import (DIFFICULTY_SCHEMA, DROPPED_SCHEMA, IMITATION_SCHEMA,
                                   QUARANTINE_SCHEMA, RL_SCHEMA)

SCHEMAS = {"difficulty": DIFFICULTY_SCHEMA, "imitation": IMITATION_SCHEMA, "rl": RL_SCHEMA,
           "dropped": DROPPED_SCHEMA, "quarantine": QUARANTINE_SCHEMA}


def phase_table(run_dir: str, phase: str) -> pa.Table:
    """A phase's rows across its shards (the manifest's files, sha256-verified)."""
    manifest = load_manifest(run_dir)
    paths = files_of(manifest, phase)
    if not paths:
        return SCHEMAS[phase].empty_table()
    return pa.concat_tables([pq.read_table(p) for p in paths])


def tree_digest(root: str) -> dict[str, str]:
    """Relative path -> sha256 of every file under `root` (the run's bytes, manifest included)."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return dict(sorted(out.items()))


def manifest_bytes(run_dir: str) -> bytes:
    with open(os.path.join(run_dir, MANIFEST_NAME), "rb") as handle:
        return handle.read()
