"""Writes a curriculum run's imitation and RL stages as verl or TRL datasets, in curriculum order.

Layout of an export folder `OUT` (both targets):
  OUT/imitation.parquet          behavior cloning (SFT) rows, query id order
  OUT/rl/stage-NN.parquet        one file per RL stage, rows in the stage's order (order key)
  OUT/export.json                the files in curriculum order, counts, the reward and template
  OUT/reward_fn.py               (verl) the custom reward function file verl loads by path

verl rows (every file): `data_source`, `prompt` (chat messages), `ability` ("reranking"),
`reward_model` {`style`: "rule", `ground_truth`: JSON of exports.rewards.ground_truth_record},
`extra_info` {query_id, doc_ids, pass_rate, interval_low, interval_high, band, stage, order_key,
replay, policy_id, phase, index}; imitation rows also carry `response` (the teacher's ranking).

TRL rows: imitation.parquet is an SFT dataset (`prompt` messages, `completion` [one assistant
message: the teacher's ranking, after its reasoning in <think> when the input has one], `weight`,
`query_id`); rl/stage-NN.parquet are GRPO prompt datasets (`prompt`, `ground_truth` (the
reward's keyword argument), `query_id`, `stage`, `pass_rate`, `band`, `order_key`, `replay`).

Passages are read from the run's shards (stored once per query) and rendered into the prompt with
exports.prompts; a run without texts (a feature input) cannot be exported.
"""
from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.manifest import files_of, load_manifest
from data_contracts.teacher import teacher_orders, teacher_scores
from data_contracts.arrays import list_lengths
from exports.prompts import Template, WordCut, load_template, render_prompt
from exports.rewards import ground_truth_record

TARGETS = ("verl", "trl")
EXPORT_NAME = "export.json"
MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
EXTRA_INFO = pa.struct([
    ("query_id", pa.string()), ("doc_ids", pa.list_(pa.string())), ("pass_rate", pa.float64()),
    ("interval_low", pa.float64()), ("interval_high", pa.float64()), ("band", pa.string()),
    ("stage", pa.int32()), ("order_key", pa.float64()), ("replay", pa.bool_()),
    ("policy_id", pa.string()), ("phase", pa.string()), ("index", pa.int64())])
VERL_SCHEMA = pa.schema([
    ("data_source", pa.string()), ("prompt", MESSAGES), ("ability", pa.string()),
    ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
    ("extra_info", EXTRA_INFO)])
VERL_SFT_SCHEMA = VERL_SCHEMA.append(pa.field("response", pa.string()))
TRL_SFT_SCHEMA = pa.schema([("prompt", MESSAGES), ("completion", MESSAGES),
                            ("weight", pa.float32()), ("query_id", pa.string())])
TRL_GRPO_SCHEMA = pa.schema([
    ("prompt", MESSAGES), ("ground_truth", pa.string()), ("query_id", pa.string()),
    ("stage", pa.int32()), ("pass_rate", pa.float64()), ("band", pa.string()),
    ("order_key", pa.float64()), ("replay", pa.bool_())])
REWARD_FN = '''"""verl custom reward function of a rerank-curriculum export (exports/rewards.py).

verl: custom_reward_function.path=THIS_FILE custom_reward_function.name=compute_score
"""
from exports.rewards import compute_score  # noqa: F401
'''


def _read(paths: list[str]) -> pa.Table | None:
    tables = []
    for path in paths:
        with fs.open_input(path) as handle:
            table = pq.read_table(handle)
        tables.append(table.drop_columns([c for c in ("features",) if c in table.column_names]))
    return pa.concat_tables(tables, promote_options="default") if tables else None


def completion_text(order: list[int], rollout_format: str, reasoning: str | None = None) -> str:
    """The teacher's ranking as the LLM should write it ([k] 1-based in prompt order)."""
    if rollout_format == "answer":
        answer = f"<answer>[{order[0] + 1}]</answer>"
    else:
        answer = " > ".join(f"[{j + 1}]" for j in order)
        if reasoning:
            answer = f"<answer>{answer}</answer>"
    return f"<think>{reasoning}</think>\n{answer}" if reasoning else answer


def _difficulty(manifest: dict) -> dict:
    table = _read(files_of(manifest, "difficulty"))
    if table is None:
        return {}
    cols = table.select(["query_id", "policy_id", "interval_low", "interval_high"]).to_pylist()
    return {r["query_id"]: r for r in cols}


class _Rows:
    """Builds export rows of one run (its config, template, difficulty columns)."""

    def __init__(self, manifest: dict, template: Template, to: str, output: str):
        config = manifest["config"]
        self.reward = config["reward"]
        self.rollout_format = config.get("rollout_format", "permutation")
        self.malformed = config.get("malformed", "fail")
        self.teacher = config.get("teacher", "auto")
        self.template, self.to, self.output = template, to, output
        self.difficulty = _difficulty(manifest)

    def build(self, table: pa.Table, phase: str, run: str) -> pa.Table:
        if table.num_rows and table.column("query_text").null_count:
            raise InputError(run, "the run holds no query and passage texts (a feature input): "
                                  "verl and TRL exports need a text input (beir, msmarco, trec "
                                  "with texts, rankllm, hf with text columns, --synthetic text)")
        scores, has = teacher_scores(table, self.teacher)
        orders = teacher_orders(scores, list_lengths(table.column("doc_ids")))
        _, has_column = teacher_scores(table, "column")
        rows = []
        for i, row in enumerate(table.to_pylist()):
            messages = render_prompt(self.template, row["query_text"], row["doc_ids"],
                                     row["doc_texts"]).messages
            reference = orders[i] if has_column[i] else None
            truth = json.dumps(ground_truth_record(row["doc_ids"], row["labels"], reference,
                                                   self.reward, self.rollout_format,
                                                   self.malformed, self.output))
            diff = self.difficulty.get(row["query_id"], {})
            if self.to == "trl" and phase == "imitation":
                rows.append({"prompt": messages, "completion": [
                    {"role": "assistant", "content": completion_text(
                        orders[i], self.rollout_format, row.get("teacher_reasoning"))}],
                    "weight": row.get("weight", 1.0), "query_id": row["query_id"]})
                continue
            if self.to == "trl":
                rows.append({"prompt": messages, "ground_truth": truth,
                             "query_id": row["query_id"], "stage": row.get("stage"),
                             "pass_rate": row["pass_rate"], "band": row["band"],
                             "order_key": row.get("order_key"), "replay": row.get("replay")})
                continue
            out = {"data_source": f"rerank-curriculum/{row.get('source') or 'input'}",
                   "prompt": messages, "ability": "reranking",
                   "reward_model": {"style": "rule", "ground_truth": truth},
                   "extra_info": {"query_id": row["query_id"], "doc_ids": row["doc_ids"],
                                  "pass_rate": row["pass_rate"],
                                  "interval_low": diff.get("interval_low"),
                                  "interval_high": diff.get("interval_high"),
                                  "band": row["band"], "stage": row.get("stage"),
                                  "order_key": row.get("order_key"), "replay": row.get("replay"),
                                  "policy_id": diff.get("policy_id"), "phase": phase,
                                  "index": i}}
            if phase == "imitation":
                out["response"] = completion_text(orders[i], self.rollout_format,
                                                  row.get("teacher_reasoning")) if has[i] else None
            rows.append(out)
        schema = {("trl", "imitation"): TRL_SFT_SCHEMA, ("trl", "rl"): TRL_GRPO_SCHEMA,
                  ("verl", "imitation"): VERL_SFT_SCHEMA, ("verl", "rl"): VERL_SCHEMA}[
                      (self.to, phase)]
        return pa.Table.from_pylist(rows, schema=schema)


def _write(table: pa.Table, out: str, relative: str, phase: str, stage: int | None) -> dict:
    path = fs.join(out, relative)
    with fs.open_write(path) as handle:
        pq.write_table(table, handle, compression="zstd", compression_level=3,
                       row_group_size=1024, write_statistics=True, use_dictionary=True)
    return {"path": relative, "phase": phase, "stage": stage, "rows": table.num_rows,
            "sha256": fs.sha256(path)}


def _check_out(out: str, run_root: str) -> None:
    """An export folder is new, empty or an earlier export, and never inside the run."""
    if not fs.is_remote(out):
        real_out, real_run = os.path.realpath(out), os.path.realpath(run_root)
        if real_out == real_run or real_out.startswith(real_run + os.sep):
            raise InputError(out, "the export folder is inside the run folder (exports never go "
                                  "inside a run)")
    if fs.isdir(out) and fs.list_files(out, 1) and not fs.exists(fs.join(out, EXPORT_NAME)):
        raise InputError(out, f"folder exists and is not an export (no {EXPORT_NAME}); name a "
                              "new or empty folder")


def export_run(run: str, to: str, out: str, template_path: str | None = None,
               max_passage_words: int = 300, output: str = "value") -> dict:
    """Exports a run for `to` (verl or trl) into `out`; returns the export record.

    Args:
      run: the run folder (or its manifest.json).
      to: `verl` or `trl`.
      out: the export folder (new, empty, or an earlier export).
      template_path: a prompt template JSON (exports/prompts.py); default: the built-in one for
        the run's rollout format.
      max_passage_words: words kept per passage in the prompt (0: all).
      output: the reward functions' value: `value` (the reward) or `pass` (1.0 when it passes).

    Raises:
      InputError: the run is unusable (missing, changed, without texts) or `out` is not a place
        to write an export.
    """
    if to not in TARGETS:
        raise InputError(out, f"unknown export target {to!r} (expected verl or trl)")
    if output not in ("value", "pass"):
        raise InputError(out, f"unknown reward output {output!r} (expected value or pass)")
    manifest = load_manifest(run)
    _check_out(out, manifest["_root"])
    config = manifest["config"]
    template = load_template(template_path, config.get("rollout_format", "permutation"),
                             WordCut(max_passage_words))
    rows = _Rows(manifest, template, to, output)
    files = []
    imitation = _read(files_of(manifest, "imitation"))
    if imitation is not None and imitation.num_rows:
        imitation = imitation.take(pc.sort_indices(imitation, [("query_id", "ascending")]))
        files.append(_write(rows.build(imitation, "imitation", run), out, "imitation.parquet",
                            "imitation", None))
    for entry in manifest["curriculum"]:
        if entry["phase"] != "rl":
            continue
        stage = entry["stage"]
        table = _read(files_of(manifest, "rl", stage))
        if table is None or not table.num_rows:  # an empty stage writes no file
            continue
        table = table.take(pc.sort_indices(table, [("order_key", "ascending"),
                                                   ("query_id", "ascending"),
                                                   ("replay", "ascending")]))
        files.append(_write(rows.build(table, "rl", run), out, f"rl/stage-{stage:02d}.parquet",
                            "rl", stage))
    if to == "verl":
        fs.write_bytes(fs.join(out, "reward_fn.py"), REWARD_FN.encode())
    record = {"to": to, "run_config_hash": manifest.get("config_hash"), "reward": config["reward"],
              "rollout_format": config.get("rollout_format", "permutation"),
              "malformed": config.get("malformed", "fail"), "reward_output": output,
              "template": template.describe(),
              "files": files, "order": [f["path"] for f in files]}
    fs.write_bytes(fs.join(out, EXPORT_NAME),
                   (json.dumps(record, indent=2, sort_keys=True) + "\n").encode(), durable=True)
    return record
