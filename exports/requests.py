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


def next_round(manifest: dict, run: str, k: int) -> tuple[int, list | None, str]:
    """Which queries the next round of requests asks, and how many samples each.

    A run with no LLM policy's rollouts yet (`--policy none`, or a run of another policy)
    asks every query with texts, round 0 (`wanted` None: k samples each). A run built from
    results (or a live server) asks only its undecided queries, in the round after the last
    it read, each the samples the budget planner (`difficulty.planner.plan_round`: the
    Beta-Binomial preposterior rule, bounded by the run's `k_max`) says it needs; a decided or
    exhausted query is never asked again.

    Returns:
      (round, wanted: [(query id, [sample indices])] or None for every query, a one-line
      description).
    """
    import numpy as np

    from difficulty.estimate import BandConfig
    from difficulty.planner import PlanConfig, plan_round
    from exports.source import read_phase

    loop = manifest.get("rollouts") or {}
    if loop.get("source") not in ("results", "server"):
        return 0, None, "every query with texts (no rollouts read yet)"
    config = manifest["config"]
    rounds = [r["round"] for r in loop.get("rounds", [])]
    round_ = max(rounds) + 1 if rounds else 0
    texts = set(text_queries(manifest, run).column("query_id").to_pylist())
    table = read_phase(manifest, "difficulty")
    scored = {} if table is None else {
        r["query_id"]: r for r in table.select(["query_id", "trials", "successes"]).to_pylist()}
    ids = sorted(texts)
    successes = np.array([scored.get(q, {}).get("successes") or 0 for q in ids], np.int64)
    trials = np.array([scored.get(q, {}).get("trials") or 0 for q in ids], np.int64)
    bands = BandConfig(**config["bands"])
    k_max = max(int(config.get("k_max", k)), k)
    plan = plan_round(ids, successes, trials, bands, PlanConfig(k0=k, k_max=k_max), round_)
    wanted = [(q, list(range(int(m)))) for q, m, status in zip(
        ids, plan.column("next_k").to_pylist(), plan.column("status").to_pylist())
        if status == "open" and m > 0]
    statuses = plan.column("status").to_pylist()
    note = (f"round {round_}: {len(wanted)} undecided queries of {len(ids)} "
            f"({statuses.count('decided')} decided, {statuses.count('exhausted')} at k_max "
            f"{k_max})")
    return round_, wanted, note


def export_requests(run: str, out: str, options: RequestOptions,
                    template_path: str | None = None, cut: object = WordCut(300),
                    wanted: list[tuple[str, list[int]]] | None = None,
                    preset: str | None = None) -> dict:
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
    note = None
    if wanted is None and options.round is None:  # the next round the run needs
        round_, wanted, note = next_round(manifest, run, options.k)
        options = replace(options, round=round_)
        if wanted == []:
            return {"requests": 0, "query_count": 0, "round": round_, "note": note}
    elif options.round is None:
        options = replace(options, round=0)
    lines, record = build_requests(manifest, run, template, options, wanted)
    record["plan"] = note

    def write(folder: str) -> None:
        with open(os.path.join(folder, REQUESTS_FILE), "wb") as handle:
            handle.writelines(lines)
        with open(os.path.join(folder, REQUESTS_RECORD), "wb") as handle:
            handle.write((json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False)
                          + "\n").encode("utf-8"))

    publish(out, write, REQUESTS_RECORD)
    return {k: v for k, v in record.items() if k != "queries"}
