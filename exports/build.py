"""Writes a curriculum run as verl or TRL datasets, in curriculum order, atomically.

Layout of an export folder `OUT` (both targets), built in a temporary folder and swapped in whole
(exports.publish):
  OUT/imitation.parquet          SFT rows (`--sft all`: every training query with a
                                 demonstration, imitation and RL; `out_of_rl`: the imitation
                                 phase only), query id order
  OUT/rl/stage-NN.parquet        one file per RL stage, rows in the stage's order (order key)
  OUT/val.parquet                the validation split (crc32 of the query id, the trainer's
                                 `is_validation` at `--val-fraction`), RL rows; these queries are
                                 left out of the SFT and RL files, as the trainer leaves them out
  OUT/export.json                files in order, counts, reward, template, lengths and the
                                 trainer settings they need, batch-size advice per stage
  OUT/reward_fn.py               (verl) the custom reward function file verl loads by path

verl RL rows: `data_source`, `prompt` (chat messages), `ability` ("reranking"), `reward_model`
{`style`: "rule", `ground_truth`}, `extra_info` {query_id, doc_ids, pass_rate, interval_low,
interval_high, band, stage, order_key, replay, policy_id, phase, index}. verl SFT rows (its
multi-turn SFT dataset reads `messages`): `messages` (prompt + the assistant's demonstration),
`data_source`, `weight`, `query_id`.

TRL rows: imitation.parquet is an SFT dataset (`prompt` messages, `completion` [one assistant
message: the teacher's ranking, after its reasoning in <think> when the input has one], `weight`,
`query_id`); rl/stage-NN.parquet and val.parquet are GRPO prompt datasets (`prompt`,
`ground_truth` (the reward's keyword argument), `query_id`, `stage`, `pass_rate`, `band`,
`order_key`, `replay`).

`weight` is the run's demonstration weight; TRL's SFTTrainer and verl's SFT trainer ignore
extra columns, so `--weights repeat` writes each row round(weight / smallest positive weight)
times (at most MAX_REPEAT) instead, with weight 1.

Presets (exports.presets): `reasonrank` and `rank-r1` change the data_source, ground truth,
extra_info, prompt and reward function as those recipes expect.

Passages are read from the run's shards and rendered with exports.prompts.render_prompt, the
renderer the sampling requests use.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data_contracts import fs
from data_contracts.arrays import list_lengths
from data_contracts.errors import InputError
from data_contracts.manifest import load_manifest
from data_contracts.teacher import teacher_orders, teacher_scores
from curricula.hashing import VAL_FRACTION, is_validation
from exports import presets
from exports.prompts import WordCut, load_template, render_prompt
from exports.publish import check_out, publish
from difficulty.rewards import parse_reward
from exports.rewards import ground_truth_record
from exports.source import check_texts, read_phase, run_identity
from exports.tokens import TokenCounter

TARGETS = ("verl", "trl")
EXPORT_NAME = "export.json"
SFT_MODES = ("all", "out_of_rl")
WEIGHT_MODES = ("column", "repeat")
REWARD_OUTPUTS = ("pass", "value")
MAX_REPEAT = 100
WORD_TOKENS = 3.0  # tokens per word assumed for settings when lengths are counted in words
MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
EXTRA_INFO = pa.struct([
    ("query_id", pa.string()), ("doc_ids", pa.list_(pa.string())), ("pass_rate", pa.float64()),
    ("interval_low", pa.float64()), ("interval_high", pa.float64()), ("band", pa.string()),
    ("stage", pa.int32()), ("order_key", pa.float64()), ("replay", pa.bool_()),
    ("policy_id", pa.string()), ("phase", pa.string()), ("index", pa.int64())])
REASONRANK_EXTRA = [("initial_list", pa.list_(pa.string())), ("final_list", pa.list_(pa.string())),
                    ("relevant_docids", pa.list_(pa.string())), ("reward_record", pa.string())]


def _verl_schema(preset: str | None) -> pa.Schema:
    extra = EXTRA_INFO if preset is None else pa.struct(list(EXTRA_INFO) + REASONRANK_EXTRA)
    return pa.schema([
        ("data_source", pa.string()), ("prompt", MESSAGES), ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", extra)])


VERL_SFT_SCHEMA = pa.schema([("messages", MESSAGES), ("data_source", pa.string()),
                             ("weight", pa.float32()), ("query_id", pa.string())])
TRL_SFT_SCHEMA = pa.schema([("prompt", MESSAGES), ("completion", MESSAGES),
                            ("weight", pa.float32()), ("query_id", pa.string())])


def _trl_grpo_schema(preset: str | None) -> pa.Schema:
    fields = [("prompt", MESSAGES), ("ground_truth", pa.string()), ("query_id", pa.string()),
              ("stage", pa.int32()), ("pass_rate", pa.float64()), ("band", pa.string()),
              ("order_key", pa.float64()), ("replay", pa.bool_())]
    return pa.schema(fields + ([("reward_record", pa.string())] if preset else []))


REWARD_FN = '''"""verl custom reward function of a rerank-curriculum export (exports/{module}.py).

verl 0.9+: reward.custom_reward_function.path=THIS_FILE reward.custom_reward_function.name={name}
verl 0.4-0.8: custom_reward_function.path=THIS_FILE custom_reward_function.name={name}
"""
from exports.{module} import {function} as {name}  # noqa: F401
'''


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
    table = read_phase(manifest, "difficulty")
    if table is None:
        return {}
    cols = table.select(["query_id", "policy_id", "interval_low", "interval_high"]).to_pylist()
    return {r["query_id"]: r for r in cols}


class _Rows:
    """Builds export rows of one run (its config, template, difficulty columns, preset)."""

    def __init__(self, manifest: dict, template, to: str, output: str, preset: str | None):
        config = manifest["config"]
        self.reward = config["reward"]
        self.ideal = parse_reward(self.reward).ideal  # qrels: the ground truth holds the ideal's
        self.rollout_format = config.get("rollout_format", "permutation")
        self.malformed = config.get("malformed", "fail")
        self.teacher = config.get("teacher", "auto")
        self.template, self.to, self.output, self.preset = template, to, output, preset
        self.difficulty = _difficulty(manifest)

    def _demonstrations(self, table: pa.Table):
        scores, has = teacher_scores(table, self.teacher)
        orders = teacher_orders(scores, list_lengths(table.column("doc_ids")))
        _, has_column = teacher_scores(table, "column")
        return orders, has, has_column

    def sft(self, table: pa.Table) -> tuple[pa.Table, dict]:
        """SFT rows of the queries with a demonstration; (rows, counts: queries without a
        demonstration, preset rows whose input had no reasoning)."""
        orders, has, _ = self._demonstrations(table)
        rows = []
        counts = {"sft_without_demonstration": 0, "sft_without_reasoning": 0}
        for i, row in enumerate(table.to_pylist()):
            if not has[i]:
                counts["sft_without_demonstration"] += 1
                continue
            messages = render_prompt(self.template, row["query_text"], row["doc_ids"],
                                     row["doc_texts"]).messages
            reasoning = row.get("teacher_reasoning")
            text = completion_text(orders[i], self.rollout_format, reasoning)
            if self.preset is not None and not reasoning:  # the recipe's structure, with the
                counts["sft_without_reasoning"] += 1        # empty think the input gives
                body = text if text.startswith("<answer>") else f"<answer>{text}</answer>"
                text = f"<think>\n</think>\n{body}"
            answer = {"role": "assistant", "content": text}
            weight = row.get("weight")
            weight = 1.0 if weight is None else weight
            if self.to == "trl":
                rows.append({"prompt": messages, "completion": [answer], "weight": weight,
                             "query_id": row["query_id"]})
            else:
                rows.append({"messages": messages + [answer], "data_source": self._source(row),
                             "weight": weight, "query_id": row["query_id"]})
        return pa.Table.from_pylist(rows, schema=TRL_SFT_SCHEMA if self.to == "trl"
                                    else VERL_SFT_SCHEMA), counts

    def _source(self, row: dict) -> str:
        if self.preset == "reasonrank":
            return presets.REASONRANK_DATA_SOURCE
        return f"rerank-curriculum/{row.get('source') or 'input'}"

    def rl(self, table: pa.Table, phase: str) -> pa.Table:
        """RL (GRPO) prompt rows of `table`, in its order."""
        orders, _, has_column = self._demonstrations(table)
        rows = []
        for i, row in enumerate(table.to_pylist()):
            prompt = render_prompt(self.template, row["query_text"], row["doc_ids"],
                                   row["doc_texts"])
            reference = orders[i] if has_column[i] else None
            record = json.dumps(ground_truth_record(
                row["doc_ids"], row["labels"], reference, self.reward, self.rollout_format,
                self.malformed, self.output,
                row.get("judged_labels") if self.ideal == "qrels" else None))
            truth, extra = record, {}
            if self.preset is not None:
                truth, extra = self._preset_truth(row, orders[i], prompt.candidate_order, record)
            diff = self.difficulty.get(row["query_id"], {})
            if self.to == "trl":
                out = {"prompt": prompt.messages, "ground_truth": truth,
                       "query_id": row["query_id"], "stage": row.get("stage"),
                       "pass_rate": row.get("pass_rate"), "band": row.get("band"),
                       "order_key": row.get("order_key"), "replay": row.get("replay")}
                if self.preset is not None:
                    out["reward_record"] = record
                rows.append(out)
                continue
            rows.append({"data_source": self._source(row), "prompt": prompt.messages,
                         "ability": "reranking",
                         "reward_model": {"style": "rule", "ground_truth": truth},
                         "extra_info": {"query_id": row["query_id"], "doc_ids": row["doc_ids"],
                                        "pass_rate": row.get("pass_rate"),
                                        "interval_low": diff.get("interval_low"),
                                        "interval_high": diff.get("interval_high"),
                                        "band": row.get("band"), "stage": row.get("stage"),
                                        "order_key": row.get("order_key"),
                                        "replay": row.get("replay"),
                                        "policy_id": diff.get("policy_id"), "phase": phase,
                                        "index": i, **extra}})
        schema = _trl_grpo_schema(self.preset) if self.to == "trl" else _verl_schema(self.preset)
        return pa.Table.from_pylist(rows, schema=schema)

    def _preset_truth(self, row: dict, order: list[int], listed: list[str], record: str):
        """(ground truth string, extra_info fields) of a preset row."""
        labels = row["labels"] or [0.0] * len(row["doc_ids"])
        ideal = sorted(range(len(labels)), key=lambda j: (-labels[j], j))
        final = order if order and len(order) == len(labels) else ideal
        position = {d: k for k, d in enumerate(listed, 1)}
        docs = row["doc_ids"]
        if self.preset == "rank-r1":
            truth = f"[{position[docs[ideal[0]]]}]"
        else:
            truth = " > ".join(f"[{position[docs[j]]}]" for j in final)
        return truth, {"initial_list": listed, "final_list": [docs[j] for j in final],
                       "relevant_docids": [d for d, g in zip(docs, labels) if g and g > 0],
                       "reward_record": record}


def _write(table: pa.Table, folder: str, relative: str, phase: str, stage: int | None) -> dict:
    path = os.path.join(folder, *relative.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path, compression="zstd", compression_level=3, row_group_size=1024,
                   write_statistics=True, use_dictionary=True)
    return {"path": relative, "phase": phase, "stage": stage, "rows": table.num_rows,
            "sha256": fs.sha256(path)}


def _repeat(table: pa.Table) -> pa.Table:
    """Each row round(weight / smallest positive weight) times (at most MAX_REPEAT), weight 1."""
    weights = np.asarray(table.column("weight").to_numpy(zero_copy_only=False), dtype=np.float64)
    positive = weights[weights > 0]
    if not len(positive):
        return table.slice(0, 0)
    copies = np.minimum(np.rint(weights / positive.min()), MAX_REPEAT).astype(np.int64)
    index = np.repeat(np.arange(table.num_rows), np.maximum(copies, 0))
    out = table.take(pa.array(index))
    return out.set_column(out.schema.get_field_index("weight"), "weight",
                          pa.array(np.ones(out.num_rows, dtype=np.float32)))


def _stats(values: list[int]) -> dict | None:
    if not values:
        return None
    return {"min": int(min(values)), "median": float(np.median(values)), "max": int(max(values))}


def _round_up(value: float, step: int = 256) -> int:
    return int(math.ceil(value / step) * step)


def _lengths(tables: dict, counter: TokenCounter, to: str) -> dict:
    """Prompt and completion lengths of the export and the trainer settings that fit them."""
    prompts, completions = [], []
    for (phase, _), table in tables.items():
        if phase == "imitation":
            for row in table.to_pylist():
                messages = row["messages"] if to == "verl" else row["prompt"] + row["completion"]
                completions.append(counter.text(messages[-1]["content"]))
                prompts.append(counter.prompt(messages[:-1]))
        else:
            prompts.extend(counter.prompt(m) for m in table.column("prompt").to_pylist())
    unit = counter.unit
    # words -> tokens: about 1.3 tokens a word for English in BPE vocabularies, 2-3 for rare or
    # made-up words (the synthetic set's); 3 keeps prompts whole, --tokenizer gives exact values
    factor, estimated = (1.0, False) if unit == "tokens" else (WORD_TOKENS, True)
    longest_prompt = max(prompts, default=0) * factor
    longest_completion = max(completions, default=0) * factor
    prompt_setting = _round_up(longest_prompt * 1.1 + 16)
    response_setting = _round_up(max(longest_completion * 1.5, 512))
    return {
        "unit": unit, "tokenizer": counter.name or None,
        "prompt": _stats(prompts), "completion": _stats(completions),
        "settings": {
            "estimated_from_words": estimated,
            "verl": {"data.max_prompt_length": prompt_setting,
                     "data.max_response_length": response_setting,
                     "data.filter_overlong_prompts": True,
                     "sft data.max_length": _round_up(prompt_setting + response_setting)},
            "trl": {"SFTConfig.max_length": _round_up(prompt_setting + response_setting),
                    "GRPOConfig.max_completion_length": response_setting,
                    "GRPOConfig.max_prompt_length (TRL versions that have it)": prompt_setting},
            "note": "headroom: prompts +10% (+16) and completions x1.5 (at least 512), rounded "
                    "up to 256; a reasoning policy writes longer completions than the teacher's "
                    "demonstrations: raise max_response_length for it"}}


def _batch_advice(stages: list[dict]) -> dict:
    """verl batch sizes for one run over every stage file (SequentialSampler, drop_last)."""
    rows = [s["rows"] for s in stages]
    if not rows:
        return {"train_batch_size": None, "stages": []}
    size = _power_of_two(min(rows), 1024)
    total = sum(rows)
    return {"train_batch_size": size, "total_rows": total,
            "steps_per_epoch": total // size, "rows_dropped_per_epoch": total % size,
            "note": "verl reads data.train_files in order with data.shuffle=False (a "
                    "SequentialSampler over the concatenated files) and its train data loader "
                    "drops the last partial batch (drop_last=True): rows_dropped_per_epoch of "
                    "the last stage are not trained on; a batch may span two stages. "
                    "train_batch_size is the largest power of two not above the smallest "
                    "stage, so each stage fills at least one batch; verl's default 1024 on a "
                    "smaller export gives an empty data loader.",
            "stages": [{"path": s["path"], "rows": s["rows"], "full_batches": s["rows"] // size}
                       for s in stages]}


def _power_of_two(rows: int, cap: int) -> int:
    """The largest power of two not above `rows` (at least 1) nor `cap`."""
    return min(cap, 1 << max(0, int(math.floor(math.log2(max(rows, 1))))))


def _commands(to: str, preset: str | None, files: list[dict], lengths: dict, advice: dict
              ) -> dict:
    """Command lines (verl 0.9 and 0.4-0.8, verl SFT) or TRL settings for this export; $OUT is
    the export folder, and the model, rollout and GPU settings are the user's own."""
    rl = [f"$OUT/{f['path']}" for f in files if f["phase"] == "rl"]
    sft_rows = sum(f["rows"] for f in files if f["phase"] == "imitation")
    name = "compute_score"
    verl = lengths["settings"]["verl"]
    if to == "verl":
        common = (f"data.train_files=[{','.join(rl)}] data.val_files=$OUT/val.parquet "
                  f"data.shuffle=False data.max_prompt_length={verl['data.max_prompt_length']} "
                  f"data.max_response_length={verl['data.max_response_length']} "
                  f"data.train_batch_size={advice.get('train_batch_size')}")
        return {"verl>=0.9": f"python -m verl.trainer.main_ppo {common} "
                             f"reward.custom_reward_function.path=$OUT/reward_fn.py "
                             f"reward.custom_reward_function.name={name}",
                "verl 0.4-0.8": f"python -m verl.trainer.main_ppo {common} "
                                f"custom_reward_function.path=$OUT/reward_fn.py "
                                f"custom_reward_function.name={name}",
                "verl sft": "torchrun -m verl.trainer.sft_trainer "
                            "data.train_files=$OUT/imitation.parquet data.messages_key=messages "
                            f"data.max_length={verl['sft data.max_length']} "
                            f"data.train_batch_size={_power_of_two(sft_rows, 256)}"}
    return {"trl reward_funcs": presets.TRL_FUNCTION[preset],
            "trl GRPO": "GRPOConfig(shuffle_dataset=False, max_completion_length="
                        f"{lengths['settings']['trl']['GRPOConfig.max_completion_length']}) on "
                        "the stage files concatenated in order",
            "trl SFT": f"SFTConfig(max_length={lengths['settings']['trl']['SFTConfig.max_length']})"
                       " on imitation.parquet"}


REWARD_DESCRIPTION = {
    "pass": "1.0 when the generation passes the run's reward at its threshold (the outcome the "
            "pass rates count), else 0.0; a malformed generation scores 0 (--malformed fail)",
    "value": "the run's reward value (the NDCG or the composite) of the parsed generation; 0 "
             "for a malformed one (--malformed fail)",
    "reasonrank": "-1 when the <think>/<answer> structure is missing, else the run's reward "
                  "value (ReasonRank's recipe)",
    "rank-r1": "1.0 when a <think> block precedes <answer> and the answer passes the run's "
               "reward, else 0.0 (Rank-R1's recipe)",
}


def export_run(run: str, to: str, out: str, template_path: str | None = None,
               max_passage_words: int = 300, output: str = "pass", *, sft: str = "all",
               weights: str = "column", preset: str | None = None,
               val_fraction: float | None = None, counter: TokenCounter | None = None,
               passage_tokens: int = 0) -> dict:
    """Exports a run for `to` (verl or trl) into `out`, atomically; returns the export record.

    Args:
      run: the run folder (or its manifest.json).
      to: `verl` or `trl`.
      out: the export folder (new, empty, or an earlier export; replaced whole).
      template_path: a prompt template JSON (exports/prompts.py); default: the built-in one for
        the run's rollout format (the preset's for a preset).
      max_passage_words: words kept per passage (0: all); ignored with `passage_tokens`.
      output: the default reward function's value: `pass` (1.0 when the generation passes the
        run's reward threshold: the outcome the pass rates count) or `value` (the graded value).
      sft: `all` (every training query with a demonstration) or `out_of_rl` (imitation only).
      weights: `column` (a `weight` column, ignored by TRL and verl) or `repeat`.
      preset: None, `reasonrank` or `rank-r1` (exports.presets).
      val_fraction: the validation fraction (default: the trainer's).
      counter: counts lengths (a tokenizer's tokens; default words).
      passage_tokens: cut passages to this many tokens of `counter`'s tokenizer (0: by words).

    Raises:
      InputError: the run is unusable (missing, changed, without texts), an option is out of
        range, the preset does not fit the run, or `out` is not a place to write an export.
    """
    if to not in TARGETS:
        raise InputError(out, f"unknown export target {to!r} (expected verl or trl)")
    for name, value, allowed in (("--reward-output", output, REWARD_OUTPUTS),
                                 ("--sft", sft, SFT_MODES), ("--weights", weights, WEIGHT_MODES),
                                 ("--preset", preset, (None,) + presets.PRESETS)):
        if value not in allowed:
            raise InputError(name, f"unknown value {value!r} (expected one of "
                                   f"{', '.join(str(a) for a in allowed if a)})")
    counter = counter or TokenCounter()
    val_fraction = VAL_FRACTION if val_fraction is None else val_fraction
    if not 0.0 <= val_fraction < 1.0:
        raise InputError("--val-fraction", f"{val_fraction} is outside [0, 1)")
    if passage_tokens and counter.tokenizer is None:
        raise InputError("--passage-tokens", "needs --tokenizer (a local tokenizer folder)")
    manifest = load_manifest(run)
    check_out(out, manifest["_root"])
    config = manifest["config"]
    rollout_format = config.get("rollout_format", "permutation")
    presets.check_preset(preset, rollout_format, run)
    from exports.prompts import TokenCut

    cut = TokenCut(counter, passage_tokens, counter.name) if passage_tokens \
        else WordCut(max_passage_words)
    template = load_template(template_path, rollout_format, cut, preset == "reasonrank")
    rows = _Rows(manifest, template, to, output, preset)
    tables: dict = {}
    counts = {"sft_without_demonstration": 0, "sft_without_reasoning": 0}

    def split(table: pa.Table) -> tuple[pa.Table, pa.Table]:
        val = pa.array(is_validation(table.column("query_id").to_pylist(), val_fraction))
        return table.filter(pc.invert(val)), table.filter(val)

    imitation = read_phase(manifest, "imitation")
    rl_all = read_phase(manifest, "rl")
    if imitation is None and rl_all is None:
        raise InputError(run, "the run has no imitation and no RL rows to export")
    for table in (imitation, rl_all):
        if table is not None:
            check_texts(table, run)
    val_parts = []
    sft_parts = []
    if imitation is not None and imitation.num_rows:
        train, val = split(imitation)
        sft_parts.append(train)
        val_parts.append(val)
    if rl_all is not None and rl_all.num_rows:
        first = rl_all.filter(pc.invert(rl_all.column("replay")))
        train, val = split(first)
        if sft == "all":
            sft_parts.append(train)
        val_parts.append(val)
    if sft_parts:
        table = pa.concat_tables(sft_parts, promote_options="default")
        table = table.take(pc.sort_indices(table, [("query_id", "ascending")]))
        sft_rows, sft_counts = rows.sft(table)
        counts.update(sft_counts)
        if weights == "repeat":
            sft_rows = _repeat(sft_rows)
        if sft_rows.num_rows:
            tables[("imitation", None)] = sft_rows
    for entry in manifest["curriculum"]:
        if entry["phase"] != "rl":
            continue
        table = read_phase(manifest, "rl", entry["stage"])
        if table is None or not table.num_rows:
            continue
        table, _ = split(table)
        if not table.num_rows:
            continue
        table = table.take(pc.sort_indices(table, [("order_key", "ascending"),
                                                   ("query_id", "ascending"),
                                                   ("replay", "ascending")]))
        tables[("rl", entry["stage"])] = rows.rl(table, "rl")
    val_parts = [t for t in val_parts if t.num_rows]
    if val_parts:
        val = pa.concat_tables(val_parts, promote_options="default")
        val = val.take(pc.sort_indices(val, [("query_id", "ascending")]))
        ids = val.column("query_id").to_pylist()
        val = val.take(pa.array([i for i, q in enumerate(ids) if i == 0 or ids[i - 1] != q],
                                pa.int64()))
    else:
        val = None
    val_rows = rows.rl(val, "validation") if val is not None else rows.rl(
        _empty_like(rl_all, imitation), "validation")
    lengths = _lengths({**tables, ("validation", None): val_rows}, counter, to)
    record_holder = {}

    def write(folder: str) -> None:
        files = []
        for (phase, stage), table in tables.items():
            relative = "imitation.parquet" if phase == "imitation" else \
                f"rl/stage-{stage:02d}.parquet"
            files.append(_write(table, folder, relative, phase, stage))
        val_entry = _write(val_rows, folder, "val.parquet", "validation", None)
        reward_key = preset or output
        if to == "verl":
            module = "presets" if preset else "rewards"
            function = presets.VERL_FUNCTION[preset]
            with open(os.path.join(folder, "reward_fn.py"), "w", encoding="utf-8") as handle:
                handle.write(REWARD_FN.format(module=module, function=function,
                                              name="compute_score"))
        rl_files = [f for f in files if f["phase"] == "rl"]
        advice = _batch_advice(rl_files)
        record = {"to": to, "preset": preset, "run": run_identity(manifest),
                  "run_config_hash": manifest.get("config_hash"), "reward": config["reward"],
                  "reward_ideal": parse_reward(config["reward"]).ideal,
                  "rollout_format": rollout_format, "malformed": config.get("malformed", "fail"),
                  "reward_output": output, "reward_function": {
                      "verl": "reward_fn.py:compute_score" if to == "verl" else None,
                      "trl": presets.TRL_FUNCTION[preset],
                      "returns": REWARD_DESCRIPTION[reward_key]},
                  "template": template.describe(), "sft": sft, "weights": weights,
                  "val_fraction": val_fraction, "validation": val_entry,
                  "counts": {**counts, "validation_queries": val_rows.num_rows},
                  "warnings": _warnings(val_rows.num_rows, tables, counts, advice),
                  "files": files, "order": [f["path"] for f in files],
                  "lengths": lengths, "batch_size": advice,
                  "commands": _commands(to, preset, files, lengths, advice)}
        with open(os.path.join(folder, EXPORT_NAME), "wb") as handle:
            handle.write((json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
        record_holder["record"] = record

    publish(out, write, EXPORT_NAME)
    return record_holder["record"]


def _warnings(val_rows: int, tables: dict, counts: dict, advice: dict) -> list[str]:
    """What a trainer would trip on in this export, one sentence each."""
    out = []
    if not val_rows:
        out.append("val.parquet has no rows (--val-fraction 0 or a small run): verl needs "
                   "data.val_files with rows; raise --val-fraction")
    if not any(phase == "rl" for phase, _ in tables):
        out.append("no RL stage has rows: nothing to train with GRPO")
    if ("imitation", None) not in tables:
        out.append("no SFT rows (no training query has a demonstration)")
    if counts.get("sft_without_reasoning"):
        out.append(f"{counts['sft_without_reasoning']} SFT rows have an empty <think> block "
                   "(the input has no teacher reasoning)")
    if advice.get("rows_dropped_per_epoch"):
        out.append(f"verl drops the last partial batch: {advice['rows_dropped_per_epoch']} rows "
                   f"per epoch at train_batch_size {advice['train_batch_size']}")
    return out


def _empty_like(*tables) -> pa.Table:
    return next(t for t in tables if t is not None).slice(0, 0)


__all__ = ["export_run", "completion_text", "TARGETS", "EXPORT_NAME"]
