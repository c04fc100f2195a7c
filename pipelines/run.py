"""Runs a build and publishes it: preflight, splits, the Beam job (with its progress line), the
manifest from the job's summary, the usability rule, and the atomic commit (`run`).

`run(config, beam_args)` is the public entry point (the command line and the trainer call it;
`pipelines.build_curriculum` re-exports it).
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, replace

import apache_beam as beam

from curricula.staging import abort, begin, commit
from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.manifest import MANIFEST_NAME
from data_contracts.reasons import Reason
from data_contracts.readers import detect_format, first_repeated_feature
from data_contracts.usable import unusable_reason as shared_unusable_reason
from pipelines.config import CurriculumConfig
from pipelines.graph import build
from pipelines.manifest import SUMMARY_NAME, input_fingerprints, make_manifest, reconcile
from pipelines.options import is_dry_run, is_local_runner, pipeline_options
from pipelines.preflight import preflight
from pipelines.progress import PROGRESS_FOLDER, Progress, metrics_of
from pipelines.splits import plan_splits


@dataclass
class RunResult:
    """What a finished run reports: its folder, manifest and Beam counters (or a dry run)."""

    out: str
    manifest: dict
    metrics: dict
    seconds: float
    dry_run: bool = False


class UnusableRun(ValueError):
    """The run read its input but produced nothing usable (exit 2, previous run kept)."""


def run(config: CurriculumConfig, beam_args: list[str] | None = None) -> RunResult:
    """Runs the pipeline and publishes the run in one atomic step; returns what it wrote.

    Raises:
      InputError: an input, the policy or the output path is unusable.
      UnusableRun: the run scored nothing or quarantined more than `max_quarantine` (the
        earlier run is kept).
      RuntimeError: the counts do not reconcile (a bug: the run is not published).
    """
    started = time.time()
    config = replace(config, out=fs.normalize(config.out))
    options, runner = pipeline_options(list(beam_args or []))
    preflight(config, options)
    splits = plan_splits(config)
    pub = begin(config.out, dry_run=is_dry_run(options))
    # The inputs' sha256 is read while the workers run (the launcher idles meanwhile): the whole
    # input once more, which after the pipeline was the launcher's last serial step.
    fingerprints = None if is_dry_run(options) else _Background(input_fingerprints, config)
    try:
        result = _run_job(config, options, runner, pub.root, splits)
        if is_dry_run(options):
            if not pub.remote:  # a local runner given --dry_run ran for real into staging
                abort(pub)
            return RunResult(fs.abspath(config.out), {}, {}, time.time() - started, dry_run=True)
        metrics = metrics_of(result)
        manifest = _checked_manifest(config, pub, fingerprints)
        commit(pub, manifest)  # last: the manifest's presence means the run is complete
    except BaseException:
        if not (pub.remote and is_dry_run(options)):  # a dry run wrote nothing to the store
            abort(pub)
        raise
    return RunResult(fs.abspath(config.out), manifest, metrics, time.time() - started)


def _run_job(config: CurriculumConfig, options, runner, root: str, splits: list):
    """Runs the Beam job into `root` with a progress line on stderr; returns its result.

    Raises:
      InputError: a whole-input problem a worker found (one line, not a worker's trace).
    """
    launcher = os.getpid() if is_local_runner(options) else None
    try:
        with Progress(root, len(splits), enabled=not is_dry_run(options)):
            with beam.Pipeline(runner=runner, options=options) as p:
                build(p, config, root, splits, launcher)
    except Exception as exc:  # a whole-input problem found by a worker: one line, not a trace
        error = _input_error_in(exc)
        if error is None:
            raise
        raise error from None
    return p.result


def _checked_manifest(config: CurriculumConfig, pub, fingerprints: _Background) -> dict:
    """The run's manifest from the job's summary (which is removed, with the progress markers),
    checked and with its paths as published.

    Raises:
      RuntimeError: the counts do not reconcile.
      UnusableRun: nothing scored, or too much quarantined.
    """
    summary_path = fs.join(pub.root, SUMMARY_NAME)
    summary = json.loads(fs.read_bytes(summary_path).decode("utf-8"))
    fs.delete([summary_path])
    fs.delete_tree(fs.join(pub.root, PROGRESS_FOLDER))
    manifest = make_manifest(config, summary, fingerprints.result())
    if manifest["counts"].get("duplicate_feature_ids"):  # the user is shown the first one
        manifest["examples"] = {"duplicate_feature_ids": first_repeated_feature(config.inputs)}
    problems = reconcile(manifest)
    if problems:
        raise RuntimeError("counts do not reconcile: " + "; ".join(problems))
    reason = unusable_reason(config, manifest["counts"], manifest["quarantine_reasons"],
                             manifest["drop_reasons"])
    if reason:
        raise UnusableRun(f"{', '.join(config.inputs) or 'embedded:synthetic'}: {reason}; "
                          f"nothing published, {config.out} "
                          + ("keeps its earlier run" if _has_run(config.out)
                             else "was not created"))
    for entry in manifest["files"]:
        entry["path"] = pub.prefix + entry["path"]
    for part in manifest["curriculum"]:
        part["files"] = [pub.prefix + f for f in part["files"]]
    return manifest


def unusable_reason(config: CurriculumConfig, counts: dict, quarantine_reasons: dict,
                    drop_reasons: dict | None = None) -> str | None:
    """Why a finished run is unusable (nothing scored; too much quarantined), or None: the
    readers' rule (`data_contracts.usable.unusable_reason`) with each input's detected layout,
    so the line names the likely cause ("looks like TREC qrels"), and the top drop reasons of a
    run with nothing to train on."""
    layouts = {}
    for path in config.inputs:
        try:
            layouts[path] = detect_format(path)
        except InputError:
            layouts[path] = "unknown"
    forced = config.input_format if config.input_format != "auto" else None
    if config.pending_only or counts.get("pending", 0):
        # an LLM policy's loop: pending queries wait for their (next round's) rollouts, so a
        # run with nothing staged yet is still the next round's input, not unusable
        counts = {**counts, "scored": counts.get("scored", 0) + counts.get("unscored", 0),
                  "imitation": counts.get("imitation", 0) + counts.get("pending", 0)}
    elif counts.get("scored", 0) == 0 and quarantine_reasons.get(Reason.UNKNOWN_QUERY, 0) \
            and config.rollout_paths():
        return (f"no rollout names an input query: {quarantine_reasons[Reason.UNKNOWN_QUERY]} "
                f"rollouts quarantined {Reason.UNKNOWN_QUERY} (the rollouts' query ids are not "
                "the input's), so every query has none")
    return shared_unusable_reason(counts, quarantine_reasons, config.max_quarantine, layouts,
                                  forced_format=forced, drop_reasons=drop_reasons)


def _has_run(out: str) -> bool:
    """Whether `out` holds a published run (its manifest.json)."""
    try:
        return fs.isfile(fs.join(out, MANIFEST_NAME))
    except Exception:  # a store that cannot be listed: say nothing about an earlier run
        return False


_INPUT_ERROR = re.compile(r"InputError: (?P<path>.+?): (?:column '(?P<column>[^']*)': )?"
                          r"(?P<problem>.*?)(?: \[while running '[^\]]*'\])?$", re.MULTILINE)


def _input_error_in(exc: BaseException) -> InputError | None:
    """The InputError a pipeline failure is about, if any.

    In-process runners chain the original exception; a worker in another process only passes its
    text (`...InputError: PATH: PROBLEM [while running 'STEP']`), which is parsed back.
    """
    seen, current = set(), exc
    while current is not None and id(current) not in seen:
        if isinstance(current, InputError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    matches = list(_INPUT_ERROR.finditer(str(exc)))
    if not matches:
        return None
    match = matches[-1]
    return InputError(match.group("path"), match.group("problem"), column=match.group("column"))


class _Background:
    """Runs `fn(*args)` on a daemon thread (a failed run does not wait for it); `result()` joins
    and returns its value or raises its exception.

    On Linux the thread runs at the lowest CPU priority (nice 19): it reads and hashes while the
    local workers run, on a core they leave idle, and does not take CPU time from them when they
    use every core (hashlib releases the GIL while it hashes).
    """

    def __init__(self, fn, *args):
        self.value, self.error = None, None
        self.thread = threading.Thread(target=self._run, args=(fn, args), daemon=True,
                                       name=fn.__name__)
        self.thread.start()

    def _run(self, fn, args) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # this thread only
        except (AttributeError, OSError):  # not Linux, or not allowed: normal priority
            pass
        try:
            self.value = fn(*args)
        except BaseException as exc:  # handed to the caller of result()
            self.error = exc

    def result(self):
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.value
