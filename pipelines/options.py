"""Beam pipeline options: which runner a build uses, whether it is local or a dry run, and which
arguments are neither the command's nor Beam's.
"""
from __future__ import annotations

from apache_beam.options.pipeline_options import (DirectOptions, PipelineOptions, StandardOptions,
                                                  TestOptions)

LOCAL_RUNNERS = (None, "DirectRunner", "FnApiRunner", "direct")


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
    """Whether the job runs in this machine's processes (its workers descend from this one)."""
    return options.view_as(StandardOptions).runner in LOCAL_RUNNERS


def is_dry_run(options: PipelineOptions) -> bool:
    """Whether Beam's `--dry_run` was given (the job graph is built, nothing is published)."""
    return bool(options.view_as(TestOptions).dry_run)


def unknown_beam_args(beam_args: list[str]) -> list[str]:
    """Options that are neither ours nor Beam's (Beam would drop them with a mere warning)."""
    options = PipelineOptions(beam_args)
    known = set(options.get_all_options())
    return sorted(f"--{name}" for name in options.get_all_options(retain_unknown_options=True)
                  if name not in known)
