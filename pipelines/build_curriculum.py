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
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from curricula import diversity as div
from curricula.staging import check_output_path, clean_stale, discard, new_staging, publish
from data_contracts import __version__ as PACKAGE_VERSION
from data_contracts.errors import InputError
from data_contracts.manifest import check_counts, config_hash, sha256_file, write_manifest
from data_contracts.readers import FORMATS, detect_format
from data_contracts.schema import DIFFICULTY_SCHEMA, SCHEMA_VERSION, conform
from data_contracts.synthetic import SyntheticConfig
from data_contracts.teacher import TEACHER_MODES
from curricula.diversity import DiversityConfig
from curricula.ordering import STRATEGIES, OrderConfig
from curricula.routing import RoutingConfig
from difficulty.estimate import BandConfig
from difficulty.generations import malformed_stats
from difficulty.rewards import parse_reward
from pipelines import transforms as T
from pipelines.config import DEFAULT_OUT, CurriculumConfig

SUMMARY_NAME = "_summary.json"
LOCAL_RUNNERS = (None, "DirectRunner", "FnApiRunner", "direct")


@dataclass
class RunResult:
    """What a finished run reports: its folder, manifest and Beam counters."""

    out: str
    manifest: dict
    metrics: dict
    seconds: float


def _stats_of(kind: str):
    """A function turning a table of `kind` into {"counts": ..., ...} statistics."""

    def stats(table: pa.Table) -> dict:
        n = table.num_rows
        if kind == "scored":  # + malformed LLM generations (failed or repaired), by reason
            malformed = malformed_stats(table)
            return {"counts": Counter({"scored": n, **Counter(table.column("band").to_pylist())})
                    + malformed["counts"], "malformed_reasons": malformed["malformed_reasons"]}
        if kind == "quarantine":
            kinds = Counter(table.column("record_kind").to_pylist())
            reasons = Counter(table.column("reason").to_pylist())
            return {"counts": Counter({"quarantined": n - kinds.get("rollout", 0),
                                       "rollouts_quarantined": kinds.get("rollout", 0)}),
                    "quarantine_reasons": reasons}
        if kind == "imitation":
            return {"counts": Counter({"imitation": n}),
                    "clusters_after": Counter(table.column("diversity_cluster").to_pylist()),
                    "signatures_after": Counter(table.column("signature").to_pylist())}
        if kind == "rl":
            replay = np.asarray(table.column("replay").to_pylist(), bool)
            stages = table.column("stage").to_numpy()
            rates = table.column("pass_rate").to_numpy()
            out = {"counts": Counter({"rl": int((~replay).sum()), "rl_rows": n,
                                      "rl_replayed": int(replay.sum())}),
                   "stage_rows": Counter(stages.tolist())}
            out["stage_pass_rates"] = Counter(f"{int(s)}:{r:.9f}" for s, r in
                                              zip(stages[~replay], rates[~replay]))
            return out
        if kind == "dropped":
            return {"counts": Counter({"dropped": n}),
                    "drop_reasons": Counter(r.split(":")[0] for r in
                                            table.column("reason").to_pylist())}
        raise ValueError(kind)

    return stats


def _read_count(table: pa.Table) -> dict:
    return {"counts": Counter({"read": table.num_rows})}


def _write_summary(_, root: str, files: list, stats: dict, before: dict) -> None:
    summary = {"files": sorted(files, key=lambda f: f["path"]), "stats": stats,
               "diversity_before": before}
    with open(os.path.join(root, SUMMARY_NAME), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, sort_keys=True, default=_json_default)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(type(value))


def build(p: beam.Pipeline, config: CurriculumConfig, root: str, spread: bool = True) -> None:
    """Adds the curriculum pipeline to `p`, writing shards and a run summary under `root`.

    Args:
      p: the pipeline.
      config: the run's configuration.
      root: the staging folder the shards and the summary are written to.
      spread: redistribute the validated batches across workers (a Reshuffle). The reader is one
        DoFn, so without it every later step runs where the reader ran; with one local worker it
        buys nothing and costs a full shuffle of the features, so `run` leaves it out there.
    """
    read = (p | "Start" >> beam.Create([None])
            | "ReadAndValidate" >> beam.ParDo(T.ReadAndValidateFn(config)).with_outputs(
                T.ReadAndValidateFn.QUARANTINE, main="ok"))
    ok = (read.ok | "Spread" >> beam.Reshuffle()) if spread else read.ok
    if config.rollouts:
        scored, log_quarantine = ok | "ScoreFromLog" >> T.ScoreFromLog(config)
        quarantine = (read.quarantine, log_quarantine) | "AllQuarantine" >> beam.Flatten()
    else:
        scored = ok | "ScoreWithPolicy" >> beam.ParDo(T.ScoreWithPolicyFn(config))
        quarantine = read.quarantine
    routed = scored | "Route" >> beam.ParDo(T.RouteFn(config)).with_outputs(
        T.RouteFn.IMITATION, T.RouteFn.DROPPED, main="rl")

    # Diversity: fit clusters on a sample, count clusters globally, select by quota.
    candidates = routed[T.RouteFn.IMITATION]
    seed, dcfg = config.seed, config.diversity
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
        beam.pvalue.AsSingleton(before)).with_outputs("dropped", main="imitation")

    # Order: a global histogram of order keys sets the stage boundaries.
    key_stats = (routed.rl | "OrderKeys" >> beam.Map(T._stage_stats, config)
                 | "SumOrderKeys" >> beam.CombineGlobally(T._SumCounters()))
    rl = routed.rl | "AssignStages" >> beam.ParDo(T.AssignStagesFn(config),
                                                   beam.pvalue.AsSingleton(key_stats))
    dropped = (routed[T.RouteFn.DROPPED], selected.dropped) | "AllDropped" >> beam.Flatten()
    difficulty = scored | "DifficultyColumns" >> beam.Map(conform, DIFFICULTY_SCHEMA)

    outputs = {"difficulty": difficulty, "imitation": selected.imitation, "rl": rl,
               "dropped": dropped, "quarantine": quarantine}
    files = [pcoll | f"Write_{phase}" >> T.WriteShards(phase, root, config.shards)
             for phase, pcoll in outputs.items()]
    files = files | "AllFiles" >> beam.Flatten()
    # `read` is counted where records leave the reader, so read = quarantined + scored is a real
    # check that scoring lost or invented no query (not an identity).
    stats = [(read.ok, read.quarantine) | "AllRead" >> beam.Flatten()
             | "StatsRead" >> beam.Map(_read_count)]
    stats += [scored | "StatsScored" >> beam.Map(_stats_of("scored"))]
    stats += [outputs[k] | f"Stats_{k}" >> beam.Map(_stats_of(k))
              for k in ("quarantine", "imitation", "rl", "dropped")]
    stats = (stats | "AllStats" >> beam.Flatten()
             | "SumStats" >> beam.CombineGlobally(T._SumCounters()))
    (p | "Finish" >> beam.Create([None])
     | "WriteSummary" >> beam.Map(_write_summary, root, beam.pvalue.AsList(files),
                                  beam.pvalue.AsSingleton(stats),
                                  beam.pvalue.AsSingleton(before)))


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


def wants_spread(options: PipelineOptions) -> bool:
    """Whether the run can use more than one worker (then batches are reshuffled to spread)."""
    if options.view_as(StandardOptions).runner not in LOCAL_RUNNERS:
        return True
    direct = options.view_as(DirectOptions)
    return direct.direct_running_mode != "in_memory" and (direct.direct_num_workers or 1) > 1


def _input_fingerprints(config: CurriculumConfig) -> list[dict]:
    if not config.inputs:
        if config.synthetic_kind == "text":  # not the feature generator's: a trainer must not
            return [{"path": "embedded:synthetic-text", "format": "synthetic-text",  # regenerate
                     "sha256": config_hash(config.synthetic_text().__dict__)}]      # it as one
        return [{"path": "embedded:synthetic", "format": "synthetic",
                 "sha256": config_hash(config.synthetic.__dict__)}]
    out = []
    for path in config.inputs:
        fmt = config.input_format if config.input_format != "auto" else detect_format(path)
        files = ([os.path.join(d, f) for d, _, fs in sorted(os.walk(path)) for f in sorted(fs)]
                 if os.path.isdir(path) else [path])
        if fmt == "lightgbm" or os.path.exists(path + ".query"):
            files.append(path + ".query")
        digests = [(os.path.relpath(f, path) if os.path.isdir(path) else os.path.basename(f),
                    sha256_file(f)) for f in files if os.path.isfile(f)]
        out.append({"path": os.path.abspath(path), "format": fmt,
                    "sha256": config_hash({"files": digests}) if len(digests) > 1
                    else digests[0][1]})
    for kind in ("candidates", "qrels", "teacher_run"):  # text inputs' side files
        side = getattr(config, kind)
        if side and os.path.isfile(side):
            out.append({"path": os.path.abspath(side), "format": kind,
                        "sha256": sha256_file(side)})
    if config.rollouts:
        out.append({"path": os.path.abspath(config.rollouts), "format": "rollouts",
                    "sha256": sha256_file(config.rollouts)})
    return out


def preflight(config: CurriculumConfig) -> None:
    """Fails fast, with one line, on problems that make the whole run impossible."""
    check_output_path(config.out)
    for path in config.inputs:
        if config.input_format not in FORMATS:
            raise InputError(path, f"unknown format {config.input_format!r} "
                                   f"(expected one of {', '.join(FORMATS)})")
        if not os.path.exists(path):
            raise InputError(path, "file not found")
        if config.input_format == "auto":
            detect_format(path)
    if config.rollouts and not os.path.exists(config.rollouts):
        raise InputError(config.rollouts, "rollout log not found")
    parse_reward(config.reward)
    config.policy_spec().validate()
    _check_settings(config)


def _check_settings(config: CurriculumConfig) -> None:
    """Settings a worker would otherwise trip over mid-run (ValueError, one line)."""
    order, div_cfg = config.order, config.diversity
    if order.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {order.strategy!r} (expected one of "
                         f"{', '.join(STRATEGIES)})")
    if config.teacher not in TEACHER_MODES:
        raise ValueError(f"unknown teacher mode {config.teacher!r} (expected one of "
                         f"{', '.join(TEACHER_MODES)})")
    for name, value, low in (("k", config.k, 1), ("stages", order.stages, 1),
                             ("shards", config.shards, 1), ("batch_size", config.batch_size, 1),
                             ("n_clusters", div_cfg.n_clusters, 1)):
        if value < low:
            raise ValueError(f"{name} must be at least {low} (got {value})")
    for name, value in (("replay", order.replay), ("diversity budget", div_cfg.budget),
                        ("target", order.target)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be within [0, 1] (got {value:g})")


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


def make_manifest(config: CurriculumConfig, summary: dict) -> dict:
    stats = summary["stats"]
    counts = {k: int(v) for k, v in stats.get("counts", {}).items()}
    for name in ("read", "quarantined", "scored", "too_hard", "learnable", "too_easy",
                 "imitation", "rl", "dropped", "rl_rows", "rl_replayed", "rollouts_quarantined"):
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
        "config_hash": config_hash(data), "inputs": _input_fingerprints(config),
        "policy": {"spec": config.policy if config.policy in ("base", "teacher")
                   else os.path.abspath(config.policy),
                   "policy_id": spec.policy_id, "fingerprint": spec.fingerprint()},
        "counts": counts,
        "quarantine_reasons": {k: int(v) for k, v in stats.get("quarantine_reasons", {}).items()},
        "drop_reasons": {k: int(v) for k, v in stats.get("drop_reasons", {}).items()},
        "malformed_reasons": {k: int(v) for k, v in stats.get("malformed_reasons", {}).items()},
        "files": files, "curriculum": curriculum,
        "diversity": _diversity_summary(summary["diversity_before"], stats, config),
    }


def run(config: CurriculumConfig, beam_args: list[str] | None = None) -> RunResult:
    """Runs the pipeline and publishes the run folder atomically; returns what it wrote.

    Raises:
      InputError: an input, the policy or the output path is unusable.
      RuntimeError: the counts do not reconcile (a bug: the run is not published).
    """
    started = time.time()
    preflight(config)
    clean_stale(config.out)
    staging = new_staging(config.out)
    try:
        options, runner = pipeline_options(list(beam_args or []))
        try:
            with beam.Pipeline(runner=runner, options=options) as p:
                build(p, config, staging, spread=wants_spread(options))
        except Exception as exc:  # a whole-input problem found by a worker: one line, not a trace
            error = _input_error_in(exc)
            if error is None:
                raise
            raise error from None
        result = p.result
        metrics = _metrics(result)
        summary_path = os.path.join(staging, SUMMARY_NAME)
        with open(summary_path, encoding="utf-8") as handle:
            summary = json.load(handle)
        os.remove(summary_path)
        manifest = make_manifest(config, summary)
        problems = check_counts(manifest["counts"]) + _check_file_rows(manifest)
        if problems:
            raise RuntimeError("counts do not reconcile: " + "; ".join(problems))
        write_manifest(staging, manifest)  # last: its presence means the run is complete
        publish(staging, config.out)
    except BaseException:
        discard(staging)
        raise
    return RunResult(os.path.abspath(config.out), manifest, metrics, time.time() - started)


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


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line (the full usage is long; --help prints it)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


def make_parser() -> argparse.ArgumentParser:
    d = CurriculumConfig()
    parser = _OneLineErrors(
        prog="python -m pipelines.build_curriculum",
        description="Score queries by the pass rate of a policy's rollouts, drop the too hard and "
                    "too easy from RL, stage diverse imitation shards and RL shards in curriculum "
                    "order, with a manifest. Any option not listed here is a Beam pipeline option "
                    "(--runner, --direct_num_workers, --direct_running_mode, --project, ...).")
    io = parser.add_argument_group("input and output")
    io.add_argument("--input", action="append", default=[], metavar="PATH",
                    help="query input (repeatable); none: the embedded synthetic default")
    io.add_argument("--input-format", default="auto", choices=FORMATS,
                    help="input format (default: auto, by name and layout)")
    io.add_argument("--column-map", default="", metavar="COL=NAME,...",
                    help="for hf inputs: contract column = dataset column, comma separated")
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
    _bool_flag(cu, "diversity", d.diversity.enabled,
               "select demonstrations by per-cluster quotas (off: keep every one)")
    cu.add_argument("--clusters", type=int, default=d.diversity.n_clusters,
                    help="behavior clusters of demonstrations")
    cu.add_argument("--diversity-budget", type=float, default=d.diversity.budget,
                    help="fraction of eligible demonstrations kept when --diversity")
    cu.add_argument("--strategy", default=d.order.strategy, choices=STRATEGIES,
                    help="staged: easiest first; target: nearest --target first")
    cu.add_argument("--stages", type=int, default=d.order.stages, help="RL stages")
    cu.add_argument("--target", type=float, default=d.order.target,
                    help="target pass rate of --strategy target")
    cu.add_argument("--replay", type=float, default=d.order.replay,
                    help="fraction of earlier stages replayed in each later stage")
    return parser


def config_from_args(args: argparse.Namespace) -> CurriculumConfig:
    lo, _, hi = args.label_range.partition(",")
    column_map = dict(item.split("=", 1) for item in args.column_map.split(",") if "=" in item)
    for name, value, low in (("--k", args.k, 1), ("--stages", args.stages, 1),
                             ("--shards", args.shards, 1), ("--batch-size", args.batch_size, 1),
                             ("--candidate-depth", args.candidate_depth or 1, 1)):
        if value < low:
            raise ValueError(f"{name} must be at least {low}")
    return CurriculumConfig(
        inputs=list(args.input), input_format=args.input_format, column_map=column_map,
        split=args.split, rollouts=args.rollouts, policy=args.policy, reward=args.reward,
        k=args.k, k_max=args.k_max, adaptive=args.adaptive, temperature=args.temperature,
        seed=args.seed, label_min=float(lo), label_max=float(hi), teacher=args.teacher,
        bands=BandConfig(hard_below=args.hard_below, easy_above=args.easy_above,
                         confidence=args.confidence),
        routing=RoutingConfig(teacher_mode=args.teacher,
                              hard_to_imitation=args.hard_to_imitation,
                              easy_weight=args.easy_weight),
        diversity=DiversityConfig(enabled=args.diversity, n_clusters=args.clusters,
                                  budget=args.diversity_budget),
        order=OrderConfig(strategy=args.strategy, stages=args.stages, target=args.target,
                          replay=args.replay),
        out=args.out, batch_size=args.batch_size, shards=args.shards,
        synthetic=replace(SyntheticConfig(), n_queries=args.synthetic_queries),
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
    print(format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
