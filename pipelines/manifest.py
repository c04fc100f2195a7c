"""The run's accounting: the statistics the job sums into its summary object, and the manifest
the launcher makes from that summary (counts, stages, diversity, inputs' fingerprints, files).

In the job, each output's tables are counted (`quarantine_stats`, `scored_stats`,
`dropped_stats`) and the last step writes the summary (`write_summary`, `SUMMARY_NAME` under the
run's location). The launcher reads it back into `make_manifest` and checks that the rows
written are the rows counted (`reconcile`).
"""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pyarrow as pa

from curricula import diversity as div
from data_contracts import __version__ as PACKAGE_VERSION
from data_contracts import fs
from data_contracts.manifest import check_counts, config_hash, input_digest
from data_contracts.readers.text import TEXT_FORMATS, is_text_column_map
from data_contracts.schema import SCHEMA_VERSION
from data_contracts.text_features import TEXT_FEATURE_NAMES
from difficulty.generations import malformed_stats
from difficulty.rewards import parse_reward
from pipelines.config import CurriculumConfig
from pipelines.space import space_dict
from pipelines.splits import resolve_format

SUMMARY_NAME = "_summary.json"
# The counts the pipeline itself makes (reconciled by `check_counts`); a reader's own counts
# (`QueryBatch.counts`: text inputs' `unjudged`, `empty_passages`, ...) sit beside them.
PIPELINE_COUNTS = ("read", "quarantined", "scored", "too_hard", "learnable", "too_easy",
                   "imitation", "rl", "dropped", "rl_rows", "rl_replayed",
                   "rollouts_quarantined", "pending", "unscored", "results_quarantined",
                   "skipped_lines")
# Readers' counts as the build's summary names them (`reader_count_line`), in that order.
READER_COUNT_PHRASES = {
    "unjudged": "unjudged queries skipped (not in the qrels)",
    "empty_queries": "empty queries",
    "empty_passages": "empty passages",
    "negative_judgments": "negative judgments read as not relevant",
    "run_extra_fields": "run lines with extra fields (ignored)",
    "non_utf8_lines": "lines with bytes that are not UTF-8 (replaced)",
    "duplicate_ids": "duplicate ids",
    "id_collisions": "ids that collide after decoding",
}


def quarantine_stats(table: pa.Table) -> dict:
    """Quarantined queries and rollouts, and quarantine reasons, of a quarantine table."""
    kinds = Counter(table.column("record_kind").to_pylist())
    return {"counts": Counter({"quarantined": table.num_rows - kinds.get("rollout", 0)
                               - kinds.get("result", 0),
                               "rollouts_quarantined": kinds.get("rollout", 0),
                               "results_quarantined": kinds.get("result", 0)}),
            "quarantine_reasons": Counter(table.column("reason").to_pylist())}


def scored_stats(table: pa.Table) -> dict:
    """Scored and band counts, plus malformed LLM generations (failed or repaired) by reason."""
    malformed = malformed_stats(table)
    return {"counts": Counter({"scored": table.num_rows,
                               **Counter(table.column("band").to_pylist())})
            + malformed["counts"], "malformed_reasons": malformed["malformed_reasons"]}


def dropped_stats(table: pa.Table) -> dict:
    """Dropped rows and drop reasons (the part before `:`) of a dropped table."""
    return {"counts": Counter({"dropped": table.num_rows}),
            "drop_reasons": Counter(r.split(":")[0] for r in table.column("reason").to_pylist())}


def write_summary(_, root: str, files: list, stats: dict, before: dict, space=None) -> None:
    """The job's last step: its files, summed statistics, cluster counts before selection and
    feature space, as one JSON object (`SUMMARY_NAME`) under `root`."""
    summary = {"files": sorted(files, key=lambda f: f["path"]), "stats": stats,
               "diversity_before": before, "feature_space": space_dict(space)}
    fs.write_bytes(fs.join(root, SUMMARY_NAME),
                   json.dumps(summary, sort_keys=True, default=_json_default).encode("utf-8"))


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(type(value))


def input_fingerprints(config: CurriculumConfig) -> list[dict]:
    """Path, format and sha256 of every input (side files and rollout log too), as the manifest
    records them; the embedded inputs by their generator's settings."""
    if not config.inputs:
        if config.synthetic_kind == "text":  # not the feature generator's: a trainer must not
            return [{"path": "embedded:synthetic-text", "format": "synthetic-text",  # regenerate
                     "sha256": config_hash(config.synthetic_text().__dict__)}]      # it as one
        return [{"path": "embedded:synthetic", "format": "synthetic",
                 "sha256": config_hash(config.synthetic.__dict__)}]
    out = []
    for path in config.inputs:
        fmt = resolve_format(path, config.input_format)
        out.append({"path": fs.abspath(path), "format": fmt,
                    "sha256": input_digest(path, fmt)})
    for kind in ("candidates", "qrels", "teacher_run"):  # text inputs' side files
        side = getattr(config, kind)
        if side and fs.isfile(side):
            out.append({"path": fs.abspath(side), "format": kind, "sha256": fs.sha256(side)})
    for path in config.rollout_paths():
        out.append({"path": fs.abspath(path), "format": "rollouts", "sha256": fs.sha256(path)})
    return out


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


def text_feature_space(config: CurriculumConfig, stats: dict) -> dict | None:
    """The feature space of a text run (an input of a text layout, a Hugging Face dataset with
    text columns, or the embedded text default): the IR features `featurize_rows` computes,
    by name (`TEXT_FEATURE_NAMES`), with the width the validated queries had; None for a
    feature run."""
    if not config.inputs:
        text = config.synthetic_kind == "text"
    else:
        text = any(resolve_format(path, config.input_format) in TEXT_FORMATS
                   or (config.input_format in ("auto", "hf") and is_text_column_map(
                       config.column_map) and resolve_format(path, config.input_format) == "hf")
                   for path in config.inputs)
    if not text:
        return None
    width = feature_space(stats)["width"] or len(TEXT_FEATURE_NAMES)
    names = list(TEXT_FEATURE_NAMES) if width == len(TEXT_FEATURE_NAMES) else None
    return {"base": None, "width": width, "names": names}


def reward_record(spec: str) -> dict:
    """The reward as the manifest records it: the spec, and NDCG's ideal named even when it is
    the default (`window`: the candidates' own labels; `qrels`: every judged document's)."""
    reward = parse_reward(spec)
    return {"spec": spec, "name": reward.name, "ideal": reward.ideal}


def make_manifest(config: CurriculumConfig, summary: dict, inputs: list[dict] | None = None
                  ) -> dict:
    """The run's manifest from the pipeline's summary.

    Args:
      inputs: the inputs' fingerprints (`input_fingerprints`), when already computed (`run`
        hashes the inputs while the pipeline runs); None computes them here.
    """
    stats = summary["stats"]
    counts = {k: int(v) for k, v in stats.get("counts", {}).items()}
    for name in PIPELINE_COUNTS:
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
        "inputs": input_fingerprints(config) if inputs is None else inputs,
        "policy": {"spec": config.policy if config.policy in ("base", "teacher", "none")
                   else fs.abspath(config.policy),
                   "policy_id": spec.policy_id, "fingerprint": spec.fingerprint()},
        "reward": reward_record(config.reward),
        "counts": counts,
        "quarantine_reasons": {k: int(v) for k, v in stats.get("quarantine_reasons", {}).items()},
        "drop_reasons": {k: int(v) for k, v in stats.get("drop_reasons", {}).items()},
        "malformed_reasons": {k: int(v) for k, v in stats.get("malformed_reasons", {}).items()},
        "files": files, "curriculum": curriculum,
        "feature_space": (text_feature_space(config, stats) or summary.get("feature_space")
                          or feature_space(stats)),
        "diversity": _diversity_summary(summary["diversity_before"], stats, config),
        **_llm_summary(config, stats, counts, files),
    }


def reader_count_lines(counts: dict) -> list[str]:
    """The summary's lines for the readers' non-zero counts: one for the text readers'
    (`READER_COUNT_PHRASES`), e.g. `text: 142 unjudged queries skipped (not in the qrels), 3
    empty passages`, and one for any other reader count, by name; [] when all are zero."""
    text = [f"{int(counts[k])} {phrase}" for k, phrase in READER_COUNT_PHRASES.items()
            if counts.get(k)]
    others = [f"{k} {int(counts[k])}" for k in sorted(set(counts) - set(PIPELINE_COUNTS)
                                                      - set(READER_COUNT_PHRASES))
              if isinstance(counts[k], int) and counts[k]]
    return ([f"text: {', '.join(text)}"] if text else []) + \
        ([f"also counted: {', '.join(others)}"] if others else [])


def _llm_summary(config: CurriculumConfig, stats: dict, counts: dict, files: list) -> dict:
    """An LLM policy's loop, where the run is one (else nothing): where the rollouts came from,
    per round what was asked, answered, failed, missing and decided, and the `pending` phase
    (the queries a later round's requests may ask about, with their texts)."""
    if not (config.pending_only or config.rollout_paths() or config.generate_with):
        return {}
    source = ("none" if config.pending_only else "server" if config.generate_with
              else "results" if "requests_sent" in counts else "log")
    rounds: dict[int, dict] = {}
    for key, n in stats.get("rounds", {}).items():
        round_, state = key.rsplit(":", 1)
        entry = rounds.setdefault(int(round_), {"round": int(round_), "asked": 0,
                                                "answered": 0, "failed": 0, "missing": 0,
                                                "decided": 0})
        entry[state] = entry.get(state, 0) + int(n)
    pending = [f["path"] for f in files if f["phase"] == "pending"]
    return {"rollouts": {
        "source": source, "policy": "none" if config.pending_only else None,
        "rounds": [rounds[r] for r in sorted(rounds)],
        "pending": {"queries": counts.get("pending", 0), "files": pending,
                    "why": "no pass rates yet (--policy none): every valid query, for the "
                           "first round of requests" if config.pending_only else
                           "undecided queries routed out, kept with their texts for the next "
                           "round of requests"}}}


FILE_ROWS = {"difficulty": ("scored",), "imitation": ("imitation",), "rl": ("rl_rows",),
             "dropped": ("dropped",), "pending": ("pending",),
             "quarantine": ("quarantined", "rollouts_quarantined", "results_quarantined")}


def _check_file_rows(manifest: dict) -> list[str]:
    """The rows written per phase must be the rows counted (nothing lost between count and file)."""
    counts, problems = manifest["counts"], []
    for phase, names in FILE_ROWS.items():
        written = sum(f["rows"] for f in manifest["files"] if f["phase"] == phase)
        expected = sum(counts.get(n, 0) for n in names)
        if written != expected:
            problems.append(f"{phase} files hold {written} rows, counts say {expected}")
    return problems


def reconcile(manifest: dict) -> list[str]:
    """What does not add up in a manifest's counts and files (empty: all reconciles)."""
    return check_counts(manifest["counts"]) + _check_file_rows(manifest)
