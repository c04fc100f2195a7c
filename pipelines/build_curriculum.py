"""Builds a curriculum: read -> validate -> score -> estimate -> route -> diversify -> stage -> publish.

Usage:
  python -m pipelines.build_curriculum                      # embedded synthetic default
  python -m pipelines.build_curriculum --input rank.train --out runs/yahoo
  python -m pipelines.build_curriculum --input data.parquet --runner DataflowRunner \\
      --project P --region R --temp_location gs://B/tmp   # any other Beam option passes through

`run(config, beam_args)` is the public entry point (the trainer calls it to re-score).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import (DirectOptions, PipelineOptions, StandardOptions,
                                                  TestOptions)

from curricula import diversity as div
from curricula.staging import abort, begin, check_output_path, commit
from data_contracts import __version__ as PACKAGE_VERSION
from data_contracts.errors import InputError
from data_contracts import fs
from data_contracts.manifest import (MANIFEST_NAME, MAX_FEATURE_WIDTH, check_counts, config_hash,
                                     input_digest)
from data_contracts.readers import FORMATS, detect_format
from data_contracts.schema import QUERY_SCHEMA, SCHEMA_VERSION
from data_contracts.synthetic import SyntheticConfig
from data_contracts.teacher import TEACHER_MODES
from data_contracts.usable import unusable_reason as shared_unusable_reason
from curricula.diversity import DiversityConfig
from curricula.ordering import STRATEGIES, OrderConfig
from curricula.routing import RoutingConfig
from difficulty.estimate import BandConfig
from difficulty.generations import malformed_stats
from difficulty.rewards import parse_reward
from difficulty.sampler import MAX_SEED, TEMPERATURE_RANGE
from pipelines import transforms as T
from pipelines.config import DEFAULT_OUT, CurriculumConfig

SUMMARY_NAME = "_summary.json"
LOCAL_RUNNERS = (None, "DirectRunner", "FnApiRunner", "direct")
PROGRESS_SECONDS = 5.0


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


def _quarantine_stats(table: pa.Table) -> dict:
    kinds = Counter(table.column("record_kind").to_pylist())
    return {"counts": Counter({"quarantined": table.num_rows - kinds.get("rollout", 0),
                               "rollouts_quarantined": kinds.get("rollout", 0)}),
            "quarantine_reasons": Counter(table.column("reason").to_pylist())}


def _scored_stats(table: pa.Table) -> dict:
    """Scored and band counts, plus malformed LLM generations (failed or repaired) by reason."""
    malformed = malformed_stats(table)
    return {"counts": Counter({"scored": table.num_rows,
                               **Counter(table.column("band").to_pylist())})
            + malformed["counts"], "malformed_reasons": malformed["malformed_reasons"]}


def _dropped_stats(table: pa.Table) -> dict:
    return {"counts": Counter({"dropped": table.num_rows}),
            "drop_reasons": Counter(r.split(":")[0] for r in table.column("reason").to_pylist())}


def _write_summary(_, root: str, files: list, stats: dict, before: dict, space=None) -> None:
    summary = {"files": sorted(files, key=lambda f: f["path"]), "stats": stats,
               "diversity_before": before, "feature_space": T.space_dict(space)}
    fs.write_bytes(fs.join(root, SUMMARY_NAME),
                   json.dumps(summary, sort_keys=True, default=_json_default).encode("utf-8"))


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(type(value))


def build(p: beam.Pipeline, config: CurriculumConfig, root: str, splits: list,
          launcher_pid: int | None = None) -> None:
    """Adds the two-pass curriculum pipeline to `p`, writing shards and a summary under `root`.

    Args:
      p: the pipeline.
      config: the run's configuration.
      root: where shards, pieces and the summary object are written (the run's location in its
        store: a local staging folder or `OUT/run-<id>`).
      splits: the input's splits (`transforms.plan_splits`), read once per pass.
      launcher_pid: the launching process (local runs: workers end with it), or None.
    """
    seed, dcfg = config.seed, config.diversity
    # The dataset's feature space: one scan per input, merged (None: each file decides).
    space = (p | "DatasetSpace" >> T.DatasetSpace(config, splits)) if config.inputs else \
        (p | "NoSpace" >> beam.Create([None]))
    space_side = beam.pvalue.AsSingleton(space)
    # Pass 1: read, validate, score each split in parallel; small rows only from here on.
    first = (p | "Splits" >> beam.Create(splits) | "SpreadSplits" >> beam.Reshuffle())
    if config.rollouts:
        read = first | "ReadForLog" >> beam.ParDo(
            T.ReadForLogFn(config, root, launcher_pid), space_side).with_outputs(
                T.ReadForLogFn.QUARANTINE, T.ReadForLogFn.STATS, main="keyed")
        small, log_quarantine = read.keyed | "ScoreFromLog" >> T.ScoreFromLog(config,
                                                                               launcher_pid)
        winners = small
        quarantines = [read[T.ReadForLogFn.QUARANTINE], log_quarantine]
    else:
        read = first | "ReadAndScore" >> beam.ParDo(
            T.ScoreSplitFn(config, root, launcher_pid), space_side).with_outputs(
                T.ScoreSplitFn.QUARANTINE, T.ScoreSplitFn.STATS, main="small")
        ranged = frozenset(s.input_index for s in splits if s.byte_range)
        winners, duplicates = read.small | "Dedupe" >> T.Dedupe(config.batch_size, ranged)
        quarantines = [read[T.ScoreSplitFn.QUARANTINE], duplicates]
    quarantine = quarantines | "AllQuarantine" >> beam.Flatten()

    # Diversity: fit clusters on a sample, count clusters globally, select by quota.
    candidates = winners | "Candidates" >> T.having("imitation")
    centers = (candidates
               | "FitSample" >> beam.CombineGlobally(T._SampleDescriptors(dcfg.fit_sample, seed))
               | "FitClusters" >> beam.Map(div.fit_centers, dcfg.n_clusters, seed))
    assigned = candidates | "AssignClusters" >> beam.Map(T.assign_clusters,
                                                          beam.pvalue.AsSingleton(centers))
    before = (assigned
              | "ClusterStats" >> beam.Map(T._cluster_stats)
              | "SumClusterStats" >> beam.CombineGlobally(T._SumCounters()))
    selected = assigned | "SelectDemonstrations" >> beam.ParDo(
        T.SelectDemonstrationsFn(config), beam.pvalue.AsSingleton(centers),
        beam.pvalue.AsSingleton(before)).with_outputs("dropped", "stats", main="decisions")

    # Order: a global histogram of order keys sets the stage boundaries.
    rl = winners | "RlCandidates" >> T.having("rl")
    key_stats = (rl | "OrderKeys" >> beam.Map(T._stage_stats, config)
                 | "SumOrderKeys" >> beam.CombineGlobally(T._SumCounters()))
    staged = rl | "AssignStages" >> beam.ParDo(
        T.AssignStagesFn(config), beam.pvalue.AsSingleton(key_stats)).with_outputs(
            "stats", main="decisions")
    decisions = (selected.decisions, staged.decisions) | "AllDecisions" >> beam.Flatten()
    dropped = ((winners | "RoutedDropped" >> beam.FlatMap(T.dropped_of), selected.dropped)
               | "AllDropped" >> beam.Flatten())
    difficulty = winners | "DifficultyRows" >> beam.Map(T.difficulty_rows)

    # Pass 2: re-read each split, join it to its decisions, write imitation and RL rows.
    second = (p | "Splits2" >> beam.Create(splits) | "SpreadSplits2" >> beam.Reshuffle()
              | "ReadAndJoin" >> beam.ParDo(T.WriteSplitFn(config, root, launcher_pid),
                                            beam.pvalue.AsDict(decisions), space_side))
    tagged = (difficulty | "TagDifficulty" >> T.tag("difficulty"),
              dropped | "TagDropped" >> T.tag("dropped"),
              quarantine | "TagQuarantine" >> T.tag("quarantine"), second)
    files = tagged | "WriteShards" >> T.WriteShards(config, root, launcher_pid)

    # `read` is counted where records leave the reader, so read = quarantined + scored is a real
    # check that scoring lost or invented no query (not an identity).
    stats = [read[T.ScoreSplitFn.STATS], selected.stats, staged.stats,
             quarantine | "StatsQuarantine" >> beam.Map(_quarantine_stats),
             winners | "StatsScored" >> beam.Map(_scored_stats),
             dropped | "StatsDropped" >> beam.Map(_dropped_stats)]
    stats = (stats | "AllStats" >> beam.Flatten()
             | "SumStats" >> beam.CombineGlobally(T._SumCounters()))
    (p | "Finish" >> beam.Create([None])
     | "WriteSummary" >> beam.Map(_write_summary, root, beam.pvalue.AsList(files),
                                  beam.pvalue.AsSingleton(stats),
                                  beam.pvalue.AsSingleton(before), space_side))


def pipeline_options(beam_args: list[str]) -> tuple[PipelineOptions, object]:
    """Beam options and the runner: FnApiRunner for local runs (Prism would download a binary)."""
    options = PipelineOptions(beam_args)
    runner_name = options.view_as(StandardOptions).runner
    if runner_name in LOCAL_RUNNERS:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner
        direct = options.view_as(DirectOptions)
        if direct.direct_running_mode is None:
            direct.direct_running_mode = "in_memory"
        return options, FnApiRunner()
    return options, runner_name


def is_local_runner(options: PipelineOptions) -> bool:
    return options.view_as(StandardOptions).runner in LOCAL_RUNNERS


def is_dry_run(options: PipelineOptions) -> bool:
    return bool(options.view_as(TestOptions).dry_run)


def _input_fingerprints(config: CurriculumConfig) -> list[dict]:
    if not config.inputs:
        if config.synthetic_kind == "text":  # not the feature generator's: a trainer must not
            return [{"path": "embedded:synthetic-text", "format": "synthetic-text",  # regenerate
                     "sha256": config_hash(config.synthetic_text().__dict__)}]      # it as one
        return [{"path": "embedded:synthetic", "format": "synthetic",
                 "sha256": config_hash(config.synthetic.__dict__)}]
    out = []
    for path in config.inputs:
        fmt = T.resolve_format(path, config.input_format)
        out.append({"path": fs.abspath(path), "format": fmt,
                    "sha256": input_digest(path, fmt)})
    for kind in ("candidates", "qrels", "teacher_run"):  # text inputs' side files
        side = getattr(config, kind)
        if side and fs.isfile(side):
            out.append({"path": fs.abspath(side), "format": kind, "sha256": fs.sha256(side)})
    if config.rollouts:
        out.append({"path": fs.abspath(config.rollouts), "format": "rollouts",
                    "sha256": fs.sha256(config.rollouts)})
    return out


def _check_inputs_outside(config: CurriculumConfig) -> None:
    """Refuses a local input (queries, rollout log, side files, policy) inside --out: the run
    replaces its folder, so the input would be overwritten or deleted by the run it feeds."""
    if fs.is_remote(config.out):
        return
    out = os.path.realpath(config.out)
    sides = [config.rollouts, config.teacher_run, config.candidates, config.qrels,
             config.policy if config.policy not in ("base", "teacher") else None]
    for path in list(config.inputs) + [p for p in sides if p]:
        if fs.is_remote(path):
            continue
        real = os.path.realpath(fs.normalize(path))
        if real == out or real.startswith(out.rstrip(os.sep) + os.sep):
            raise InputError(path, f"lies inside --out {config.out}, which the run replaces; "
                                   "copy it out of the run folder first")


def preflight(config: CurriculumConfig, options: PipelineOptions | None = None) -> None:
    """Fails fast, with one line, on problems that make the whole run impossible."""
    dry_run = options is not None and is_dry_run(options)
    if dry_run and fs.is_remote(config.out):  # writes nothing: the store is not contacted
        fs.check_replaceable_location(config.out)
    else:
        check_output_path(config.out)
    _check_inputs_outside(config)
    if options is not None and not is_local_runner(options) and not fs.is_remote(config.out):
        raise InputError(config.out, "a remote runner's workers cannot write a local --out; "
                                     "name an object store location (gs://BUCKET/run)")
    for path in config.inputs:
        if config.input_format not in FORMATS:
            raise InputError(path, f"unknown format {config.input_format!r} "
                                   f"(expected one of {', '.join(FORMATS)})")
        if not fs.exists(path):
            raise InputError(path, "file not found")
        T.resolve_format(path, config.input_format)
    if config.rollouts and not fs.exists(config.rollouts):
        raise InputError(config.rollouts, "rollout log not found")
    parse_reward(config.reward)
    config.policy_spec().validate()
    _check_settings(config)


COLUMN_MAP_NAMES = tuple(QUERY_SCHEMA.names) + ("doc_id", "label")  # query and rows layouts
MAX_ROLLOUTS = 1024  # --k, --k-max: rollouts per query per round (memory: k x docs x batch)
MAX_EASY_WEIGHT = 1e3  # a demonstration's loss weight (stored as float32)


def _check_settings(config: CurriculumConfig) -> None:
    """Settings a worker would otherwise trip over mid-run (ValueError, one line)."""
    order, div_cfg = config.order, config.diversity
    if order.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {order.strategy!r} (expected one of "
                         f"{', '.join(STRATEGIES)})")
    if config.teacher not in TEACHER_MODES:
        raise ValueError(f"unknown teacher mode {config.teacher!r} (expected one of "
                         f"{', '.join(TEACHER_MODES)})")
    for name, value, low, high in (
            ("k", config.k, 1, MAX_ROLLOUTS), ("k_max", config.k_max, 1, MAX_ROLLOUTS),
            ("stages", order.stages, 1, 1000), ("shards", config.shards, 1, 10_000),
            ("batch_size", config.batch_size, 1, 1 << 16),
            ("n_clusters", div_cfg.n_clusters, 1, 4096)):
        if value < low:
            raise ValueError(f"{name} must be at least {low} (got {value})")
        if value > high:  # memory grows with these: refused before it is allocated
            raise ValueError(f"{name} must be at most {high} (got {value})")
    for name, value in (("replay", order.replay), ("diversity budget", div_cfg.budget),
                        ("target", order.target), ("hard_below", config.bands.hard_below),
                        ("easy_above", config.bands.easy_above)):
        if not 0.0 <= value <= 1.0:  # NaN fails too
            raise ValueError(f"{name} must be within [0, 1] (got {value:g})")
    unknown = sorted(set(config.column_map) - set(COLUMN_MAP_NAMES))
    if unknown:
        raise ValueError(f"--column-map names {unknown[0]!r}, which is no column the readers "
                         f"know (expected one of {', '.join(COLUMN_MAP_NAMES)})")
    bands = config.bands
    if not bands.hard_below < bands.easy_above:
        raise ValueError(f"hard_below ({bands.hard_below:g}) must be below easy_above "
                         f"({bands.easy_above:g})")
    if not 0.0 < bands.confidence < 1.0:
        raise ValueError(f"confidence must be within (0, 1) (got {bands.confidence:g})")
    if not TEMPERATURE_RANGE[0] <= config.temperature <= TEMPERATURE_RANGE[1]:
        raise ValueError(f"temperature must be within [{TEMPERATURE_RANGE[0]:g}, "
                         f"{TEMPERATURE_RANGE[1]:g}] (got {config.temperature:g})")
    weight = config.routing.easy_weight
    if not 0 <= weight <= MAX_EASY_WEIGHT:
        raise ValueError(f"easy_weight must be within [0, {MAX_EASY_WEIGHT:g}] (got {weight:g})")
    if config.adaptive and config.k_max < config.k:
        raise ValueError(f"k_max ({config.k_max}) must be at least k ({config.k}) with "
                         "adaptive rounds")
    if not 0 <= config.seed <= MAX_SEED:
        raise ValueError(f"seed must be within [0, {MAX_SEED}] (got {config.seed})")
    if not (math.isfinite(config.label_min) and math.isfinite(config.label_max)):
        raise ValueError("label range must be finite")


def _stage_summary(stats: dict, config: CurriculumConfig) -> list[dict]:
    stages: dict[int, list] = {}
    for key, n in stats.get("stage_pass_rates", {}).items():
        stage, rate = key.split(":")
        stages.setdefault(int(stage), []).extend([float(rate)] * n)
    rows = stats.get("stage_rows", {})
    out = []
    for s in range(config.order.stages):
        rates = stages.get(s, [])
        out.append({"stage": s, "queries": len(rates), "rows": int(rows.get(s, rows.get(str(s), 0))),
                    "pass_rate_min": min(rates) if rates else None,
                    "pass_rate_max": max(rates) if rates else None,
                    "pass_rate_mean": float(np.mean(rates)) if rates else None})
    return out


def _diversity_summary(before: dict, stats: dict, config: CurriculumConfig) -> dict:
    def side(clusters: dict, signatures: dict) -> dict:
        return {"demonstrations": int(sum(clusters.values())),
                "cluster_counts": {str(k): int(v) for k, v in sorted(clusters.items(),
                                                                      key=lambda x: int(x[0]))},
                "cluster_entropy_bits": div.entropy_bits(clusters.values()),
                "distinct_signatures": len([s for s, n in signatures.items() if n > 0])}

    return {"enabled": config.diversity.enabled, "n_clusters": config.diversity.n_clusters,
            "budget": config.diversity.budget,
            "before": side(before.get("clusters", {}), before.get("signatures", {})),
            "after": side(stats.get("clusters_after", {}), stats.get("signatures_after", {}))}


def feature_space(stats: dict) -> dict:
    """The feature space recorded where the readers resolve none: {"base", "width", "names"}.

    Without a dataset-wide space (`data_contracts.readers.space`), each file decides its own
    base, so only the width validated queries had is known (the widest, when files differ);
    `base` and `names` are null.
    """
    widths = {int(k): int(v) for k, v in stats.get("feature_widths", {}).items()}
    return {"base": None, "width": max(widths) if widths else None, "names": None}


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


def make_manifest(config: CurriculumConfig, summary: dict, inputs: list[dict] | None = None
                  ) -> dict:
    """The run's manifest from the pipeline's summary.

    Args:
      inputs: the inputs' fingerprints (`_input_fingerprints`), when already computed (`run`
        hashes the inputs while the pipeline runs); None computes them here.
    """
    stats = summary["stats"]
    counts = {k: int(v) for k, v in stats.get("counts", {}).items()}
    for name in ("read", "quarantined", "scored", "too_hard", "learnable", "too_easy",
                 "imitation", "rl", "dropped", "rl_rows", "rl_replayed", "rollouts_quarantined",
                 "skipped_lines"):
        counts.setdefault(name, 0)
    files = summary["files"]
    stages = _stage_summary(stats, config)
    curriculum = [{"phase": "imitation", "stage": None,
                   "files": [f["path"] for f in files if f["phase"] == "imitation"]}]
    for stage in stages:
        curriculum.append({"phase": "rl", **stage, "files": [
            f["path"] for f in files if f["phase"] == "rl" and f["stage"] == stage["stage"]]})
    spec = config.policy_spec()
    data = config.to_dict()
    return {
        "schema_version": SCHEMA_VERSION, "package_version": PACKAGE_VERSION,
        "created_by": "pipelines.build_curriculum", "config": data,
        "config_hash": config_hash(data),
        "inputs": _input_fingerprints(config) if inputs is None else inputs,
        "policy": {"spec": config.policy if config.policy in ("base", "teacher")
                   else fs.abspath(config.policy),
                   "policy_id": spec.policy_id, "fingerprint": spec.fingerprint()},
        "counts": counts,
        "quarantine_reasons": {k: int(v) for k, v in stats.get("quarantine_reasons", {}).items()},
        "drop_reasons": {k: int(v) for k, v in stats.get("drop_reasons", {}).items()},
        "malformed_reasons": {k: int(v) for k, v in stats.get("malformed_reasons", {}).items()},
        "files": files, "curriculum": curriculum,
        "feature_space": summary.get("feature_space") or feature_space(stats),
        "diversity": _diversity_summary(summary["diversity_before"], stats, config),
    }


def _has_run(out: str) -> bool:
    """Whether `out` holds a published run (its manifest.json)."""
    try:
        return fs.isfile(fs.join(out, MANIFEST_NAME))
    except Exception:  # a store that cannot be listed: say nothing about an earlier run
        return False


def unusable_reason(config: CurriculumConfig, counts: dict, quarantine_reasons: dict
                    ) -> str | None:
    """Why a finished run is unusable (nothing scored; too much quarantined), or None: the
    readers' rule (`data_contracts.usable.unusable_reason`) with each input's detected layout,
    so the line names the likely cause ("looks like TREC qrels")."""
    layouts = {}
    for path in config.inputs:
        try:
            layouts[path] = detect_format(path)
        except InputError:
            layouts[path] = "unknown"
    forced = config.input_format if config.input_format != "auto" else None
    return shared_unusable_reason(counts, quarantine_reasons, config.max_quarantine, layouts,
                                  forced_format=forced)


class _Progress:
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
                         fs.list_files(fs.join(self.root, T.PROGRESS_FOLDER))]
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
    splits = T.plan_splits(config)
    pub = begin(config.out, dry_run=is_dry_run(options))
    # The inputs' sha256 is read while the workers run (the launcher idles meanwhile): the whole
    # input once more, which after the pipeline was the launcher's last serial step.
    fingerprints = None if is_dry_run(options) else _Background(_input_fingerprints, config)
    try:
        launcher = os.getpid() if is_local_runner(options) else None
        try:
            with _Progress(pub.root, len(splits), enabled=not is_dry_run(options)):
                with beam.Pipeline(runner=runner, options=options) as p:
                    build(p, config, pub.root, splits, launcher)
        except Exception as exc:  # a whole-input problem found by a worker: one line, not a trace
            error = _input_error_in(exc)
            if error is None:
                raise
            raise error from None
        if is_dry_run(options):
            if not pub.remote:  # a local runner given --dry_run ran for real into staging
                abort(pub)
            return RunResult(fs.abspath(config.out), {}, {}, time.time() - started, dry_run=True)
        metrics = _metrics(p.result)
        summary_path = fs.join(pub.root, SUMMARY_NAME)
        summary = json.loads(fs.read_bytes(summary_path).decode("utf-8"))
        fs.delete([summary_path])
        fs.delete_tree(fs.join(pub.root, T.PROGRESS_FOLDER))
        manifest = make_manifest(config, summary, fingerprints.result())
        problems = check_counts(manifest["counts"]) + _check_file_rows(manifest)
        if problems:
            raise RuntimeError("counts do not reconcile: " + "; ".join(problems))
        reason = unusable_reason(config, manifest["counts"], manifest["quarantine_reasons"])
        if reason:
            raise UnusableRun(f"{', '.join(config.inputs) or 'embedded:synthetic'}: {reason}; "
                              f"nothing published, {config.out} "
                              + ("keeps its earlier run" if _has_run(config.out)
                                 else "was not created"))
        for entry in manifest["files"]:
            entry["path"] = pub.prefix + entry["path"]
        for part in manifest["curriculum"]:
            part["files"] = [pub.prefix + f for f in part["files"]]
        commit(pub, manifest)  # last: the manifest's presence means the run is complete
    except BaseException:
        if not (pub.remote and is_dry_run(options)):  # a dry run wrote nothing to the store
            abort(pub)
        raise
    return RunResult(fs.abspath(config.out), manifest, metrics, time.time() - started)


FILE_ROWS = {"difficulty": ("scored",), "imitation": ("imitation",), "rl": ("rl_rows",),
             "dropped": ("dropped",), "quarantine": ("quarantined", "rollouts_quarantined")}


def _check_file_rows(manifest: dict) -> list[str]:
    """The rows written per phase must be the rows counted (nothing lost between count and file)."""
    counts, problems = manifest["counts"], []
    for phase, names in FILE_ROWS.items():
        written = sum(f["rows"] for f in manifest["files"] if f["phase"] == phase)
        expected = sum(counts.get(n, 0) for n in names)
        if written != expected:
            problems.append(f"{phase} files hold {written} rows, counts say {expected}")
    return problems


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


def _metrics(result) -> dict:
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(T.METRICS_NAMESPACE))
    except Exception:  # some runners do not report metrics
        return {}
    out: dict[str, int] = {}
    for counter in counters.get("counters", []):
        out[counter.key.metric.name] = out.get(counter.key.metric.name, 0) + int(
            counter.committed if counter.committed is not None else counter.attempted)
    return dict(sorted(out.items()))


def _bool_flag(parser, name: str, default: bool, help_text: str) -> None:
    dest = name.replace("-", "_")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(f"--{name}", dest=dest, action="store_true", help=help_text)
    group.add_argument(f"--no-{name}", dest=dest, action="store_false", help=f"disable --{name}")
    parser.set_defaults(**{dest: default})


class _DefaultsFormatter(argparse.HelpFormatter):
    """Appends `(default: X)` to every option's help that does not state its default already."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default is argparse.SUPPRESS or \
                isinstance(action, (argparse._HelpAction, argparse._StoreFalseAction)):
            return text
        if action.default is None or action.default == []:
            return text + " (default: none)"
        if isinstance(action, argparse._StoreTrueAction) and action.default is False:
            return text + " (default: off)"
        return text + " (default: %(default)s)"


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line (the full usage is long; --help prints it)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


def make_parser() -> argparse.ArgumentParser:
    d = CurriculumConfig()

    class _Parser(_OneLineErrors):
        """Takes `--label-range -1,1`: a value starting with `-` is still the option's value
        (argparse alone would read `-1,1` as an unknown option)."""

        def parse_known_args(self, args=None, namespace=None):
            args = list(sys.argv[1:] if args is None else args)
            joined, i = [], 0
            while i < len(args):
                if args[i] == "--label-range" and i + 1 < len(args):
                    joined.append(f"--label-range={args[i + 1]}")
                    i += 2
                    continue
                joined.append(args[i])
                i += 1
            return super().parse_known_args(joined, namespace)

    parser = _Parser(
        prog="python -m pipelines.build_curriculum", formatter_class=_DefaultsFormatter,
        description="Score queries by the pass rate of a policy's rollouts, drop the too hard and "
                    "too easy from RL, stage diverse imitation shards and RL shards in curriculum "
                    "order, with a manifest. Any option not listed here is a Beam pipeline option "
                    "(--runner, --direct_num_workers, --direct_running_mode, --project, ...).")
    io = parser.add_argument_group("input and output")
    io.add_argument("--input", action="append", default=[], metavar="PATH",
                    help="query input (repeatable); none: the embedded synthetic default")
    io.add_argument("--input-format", default="auto", choices=FORMATS,
                    help="input format (default: auto, by content: docs/formats.md)")
    io.add_argument("--column-map", default="", metavar="COL=NAME,...",
                    help="for every tabular input (Parquet, CSV, JSONL, Hugging Face): contract "
                         "column = input column, comma separated (rows tables: query_id, "
                         "doc_id, label, features=LISTCOL | A|B|C | PREFIX*)")
    base = io.add_mutually_exclusive_group()
    base.add_argument("--zero-based", dest="zero_based", action="store_true", default=None,
                      help="SVMlight feature ids are zero-based (default: zero-based when any "
                           "input uses id 0, else one-based)")
    base.add_argument("--one-based", dest="zero_based", action="store_false",
                      help="SVMlight feature ids are one-based")
    io.add_argument("--group-rows", action="store_true", default=d.group_rows,
                    help="group the rows of a query that are not adjacent (in memory, per file) "
                         "instead of refusing the file")
    io.add_argument("--max-feature-id", type=int, default=d.max_feature_id, metavar="N",
                    help="a larger SVMlight feature id quarantines its query "
                         f"(feature_id_out_of_range; default: {d.max_feature_id})")
    io.add_argument("--max-quarantine", type=float, default=d.max_quarantine, metavar="SHARE",
                    help="fail the run (exit 2) when more than this share of the records read "
                         f"is quarantined (default: {d.max_quarantine:g})")
    io.add_argument("--split", default=None, help="split name (and the HF split to read)")
    io.add_argument("--rollouts", default=None, metavar="PATH",
                    help="an outside policy's rollout log (Parquet/JSONL); rollouts are read, "
                         "not sampled")
    io.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                    help=f"run folder, replaced atomically (default: {DEFAULT_OUT})")
    io.add_argument("--label-range", default=f"{d.label_min:g},{d.label_max:g}", metavar="LO,HI",
                    help="declared label range; labels outside are quarantined (default: 0,4)")
    io.add_argument("--batch-size", type=int, default=d.batch_size,
                    help="queries per batch moved through the pipeline")
    io.add_argument("--shards", type=int, default=d.shards,
                    help="Parquet shards per output (per stage for RL)")
    io.add_argument("--synthetic-queries", type=int, default=d.synthetic.n_queries,
                    help="queries of the embedded default input")
    io.add_argument("--synthetic", default=d.synthetic_kind, choices=("features", "text"),
                    help="the embedded default input: feature vectors or a text reranking set "
                         "(queries, passages, qrels, first-stage and teacher runs)")
    tx = parser.add_argument_group("text rerankers")
    tx.add_argument("--candidates", default=None, metavar="RUN",
                    help="TREC run: each query's candidates, in order (beir, msmarco layouts)")
    tx.add_argument("--candidate-depth", type=int, default=None, metavar="N",
                    help="keep each query's first N candidates (default: all the run lists)")
    tx.add_argument("--qrels", default=None, metavar="FILE",
                    help="TREC qrels where the input's layout does not hold them")
    tx.add_argument("--teacher-run", default=None, metavar="RUN",
                    help="TREC run: the teacher's demonstration order (any input format; "
                         "joined by query and document id)")
    tx.add_argument("--rollout-format", default=d.rollout_format,
                    choices=("permutation", "answer"),
                    help="how --rollouts `generation` text is parsed: [3] > [1] > [2] "
                         "(RankGPT, ReasonRank) or <answer>[k]</answer> (Rank-R1)")
    tx.add_argument("--malformed", default=d.malformed, choices=("fail", "repair"),
                    help="a malformed generation is a failed rollout (default) or repaired "
                         "(drop repeats and unknown ids, append the missing in prompt order); "
                         "counted either way")
    sc = parser.add_argument_group("difficulty")
    sc.add_argument("--policy", default=d.policy, metavar="base|teacher|CHECKPOINT",
                    help="policy whose rollouts are scored (default: base, the untrained model)")
    sc.add_argument("--reward", default=d.reward, metavar="SPEC",
                    help="ndcg@K>=TAU[,gain=exp] | hit@1 | log (default: ndcg@10>=0.7)")
    sc.add_argument("--k", type=int, default=d.k, help="rollouts per query per round")
    sc.add_argument("--k-max", type=int, default=d.k_max, help="most rollouts per query")
    _bool_flag(sc, "adaptive", d.adaptive, "sample in rounds until the band is decided")
    sc.add_argument("--temperature", type=float, default=d.temperature,
                    help="Plackett-Luce sampling temperature")
    sc.add_argument("--seed", type=int, default=d.seed, help="seed of all randomness")
    sc.add_argument("--hard-below", type=float, default=d.bands.hard_below,
                    help="too_hard when the pass rate is below this")
    sc.add_argument("--easy-above", type=float, default=d.bands.easy_above,
                    help="too_easy when the pass rate is above this")
    sc.add_argument("--confidence", type=float, default=d.bands.confidence,
                    help="posterior probability at which a band is decided")
    cu = parser.add_argument_group("curriculum")
    cu.add_argument("--teacher", default=d.teacher, choices=TEACHER_MODES,
                    help="demonstrations from a teacher column, the labels' ideal order, auto "
                         "(column, else labels) or none")
    _bool_flag(cu, "hard-to-imitation", d.routing.hard_to_imitation,
               "too_hard queries with a demonstration go to imitation")
    cu.add_argument("--easy-weight", type=float, default=d.routing.easy_weight,
                    help="imitation weight of too_easy demonstrations")
    _bool_flag(cu, "filter-hard", d.routing.filter_hard,
               "keep too_hard queries out of RL (off: they go to RL, the no-filter control)")
    _bool_flag(cu, "diversity", d.diversity.enabled,
               "select demonstrations by per-cluster quotas (off: keep every one)")
    cu.add_argument("--clusters", type=int, default=d.diversity.n_clusters,
                    help="behavior clusters of demonstrations")
    cu.add_argument("--diversity-budget", type=float, default=d.diversity.budget,
                    help="fraction of eligible demonstrations kept when --diversity")
    cu.add_argument("--strategy", default=d.order.strategy, choices=STRATEGIES,
                    help="staged: easiest first; target: nearest --target first; shuffled: "
                         "query-hash order (the control)")
    cu.add_argument("--stages", type=int, default=d.order.stages, help="RL stages")
    cu.add_argument("--target", type=float, default=d.order.target,
                    help="target pass rate of --strategy target")
    cu.add_argument("--replay", type=float, default=d.order.replay,
                    help="fraction of earlier stages replayed in each later stage")
    return parser


def config_from_args(args: argparse.Namespace) -> CurriculumConfig:
    lo, sep, hi = args.label_range.partition(",")
    try:
        label_min, label_max = float(lo), float(hi)
    except ValueError:
        raise ValueError(f"--label-range must be LO,HI (got {args.label_range!r})") from None
    if not sep or label_min > label_max:
        raise ValueError(f"--label-range must be LO,HI with LO <= HI (got {args.label_range!r})")
    if not 0.0 <= args.max_quarantine <= 1.0:
        raise ValueError(f"--max-quarantine must be within [0, 1] (got {args.max_quarantine:g})")
    if not 1 <= args.max_feature_id <= MAX_FEATURE_WIDTH:  # a width: memory per document
        raise ValueError(f"--max-feature-id must be within [1, {MAX_FEATURE_WIDTH}]")
    items = [item.strip() for item in args.column_map.split(",") if item.strip()]
    bad = [item for item in items if "=" not in item or not all(item.split("=", 1))]
    if bad:
        raise ValueError(f"--column-map takes NAME=COLUMN pairs (got {bad[0]!r})")
    column_map = dict(item.split("=", 1) for item in items)
    for name, value, low in (("--k", args.k, 1), ("--stages", args.stages, 1),
                             ("--shards", args.shards, 1), ("--batch-size", args.batch_size, 1),
                             ("--candidate-depth", args.candidate_depth or 1, 1)):
        if value < low:
            raise ValueError(f"{name} must be at least {low}")
    return CurriculumConfig(
        inputs=list(args.input), input_format=args.input_format, column_map=column_map,
        split=args.split, rollouts=args.rollouts, policy=args.policy, reward=args.reward,
        k=args.k, k_max=args.k_max, adaptive=args.adaptive, temperature=args.temperature,
        seed=args.seed, label_min=label_min, label_max=label_max, teacher=args.teacher,
        bands=BandConfig(hard_below=args.hard_below, easy_above=args.easy_above,
                         confidence=args.confidence),
        routing=RoutingConfig(teacher_mode=args.teacher,
                              hard_to_imitation=args.hard_to_imitation,
                              easy_weight=args.easy_weight,
                              filter_hard=args.filter_hard),
        diversity=DiversityConfig(enabled=args.diversity, n_clusters=args.clusters,
                                  budget=args.diversity_budget),
        order=OrderConfig(strategy=args.strategy, stages=args.stages, target=args.target,
                          replay=args.replay),
        out=args.out, batch_size=args.batch_size, shards=args.shards,
        synthetic=replace(SyntheticConfig(), n_queries=args.synthetic_queries),
        zero_based=args.zero_based, group_rows=args.group_rows,
        max_feature_id=args.max_feature_id, max_quarantine=args.max_quarantine,
        synthetic_kind=args.synthetic, candidates=args.candidates, qrels=args.qrels,
        teacher_run=args.teacher_run, candidate_depth=args.candidate_depth,
        rollout_format=args.rollout_format,
        malformed=args.malformed,
    )


def format_report(result: RunResult) -> str:
    m = result.manifest
    c = m["counts"]
    lines = [f"wrote {result.out} in {result.seconds:.1f}s",
             f"  read {c['read']} = quarantined {c['quarantined']} + scored {c['scored']}",
             f"  bands: too_hard {c['too_hard']}, learnable {c['learnable']}, "
             f"too_easy {c['too_easy']}",
             f"  fates: imitation {c['imitation']}, rl {c['rl']}, dropped {c['dropped']}"]
    for stage in m["curriculum"][1:]:
        lo, hi = stage["pass_rate_min"], stage["pass_rate_max"]
        rng = f"pass rate {lo:.3f}..{hi:.3f}" if lo is not None else "empty"
        lines.append(f"  rl stage {stage['stage']}: {stage['queries']} queries "
                     f"({stage['rows']} rows), {rng}")
    dv = m["diversity"]
    lines.append(f"  diversity: entropy {dv['before']['cluster_entropy_bits']:.2f} -> "
                 f"{dv['after']['cluster_entropy_bits']:.2f} bits, signatures "
                 f"{dv['before']['distinct_signatures']} -> {dv['after']['distinct_signatures']}")
    if result.metrics:
        lines.append("  beam counters: " + ", ".join(f"{k}={v}" for k, v in result.metrics.items()))
    return "\n".join(lines)


def unknown_beam_args(beam_args: list[str]) -> list[str]:
    """Options that are neither ours nor Beam's (Beam would drop them with a mere warning)."""
    options = PipelineOptions(beam_args)
    known = set(options.get_all_options())
    return sorted(f"--{name}" for name in options.get_all_options(retain_unknown_options=True)
                  if name not in known)


def main(argv: list[str] | None = None) -> int:
    # Failures surface as one `error:` line or a raised exception; Beam's own error log of the
    # same failure would only repeat it as a worker traceback.
    logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
    parser = make_parser()
    args, beam_args = parser.parse_known_args(argv)
    unknown = unknown_beam_args(beam_args)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (neither an option of this "
                     "command nor a Beam pipeline option)")
    try:
        config = config_from_args(args)
        result = run(config, beam_args)
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.dry_run:
        print("dry run: job graph built, nothing written")
        return 0
    print(format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
