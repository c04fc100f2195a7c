"""The LLM arm's task and its measurement, through the product's own commands.

The task: the synthetic text set (`data_contracts.synthetic_text`) written as BEIR folders, a
training split and the generator's held-out split (`split="heldout"`: query ids of its own), each
query's first `depth` first-stage candidates reranked (`--candidate-depth`), passages cut to
`passage_words` words in the prompt. The reward is the build's default, `ndcg@10>=0.7` with the
window's ideal: a rollout passes at tau = 0.7.

A measurement of a policy on the held-out queries is the README's LLM loop: the held-out run built
once with `--policy none`; its requests (`pipelines.export --to requests`, k samples per query at
temperature 1); the policy's answers (`policy.sample_requests`); `pipelines.build_curriculum
--rollouts` on them; and the metrics read from that build's `difficulty` shards (`metrics`).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass

import numpy as np

from data_contracts.synthetic_text import SyntheticTextConfig, write_beir
from exports.source import read_phase
from pipelines import build_curriculum, export
from data_contracts.manifest import load_manifest
from trainers.llm.policy import sample_requests

REWARD = "ndcg@10>=0.7"
TAU = 0.7


@dataclass(frozen=True)
class Task:
    """The listwise task's sizes (the full run's defaults)."""

    train_queries: int = 400
    heldout_queries: int = 64
    candidates: int = 8      # generated per query (the generator writes up to 7 of its own)
    depth: int = 5           # reranked per query: the first stage's top `depth`
    generator_words: int = 12
    passage_words: int = 8
    data_seed: int = 0


def _quiet_call(main, argv: list[str], log: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(argv)}\n{out.getvalue()}{err.getvalue()}\n")
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({code}): {err.getvalue().strip()}")


def _inputs(paths: dict, task: Task, split: str) -> list[str]:
    return ["--input", paths["folder"], "--input-format", "beir", "--candidates", paths["run"],
            "--teacher-run", paths["teacher"], "--candidate-depth", str(task.depth),
            "--split", split, "--reward", REWARD]


def prepare(work: str, task: Task, log: str) -> dict:
    """Writes the two splits, builds the training run (the in-pipeline policy's pass rates make
    its curriculum), exports it for TRL twice (`--reward-output pass` and `value`), and builds the
    held-out run with `--policy none` (phase pending, ready for requests).

    Returns:
      {"train": BEIR paths, "heldout": BEIR paths, "trl": export folder (pass reward),
       "trl_value": export folder (graded reward), "heldout_run": the pending held-out run,
       "train_pending": the training split built with `--policy none` (for the SFT policy's
       requests: the equal-compute control)}.
    """
    sets = {}
    for split, n in (("train", task.train_queries), ("heldout", task.heldout_queries)):
        sets[split] = write_beir(os.path.join(work, "data", split), SyntheticTextConfig(
            n_queries=n, candidates=task.candidates, passage_words=task.generator_words,
            seed=task.data_seed, split=split))
    train_run = os.path.join(work, "runs", "train")
    _quiet_call(build_curriculum.main, _inputs(sets["train"], task, "train")
                + ["--out", train_run], log)
    out = {"train": sets["train"], "heldout": sets["heldout"]}
    for key, output in (("trl", "pass"), ("trl_value", "value")):
        out[key] = os.path.join(work, "exports", key)
        _quiet_call(export.main, [train_run, "--to", "trl", "--out", out[key],
                                  "--passage-words", str(task.passage_words),
                                  "--reward-output", output], log)
    for key, split in (("heldout_run", "heldout"), ("train_pending", "train")):
        out[key] = os.path.join(work, "runs", f"{split}-r0")
        _quiet_call(build_curriculum.main, _inputs(sets[split], task, split)
                    + ["--policy", "none", "--out", out[key]], log)
    return out


def export_requests(prepared: dict, task: Task, out: str, k: int, max_tokens: int, seed: int,
                    log: str, run: str = "heldout_run") -> str:
    """A pending run's requests (k samples per query, temperature 1; `run`: the key in
    `prepared`, the held-out queries by default); returns requests.jsonl."""
    _quiet_call(export.main, [prepared[run], "--to", "requests", "--out", out,
                              "--model", "llm-arm", "--k", str(k), "--temperature", "1",
                              "--max-tokens", str(max_tokens), "--seed", str(seed),
                              "--passage-words", str(task.passage_words)], log)
    return os.path.join(out, "requests.jsonl")


def metrics(run: str) -> dict:
    """The policy's numbers from a `--rollouts` build's difficulty shards.

    Returns:
      {"pass_rate": passing rollouts / rollouts; "informative": share of queries whose k
       rollouts neither all pass nor all fail (a GRPO group with a non-zero advantage under
       the pass reward); "malformed": rollouts the build counted malformed (truncated at
       max_tokens included) / rollouts; "ndcg10": mean NDCG@10 of the rollouts (window ideal,
       malformed = 0); "pass_at_k": share of queries with at least one passing rollout of k;
       "queries", "rollouts"}.
    """
    table = read_phase(load_manifest(run), "difficulty")
    trials = np.asarray(table.column("trials").to_pylist(), dtype=np.float64)
    successes = np.asarray(table.column("successes").to_pylist(), dtype=np.float64)
    malformed = np.asarray([m or 0 for m in table.column("malformed_rollouts").to_pylist()],
                           dtype=np.float64)
    reward = np.asarray(table.column("reward_mean").to_pylist(), dtype=np.float64)
    return {"pass_rate": float(successes.sum() / trials.sum()),
            "informative": float(np.mean((successes > 0) & (successes < trials))),
            "malformed": float(malformed.sum() / trials.sum()),
            "ndcg10": float(np.sum(reward * trials) / trials.sum()),
            "pass_at_k": float(np.mean(successes > 0)),
            "queries": int(len(trials)), "rollouts": int(trials.sum())}


def measure(model, tokenizer, prepared: dict, task: Task, requests: str, folder: str,
            log: str) -> dict:
    """One measurement of `model` on the held-out queries (see the module docstring): the
    sampler's output lines in `folder`/results.jsonl (beside a copy of requests.json, which the
    build reads), the build in `folder`/run, and its `metrics` plus the samples' entropy."""
    results, sampled = _sample(model, tokenizer, requests, folder)
    run = os.path.join(folder, "run")
    _quiet_call(build_curriculum.main, _inputs(prepared["heldout"], task, "heldout")
                + ["--rollouts", results, "--out", run], log)
    return {**metrics(run), "entropy": sampled["entropy"]}


def _sample(model, tokenizer, requests: str, folder: str) -> tuple[str, dict]:
    """The policy's answers to `requests` in `folder`/results.jsonl, beside a copy of the
    export's requests.json (the build reads it); returns (results path, sampler's numbers)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(os.path.dirname(requests), "requests.json"), "rb") as src, \
            open(os.path.join(folder, "requests.json"), "wb") as dst:
        dst.write(src.read())
    results = os.path.join(folder, "results.jsonl")
    return results, sample_requests(model, tokenizer, requests, results)


def curricula_from_results(prepared: dict, task: Task, results: str, folder: str,
                           log: str) -> dict:
    """The training queries' two curricula from one results file of the policy's samples.

    Builds `pipelines.build_curriculum --rollouts results` twice on the training split: with the
    default bands and routing (too_hard out of RL) and with `--no-filter-hard` (too_hard with
    rollouts to RL), and exports each `--to trl` (pass reward, the arm's passage cut). The build
    reads the requests.json beside `results`.

    Args:
      prepared: `prepare`'s paths.
      task: the task's sizes.
      results: OpenAI batch output lines answering `export_requests(..., run="train_pending")`.
      folder: where the builds and exports go (`filtered`, `unfiltered`, `trl-filtered`,
        `trl-unfiltered`).
      log: the commands log.

    Returns:
      {"filtered": TRL export folder, "unfiltered": TRL export folder, "bands": {band: queries}
       of the SFT policy's samples, "train": `metrics` of those samples}.

    Raises:
      RuntimeError: a product command failed (its error line).
    """
    out = {}
    for side, extra in (("filtered", []), ("unfiltered", ["--no-filter-hard"])):
        run = os.path.join(folder, side)
        _quiet_call(build_curriculum.main, _inputs(prepared["train"], task, "train")
                    + ["--rollouts", results, *extra, "--out", run], log)
        out[side] = os.path.join(folder, f"trl-{side}")
        _quiet_call(export.main, [run, "--to", "trl", "--out", out[side], "--passage-words",
                                  str(task.passage_words), "--reward-output", "pass"], log)
    run = os.path.join(folder, "filtered")
    bands = read_phase(load_manifest(run), "difficulty").column("band").to_pylist()
    out["bands"] = {b: bands.count(b) for b in sorted(set(bands))}
    out["train"] = metrics(run)
    return out


def measure_training(model, tokenizer, prepared: dict, task: Task, k: int, max_tokens: int,
                     seed: int, folder: str, log: str) -> dict:
    """The policy's pass rates on the training queries and the two curricula they decide (the
    README's LLM loop, step 6): requests of the `--policy none` training run (k samples per
    query), the policy's answers, `curricula_from_results`. Returns its dict."""
    requests = export_requests(prepared, task, os.path.join(folder, "requests"), k, max_tokens,
                               seed, log, run="train_pending")
    results, _ = _sample(model, tokenizer, requests, os.path.join(folder, "sample"))
    return curricula_from_results(prepared, task, results, folder, log)


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
