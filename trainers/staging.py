"""Where a training run writes: the --out checks, and the work folder the run is built in.

A local OUT is built in OUT.partial and renamed to OUT at the end: a failed run leaves nothing; a
killed one leaves OUT.partial, which `--resume` continues from. An OUT on a store (gs://, s3://)
is trained in a local temporary folder and uploaded at the end, summary.json last.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Callable, Iterator

from curricula.staging import _try_lock as try_lock
from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.manifest import check_replaceable_folder

PARTIAL_SUFFIX = ".partial"
TRAINER_FILES = ("summary.json", "metrics.jsonl", "final.pt", "bc.pt", "checkpoint.pt",
                 "rescored")  # everything a trainer writes at the top of its folder


def check_out(given: str, manifest_path: str, resume: bool) -> str:
    """The resolved --out, refused when replacing it could delete the run or a user's files.

    Args:
      given: --out, normalized (`fs.normalize`).
      manifest_path: the curriculum's manifest.json.
      resume: --resume (refused with a store --out).

    Raises:
      InputError: --out inside (or holding) the run folder, a run folder itself, a folder of
        files a trainer does not write, or a store --out with --resume.
    """
    run_dir, out = _resolved(fs.dirname(manifest_path)), _resolved(given)
    if out == run_dir or out.startswith(run_dir.rstrip("/") + "/"):
        raise InputError(given, f"--out is inside the run folder {run_dir}; a rebuild would "
                                "delete it (choose a folder outside the run)")
    if run_dir.startswith(out.rstrip("/") + "/"):
        raise InputError(given, f"--out holds the run folder {run_dir}, which replacing it "
                                "would delete (choose a folder outside the run)")
    if fs.exists(fs.join(out, "manifest.json")):
        raise InputError(given, "--out holds a run folder (manifest.json); choose another")
    check_replaceable(out)
    if fs.is_remote(out) and resume:
        raise InputError(given, "--resume needs a local --out (a run training to a store "
                                "works in a temporary local folder that ends with it)")
    return out


def check_replaceable(out: str, what: str = "--out") -> None:
    """Refuses an --out (or its OUT.partial) that holds anything a trainer does not write (see
    `check_replaceable_folder`); --out itself is already resolved, so only OUT.partial may not
    be a link."""
    check_replaceable_folder(out, TRAINER_FILES, ("rescored",), "a trainer", what,
                             allow_link=what == "--out")


def _resolved(path: str) -> str:
    """A local path made absolute with its links resolved; a store URL as given."""
    return path.rstrip("/") if fs.is_remote(path) else os.path.realpath(os.path.abspath(path))


def work_folder(out: str, resume: bool):
    """A context manager yielding (work folder, resumed) for a run whose result lands at `out`
    (`check_out`'s): OUT.partial renamed to OUT, or a temporary folder uploaded to a store."""
    return _store_work_folder(out) if fs.is_remote(out) else _local_work_folder(out, resume)


def claim_work_folder(work: str, keep: bool, out: str) -> int:
    """Takes a run's work folder: refuses one a live run holds, clears a killed run's (unless
    `keep`: --resume continues it), creates it and locks it for this process.

    The lock is an advisory `flock` on the folder, which the kernel drops when its holder dies
    (SIGKILL included): a locked work folder belongs to a run still writing it.

    Returns:
      The descriptor holding the lock (-1 where locks are unavailable); close it to release.

    Raises:
      InputError: another live run writes to the same OUT.
    """
    busy = InputError(out, f"another run is writing to it (its work folder {work} is locked by a "
                           "live process); wait for it to end or choose another --out")
    if os.path.isdir(work):
        fd = try_lock(work)
        if fd is None:
            raise busy
        if fd >= 0:
            os.close(fd)
        if not keep:
            fs.delete_tree(work)
    if not os.path.isdir(work):
        os.makedirs(os.path.dirname(work) or ".", exist_ok=True)
        try:
            os.mkdir(work)
        except FileExistsError:  # another run made it between the check and here
            raise busy from None
    fd = try_lock(work)
    if fd is None:
        raise busy
    return fd


@contextlib.contextmanager
def _local_work_folder(out: str, resume: bool) -> Iterator[tuple[str, bool]]:
    """OUT.partial (kept from a killed run with --resume, else made afresh), locked while the run
    writes it, renamed to OUT when the run ends; deleted when it fails, unless it was a killed
    run's that --resume failed on. A second run to the same OUT is refused while one writes."""
    work = out + PARTIAL_SUFFIX
    check_replaceable(work, "the work folder OUT.partial")
    resumed = resume and os.path.exists(os.path.join(work, "checkpoint.pt"))
    lock = claim_work_folder(work, resumed, out)
    if resume and not resumed:
        print(f"--resume: no {work}{os.sep}checkpoint.pt (no killed run to continue); training "
              "from the start", file=sys.stderr, flush=True)
    with swapped_in(work, out, lock, resumed, check_replaceable):
        yield work, resumed


@contextlib.contextmanager
def swapped_in(work: str, out: str, lock: int, keep: bool, check: Callable[[str], None],
               failures: tuple = (Exception,)) -> Iterator[None]:
    """Runs the body in the locked work folder, then renames it to `out` (after `check(out)`
    again: files may have been put there meanwhile); on one of `failures` deletes the work
    folder unless `keep` (a killed run's, which --resume failed on); always releases `lock`
    (`claim_work_folder`'s)."""
    try:
        try:
            yield
        except failures:
            if not keep:  # a failed run leaves nothing half-made behind
                fs.delete_tree(work)
            raise
        check(out)
        if os.path.exists(out):
            fs.delete_tree(out)
        os.replace(work, out)
    finally:
        if lock >= 0:
            os.close(lock)


@contextlib.contextmanager
def _store_work_folder(out: str) -> Iterator[tuple[str, bool]]:
    """A local temporary folder, uploaded to `out` (gs://, s3://) when the run ends.

    A store has no folder rename: the earlier files under `out` are deleted, the new ones
    uploaded, and `summary.json` last, so a folder with a summary is a finished one.
    """
    work = tempfile.mkdtemp(prefix="train-")
    try:
        yield work, False
        files = sorted(os.path.relpath(os.path.join(folder, name), work)
                       for folder, _, names in os.walk(work) for name in names)
        files.sort(key=lambda rel: rel == "summary.json")  # the summary last: it marks the end
        if fs.exists(out):
            fs.delete_tree(out)
        for rel in files:
            fs.copy(os.path.join(work, rel), fs.join(out, *rel.split(os.sep)))
    finally:
        fs.delete_tree(work)


@contextlib.contextmanager
def report_work_folder(out: str, inputs: tuple, check: Callable[..., None],
                       own: tuple = ("runs", "train"),
                       check_inputs: Callable[[], None] | None = None) -> Iterator[str]:
    """The work folder of a command that trains many runs and writes one report folder (OUT
    built in OUT.partial, renamed at the end; a failure of any kind leaves nothing): checks OUT
    and OUT.partial (`check(folder, what)`: only the command's own files), that the inputs
    exist, and that no other live run writes OUT; yields OUT.partial.

    Args:
      out: --out (local or a store-style name; normalised and made absolute here).
      inputs: ((path, option name), ...) that must exist.
      check: refuses a folder holding files the command does not write.
      own: OUT's top-level folders that hold the command's own runs.
      check_inputs: more checks of the inputs (raising InputError), after `inputs`.

    Raises:
      InputError: OUT is a link, inside or holding another run, or holds foreign files; an input
        is missing; another live run writes OUT.
    """
    from data_contracts.manifest import check_out_outside_runs

    fs.check_replaceable_location(out)
    out = os.path.abspath(fs.normalize(out))
    check_out_outside_runs(out, "--out", own=own)
    check(out)
    work = out + PARTIAL_SUFFIX
    check(work, "the work folder OUT.partial")
    for path, name in inputs:
        if not fs.exists(path):
            raise InputError(path, f"{name} not found")
    if check_inputs is not None:
        check_inputs()
    lock = claim_work_folder(work, False, out)  # a second run to the same OUT is refused
    with swapped_in(work, out, lock, False, check, (BaseException,)):
        yield work


def run_report_command(run: Callable[[], str], *, threads: int, files: str | Callable[[], str],
                       quick: bool, summary: str) -> int:
    """The common ending of a report command's `main()` (trainers.experiment, trainers.studies).

    Checks `--threads`, sets torch's intra-op threads, runs `run()` and prints what it wrote.

    Args:
      run: builds the report and returns its folder.
      threads: the `--threads` value (torch intra-op threads; small models mostly contend).
      files: the files the report holds, for the `wrote OUT: FILES` line (or a callable giving
        them, called after `run`: what a report holds may depend on inputs only `run` checks).
      quick: a `--quick` run: one more line says it is not evidence.
      summary: the report's own file named in that line (e.g. `claims.md`).

    Returns:
      The exit status: 0, or 2 after one `error: ...` line on stderr (bad `--threads`, or an
      InputError from `run`).
    """
    if not 1 <= threads <= 1024:
        print(f"error: --threads must be within [1, 1024] (got {threads})", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(threads)
    try:
        out = run()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {files() if callable(files) else files}")
    if quick:
        print(f"SMOKE RUN (--quick): not evidence (tiny budgets; {summary} and results.jsonl say "
              "so: smoke: true)")
    return 0
