"""The run manifest: what a curriculum run wrote, how, from what; written last, read by the trainer.

Fields: schema_version, package_version, created_by, config (full) and config_hash, inputs and
policy fingerprints, counts (which reconcile; see `check_counts`), files (path relative to the run
folder, rows, sha256, phase, stage), curriculum (imitation first, then RL stages in order), and
diversity statistics.

Read side: the run folder is a boundary. `load_manifest` refuses a manifest whose paths are not
relative and normalised, and `resolve_in_run` is the one function the trainer and the inspector
use for every path of a run they open (symlinks resolved first; the result must lie inside the
run). Hashes are verified by default. See docs/security.md.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import time
from typing import Any

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.schema import SCHEMA_VERSION

MANIFEST_NAME = "manifest.json"
PHASES = ("difficulty", "imitation", "rl", "dropped", "quarantine", "pending")
_DRIVE = re.compile(r"^[A-Za-z]:")


def config_hash(config: dict) -> str:
    """sha256 of the config's canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def sha256_file(path: str) -> str:
    """Hex sha256 of a file's bytes (local or object store, through data_contracts.fs)."""
    return fs.sha256(str(path))


def check_counts(counts: dict) -> list[str]:
    """The reconciliation identities that must hold; returns the ones that do not."""
    problems = []

    def need(lhs: str, rhs: list[str]) -> None:
        if counts.get(lhs, 0) != sum(counts.get(r, 0) for r in rhs):
            problems.append(f"{lhs}={counts.get(lhs)} != {' + '.join(rhs)} = "
                            f"{sum(counts.get(r, 0) for r in rhs)}")

    need("read", ["quarantined", "scored", "unscored"])  # unscored: --policy none's pending
    need("scored", ["too_hard", "learnable", "too_easy"])
    need("scored", ["imitation", "rl", "dropped"])
    if "requests_sent" in counts:  # rollouts from OpenAI batch results or a live server
        need("requests_sent", ["requests_answered", "requests_failed", "requests_missing"])
    return problems


def manifest_bytes(manifest: dict) -> bytes:
    """The manifest's canonical bytes (sorted keys, indented, a final newline)."""
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_manifest(folder: str, manifest: dict) -> str:
    """Writes manifest.json into `folder` (local or object store) as one step: locally a
    temporary file fsynced and renamed into place, on an object store one upload. Its presence
    means the run is complete."""
    path = fs.join(folder, MANIFEST_NAME)
    fs.write_bytes(path, manifest_bytes(manifest), durable=True)
    return path


def check_relative(relative: object) -> str:
    """Checks that a manifest path is relative to the run and normalised; returns it.

    Accepted: POSIX-style segments joined by "/", none of them empty, "." or ".."; no leading
    "/", no backslash, no NUL, no drive letter ("C:"), no scheme ("gs://"), and
    `posixpath.normpath(relative) == relative` (so "a//b", "./a", "a/" and "a/../b" are refused
    too: a manifest the staging code wrote never holds them).

    Raises:
      ValueError: the path is not of that form (the message says why, in a few words).
    """
    if not isinstance(relative, str) or not relative:
        raise ValueError(f"path {relative!r} is not a non-empty string")
    if "\\" in relative or "\x00" in relative:
        raise ValueError(f"path {relative!r} holds a backslash or NUL")
    if relative.startswith("/") or _DRIVE.match(relative) or "://" in relative:
        raise ValueError(f"path {relative!r} is absolute; manifest paths are relative to the run")
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts) or posixpath.normpath(relative) != relative:
        raise ValueError(f"path {relative!r} is not normalised (empty, '.' or '..' segments)")
    return relative


def resolve_in_run(root: str, relative: str) -> str:
    """The one way the trainer and the inspector turn a run-relative path into one they open.

    `relative` must pass `check_relative`. Locally the joined path is resolved with
    `os.path.realpath` (every symlink followed) and must lie strictly inside the realpath of
    `root`; the resolved path is returned, so what is opened is what was checked. On an object
    store (gs://, s3://) there are no symlinks: the checked relative path is joined to `root`.

    Args:
      root: the run folder (local path or object-store URL).
      relative: a path relative to `root`, as written in a manifest.

    Returns:
      The path to open (local: absolute and symlink-free; remote: `root/relative`).

    Raises:
      InputError: `relative` is not a normalised relative path, or it resolves outside `root`
        (a symlink leaving the run included). One line naming the path.
    """
    try:
        check_relative(relative)
    except ValueError as exc:
        raise InputError(fs.join(root, str(relative)), str(exc)) from None
    if fs.is_remote(root):
        return fs.join(root, relative)
    real_root = os.path.realpath(fs.abspath(root))
    path = os.path.realpath(os.path.join(real_root, relative))
    if path == real_root or os.path.commonpath([real_root, path]) != real_root:
        raise InputError(os.path.join(fs.abspath(root), relative),
                         f"resolves to {path}, outside the run {real_root} (a symlink leaving "
                         f"the run is refused)")
    return path


def real_path(path: str) -> str:
    """A comparable form of a path: realpath locally, the normalised URL remotely."""
    return path.rstrip("/") if fs.is_remote(path) else os.path.realpath(fs.abspath(path))


def is_inside(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or lies under it, once both are resolved (realpath or URL).

    For outputs that must stay out of a run: the trainer's `--out`, the inspector's `--output`
    and `--report` (`is_inside(out, manifest["_root"])` refuses them). A local path and a URL are
    never inside each other.
    """
    path, folder = real_path(path), real_path(folder)
    if fs.is_remote(path) != fs.is_remote(folder):
        return False
    if fs.is_remote(path):
        return path == folder or path.startswith(folder + "/")
    return os.path.commonpath([path, folder]) == folder


def manifest_path(path: str) -> tuple[str, str]:
    """(run root, manifest.json path) for a run folder or its manifest.json, local or remote."""
    if fs.is_remote(path):
        path = path.rstrip("/")
        root = fs.dirname(path) if fs.basename(path) == MANIFEST_NAME else path
    else:
        path = fs.abspath(path)
        root = path if fs.isdir(path) or fs.basename(path) != MANIFEST_NAME else fs.dirname(path)
    return root, fs.join(root, MANIFEST_NAME)


RUN_MARKERS = ((MANIFEST_NAME,), ("summary.json", "metrics.jsonl"), ("claims.md",),
               ("export.json",))  # a build run, a trainer's, an experiment's, an export
_MARKER_WORDS = {MANIFEST_NAME: "a run", "summary.json": "a trainer's output",
                 "claims.md": "an experiment's output", "export.json": "an export"}
NESTED_WALK_LIMIT = 10_000  # folders looked at under an --out before giving up the search


def run_folder_kind(folder: str) -> str | None:
    """What output a folder is ("a run", "a trainer's output", "an experiment's output",
    "an export"), by the files each writes (RUN_MARKERS), or None; local or on a store."""
    def has(name: str) -> bool:
        try:
            return fs.isfile(fs.join(folder, name))
        except (OSError, ValueError):
            return False

    for marker in RUN_MARKERS:
        if all(has(name) for name in marker):
            return _MARKER_WORDS[marker[0]]
    return None


def not_a_run(root: str) -> str:
    """What a folder without a manifest is, and what to do with it (one clause for an error):
    a trainer's, an experiment's or an export's output (`run_folder_kind`) is told apart from a
    run that did not finish."""
    kind = run_folder_kind(root)
    if kind == "a trainer's output":
        trained_on = ""
        try:
            named = json.loads(fs.read_bytes(fs.join(root, "summary.json"))).get("manifest")
            if isinstance(named, str) and named:
                trained_on = named[:-len(MANIFEST_NAME)].rstrip("/") if named.endswith(
                    MANIFEST_NAME) else named
        except (OSError, ValueError, AttributeError, RecursionError):
            pass
        run = trained_on or "RUN"
        return (f"{root} is a trainer's output, not a run; inspect its training beside the run "
                f"it trained on: python -m pipelines.inspect {run} --training {root}")
    if kind == "an experiment's output":
        return (f"{root} is an experiment's output, not a run; read {fs.join(root, 'claims.md')}"
                " (its runs are under runs/)")
    if kind == "an export":
        return f"{root} is an export, not a run; inspect the run it was exported from"
    return "is the run complete?"


def load_manifest(path: str, verify_files: bool = True) -> dict[str, Any]:
    """Loads a manifest (a path to manifest.json or its run folder, local or remote), checks it.

    Every listed path must pass `resolve_in_run` (relative, normalised, inside the run once
    symlinks are resolved) or the whole manifest is refused; manifest.json itself is resolved the
    same way. With `verify_files` (the default) every listed file's sha256 is recomputed
    (streamed through `data_contracts.fs`; about 1.3 s per GB on one core here, see
    docs/security.md).

    Args:
      path: RUN or RUN/manifest.json.
      verify_files: recompute and compare every listed file's sha256.

    Returns:
      The manifest dict, plus `_root` (the run folder: absolute local path or URL) and
      `_verified` ({"files": n, "bytes": b, "seconds": s}, or None when not verified).

    Raises:
      InputError: missing, not a JSON object, another schema version, a listed path that is not
        relative and normalised or leaves the run, a path listed twice, or a listed file that is
        missing (or, with `verify_files`, whose sha256 does not match).
    """
    root, _ = manifest_path(path)
    path = resolve_in_run(root, MANIFEST_NAME)
    if not fs.isfile(path):
        raise InputError(path, "manifest not found: " + not_a_run(root))
    try:
        manifest = json.loads(fs.read_bytes(path).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError(path, "not a manifest (JSON nested too deeply)") from None
    if not isinstance(manifest, dict):
        raise InputError(path, "not a JSON object")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(path, f"schema version {version!r}, this code reads {SCHEMA_VERSION!r}",
                         column="schema_version")
    files = manifest.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise InputError(path, "'files' is not a list of objects", column="files")
    seen: set[str] = set()
    resolved = []
    for index, entry in enumerate(files):
        relative = entry.get("path")
        try:
            check_relative(relative)
        except ValueError as exc:
            raise InputError(path, f"files[{index}]: {exc}; manifest refused",
                             column="files") from None
        if relative in seen:
            raise InputError(path, f"files[{index}]: path {relative!r} listed twice; manifest "
                                   f"refused", column="files")
        seen.add(relative)
        resolved.append(resolve_in_run(root, relative))
        _check_entry(path, index, entry)
    _check_curriculum(path, manifest)
    _check_summaries(path, manifest)
    manifest["_root"] = root
    manifest["_verified"] = None
    if verify_files:
        manifest["_verified"] = verify(manifest, resolved)
    elif not fs.is_remote(root):
        for file in resolved:
            if not fs.isfile(file):
                raise InputError(file, "listed in the manifest but missing")
    return manifest


def unlisted_local_files(folder: str, also_own: tuple = ()) -> list[str]:
    """Files under a local `folder` that neither a run's manifest.json there (at any depth)
    lists nor have a basename in `also_own` (relative paths, sorted).

    For commands that replace a folder holding runs they built (a trainer's `rescored/`, an
    experiment's `runs/` and `train/`): a user's file placed among them is found, not deleted.
    A manifest that does not read lists nothing.
    """
    listed: set[str] = set()
    found: list[str] = []
    for here, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            rel = os.path.relpath(os.path.join(here, name), folder)
            found.append(rel)
            if name == MANIFEST_NAME:
                listed.add(rel)
                try:
                    with open(os.path.join(here, name), encoding="utf-8") as handle:
                        entries = json.load(handle).get("files", [])
                    base = os.path.relpath(here, folder)
                    listed.update(os.path.normpath(os.path.join(base, e["path"]))
                                  for e in entries if isinstance(e.get("path"), str))
                except (OSError, ValueError, AttributeError, TypeError, RecursionError):
                    pass
    return [rel for rel in found if rel not in listed and os.path.basename(rel) not in also_own]


def check_replaceable_folder(out: str, own: tuple, run_folders: tuple, who: str,
                             what: str = "--out", allow_link: bool = False,
                             also_own: tuple = ()) -> None:
    """Refuses a folder a command would replace (or clear) whole unless all it holds is the
    command's own output: replacing it would delete anything else.

    Args:
      out: the folder (local, or a store prefix); a missing one passes.
      own: the top-level names the command writes (files and folders).
      run_folders: those of `own` that hold runs it built; a local one may hold only what a
        manifest there lists or what has a basename in `also_own` (`unlisted_local_files`).
      who: the command, for the message ("a trainer").
      what: the option or folder, for the message ("--out", "the work folder OUT.partial").
      allow_link: whether a local `out` may be a symbolic link (an --out already resolved).
      also_own: basenames a command writes inside its `run_folders` besides listed files.

    Raises:
      InputError: `out` is a link (unless allowed), a file, or holds entries not its own.
    """
    local = not fs.is_remote(out)
    if local and os.path.islink(out) and not allow_link:
        raise InputError(out, f"{what} is a symbolic link; name the folder itself (a run "
                              "writes into and then replaces this folder)")
    if not fs.exists(out):
        return
    if local and not os.path.isdir(out):
        raise InputError(out, f"{what} is a file; give a folder")
    foreign = fs.foreign_entries(out, own)
    for name in run_folders if local else ():
        folder = os.path.join(out, name)
        if os.path.isdir(folder) and not os.path.islink(folder):
            foreign += [os.path.join(name, f) for f in unlisted_local_files(folder, also_own)]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5
                                          else "")
        raise InputError(out, f"{what} holds {shown}, which {who} does not write and replacing "
                              "the folder would delete; choose an empty or new folder")




def is_run_folder(path: str) -> bool:
    """Whether local `path` is a build's run folder (it holds a manifest.json)."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, MANIFEST_NAME))


def check_out_outside_runs(out: str, what: str = "--out", may_be_run: bool = False,
                           own: tuple = ()) -> None:
    """The one rule every command that replaces an output folder applies (build, trainer,
    experiment, export): the folder is neither inside a run's folder nor holds one deeper down,
    since rebuilding the outer run (or replacing the outer folder) would delete the inner.

    A run's folder is any command's output (`run_folder_kind`: a build's manifest.json, a
    trainer's summary.json + metrics.jsonl, an experiment's claims.md, an export's export.json).
    The check walks up from `out` (links resolved) to the root, and down through `out` (links not
    followed; at most `NESTED_WALK_LIMIT` folders). An `out` on an object store is not checked.

    Args:
      out: the output folder (need not exist).
      what: the option, for the message.
      may_be_run: whether `out` may itself be a build's run folder (the build replacing its own
        earlier run); other commands' outputs may not.
      own: top-level folders of `out` that hold the command's own runs (a trainer's `rescored`,
        an experiment's `runs` and `train`); runs there are the command's to replace.

    Raises:
      InputError: one line: `out` is a run folder (unless `may_be_run`), lies inside a run's
        folder, or holds one.
    """
    if fs.is_remote(out):
        return
    here = os.path.realpath(os.path.abspath(out))
    if is_run_folder(here) and not may_be_run:
        raise InputError(out, f"{what} is a run folder (it holds {MANIFEST_NAME}), which this "
                              "command would replace; choose a folder outside every run")
    parent = os.path.dirname(here)
    while parent != os.path.dirname(parent):
        kind = run_folder_kind(parent)
        if kind:
            raise InputError(out, f"{what} is inside the run folder {parent} ({kind}); "
                                  "rebuilding or replacing that would delete it (choose a "
                                  "folder outside every run)")
        parent = os.path.dirname(parent)
    if not os.path.isdir(here):
        return
    seen = 0
    for folder, dirs, _ in os.walk(here):
        if folder == here:
            dirs[:] = [d for d in dirs if d not in own]
        dirs.sort()
        seen += 1
        kind = run_folder_kind(folder) if folder != here else None
        if kind:
            raise InputError(out, f"{what} holds the run folder {folder} ({kind}), which "
                                  f"replacing {what} would delete (choose a folder that holds "
                                  "no run)")
        if seen >= NESTED_WALK_LIMIT:  # a folder this big is refused elsewhere as not the
            return                     # command's own


SIDE_FORMATS = ("candidates", "qrels", "teacher_run", "rollouts")  # inputs[] that are not queries


def input_digest(path: str, fmt: str) -> str:
    """The sha256 a manifest records for one query input (`inputs[].sha256`).

    A single file's own sha256; for a folder (Parquet parts, a saved dataset) or a file with a
    LightGBM `.query` beside it, `config_hash` of the sorted-by-listing (name, sha256) pairs, so
    a change to the side file changes the digest too.

    Args:
      path: the input as given to the build (local or a store URL).
      fmt: its resolved format (`lightgbm` adds PATH.query).
    """
    folder = fs.isdir(path)
    files = fs.list_files(path) if folder else [path]
    if fmt == "lightgbm" or fs.isfile(path + ".query"):
        files.append(path + ".query")
    base = path.rstrip("/").rstrip(os.sep)
    digests = [(f[len(base) + 1:] if folder else fs.basename(f), fs.sha256(f))
               for f in files if fs.isfile(f)]
    return config_hash({"files": digests}) if len(digests) > 1 else digests[0][1]


def _is_count(value) -> bool:
    """A non-negative int (not a bool): a stage number, a row count."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_entry(path: str, index: int, entry: dict) -> None:
    """A `files` entry's phase, stage and sha256 are what a reader relies on (InputError)."""
    where = f"files[{index}]"
    if entry.get("phase") not in PHASES:
        raise InputError(path, f"{where}: phase {entry.get('phase')!r} is not one of "
                               f"{', '.join(PHASES)}; manifest refused", column="files")
    if not isinstance(entry.get("sha256"), str):
        raise InputError(path, f"{where}: no sha256; manifest refused", column="files")
    stage = entry.get("stage")
    if (entry["phase"] == "rl" or stage is not None) and not _is_count(stage):
        raise InputError(path, f"{where}: stage {stage!r} is not a stage number; manifest "
                               "refused", column="files")
    rows = entry.get("rows")
    if rows is not None and not _is_count(rows):
        raise InputError(path, f"{where}: rows {rows!r} is not a count; manifest refused",
                         column="files")


MAX_FEATURE_WIDTH = 10_000_000  # --max-feature-id's largest value


def _check_summaries(path: str, manifest: dict) -> None:
    """`counts` (name -> count) and `feature_space` (width 1..MAX_FEATURE_WIDTH) as readers use
    them: a tampered value is refused here, not a TypeError or a terabyte allocation later."""
    counts = manifest.get("counts", {})
    if not isinstance(counts, dict) or not all(_is_count(v) for v in counts.values()):
        raise InputError(path, "'counts' is not an object of counts; manifest refused",
                         column="counts")
    space = manifest.get("feature_space")
    if space is None:
        return
    width = space.get("width") if isinstance(space, dict) else None
    good_width = width is None or _is_count(width) and 1 <= width <= MAX_FEATURE_WIDTH
    if not isinstance(space, dict) or not good_width or space.get("base") not in (None, 0, 1):
        raise InputError(path, f"'feature_space' {space!r:.80} is not a width in "
                               f"1..{MAX_FEATURE_WIDTH} and a base 0/1; manifest refused",
                         column="feature_space")


def _check_curriculum(path: str, manifest: dict) -> None:
    """The curriculum (when there is one) names listed files of its phase and stage, and every
    RL file is in its stage: an edited curriculum would otherwise train on nothing, silently."""
    if "curriculum" not in manifest:
        return
    parts = manifest["curriculum"]
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise InputError(path, "'curriculum' is not a list of objects; manifest refused",
                         column="curriculum")
    listed = {f["path"]: f for f in manifest.get("files", [])}
    staged: set[str] = set()
    stages: set[int] = set()
    for index, part in enumerate(parts):
        where = f"curriculum[{index}]"
        phase, stage, files = part.get("phase"), part.get("stage"), part.get("files")
        if phase not in ("imitation", "rl") or (phase == "rl" and not _is_count(stage)):
            raise InputError(path, f"{where}: phase {phase!r} stage {stage!r} is not an "
                                   "imitation part or an RL stage; manifest refused",
                             column="curriculum")
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise InputError(path, f"{where}: 'files' is not a list of paths; manifest refused",
                             column="curriculum")
        if phase == "rl":
            if stage in stages:
                raise InputError(path, f"{where}: RL stage {stage} appears twice; manifest "
                                       "refused", column="curriculum")
            stages.add(stage)
        for name in files:
            if name in staged:
                raise InputError(path, f"{where}: {name!r} is named by two curriculum parts; "
                                       "manifest refused", column="curriculum")
            entry = listed.get(name)
            if entry is None or entry["phase"] != phase or (
                    phase == "rl" and entry.get("stage") != stage):
                raise InputError(path, f"{where}: {name!r} is not a listed {phase} file"
                                       + (f" of stage {stage}" if phase == "rl" else "")
                                       + "; manifest refused", column="curriculum")
            staged.add(name)
        if phase == "rl" and "rows" in part:  # the RL budget is planned from these
            counted = [listed[name].get("rows") for name in files]
            if not _is_count(part["rows"]) or (None not in counted
                                               and part["rows"] != sum(counted)):
                raise InputError(path, f"{where}: rows {part['rows']!r} is not the rows of its "
                                       "files; manifest refused", column="curriculum")
    missing = sorted(p for p, f in listed.items() if f["phase"] == "rl" and p not in staged)
    if missing:
        raise InputError(path, f"RL file {missing[0]!r} is in no curriculum stage; manifest "
                               "refused", column="curriculum")


def verify(manifest: dict, paths: list[str] | None = None,
           shown: list[str] | None = None) -> dict[str, float]:
    """Recomputes every listed file's sha256 and compares it with the manifest's.

    Args:
      manifest: a loaded manifest (with `_root`).
      paths: the files to hash, one per `manifest["files"]` entry (default: resolved from
        `_root`); the inspector passes its local cached copies of a remote run.
      shown: the names errors give for `paths` (default: `paths`), e.g. the remote URLs.

    Returns:
      {"files": number verified, "bytes": total bytes hashed, "seconds": wall time}.

    Raises:
      InputError: a file is missing, or its sha256 differs from the manifest's (one line).
    """
    entries = manifest.get("files", [])
    if paths is None:
        paths = [resolve_in_run(manifest["_root"], f["path"]) for f in entries]
    started = time.perf_counter()
    total = 0
    for entry, file, name in zip(entries, paths, shown or paths):
        if not fs.isfile(file):
            raise InputError(name, "listed in the manifest but missing")
        total += fs.size(file)
        if fs.sha256(file) != entry.get("sha256"):
            raise InputError(name, "sha256 does not match the manifest (file changed); use "
                                   "the run as built, or rebuild it")
    return {"files": len(entries), "bytes": total, "seconds": time.perf_counter() - started}


def files_of(manifest: dict, phase: str, stage: int | None = None) -> list[str]:
    """Paths to open of a phase's files (and stage's, for rl), in manifest order.

    Each goes through `resolve_in_run`, so a manifest dict built or edited by hand cannot point
    outside its run either.

    Raises:
      InputError: a listed path leaves the run (see `resolve_in_run`).
    """
    root = manifest["_root"]
    return [resolve_in_run(root, f["path"]) for f in manifest["files"]
            if f["phase"] == phase and (stage is None or f.get("stage") == stage)]
