"""Settings checks before a build starts: one line (InputError or ValueError) for anything that
makes the whole run impossible, instead of a worker tripping over it mid-run.
"""
from __future__ import annotations

import math
import os

from apache_beam.options.pipeline_options import PipelineOptions

from curricula.ordering import STRATEGIES
from curricula.staging import check_output_path
from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.manifest import MANIFEST_NAME, check_out_outside_runs, is_run_folder
from data_contracts.readers import FORMATS
from data_contracts.readers.batch_results import check_result_rounds
from data_contracts.readers.text import TEXT_COLUMN_MAP_NAMES
from data_contracts.schema import QUERY_SCHEMA
from data_contracts.teacher import TEACHER_MODES
from difficulty.rewards import parse_reward
from difficulty.sampler import MAX_SEED, TEMPERATURE_RANGE
from pipelines.generate import check_llm_policy
from pipelines.config import CurriculumConfig
from pipelines.options import is_dry_run, is_local_runner
from pipelines.splits import resolve_format

# query and rows layouts, and the JSON keys of text corpora and queries
COLUMN_MAP_NAMES = tuple(dict.fromkeys(tuple(QUERY_SCHEMA.names) + ("doc_id", "label")
                                       + TEXT_COLUMN_MAP_NAMES))
MAX_ROLLOUTS = 1024  # --k, --k-max: rollouts per query per round (memory: k x docs x batch)
MAX_EASY_WEIGHT = 1e3  # a demonstration's loss weight (stored as float32)


def preflight(config: CurriculumConfig, options: PipelineOptions | None = None) -> None:
    """Fails fast, with one line, on problems that make the whole run impossible."""
    dry_run = options is not None and is_dry_run(options)
    if dry_run and fs.is_remote(config.out):  # writes nothing: the store is not contacted
        fs.check_replaceable_location(config.out)
    else:
        fs.check_replaceable_location(config.out)  # the root or the current folder: not walked
        check_out_outside_runs(config.out, may_be_run=True)
        check_output_path(config.out)
    _check_inputs_outside(config)
    if options is not None and not is_local_runner(options) and not fs.is_remote(config.out):
        raise InputError(config.out, "a remote runner's workers cannot write a local --out; "
                                     "name an object store location (gs://BUCKET/run)")
    for path in config.inputs:
        _refuse_run_folder(path)
        if config.input_format not in FORMATS:
            raise InputError(path, f"unknown format {config.input_format!r} "
                                   f"(expected one of {', '.join(FORMATS)})")
        if not fs.exists(path):
            raise InputError(path, "file not found")
        resolve_format(path, config.input_format)
    for path in config.rollout_paths():
        if not fs.exists(path):
            raise InputError(path, "rollout log not found")
    check_result_rounds(config.rollout_sources())
    check_llm_policy(config)
    parse_reward(config.reward)
    config.policy_spec().validate()
    _check_settings(config)


def _refuse_run_folder(path: str) -> None:
    """A run folder (or its manifest.json) given as --input: say what it is and what to do
    with one, instead of failing to detect a query format in it."""
    if fs.is_remote(path):
        return
    folder = (os.path.dirname(path) or ".") if os.path.basename(path) == MANIFEST_NAME else path
    if is_run_folder(folder):
        what = ("is a run's manifest" if folder != path
                else f"is a run folder (it holds {MANIFEST_NAME})")
        raise InputError(path, f"{what}, not a query input: "
                               f"train on it (python -m trainers.train --manifest "
                               f"{os.path.join(folder, MANIFEST_NAME)}), inspect it (python -m "
                               f"pipelines.inspect {folder}) or export it (python -m "
                               f"pipelines.export {folder} --to verl|trl --out DIR)")


def _check_inputs_outside(config: CurriculumConfig) -> None:
    """Refuses a local input (queries, rollout log, side files, policy) inside --out: the run
    replaces its folder, so the input would be overwritten or deleted by the run it feeds."""
    if fs.is_remote(config.out):
        return
    out = os.path.realpath(config.out)
    sides = [*config.rollout_paths(), config.teacher_run, config.candidates, config.qrels,
             config.policy if config.policy not in ("base", "teacher", "none") else None]
    for path in list(config.inputs) + [p for p in sides if p]:
        if fs.is_remote(path):
            continue
        real = os.path.realpath(fs.normalize(path))
        if real == out or real.startswith(out.rstrip(os.sep) + os.sep):
            raise InputError(path, f"lies inside --out {config.out}, which the run replaces; "
                                   "copy it out of the run folder first")


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
    if config.candidate_depth is not None and config.candidate_depth < 1:
        raise ValueError(f"candidate_depth must be at least 1 (got {config.candidate_depth}); "
                         "leave it out to keep every candidate")
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
    if config.prior == "learned" and config.budget_rule != "planned":
        raise ValueError("--prior learned plans the later rounds: it needs --budget-rule planned")
    if config.prior == "learned" and config.rollout_paths():
        raise ValueError("--prior learned plans the in-pipeline policy's rounds; for rollouts "
                         "from results, `python -m pipelines.export RUN --to requests` plans "
                         "the next round (its own --prior)")
    if not 0 <= config.seed <= MAX_SEED:
        raise ValueError(f"seed must be within [0, {MAX_SEED}] (got {config.seed})")
    if not (math.isfinite(config.label_min) and math.isfinite(config.label_max)):
        raise ValueError("label range must be finite")
