"""Worker-process lifecycle: a local worker ends with its launcher, pins torch to one thread and
exits without interpreter teardown; `WorkerFn` is the DoFn base that sets all three up.

Remote workers (Dataflow) and the launcher itself are left alone (`launcher_chain` is None there).
"""
from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time

import apache_beam as beam

_WATCHDOG: list = []


def _parent_of(pid: int) -> int | None:
    """The parent pid of `pid` from /proc (Linux), or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def launcher_chain(launcher_pid: int | None) -> list[int] | None:
    """The pids from this process's parent up to the launcher, if this is its local worker.

    Beam's multi-processing runner starts each worker through a shell (`/bin/sh -c python -m
    ...`), so the launcher is the worker's parent or, usually, its grandparent. Returns e.g.
    `[shell, launcher]`, or None in the launcher itself, in a process the launcher did not start
    (a remote worker) and where no launcher is known.
    """
    if launcher_pid is None or os.getpid() == launcher_pid:
        return None
    chain = [os.getppid()]
    while chain[-1] != launcher_pid and len(chain) < 3:
        parent = _parent_of(chain[-1])
        if parent is None or parent <= 1:
            return None
        chain.append(parent)
    return chain if chain[-1] == launcher_pid else None


def _chain_intact(chain: list[int]) -> bool:
    if os.getppid() != chain[0]:
        return False
    return all(_parent_of(child) == parent for child, parent in zip(chain, chain[1:]))


def die_with_launcher(launcher_pid: int | None) -> None:
    """In a local worker process (not the launcher), exits as soon as the launcher is gone.

    Beam's multi-processing workers are descendants of the launcher (through a shell); after a
    SIGKILL of the launcher a worker in the middle of a long bundle would go on with it for
    nothing. A daemon thread notices the re-parenting (a pid of the chain up to the launcher gets
    a new parent) within half a second and ends the worker.
    """
    chain = launcher_chain(launcher_pid)
    if chain is None or _WATCHDOG:
        return

    def watch() -> None:
        while True:
            if not _chain_intact(chain):
                os._exit(1)
            time.sleep(0.5)

    thread = threading.Thread(target=watch, name="die-with-launcher", daemon=True)
    thread.start()
    _WATCHDOG.append(thread)


_FAST_EXIT: list = []


def exit_without_teardown(launcher_pid: int | None) -> None:
    """In a local worker process, ends the process without interpreter teardown once it is done.

    Beam's local runner closes its workers one after another, each time waiting for the worker
    process to exit, and a worker that has imported torch, scikit-learn and Beam spends about
    1.3 s tearing its interpreter down (freeing every module's objects), so a 2-worker build
    ended 2.6 s after its last stage, and an 8-worker one would end 10 s after. An `atexit`
    hook, which runs after the harness has returned and its threads are joined (every bundle
    done, every file this project writes closed), flushes the logs and standard streams and
    calls `os._exit`: with 1 when an uncaught exception ended the worker (its traceback already
    printed), else 0. Remote workers (Dataflow) and the launcher are left alone.
    """
    if _FAST_EXIT or launcher_chain(launcher_pid) is None:
        return
    failed: list = []
    hook = sys.excepthook

    def note_failure(kind, value, trace):
        failed.append(kind)
        hook(kind, value, trace)

    def leave() -> None:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        os._exit(1 if failed else 0)

    sys.excepthook = note_failure
    atexit.register(leave)
    _FAST_EXIT.append(True)


_PINNED: list = []


def one_thread_per_worker(launcher_pid: int | None) -> None:
    """In a worker process (not the launcher), torch runs its operators on one thread.

    Beam parallelises across worker processes, one per core (Dataflow's Python harness runs one
    per vCPU; a local run has `--direct_num_workers`); torch's default of one intra-op thread per
    core on top of that oversubscribes the cores: on 2 cores, a 2-worker build of 8,000 queries x
    100 documents x 136 features took 37.9 s with 2 threads per worker and 27.7 s with 1. An
    in-process run (the default `in_memory` mode) keeps torch's default.
    """
    if (launcher_pid is not None and os.getpid() == launcher_pid) or _PINNED:
        return
    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy's BLAS and scikit-learn's OpenMP pools too
    _PINNED.append(True)


class WorkerFn(beam.DoFn):
    """A DoFn whose setup, in a local worker, ends it with its launcher (`die_with_launcher`),
    pins torch to one thread (`one_thread_per_worker`) and skips teardown at exit
    (`exit_without_teardown`)."""

    def __init__(self, launcher_pid: int | None = None):
        self.launcher_pid = launcher_pid

    def setup(self):
        die_with_launcher(self.launcher_pid)
        one_thread_per_worker(self.launcher_pid)
        exit_without_teardown(self.launcher_pid)
