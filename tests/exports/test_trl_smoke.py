"""TRL's GRPOTrainer and SFTTrainer run 2 steps each on this package's TRL export, with a tiny
randomly initialised model and a tokenizer built here from the export's own text (nothing is
downloaded). Needs the optional `[llm]` extra (trl, transformers); skipped without it."""
from __future__ import annotations

import os

import pytest

trl = pytest.importorskip("trl", reason="the [llm] extra (trl, transformers) is not installed")
transformers = pytest.importorskip("transformers", reason="transformers is not installed")
datasets = pytest.importorskip("datasets", reason="datasets is not installed")

from data_contracts.synthetic import SyntheticConfig  # noqa: E402
from exports.build import export_run  # noqa: E402
from exports.rewards import ranking_reward  # noqa: E402
from pipelines.build_curriculum import run  # noqa: E402
from pipelines.config import CurriculumConfig  # noqa: E402

pytestmark = pytest.mark.slow


def _tokenizer(texts):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(
        special_tokens=["<unk>", "<pad>", "<s>", "</s>"], vocab_size=4000))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
        eos_token="</s>")
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                               "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")
    return tokenizer


def _model(tokenizer):
    import torch

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    return transformers.LlamaForCausalLM(config)


def _exported(tmp_path, monkeypatch, n_queries: int):
    """A synthetic-text run exported for TRL: (the TRL folder, its export.json record)."""
    monkeypatch.setenv("WANDB_DISABLED", "true")
    result = run(CurriculumConfig(synthetic_kind="text", k=4, k_max=8,
                                  out=str(tmp_path / "run"),
                                  synthetic=SyntheticConfig(n_queries=n_queries)))
    out = str(tmp_path / "trl")
    return out, export_run(result.out, "trl", out, max_passage_words=12)


def _grpo_args(tmp_path, steps: int):
    """GRPO on CPU, groups of 2, the stage order kept (shuffle_dataset=False)."""
    return trl.GRPOConfig(output_dir=str(tmp_path / "grpo"), max_steps=steps,
                          per_device_train_batch_size=2, num_generations=2,
                          max_completion_length=8, shuffle_dataset=False, report_to=[],
                          use_cpu=True, save_strategy="no")


def test_grpo_and_sft_run_two_steps_on_the_exports(tmp_path, monkeypatch):
    out, record = _exported(tmp_path, monkeypatch, 40)
    stage = next(f for f in record["files"] if f["phase"] == "rl")
    grpo = datasets.load_dataset("parquet", data_files={"train": os.path.join(out, stage["path"])},
                                 split="train").select(range(2))
    sft = datasets.load_dataset("parquet", data_files={
        "train": os.path.join(out, "imitation.parquet")}, split="train").select(range(2))
    tokenizer = _tokenizer([m["content"] for r in sft for m in r["prompt"] + r["completion"]]
                           + [m["content"] for r in grpo for m in r["prompt"]])
    calls = []

    def reward(completions, **kwargs):
        values = ranking_reward(completions, **kwargs)
        calls.append(values)
        return values

    reward.__name__ = "ranking_reward"
    grpo_args = _grpo_args(tmp_path, 2)
    trainer = trl.GRPOTrainer(model=_model(tokenizer), reward_funcs=reward, args=grpo_args,
                              train_dataset=grpo, processing_class=tokenizer)
    trainer.train()
    assert trainer.state.global_step == 2
    assert calls and all(len(v) == 2 for v in calls)  # the product's reward scored each one
    sft_args = trl.SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=2,
                             per_device_train_batch_size=2, report_to=[], use_cpu=True,
                             save_strategy="no", max_length=4096)
    sft_trainer = trl.SFTTrainer(model=_model(tokenizer), args=sft_args,
                                 train_dataset=sft.remove_columns(["weight", "query_id"]),
                                 processing_class=tokenizer)
    sft_trainer.train()
    assert sft_trainer.state.global_step == 2


def test_grpo_reads_the_stages_in_curriculum_order(tmp_path, monkeypatch):
    """The README's TRL recipe: the stage files concatenated in export.json's order with
    `shuffle_dataset=False`; TRL's own sampler then hands out the rows stage by stage."""
    out, record = _exported(tmp_path, monkeypatch, 60)
    stages = [os.path.join(out, p) for p in record["order"] if p.startswith("rl/")]
    assert len(stages) >= 2
    data = datasets.concatenate_datasets([
        datasets.load_dataset("parquet", data_files={"train": s}, split="train")
        for s in stages])
    tokenizer = _tokenizer([m["content"] for r in data for m in r["prompt"]])
    args = _grpo_args(tmp_path, 1)
    trainer = trl.GRPOTrainer(model=_model(tokenizer), reward_funcs=ranking_reward, args=args,
                              train_dataset=data, processing_class=tokenizer)
    seen = []
    for index in trainer._get_train_sampler(data):
        if not seen or seen[-1] != index:
            seen.append(index)
    assert seen[:len(data)] == list(range(len(data)))  # file order, no shuffling
    order = [data[i]["stage"] for i in seen[:len(data)]]
    assert order == sorted(order)  # stage 0's rows, then stage 1's, ...
