"""The build's Beam job and the command lines, one role a module, in data-flow order:

  build_curriculum  the command line: parse, check, run, print (`run` re-exported)
  config            the run's settings (CurriculumConfig)
  options           Beam options: runner, local or remote, dry run, unknown arguments
  preflight         settings checks before anything runs (one error line)
  run               orchestration and publishing: job, manifest, usability, atomic commit
  graph             the two-pass pipeline (`build`) wiring the steps below
  workers           worker-process lifecycle (ends with its launcher, one thread, fast exit)
  splits            input splits: planned, read and validated the same way in both passes
  space             the dataset's feature-space scan (a pre-pass)
  score             pass 1: read, validate, score; small per-query rows out
  dedupe            duplicates across splits: the first by input position wins
  decide            diversity quotas and RL stages from global statistics of small rows
  write             pass 2: re-read, join to decisions, spill and merge every shard
  manifest          the job's summary statistics and the run's manifest made from them
  progress          Beam counters, split-done markers and the launcher's progress line
  coders            the Arrow table coder of the pipeline's elements
  export, inspect   the other commands' names (shims over exports/ and inspection/)
"""
import logging


class _QuietOptionalGcp(logging.Filter):
    """Beam warns at import that GCP client libraries are absent; irrelevant to local runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


logging.getLogger().addFilter(_QuietOptionalGcp())
