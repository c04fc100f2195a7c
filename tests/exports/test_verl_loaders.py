"""The verl export read by verl's own code (extra `[verl]`; skipped without it): the command line
export.json writes composes with verl's Hydra config, its reward keys reach the export's
`compute_score` through verl's reward loading (the old top-level keys do not, in verl 0.9), and
verl's RLHFDataset and sampler read every stage file whole, in order, with no prompt cut or
dropped. A word-level tokenizer is built here from the export's own text (nothing downloaded)."""
from __future__ import annotations

import json
import os
import shlex

import pyarrow.parquet as pq
import pytest

verl = pytest.importorskip("verl", reason="the [verl] extra is not installed")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
hydra = pytest.importorskip("hydra")

from exports.build import export_run  # noqa: E402
from exports.rewards import compute_score  # noqa: E402
from exports.tokens import load_tokenizer  # noqa: E402
from pipelines.build_curriculum import main as build_main  # noqa: E402
from tests.pipelines.helpers import phase_table  # noqa: E402

pytestmark = pytest.mark.slow


def _tokenizer(texts, folder):
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, tokenizers.trainers.WordLevelTrainer(
        special_tokens=["<unk>", "<pad>", "<s>", "</s>"], vocab_size=8000))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>",
                                                pad_token="<pad>", bos_token="<s>",
                                                eos_token="</s>")
    fast.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                          "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")
    fast.save_pretrained(folder)
    return fast


def _compose(overrides):
    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with hydra.initialize_config_dir(config_dir=config_dir, version_base=None):
        return hydra.compose("ppo_trainer", overrides=overrides)


def test_verl_reads_the_export_as_the_readme_says(tmp_path):
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.trainer.ppo.utils import create_rl_dataset, create_rl_sampler

    run = str(tmp_path / "run")
    assert build_main(["--synthetic", "text", "--synthetic-queries", "60", "--k", "4",
                       "--k-max", "8", "--out", run]) == 0
    texts = []
    for phase in ("imitation", "rl"):
        for row in phase_table(run, phase).to_pylist():
            texts += [row["query_text"]] + row["doc_texts"]
    tokenizer = _tokenizer(texts + ["You are RankLLM system user assistant [ ] >"],
                           str(tmp_path / "tok"))
    out = str(tmp_path / "verl")
    record = export_run(run, "verl", out, counter=load_tokenizer(str(tmp_path / "tok")))
    assert record["lengths"]["unit"] == "tokens"
    command = record["commands"]["verl>=0.9"].replace("$OUT", out)
    overrides = shlex.split(command)[3:] + ["data.filter_overlong_prompts=True"]
    cfg = _compose(overrides)
    assert cfg.data.shuffle is False and list(cfg.data.train_files) == [
        os.path.join(out, f["path"]) for f in record["files"] if f["phase"] == "rl"]
    # the reward keys reach compute_score through verl's own loader
    fn = get_custom_reward_fn(cfg)
    row = pq.read_table(os.path.join(out, "val.parquet")).to_pylist()[0]
    truth = json.loads(row["reward_model"]["ground_truth"])
    ideal = " > ".join(f"[{j + 1}]" for j in sorted(
        range(len(truth["labels"])), key=lambda j: -truth["labels"][j]))
    got = fn(row["data_source"], ideal, row["reward_model"]["ground_truth"], row["extra_info"])
    assert got == compute_score(row["data_source"], ideal, row["reward_model"]["ground_truth"])
    assert got == 1.0
    # verl 0.9 ignores the old top-level keys (the export names them for 0.4-0.8 only)
    old = [o for o in shlex.split(record["commands"]["verl 0.4-0.8"].replace("$OUT", out))[3:]]
    try:
        old_cfg = _compose(old)
    except Exception:  # an unknown top-level key: refused rather than read
        old_cfg = None
    assert old_cfg is None or get_custom_reward_fn(old_cfg) is None
    # RLHFDataset reads every row, none cut or dropped at the export's max_prompt_length
    dataset = create_rl_dataset(list(cfg.data.train_files), cfg.data, tokenizer, None)
    rows = sum(f["rows"] for f in record["files"] if f["phase"] == "rl")
    assert len(dataset) == rows
    sampler = create_rl_sampler(cfg.data, dataset)
    order = list(iter(sampler))
    assert order == list(range(rows))
    stages = []
    for i in order:
        item = dataset[i]
        stages.append(item["extra_info"]["stage"])
        ids = item.get("input_ids")
        if ids is not None:
            assert len(ids) <= cfg.data.max_prompt_length
    assert stages == sorted(stages) and len(set(stages)) >= 2
    val = create_rl_dataset([os.path.join(out, "val.parquet")], cfg.data, tokenizer, None,
                            is_train=False)
    assert len(val) == record["validation"]["rows"] > 0
    # verl's SFT dataset reads the SFT rows (`messages`) at the export's max_length
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    max_length = record["lengths"]["settings"]["verl"]["sft data.max_length"]
    sft = MultiTurnSFTDataset([os.path.join(out, "imitation.parquet")], tokenizer,
                              {"max_length": max_length, "truncation": "error",
                               "messages_key": "messages", "pad_mode": "right"})
    sft_rows = next(f["rows"] for f in record["files"] if f["phase"] == "imitation")
    assert len(sft) == sft_rows
    item = sft[0]
    assert int(item["loss_mask"].sum()) > 0  # the demonstration is trained on
    assert int(item["attention_mask"].sum()) <= max_length
