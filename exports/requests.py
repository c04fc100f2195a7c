"""Sampling requests for an LLM policy's rollouts: OpenAI batch input lines + requests.json.

`python -m pipelines.export RUN --to requests --out DIR --model NAME` writes

  DIR/requests.jsonl   one OpenAI batch input line per sample (vLLM run-batch, SGLang, the OpenAI
                       Batch API, or any OpenAI-compatible server read them):
      {"custom_id": "rc:<run tag>:<round>:<sample>:<query id escaped>", "method": "POST",
       "url": "/v1/chat/completions",
       "body": {"model", "messages", "temperature", "max_tokens", "seed"}}
  DIR/requests.json    what was asked: the run (manifest sha256, config hash, tag), the round, k,
                       the sampling settings, the template, and per query the candidate order
                       (doc ids in the order the prompt numbered them) and its sample indices.

The prompts come from exports.prompts.render_prompt, as the RL and SFT exports' do. The custom_id
names run, round, sample and query, so results map back without trusting line order, and the
reader (data_contracts.readers.batch_results) parses each answer against the order recorded for
its custom_id. Each line's `seed` is crc32(seed, round, sample, query id): the same run and
options give the same bytes.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace

from curricula.hashing import stable_hash
from data_contracts.errors import InputError
from data_contracts.manifest import load_manifest
from data_contracts.readers.batch_results import (REQUESTS_KIND, REQUESTS_VERSION,
                                                  make_custom_id)
from difficulty.sampler import MAX_SEED, TEMPERATURE_RANGE
from exports.presets import check_preset
from exports.prompts import Template, WordCut, load_template, render_prompt
from exports.publish import check_out, publish
from exports.source import run_identity, text_queries

REQUESTS_FILE = "requests.jsonl"
REQUESTS_RECORD = "requests.json"
CHAT_URL = "/v1/chat/completions"
MAX_K = 1024
MAX_TOKENS = 1_000_000
MAX_ROUND = 1_000_000


@dataclass(frozen=True)
class RequestOptions:
    """Sampling settings of one round of requests (see the command line's --help)."""

    model: str
    k: int = 8
    temperature: float = 1.0
    max_tokens: int = 2048
    seed: int = 0
    round: int | None = 0  # None: the next round the run needs (`next_round`)

    def check(self) -> None:
        """Raises InputError naming the option that is out of range."""
        if not isinstance(self.model, str) or not self.model.strip():
            raise InputError("--model", "name the model the sampler serves (the body's model)")
        for name, value, low, high in (("--k", self.k, 1, MAX_K),
                                       ("--max-tokens", self.max_tokens, 1, MAX_TOKENS),
                                       ("--seed", self.seed, 0, MAX_SEED),
                                       ("--round", self.round or 0, 0, MAX_ROUND)):
            if not low <= value <= high:
                raise InputError(name, f"{value} is outside [{low}, {high}]")
        low, high = TEMPERATURE_RANGE
        if not (self.temperature == 0.0 or low <= self.temperature <= high):
            raise InputError("--temperature", f"{self.temperature} is not 0 or in [{low:g}, "
                                              f"{high:g}]")


def request_seed(seed: int, round_: int, sample: int, query_id: str) -> int:
    """The body's `seed` of one sample: crc32 of (seed, round, sample, query id), 31 bits."""
    return stable_hash(query_id, f"requests:{seed}:{round_}:{sample}") & 0x7FFFFFFF


def request_lines(rows: list[dict], template: Template, options: RequestOptions, tag: str,
                  plan: dict[str, list[int]]) -> tuple[list[bytes], list[dict]]:
    """The request lines of some queries and their requests.json entries: the one place a
    request is made (the `--to requests` export and live generation both call it).

    Args:
      rows: queries with `query_id`, `query_text`, `doc_ids`, `doc_texts`, in the order wanted.
      template: the prompt template.
      options: sampling settings (model, temperature, max tokens, seed, round).
      tag: the run tag each custom_id carries.
      plan: query id -> the sample indices asked.

    Returns:
      (lines: one JSON line per sample, bytes with '\\n'; entries: per query `{query_id,
      candidate_order, samples}`).
    """
    lines, entries = [], []
    for row in rows:
        query_id = row["query_id"]
        prompt = render_prompt(template, row["query_text"], row["doc_ids"], row["doc_texts"])
        entries.append({"query_id": query_id, "candidate_order": prompt.candidate_order,
                        "samples": plan[query_id]})
        for sample in plan[query_id]:
            body = {"model": options.model, "messages": prompt.messages,
                    "temperature": options.temperature, "max_tokens": options.max_tokens,
                    "seed": request_seed(options.seed, options.round, sample, query_id)}
            line = {"custom_id": make_custom_id(tag, options.round, sample, query_id),
                    "method": "POST", "url": CHAT_URL, "body": body}
            lines.append((json.dumps(line, ensure_ascii=False, sort_keys=True,
                                     separators=(",", ":")) + "\n").encode("utf-8"))
    return lines, entries


def build_requests(manifest: dict, run: str, template: Template, options: RequestOptions,
                   wanted: list[tuple[str, list[int]]] | None = None
                   ) -> tuple[list[bytes], dict]:
    """The request lines and the requests record of one round.

    Args:
      manifest: the run's manifest (load_manifest).
      run: the run as given (for messages).
      template: the prompt template.
      options: sampling settings.
      wanted: (query id, sample indices) to ask for, in any order; default every query of the
        run that has texts with samples 0..k-1. A later round passes the undecided queries and
        the sample indices not yet asked.

    Returns:
      (lines: one JSON line per request, bytes with '\\n'; record: the requests.json object).

    Raises:
      InputError: the run has no texts, or `wanted` names a query the run does not hold (or
        holds without texts), a negative sample or a sample twice.
    """
    options.check()
    table = text_queries(manifest, run)
    queries = {r["query_id"]: r for r in table.to_pylist()}
    if wanted is None:
        wanted = [(q, list(range(options.k))) for q in queries]
    plan: dict[str, list[int]] = {}
    for query_id, samples in wanted:
        if query_id not in queries:
            raise InputError(run, f"query {query_id!r} is not in the run with its texts")
        if query_id in plan or len(set(samples)) != len(samples) or \
                any(not isinstance(s, int) or s < 0 for s in samples):
            raise InputError(run, f"query {query_id!r}: samples must be distinct indices >= 0, "
                                  "the query named once")
        plan[query_id] = sorted(samples)
    identity = run_identity(manifest)
    config = manifest["config"]
    rows = [queries[q] for q in sorted(plan)]
    lines, entries = request_lines(rows, template, options, identity["tag"], plan)
    record = {"kind": REQUESTS_KIND, "version": REQUESTS_VERSION, "run": identity,
              **{k: v for k, v in asdict(options).items()},
              "rollout_format": config.get("rollout_format", "permutation"),
              "malformed": config.get("malformed", "fail"), "reward": config.get("reward"),
              "template": template.describe(), "file": REQUESTS_FILE,
              "requests": len(lines), "query_count": len(entries), "queries": entries}
    return lines, record


PRIORS = ("learned", "none")
SUMMARY_COLUMNS = ("first_stage_scores", "first_stage_ranks", "teacher_order", "teacher_scores")


@dataclass(frozen=True)
class PlanOptions:
    """How the next round is planned (see `next_round` and the command line's --help).

    Attributes:
      prior: `learned`: from the queries measured so far, difficulty.prior fits a calibrated
        pass-rate model on cheap query summaries and gives every query a Beta prior of bounded
        strength and the empirical-Bayes mixture around it (difficulty.prior), fixed from then
        on (recorded in the round's requests.json and read back by the next round); `none`:
        the uniform Beta(1, 1) of estimate.decide.
      skip_predicted: a query with no samples whose prior alone decides its band is not asked
        and is listed under `predicted` in requests.json with that band (off: the prior never
        decides a band alone).
      reference_share: round 0 asks only this crc32 share of the queries (a reference set, as
        DOTS samples one), so round 1 can ask the rest with the prior fitted on it; 1 asks all.
    """

    prior: str = "learned"
    skip_predicted: bool = False
    reference_share: float = 1.0

    def check(self) -> None:
        if self.prior not in PRIORS:
            raise InputError("--prior", f"expected one of {PRIORS}, got {self.prior!r}")
        if not 0.0 < self.reference_share <= 1.0:
            raise InputError("--reference-share", f"must be in (0, 1], got "
                                                  f"{self.reference_share:g}")


def in_reference(query_id: str, share: float) -> bool:
    """Whether a query is in round 0's reference set: crc32 of its id below `share`."""
    return share >= 1.0 or stable_hash(query_id, "reference") / 2.0 ** 32 < share


def _recorded_priors(manifest: dict):
    """The per-query priors the latest round's requests.json fixed (a
    data_contracts.readers.recorded_priors.RecordedPriors; None: none fixed yet), read from the
    requests.json each results file of the run answers (`latest_recorded_priors`: the build
    reads the same ones, with the same rule; the files as the manifest's `inputs` record them,
    absolute, else as the config names them); a rollout log that is not batch output has none.

    Raises:
      InputError: a results file the run was built from is gone (its recorded prior cannot be
        read back, and refitting would silently change a decided query's prior).
    """
    from data_contracts import fs
    from data_contracts.readers.recorded_priors import latest_recorded_priors

    config = manifest["config"]
    paths = [i["path"] for i in manifest.get("inputs", []) if i.get("format") == "rollouts"]
    if not paths:  # an embedded input's manifest records its generator, not the rollouts
        paths = config.get("rollouts") or []
        paths = [paths] if isinstance(paths, str) else list(paths)
    given = config.get("requests") or []
    given = [given] if isinstance(given, str) else list(given)
    for path in paths:
        if not fs.isfile(path):
            raise InputError(path, "the run was built from these results, now gone: the prior "
                                   "its requests.json fixed cannot be read back (restore it, "
                                   "or plan with --prior none)")
    return latest_recorded_priors(
        (path, given[i] if len(given) > 1 else (given[0] if given else None))
        for i, path in enumerate(paths))


def _refuse_dropping_the_prior(manifest: dict) -> None:
    """`--prior none` once a round of this loop recorded a learned prior: refused.

    The bands the build wrote rest on that prior (a query stops being asked once its samples
    and the prior decide it), so a round planned without it would either re-ask decided
    queries or leave queries the build bands under the prior undecided and never asked. A
    loop's prior is fixed once fitted; the samples still correct it.

    Raises:
      InputError: a prior is recorded (when the results are gone there is nothing to check
        against, and `--prior none` is what `_recorded_priors`' error line offers).
    """
    try:
        recorded = _recorded_priors(manifest)
    except InputError:
        return
    if recorded is not None:
        raise InputError("--prior", f"none: round {recorded.round} of this loop recorded a "
                                    "learned prior and the run's bands rest on it; plan later "
                                    "rounds with --prior learned (its samples still correct "
                                    "it), or start a new loop from a --policy none run")


def _rounded(value):
    """Floats rounded to 6 digits, through dicts and lists (the reliability table's record)."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def next_round(manifest: dict, run: str, k: int, options: PlanOptions = PlanOptions()
               ) -> tuple[int, list | None, str, dict]:
    """Which queries the next round of requests asks, and how many samples each.

    A run with no LLM policy's rollouts yet (`--policy none`, or a run of another policy)
    asks round 0: every query with texts (`wanted` None: k samples each), or only the
    reference set when `options.reference_share` < 1. A run built from results (or a live
    server) asks only its undecided queries, in the round after the last it read, each the
    samples the budget planner (`difficulty.planner.plan_round`: the Beta-Binomial
    preposterior rule with the robust per-query prior, bounded by the run's `k_max`) says it
    needs; a decided or exhausted query is never asked again (a query the build wrote decided
    stays decided, whatever this round's plan says of it).

    The learned prior (`options.prior`) is fitted once, on the first round that has measured
    queries (at least 10), and kept: the round's requests.json records the informative prior of
    every query not yet decided (`priors`: the learned Beta; `prior_mixtures`: the
    empirical-Bayes mixture the planner uses, difficulty.prior.PassRatePrior.mixture_prior,
    rounded to 9 digits as planned with) and later rounds read it back, so a query decided by
    its samples and prior stays decided. A query the build already decided under Beta(1, 1)
    keeps Beta(1, 1), so the fitted prior never reopens it.

    Returns:
      (round, wanted: [(query id, [sample indices])] or None for every query, a one-line
      description, the record's planner entries: {"planner": {...}, "priors": {...},
      "predicted": {...}}).
    """
    import numpy as np

    from data_contracts.readers.recorded_priors import UNIFORM, normalized
    from difficulty.estimate import BandConfig
    from difficulty.planner import MixturePrior, PlanConfig, plan_round
    from difficulty.prior import fit_prior, query_summaries
    from exports.source import read_phase

    options.check()
    planner = {"prior": options.prior, "skip_predicted": options.skip_predicted,
               "reference_share": options.reference_share}
    loop = manifest.get("rollouts") or {}
    if loop.get("source") not in ("results", "server"):
        if options.reference_share >= 1.0:
            return 0, None, "every query with texts (no rollouts read yet)", {"planner": planner}
        ids = text_queries(manifest, run).column("query_id").to_pylist()
        wanted = [(q, list(range(k))) for q in ids if in_reference(q, options.reference_share)]
        return 0, wanted, (f"round 0: the reference set, {len(wanted)} of {len(ids)} queries "
                           f"(share {options.reference_share:g})"), {"planner": planner}
    config = manifest["config"]
    rounds = [r["round"] for r in loop.get("rounds", [])]
    round_ = max(rounds) + 1 if rounds else 0
    table = text_queries(manifest, run, SUMMARY_COLUMNS)
    ids = table.column("query_id").to_pylist()
    difficulty = read_phase(manifest, "difficulty")
    scored = {} if difficulty is None else {
        r["query_id"]: r for r in difficulty.select(["query_id", "trials", "successes",
                                                     "decided"]).to_pylist()}
    successes = np.array([scored.get(q, {}).get("successes") or 0 for q in ids], np.int64)
    trials = np.array([scored.get(q, {}).get("trials") or 0 for q in ids], np.int64)
    # decided by the build (under the prior then in force): never asked again, as
    # plan_round's `previous` keeps a decided query decided for the in-pipeline planner
    decided = np.array([bool(scored.get(q, {}).get("decided")) for q in ids])
    prior = MixturePrior.single(np.ones(len(ids)), np.ones(len(ids)))
    recorded = _recorded_priors(manifest) if options.prior == "learned" else None
    if options.prior == "none":
        _refuse_dropping_the_prior(manifest)
    priors = mixtures = None
    if recorded is not None:
        prior = MixturePrior.from_rows([recorded.rows(q) for q in ids])
        priors, mixtures = recorded.priors, recorded.mixtures
        planner["fitted_in_round"] = "earlier"
    elif options.prior == "learned":
        features = query_summaries(table)[0]
        fitted = fit_prior(features, successes, trials, seed=int(config.get("seed", 0)))
        alpha, beta, _, _ = fitted.beta_prior(features)
        planner.update({"fitted_in_round": round_ if fitted.fitted else None,
                        "measured_queries": int((trials > 0).sum()),
                        "calibrated_mse": None if not fitted.fitted
                        else round(fitted.calibrated_mse, 6),
                        "reliability": [_rounded(b) for b in fitted.reliability],
                        "mixture_bins": [_rounded(b) for b in fitted.mixture_bins]})
        # a query the build already decided (under Beta(1, 1): no prior was in force) keeps
        # Beta(1, 1): a prior recorded for it could undo its decision in later builds
        priors = {q: [round(float(a), 9), round(float(b), 9)]
                  for q, a, b, done in zip(ids, alpha, beta, decided)
                  if (a != 1.0 or b != 1.0) and not done}
        # the recorded (rounded) mixture is the one planned with, now and in later rounds
        exact = fitted.mixture_prior(features)
        rows = [UNIFORM if done else r for r, done in zip(exact.rows(digits=9), decided)]
        informative = exact.informative() & ~decided
        mixtures = {q: r for q, r, keep in zip(ids, rows, informative) if keep}
        prior = MixturePrior.from_rows([normalized(r) for r in rows])
    bands = BandConfig(**config["bands"])
    k_max = max(int(config.get("k_max", k)), k)
    plan = plan_round(ids, successes, trials, bands,
                      PlanConfig(k0=k, k_max=k_max, skip_predicted=options.skip_predicted),
                      round_, prior=prior)
    statuses = ["decided" if done and status == "open" else status
                for status, done in zip(plan.column("status").to_pylist(), decided)]
    wanted = [(q, list(range(int(m)))) for q, m, status in zip(
        ids, plan.column("next_k").to_pylist(), statuses) if status == "open" and m > 0]
    predicted = {q: band for q, band, status in zip(ids, plan.column("band").to_pylist(),
                                                     statuses) if status == "predicted"}
    note = (f"round {round_}: {len(wanted)} undecided queries of {len(ids)} "
            f"({statuses.count('decided')} decided, {statuses.count('exhausted')} at k_max "
            f"{k_max}" + (f", {len(predicted)} predicted by the prior alone" if predicted
                          else "") + ")")
    entries = {"planner": planner}
    if priors or mixtures:
        entries["priors"] = priors or {}
    if mixtures:
        entries["prior_mixtures"] = mixtures
    if predicted:
        entries["predicted"] = predicted
    return round_, wanted, note, entries


def stale_requests(out: str) -> str | None:
    """When nothing is asked: a line naming the earlier export an OUT already holds (its
    requests.jsonl was asked in an earlier round; left in place, since results beside it are
    read against its requests.json), so a script does not submit it again; None if none."""
    from data_contracts import fs

    if not fs.isfile(fs.join(out, REQUESTS_FILE)):
        return None
    try:
        round_ = json.loads(fs.read_bytes(fs.join(out, REQUESTS_RECORD))).get("round")
    except (OSError, ValueError, AttributeError):
        round_ = None
    which = f"round {round_}'s" if isinstance(round_, int) else "an earlier round's"
    return (f"{fs.join(out, REQUESTS_FILE)} is {which} requests, already asked: do not submit "
            "it again")


def export_requests(run: str, out: str, options: RequestOptions,
                    template_path: str | None = None, cut: object = WordCut(300),
                    wanted: list[tuple[str, list[int]]] | None = None,
                    preset: str | None = None, plan_options: PlanOptions = PlanOptions()
                    ) -> dict:
    """Writes DIR/requests.jsonl and DIR/requests.json (atomically, replacing an earlier export).

    `preset` (exports.presets) picks the recipe's prompt, as the RL export of that preset does.

    Returns:
      The requests record (without its `queries` list, for printing).

    Raises:
      InputError: see build_requests and exports.publish.check_out.
    """
    manifest = load_manifest(run)
    check_out(out, manifest["_root"])
    rollout_format = manifest["config"].get("rollout_format", "permutation")
    check_preset(preset, rollout_format, run)
    template = load_template(template_path, rollout_format, cut, preset == "reasonrank")
    note, entries = None, {}
    if wanted is None and options.round is None:  # the next round the run needs
        round_, wanted, note, entries = next_round(manifest, run, options.k, plan_options)
        options = replace(options, round=round_)
        if wanted == []:
            return {"requests": 0, "query_count": 0, "round": round_, "note": note,
                    "stale": stale_requests(out)}
    elif options.round is None:
        options = replace(options, round=0)
    lines, record = build_requests(manifest, run, template, options, wanted)
    record["plan"] = note
    record.update(entries)

    def write(folder: str) -> None:
        with open(os.path.join(folder, REQUESTS_FILE), "wb") as handle:
            handle.writelines(lines)
        with open(os.path.join(folder, REQUESTS_RECORD), "wb") as handle:
            handle.write((json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False)
                          + "\n").encode("utf-8"))

    publish(out, write, REQUESTS_RECORD)
    return {k: v for k, v in record.items() if k != "queries"}
