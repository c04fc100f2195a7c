"""Atomic, whole export folders: built in a temporary folder beside `--out`, then swapped in.

A kill at any moment leaves the earlier export or the new one, never a mix: the new folder is
made whole under a hidden sibling name and exchanged with the old one in one `renameat2
(RENAME_EXCHANGE)` call where Linux offers it (else two renames, and an interrupted pair is
repaired by the next export: the earlier folder is put back). A re-export replaces the folder
wholly: no file of an earlier export stays. `--out` may hold only what an export writes.

On an object store (gs://, s3://) the files are written locally, the old objects deleted and the
new ones uploaded with the record (export.json / requests.json) last: a folder with its record
is a finished one.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import tempfile
from typing import Callable

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.manifest import check_out_outside_runs, check_replaceable_folder, is_inside

EXPORT_FILES = ("export.json", "imitation.parquet", "sft.parquet", "val.parquet", "rl",
                "reward_fn.py", "requests.jsonl", "requests.json")
_RENAME_EXCHANGE = 2


def _exchange(a: str, b: str) -> bool:
    """Swaps two paths atomically (Linux renameat2); False where the call is not available."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if result != 0:
        errno = ctypes.get_errno()
        if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system cannot
            return False
        raise OSError(errno, os.strerror(errno), a)
    return True


def _sibling(out: str, what: str) -> str:
    parent, name = os.path.split(out.rstrip(os.sep))
    return os.path.join(parent, f".{name}.{what}")


def check_out(out: str, run_root: str) -> None:
    """Refuses an `--out` that is not a place for an export.

    Raises:
      InputError (one line): empty, root or the current folder; a regular file; a folder holding
        anything an export does not write; inside the run, or holding the run.
    """
    fs.check_replaceable_location(out)
    if is_inside(out, run_root):
        raise InputError(out, "--out is inside the run folder (exports never go inside a run)")
    if is_inside(run_root, out):
        raise InputError(out, f"--out holds the run folder {run_root}, which replacing it would "
                              "delete")
    check_out_outside_runs(out)  # the rule build, trainer and experiment apply too
    if not fs.is_remote(out):
        _repair(os.path.abspath(out))
    check_replaceable_folder(out, EXPORT_FILES, (), "an export")


def _repair(out: str) -> None:
    """Puts back an earlier export that an interrupted two-rename swap left aside, and deletes
    the temporary folders of killed exports (their process is gone)."""
    old = _sibling(out, "old")
    if os.path.isdir(old) and not os.path.lexists(out):
        os.rename(old, out)
    parent, name = os.path.split(out)
    prefix = f".{name}.partial-"
    for entry in os.listdir(parent) if os.path.isdir(parent) else []:
        pid = entry[len(prefix):].split("-", 1)[0]
        if entry.startswith(prefix) and pid.isdigit() and not _alive(int(pid)):
            fs.delete_tree(os.path.join(parent, entry))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish(out: str, write: Callable[[str], None], record_name: str) -> None:
    """Runs `write(folder)` into a fresh temporary folder and swaps it in as `out`.

    Args:
      out: the export folder (checked with `check_out` first).
      write: writes every file of the export into the folder it is given.
      record_name: the file that marks a finished export (uploaded last to a store).
    """
    if fs.is_remote(out):
        work = tempfile.mkdtemp(prefix="export-")
        try:
            write(work)
            files = sorted(os.path.relpath(os.path.join(d, n), work)
                           for d, _, names in os.walk(work) for n in names)
            files.sort(key=lambda rel: rel == record_name)
            old = fs.list_files(out) if fs.exists(out) else []
            fs.delete(old)
            for rel in files:
                fs.copy(os.path.join(work, rel), fs.join(out, *rel.split(os.sep)))
        finally:
            fs.delete_tree(work)
        return
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.partial-{os.getpid()}-",
                            dir=parent)
    try:
        write(work)
        os.chmod(work, 0o777 & ~_umask())
        check_replaceable_folder(out, EXPORT_FILES, (), "an export")  # again, just before
        if not os.path.exists(out):
            os.rename(work, out)
            return
        if _exchange(work, out):
            fs.delete_tree(work)  # now the earlier export
            return
        old = _sibling(out, "old")
        fs.delete_tree(old)
        os.rename(out, old)
        os.rename(work, out)
        fs.delete_tree(old)
    finally:
        if os.path.isdir(work):
            fs.delete_tree(work)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
