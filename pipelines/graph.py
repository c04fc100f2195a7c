"""The two-pass curriculum pipeline (`build`): the steps of the other modules wired into one job.

The job runs in two passes over the input so that memory follows the batch, not the input:

- The dataset's feature space is scanned first (`space`), when there are inputs to scan.
- Pass 1 (`score`) reads each split (`splits.Split`: a file, a Parquet row-group range, a
  synthetic range) in parallel, validates and scores it, and keeps only small per-query rows
  (`score.SMALL_SCHEMA`: query id, input position, difficulty columns, fate, reason,
  demonstration descriptor; no features). Duplicates across splits are found on those rows
  (`dedupe`: the first by input position wins).
- Decisions (`decide`): diversity quotas and stage boundaries come from combines over the small
  rows; each kept query gets a small decision tuple keyed by its id.
- Pass 2 (`write`) re-reads the splits, re-validates (deterministic), joins each query to its
  decision (a side input of decision tuples, never features) and spills sorted pieces per shard;
  one finalize step per shard k-way merges them.
- The last step writes the job's summary (`manifest.write_summary`) for the launcher.

Elements are Arrow tables (one batch of queries each), never single rows; the duplicate check
groups tables of small rows by a hash bucket of the query id. Nothing that holds every row's
features is grouped.
"""
from __future__ import annotations

import apache_beam as beam

from curricula import diversity as div
from pipelines import coders  # noqa: F401 - registers the Arrow table coder
from pipelines.config import CurriculumConfig
from pipelines.decide import (AssignStagesFn, SampleDescriptors, SelectDemonstrationsFn,
                              SumCounters, assign_clusters, cluster_stats, difficulty_rows,
                              dropped_of, having, pending_of, scored_only, stage_stats)
from pipelines.dedupe import Dedupe
from pipelines.manifest import dropped_stats, quarantine_stats, scored_stats, write_summary
from pipelines.score import ScoreSplitFn
from pipelines.score_log import ROLLOUTS, ReadForLogFn, ScoreFromLog
from pipelines.space import DatasetSpace
from pipelines.write import WriteShards, WriteSplitFn, tag


def build(p: beam.Pipeline, config: CurriculumConfig, root: str, splits: list,
          launcher_pid: int | None = None) -> None:
    """Adds the two-pass curriculum pipeline to `p`, writing shards and a summary under `root`.

    Args:
      p: the pipeline.
      config: the run's configuration.
      root: where shards, pieces and the summary object are written (the run's location in its
        store: a local staging folder or `OUT/run-<id>`).
      splits: the input's splits (`splits.plan_splits`), read once per pass.
      launcher_pid: the launching process (local runs: workers end with it), or None.
    """
    space = _dataset_space(p, config, splits)
    read, winners, quarantine, log_stats = _read_and_score(p, config, root, splits,
                                                           launcher_pid, space)
    selected, before = _diversify(winners, config)
    staged = _order(winners, config)
    pending = winners | "Pending" >> beam.FlatMap(
        pending_of, config.asks_again()).with_outputs("stats", main="decisions")
    decisions = ((selected.decisions, staged.decisions, pending.decisions)
                 | "AllDecisions" >> beam.Flatten())
    dropped = ((winners | "RoutedDropped" >> beam.FlatMap(dropped_of), selected.dropped)
               | "AllDropped" >> beam.Flatten())
    scored = winners | "ScoredOnly" >> beam.FlatMap(scored_only)
    difficulty = scored | "DifficultyRows" >> beam.Map(difficulty_rows)
    files = _read_join_write(p, config, root, splits, launcher_pid, space, decisions,
                             difficulty, dropped, quarantine)
    # `read` is counted where records leave the reader, so read = quarantined + scored is a real
    # check that scoring lost or invented no query (not an identity).
    stats = [read[ScoreSplitFn.STATS], selected.stats, staged.stats, pending.stats,
             *log_stats, quarantine | "StatsQuarantine" >> beam.Map(quarantine_stats),
             scored | "StatsScored" >> beam.Map(scored_stats),
             dropped | "StatsDropped" >> beam.Map(dropped_stats)]
    _summarize(p, root, files, stats, before, space)


def _dataset_space(p: beam.Pipeline, config: CurriculumConfig, splits: list):
    """The dataset's feature space as a side input: one scan per input, merged (None: each file
    decides)."""
    space = (p | "DatasetSpace" >> DatasetSpace(config, splits)) if config.inputs else \
        (p | "NoSpace" >> beam.Create([None]))
    return beam.pvalue.AsSingleton(space)


def _read_and_score(p: beam.Pipeline, config: CurriculumConfig, root: str, splits: list,
                    launcher_pid: int | None, space_side):
    """Pass 1: read, validate, score each split in parallel; small rows only from here on.

    An outside policy's rollouts (`--rollouts` files, `--generate-with` a server) or none
    (`--policy none`) are joined to featureless query rows (`ScoreFromLog`).

    Returns (pass 1's tagged outputs, winning small rows, every quarantine table so far, the
    rollout statistics' PCollections).
    """
    first = (p | "Splits" >> beam.Create(splits) | "SpreadSplits" >> beam.Reshuffle())
    log_stats = []
    if config.rollout_paths() or config.generate_with or config.pending_only:
        read = first | "ReadForLog" >> beam.ParDo(
            ReadForLogFn(config, root, launcher_pid), space_side).with_outputs(
                ReadForLogFn.QUARANTINE, ReadForLogFn.STATS, ROLLOUTS, main="keyed")
        small, log_quarantine, stats = read.keyed | "ScoreFromLog" >> ScoreFromLog(
            config, root, launcher_pid,
            generated=read[ROLLOUTS] if config.generate_with else None)
        winners = small
        log_stats = [stats]
        quarantines = [read[ReadForLogFn.QUARANTINE], log_quarantine]
    else:
        read = first | "ReadAndScore" >> beam.ParDo(
            ScoreSplitFn(config, root, launcher_pid), space_side).with_outputs(
                ScoreSplitFn.QUARANTINE, ScoreSplitFn.STATS, main="small")
        ranged = frozenset(s.input_index for s in splits if s.byte_range)
        winners, duplicates = read.small | "Dedupe" >> Dedupe(config.batch_size, ranged)
        quarantines = [read[ScoreSplitFn.QUARANTINE], duplicates]
    quarantine = quarantines | "AllQuarantine" >> beam.Flatten()
    return read, winners, quarantine, log_stats


def _diversify(winners, config: CurriculumConfig):
    """Diversity: fit clusters on a sample, count clusters globally, select by quota.

    Returns (the selection's tagged outputs, cluster statistics before selection).
    """
    seed, dcfg = config.seed, config.diversity
    candidates = winners | "Candidates" >> having("imitation")
    centers = (candidates
               | "FitSample" >> beam.CombineGlobally(SampleDescriptors(dcfg.fit_sample, seed))
               | "FitClusters" >> beam.Map(div.fit_centers, dcfg.n_clusters, seed))
    assigned = candidates | "AssignClusters" >> beam.Map(assign_clusters,
                                                          beam.pvalue.AsSingleton(centers))
    before = (assigned
              | "ClusterStats" >> beam.Map(cluster_stats)
              | "SumClusterStats" >> beam.CombineGlobally(SumCounters()))
    selected = assigned | "SelectDemonstrations" >> beam.ParDo(
        SelectDemonstrationsFn(config, config.asks_again()), beam.pvalue.AsSingleton(centers),
        beam.pvalue.AsSingleton(before)).with_outputs("dropped", "stats", main="decisions")
    return selected, before


def _order(winners, config: CurriculumConfig):
    """Order: a global histogram of order keys sets the stage boundaries; the stages' tagged
    outputs (decisions, stats)."""
    rl = winners | "RlCandidates" >> having("rl")
    key_stats = (rl | "OrderKeys" >> beam.Map(stage_stats, config)
                 | "SumOrderKeys" >> beam.CombineGlobally(SumCounters()))
    return rl | "AssignStages" >> beam.ParDo(
        AssignStagesFn(config), beam.pvalue.AsSingleton(key_stats)).with_outputs(
            "stats", main="decisions")


def _read_join_write(p: beam.Pipeline, config: CurriculumConfig, root: str, splits: list,
                     launcher_pid: int | None, space_side, decisions, difficulty, dropped,
                     quarantine):
    """Pass 2: re-read each split, join it to its decisions, write imitation and RL rows (and
    the difficulty, dropped and quarantine rows of pass 1); the manifest entries of every file."""
    second = (p | "Splits2" >> beam.Create(splits) | "SpreadSplits2" >> beam.Reshuffle()
              | "ReadAndJoin" >> beam.ParDo(WriteSplitFn(config, root, launcher_pid),
                                            beam.pvalue.AsDict(decisions), space_side))
    tagged = (difficulty | "TagDifficulty" >> tag("difficulty"),
              dropped | "TagDropped" >> tag("dropped"),
              quarantine | "TagQuarantine" >> tag("quarantine"), second)
    return tagged | "WriteShards" >> WriteShards(config, root, launcher_pid)


def _summarize(p: beam.Pipeline, root: str, files, stats: list, before, space_side) -> None:
    """The last step: every statistic summed, written with the files as the job's summary."""
    stats = (stats | "AllStats" >> beam.Flatten()
             | "SumStats" >> beam.CombineGlobally(SumCounters()))
    (p | "Finish" >> beam.Create([None])
     | "WriteSummary" >> beam.Map(write_summary, root, beam.pvalue.AsList(files),
                                  beam.pvalue.AsSingleton(stats),
                                  beam.pvalue.AsSingleton(before), space_side))
