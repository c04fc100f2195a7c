"""The build's command line: parses the options, checks them, runs the build, prints a report.

Usage:
  python -m pipelines.build_curriculum                      # embedded synthetic default
  python -m pipelines.build_curriculum --input rank.train --out runs/yahoo
  python -m pipelines.build_curriculum --input data.parquet --runner DataflowRunner \\
      --project P --region R --temp_location gs://B/tmp   # any other Beam option passes through

The build itself is `pipelines.run.run(config, beam_args)`; `run` and `RunResult` are re-exported
here, where the trainer and the tests have always imported them.
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace

from curricula.diversity import DiversityConfig
from curricula.ordering import STRATEGIES, OrderConfig
from curricula.routing import RoutingConfig
from data_contracts.errors import InputError
from data_contracts.manifest import MAX_FEATURE_WIDTH
from data_contracts.readers import FORMATS, REPEATED_FEATURES, repeated_features_warning
from data_contracts.synthetic import SyntheticConfig
from data_contracts.usable import reasons_text
from data_contracts.teacher import TEACHER_MODES
from difficulty.estimate import BUDGET_RULES, PRIOR_KINDS, BandConfig
from pipelines.config import DEFAULT_OUT, CurriculumConfig
from pipelines.manifest import reader_count_lines
from pipelines.options import unknown_beam_args
from pipelines.run import RunResult, run

__all__ = ["RunResult", "config_from_args", "format_report", "main", "make_parser", "run"]


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
        if action.default is None or action.default in ([], ""):
            return text + " (default: none)"
        if isinstance(action, argparse._StoreTrueAction) and action.default is False:
            return text + " (default: off)"
        return text + " (default: %(default)s)"


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line (the full usage is long; --help prints it)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


class _Once(argparse.Action):
    """A path option given at most once: a second one is a usage error (argparse would keep
    only the last, silently dropping the first)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option_string} given twice ({getattr(namespace, self.dest)} and "
                         f"{values}); it takes one file")
        setattr(namespace, self.dest, values)


class _LabelRangeParser(_OneLineErrors):
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


def make_parser() -> argparse.ArgumentParser:
    """The command line: its own option groups; any other option is a Beam option."""
    d = CurriculumConfig()
    parser = _LabelRangeParser(
        prog="python -m pipelines.build_curriculum", formatter_class=_DefaultsFormatter,
        description="Score queries by the pass rate of a policy's rollouts, drop the too hard and "
                    "too easy from RL, stage diverse imitation shards and RL shards in curriculum "
                    "order, with a manifest. Any option not listed here is a Beam pipeline option "
                    "(--runner, --direct_num_workers, --direct_running_mode, --project, ...).")
    _input_output_options(parser, d)
    _text_options(parser, d)
    _difficulty_options(parser, d)
    _curriculum_options(parser, d)
    _llm_options(parser)
    return parser


def _input_output_options(parser: argparse.ArgumentParser, d: CurriculumConfig) -> None:
    """Inputs, their reading, the output folder and its shards."""
    io = parser.add_argument_group("input and output")
    io.add_argument("--input", action="append", default=[], metavar="PATH",
                    help="query input (repeatable); none: the embedded synthetic default")
    io.add_argument("--input-format", default="auto", choices=FORMATS,
                    help="input format (default: auto, by content: docs/formats.md)")
    io.add_argument("--column-map", default="", metavar="COL=NAME,...",
                    help="for every tabular input (Parquet, CSV, JSONL, Hugging Face): contract "
                         "column = input column, comma separated (rows tables: query_id, "
                         "doc_id, label, features=LISTCOL | A|B|C | PREFIX*); for the JSON "
                         "keys of text corpora and queries (beir, msmarco, rankllm): "
                         "query_id, query_text, doc_id, doc_text, doc_title")
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
    io.add_argument("--repeated-features", choices=REPEATED_FEATURES, default=d.repeated_features,
                    help="a feature id repeated on one SVMlight line keeps its last value or "
                         f"quarantines its query (default: {d.repeated_features})")
    io.add_argument("--max-quarantine", type=float, default=d.max_quarantine, metavar="SHARE",
                    help="fail the run (exit 2) when more than this share of the records read "
                         f"is quarantined (default: {d.max_quarantine:g})")
    io.add_argument("--split", default=None, help="split name (and the HF split to read)")
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


def _text_options(parser: argparse.ArgumentParser, d: CurriculumConfig) -> None:
    """Text reranking inputs: candidates, qrels, teacher run, generations."""
    tx = parser.add_argument_group("text rerankers")
    tx.add_argument("--candidates", default=None, metavar="RUN", action=_Once,
                    help="TREC run: each query's candidates, in order (beir, msmarco layouts)")
    tx.add_argument("--candidate-depth", type=int, default=None, metavar="N",
                    help="keep each query's first N candidates (default: all the run lists)")
    tx.add_argument("--qrels", default=None, metavar="FILE", action=_Once,
                    help="TREC qrels where the input's layout does not hold them")
    tx.add_argument("--teacher-run", default=None, metavar="RUN", action=_Once,
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


def _difficulty_options(parser: argparse.ArgumentParser, d: CurriculumConfig) -> None:
    """The policy, its rollouts, the reward and the bands."""
    sc = parser.add_argument_group("difficulty")
    sc.add_argument("--policy", default=d.policy, metavar="base|teacher|none|CHECKPOINT",
                    help="policy whose rollouts are scored (default: base, the untrained "
                         "model); none: read and validate only (see LLM policy rollouts)")
    sc.add_argument("--reward", default=d.reward, metavar="SPEC",
                    help="ndcg@K>=TAU[,gain=exp] | hit@1 | log (default: ndcg@10>=0.7)")
    sc.add_argument("--k", type=int, default=d.k, help="rollouts per query per round")
    sc.add_argument("--k-max", type=int, default=d.k_max, help="most rollouts per query")
    _bool_flag(sc, "adaptive", d.adaptive, "sample in rounds until the band is decided")
    sc.add_argument("--budget-rule", default=d.budget_rule, choices=BUDGET_RULES,
                    help="rounds: every undecided query gets --k more per round; planned: the "
                         "budget planner's next k per query (difficulty.planner), fewer where "
                         f"a band is nearly decided (default: {d.budget_rule})")
    sc.add_argument("--prior", default=d.prior, choices=PRIOR_KINDS,
                    help="with --budget-rule planned, learned: a calibrated pass-rate model "
                         "fitted on each batch's first round gives the later rounds an "
                         "empirical-Bayes mixture prior (samples still decide every band) "
                         f"(default: {d.prior})")
    sc.add_argument("--temperature", type=float, default=d.temperature,
                    help="Plackett-Luce sampling temperature")
    sc.add_argument("--seed", type=int, default=d.seed, help="seed of all randomness")
    sc.add_argument("--hard-below", type=float, default=d.bands.hard_below,
                    help="too_hard when the pass rate is below this")
    sc.add_argument("--easy-above", type=float, default=d.bands.easy_above,
                    help="too_easy when the pass rate is above this")
    sc.add_argument("--confidence", type=float, default=d.bands.confidence,
                    help="posterior probability at which a band is decided")


def _curriculum_options(parser: argparse.ArgumentParser, d: CurriculumConfig) -> None:
    """Demonstrations, diversity and the order of RL stages."""
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


def _llm_options(parser: argparse.ArgumentParser) -> None:
    """An outside (LLM) policy's rollouts: logs, OpenAI batch results, a live server."""
    from pipelines.generate import GenerationOptions

    g = GenerationOptions(url="", model="")
    lm = parser.add_argument_group(
        "LLM policy rollouts",
        "rollouts of an outside policy, read instead of sampled: --rollouts files (a rollout "
        "log, or OpenAI batch output lines answering `python -m pipelines.export RUN --to "
        "requests`), or asked live from an OpenAI-compatible server (--generate-with); "
        "--policy none reads and validates only, for the first round of requests")
    lm.add_argument("--rollouts", action="append", default=[], metavar="PATH",
                    help="a rollout log (Parquet/JSONL) or a results file of OpenAI batch output "
                         "lines (repeatable: every round's results; a query's samples pool)")
    lm.add_argument("--requests", action="append", default=[], metavar="PATH",
                    help="the requests.json (or its folder) the results answer: once for all "
                         "--rollouts, or once per results file in the same order (default: "
                         "the requests.json beside each results file)")
    lm.add_argument("--generate-with", default=None, metavar="URL",
                    help="an OpenAI-compatible server (vLLM serve, SGLang, transformers serve): "
                         "the workers ask it for --k samples per query (one request each, "
                         "distinct seeds), with --temperature as the sampling temperature")
    lm.add_argument("--model", default=None,
                    help="the model name the server serves (with --generate-with)")
    lm.add_argument("--concurrency", type=int, default=g.concurrency,
                    help=f"requests in flight per worker (default: {g.concurrency})")
    lm.add_argument("--max-tokens", type=int, default=g.max_tokens,
                    help=f"max tokens per sample (default: {g.max_tokens})")
    lm.add_argument("--request-timeout", type=float, default=g.timeout, metavar="SECONDS",
                    help=f"seconds per request before it is retried (default: {g.timeout:g})")
    lm.add_argument("--retries", type=int, default=g.retries,
                    help="further tries after a 5xx, a timeout or a connection error, with "
                         f"exponential back-off; then a counted failed request (default: "
                         f"{g.retries})")
    lm.add_argument("--generation-cache", default=None, metavar="DIR",
                    help="response cache, keyed by each request's sha256, so a rerun never asks "
                         "twice (default: ~/.cache/rerank-curriculum/generations)")


def _llm_config(args: argparse.Namespace) -> dict:
    """The CurriculumConfig fields of the LLM policy options."""
    paths, requests = list(args.rollouts), list(args.requests)
    generation = None
    if args.generate_with:
        generation = {"model": args.model or "", "concurrency": args.concurrency,
                      "max_tokens": args.max_tokens, "temperature": args.temperature,
                      "timeout": args.request_timeout, "retries": args.retries,
                      "cache": args.generation_cache}
    return {"rollouts": (paths[0] if len(paths) == 1 else paths) or None,
            "requests": (requests[0] if len(requests) == 1 else requests) or None,
            "generate_with": args.generate_with, "generation": generation}


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
                             ("--candidate-depth", 1 if args.candidate_depth is None
                              else args.candidate_depth, 1)):
        if value < low:
            raise ValueError(f"{name} must be at least {low}")
    return CurriculumConfig(
        inputs=list(args.input), input_format=args.input_format, column_map=column_map,
        split=args.split, **_llm_config(args), policy=args.policy, reward=args.reward,
        k=args.k, k_max=args.k_max, adaptive=args.adaptive, budget_rule=args.budget_rule,
        prior=args.prior, temperature=args.temperature,
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
        repeated_features=args.repeated_features,
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
    if m.get("quarantine_reasons"):
        lines.append("  quarantine reasons: " + reasons_text(m["quarantine_reasons"]))
    if m.get("drop_reasons"):
        lines.append("  drop reasons: " + reasons_text(m["drop_reasons"]))
    lines += [f"  {line}" for line in reader_count_lines(c)]
    for stage in m["curriculum"][1:]:
        lo, hi = stage["pass_rate_min"], stage["pass_rate_max"]
        rng = f"pass rate {lo:.3f}..{hi:.3f}" if lo is not None else "empty"
        lines.append(f"  rl stage {stage['stage']}: {stage['queries']} queries "
                     f"({stage['rows']} rows), {rng}")
    dv = m["diversity"]
    lines.append(f"  diversity: entropy {dv['before']['cluster_entropy_bits']:.2f} -> "
                 f"{dv['after']['cluster_entropy_bits']:.2f} bits, signatures "
                 f"{dv['before']['distinct_signatures']} -> {dv['after']['distinct_signatures']}")
    lines += _llm_report(m)
    if result.metrics:
        lines.append("  beam counters: " + ", ".join(f"{k}={v}" for k, v in result.metrics.items()))
    return "\n".join(lines)


def _llm_report(m: dict) -> list[str]:
    """The report lines of an LLM policy's loop: requests reconciled, rounds, pending."""
    loop, c = m.get("rollouts"), m["counts"]
    if not loop:
        return []
    lines = []
    if "requests_sent" in c:
        lines.append(f"  requests: sent {c['requests_sent']} = answered {c['requests_answered']}"
                     f" + failed {c['requests_failed']} + missing {c['requests_missing']}; "
                     f"rollouts {c.get('rollouts_returned', 0)} (truncated "
                     f"{c.get('rollouts_truncated', 0)}, malformed "
                     f"{c.get('rollouts_malformed', 0)})")
    for r in loop["rounds"]:
        lines.append(f"  round {r['round']}: asked {r['asked']}, answered {r['answered']}, "
                     f"failed {r['failed']}, missing {r['missing']}, decided {r['decided']}")
    if loop["pending"]["queries"]:
        lines.append(f"  pending {loop['pending']['queries']} ({loop['pending']['why']}); "
                     "next: python -m pipelines.export RUN --to requests")
    return lines


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
    repeats = result.manifest["counts"].get("duplicate_feature_ids")
    if repeats:
        print("warning: " + repeated_features_warning(
            repeats, result.manifest.get("examples", {}).get("duplicate_feature_ids"),
            config.repeated_features), file=sys.stderr)
    print(format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
