"""The training phases of the LLM arm, with TRL's own trainers on the product's TRL export.

- `sft`: TRL's SFTTrainer on `imitation.parquet` (the teacher's rankings, prompt-completion
  conversational rows), constant learning rate, the validation loss (the teacher's rankings of
  `val.parquet`'s queries) every `eval_every` steps, and a copy of the weights at each of those
  steps, so the under-trained, converged and over-trained checkpoints are points of one run.
- `converged_step`: the first evaluated step whose validation loss is within `tolerance` of the
  run's minimum (relative).
- `grpo`: TRL's GRPOTrainer on the RL stages in curriculum order (`shuffle_dataset=False`), with
  the exported reward function `exports.rewards.ranking_reward` (what it returns, pass at the
  run's tau or the graded NDCG, is the export's `--reward-output`).
- `validation_pass_rate`: k sampled completions per validation query scored by that same reward
  function (the sweep's selection criterion; held-out queries are never used to choose).
"""
from __future__ import annotations

import copy
import json
import os

import numpy as np

from exports.build import completion_text
from exports.rewards import ranking_reward, score_generation
from trainers.llm.policy import generate


def _quiet():
    os.environ.setdefault("WANDB_DISABLED", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_rows(path: str) -> list[dict]:
    """A parquet file of the export as a list of rows."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def validation_sft_rows(val_rows: list[dict]) -> list[dict]:
    """The teacher's rankings of the validation queries as SFT rows (prompt, completion), the
    completion written as the export writes a demonstration (`exports.build.completion_text`)."""
    rows = []
    for row in val_rows:
        truth = json.loads(row["ground_truth"])
        order = truth["teacher_order"]
        text = completion_text(order, truth.get("rollout_format", "permutation"))
        rows.append({"prompt": row["prompt"],
                     "completion": [{"role": "assistant", "content": text}]})
    return rows


def sft(model, tokenizer, train_rows: list[dict], val_rows: list[dict], max_steps: int,
        eval_every: int, lr: float, batch: int, seed: int, out_dir: str) -> tuple[dict, list]:
    """Trains `model` in place with TRL's SFTTrainer for `max_steps` steps.

    Args:
      model: the policy (a causal LM).
      tokenizer: its tokenizer.
      train_rows: SFT rows ({prompt, completion} conversational, from imitation.parquet).
      val_rows: validation SFT rows (validation_sft_rows).
      max_steps: optimizer steps.
      eval_every: steps between validation losses (and weight snapshots).
      lr: the constant learning rate (AdamW, no warm-up).
      batch: rows per step.
      seed: the trainer's seed (shuffling).
      out_dir: TRL's output folder (nothing is saved there).

    Returns:
      (snapshots: {step: state dict copy}, curve: [(step, validation loss)]) at each evaluated
      step, step 0 (before training) included.
    """
    import datasets
    import transformers
    import trl

    _quiet()
    snapshots: dict[int, dict] = {}
    curve: list[tuple[int, float]] = []

    class Snapshot(transformers.TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            curve.append((int(state.global_step), float(metrics["eval_loss"])))
            snapshots[int(state.global_step)] = copy.deepcopy(model.state_dict())

    args = trl.SFTConfig(output_dir=out_dir, max_steps=max_steps, per_device_train_batch_size=batch,
                         per_device_eval_batch_size=64, learning_rate=lr,
                         lr_scheduler_type="constant", warmup_steps=0, eval_strategy="steps",
                         eval_steps=eval_every, logging_steps=eval_every, report_to=[],
                         use_cpu=True, save_strategy="no", seed=seed, data_seed=seed,
                         max_length=512, dataloader_num_workers=0, disable_tqdm=True,
                         bf16=False, gradient_checkpointing=False)
    trainer = trl.SFTTrainer(model=model, args=args,
                             train_dataset=datasets.Dataset.from_list(train_rows),
                             eval_dataset=datasets.Dataset.from_list(val_rows),
                             processing_class=tokenizer, callbacks=[Snapshot()])
    trainer.evaluate()  # step 0: the callback records it
    trainer.train()
    return snapshots, sorted(set(curve))


def converged_step(curve: list[tuple[int, float]], tolerance: float = 0.02) -> int:
    """The first evaluated step (> 0) whose validation loss is at most (1 + tolerance) times the
    curve's minimum: the steps to convergence on validation."""
    best = min(loss for step, loss in curve if step > 0)
    return next(step for step, loss in curve if step > 0 and loss <= best * (1 + tolerance))


def grpo(model, tokenizer, rows: list[dict], steps: int, lr: float, beta: float,
         generations: int, prompts_per_step: int, max_tokens: int, seed: int, out_dir: str,
         shuffle: bool = False) -> dict:
    """Trains `model` in place with TRL's GRPOTrainer on `rows` (the RL stages, in order).

    Args:
      model: the policy.
      tokenizer: its tokenizer.
      rows: GRPO rows (prompt, ground_truth, ...) from the export's rl/stage-NN.parquet files,
        concatenated in export.json's order.
      steps: optimizer steps (each `prompts_per_step` prompts x `generations` completions).
      lr: the constant learning rate.
      beta: the KL coefficient (TRL's default is 0.0: no reference model).
      generations: the group size G.
      prompts_per_step: prompts per step.
      max_tokens: max completion length (tokens).
      seed: the trainer's seed.
      out_dir: TRL's output folder (nothing is saved there).
      shuffle: TRL's seeded shuffle of `rows` (a plain GRPO run's uniform draw) instead of
        their order.

    Returns:
      {"reward": mean training reward, "frac_reward_zero_std": mean share of groups whose
       rewards were all equal (no advantage, no gradient), "steps": steps run}.
    """
    import datasets
    import trl

    _quiet()
    if beta > 0:  # TRL loads the KL reference from the model's path: the starting weights
        reference = os.path.join(out_dir, "reference")
        model.save_pretrained(reference)
        model.config._name_or_path = reference
    args = trl.GRPOConfig(output_dir=out_dir, max_steps=steps,
                          per_device_train_batch_size=prompts_per_step * generations,
                          num_generations=generations, max_completion_length=max_tokens,
                          learning_rate=lr, lr_scheduler_type="constant", warmup_steps=0,
                          beta=beta, temperature=1.0, top_k=0, shuffle_dataset=shuffle,
                          report_to=[], use_cpu=True, save_strategy="no", seed=seed,
                          data_seed=seed, logging_steps=1, disable_tqdm=True,
                          dataloader_num_workers=0, bf16=False,
                          gradient_checkpointing=False)
    trainer = trl.GRPOTrainer(model=model, reward_funcs=ranking_reward, args=args,
                              train_dataset=datasets.Dataset.from_list(rows),
                              processing_class=tokenizer)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    return {"reward": float(np.mean([h["reward"] for h in logs])) if logs else 0.0,
            "frac_reward_zero_std": float(np.mean([h.get("frac_reward_zero_std", 0.0)
                                                   for h in logs])) if logs else 1.0,
            "steps": int(trainer.state.global_step)}


def validation_pass_rate(model, tokenizer, val_rows: list[dict], k: int, max_tokens: int,
                         seed: int, batch_queries: int = 16) -> float:
    """Mean pass (at the run's tau) of k completions sampled at temperature 1 per validation
    query, scored by the exported reward's own scorer (`exports.rewards.score_generation`)."""
    passed = []
    for start in range(0, len(val_rows), batch_queries):
        chunk = val_rows[start:start + batch_queries]
        messages = [row["prompt"] for row in chunk for _ in range(k)]
        outs = generate(model, tokenizer, messages, 1.0, max_tokens, seed + start)
        truths = [row["ground_truth"] for row in chunk for _ in range(k)]
        for (text, stop, _, _, _), truth in zip(outs, truths):
            passed.append(float(stop and score_generation(text, truth)[1]))
    return float(np.mean(passed)) if passed else 0.0
