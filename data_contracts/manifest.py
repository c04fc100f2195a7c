"""The run manifest: what a curriculum run wrote, how, from what; written last, read by the trainer.

Fields: schema_version, package_version, created_by, config (full) and config_hash, inputs and
policy fingerprints, counts (which reconcile; see `check_counts`), files (path relative to the run
folder, rows, sha256, phase, stage), curriculum (imitation first, then RL stages in order), and
diversity statistics.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from data_contracts.errors import InputError
from data_contracts.schema import SCHEMA_VERSION

MANIFEST_NAME = "manifest.json"
PHASES = ("difficulty", "imitation", "rl", "dropped", "quarantine")


def config_hash(config: dict) -> str:
    """sha256 of the config's canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_counts(counts: dict) -> list[str]:
    """The reconciliation identities that must hold; returns the ones that do not."""
    problems = []

    def need(lhs: str, rhs: list[str]) -> None:
        if counts.get(lhs, 0) != sum(counts.get(r, 0) for r in rhs):
            problems.append(f"{lhs}={counts.get(lhs)} != {' + '.join(rhs)} = "
                            f"{sum(counts.get(r, 0) for r in rhs)}")

    need("read", ["quarantined", "scored"])
    need("scored", ["too_hard", "learnable", "too_easy"])
    need("scored", ["imitation", "rl", "dropped"])
    return problems


def write_manifest(folder: str, manifest: dict) -> str:
    """Writes manifest.json into `folder` (fsynced: its presence means the run is complete)."""
    path = os.path.join(folder, MANIFEST_NAME)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path


def load_manifest(path: str, verify_files: bool = True) -> dict[str, Any]:
    """Loads a manifest (a path to manifest.json or its run folder) and checks it.

    Raises:
      InputError: missing, not JSON, another schema version, or (with `verify_files`) a listed
        file that is missing or whose sha256 does not match.
    """
    if os.path.isdir(path):
        path = os.path.join(path, MANIFEST_NAME)
    if not os.path.isfile(path):
        raise InputError(path, "manifest not found (is the run complete?)")
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except ValueError as exc:
        raise InputError(path, f"not valid JSON ({exc})") from None
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(path, f"schema version {version!r}, this code reads {SCHEMA_VERSION!r}",
                         column="schema_version")
    if verify_files:
        root = os.path.dirname(os.path.abspath(path))
        for entry in manifest.get("files", []):
            file = os.path.join(root, entry["path"])
            if not os.path.isfile(file):
                raise InputError(file, "listed in the manifest but missing")
            if sha256_file(file) != entry["sha256"]:
                raise InputError(file, "sha256 does not match the manifest (file changed)")
    manifest["_root"] = os.path.dirname(os.path.abspath(path))
    return manifest


def files_of(manifest: dict, phase: str, stage: int | None = None) -> list[str]:
    """Absolute paths of a phase's files (and stage's, for rl), in manifest order."""
    root = manifest["_root"]
    return [os.path.join(root, f["path"]) for f in manifest["files"]
            if f["phase"] == phase and (stage is None or f.get("stage") == stage)]
