"""verl/TRL exports: atomic and whole, SFT modes and weights, presets and their rewards, lengths
in a tokenizer's tokens and passages cut by tokens, the default reward as the README says."""
from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from data_contracts.errors import InputError
from exports import build as export_build
from exports import publish as export_publish
from exports.build import export_run
from exports.presets import (rank_r1_compute_score, rank_r1_reward, reasonrank_compute_score,
                             reasonrank_reward, think_then_answer)
from exports.rewards import score_generation
from exports.tokens import TokenCounter
from pipelines.build_curriculum import main as build_main
from tests.pipelines.helpers import phase_table


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    perm, answer = str(root / "perm"), str(root / "answer")
    assert build_main(["--synthetic", "text", "--synthetic-queries", "40", "--k", "4",
                       "--k-max", "8", "--out", perm]) == 0
    assert build_main(["--synthetic", "text", "--synthetic-queries", "30", "--k", "4",
                       "--k-max", "4", "--rollout-format", "answer", "--reward", "ndcg@1>=1",
                       "--out", answer]) == 0
    return {"perm": perm, "answer": answer}


def _tree(folder):
    out = {}
    for here, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(here, name)
            out[os.path.relpath(path, folder)] = open(path, "rb").read()
    return out


def test_a_reexport_replaces_the_folder_whole(runs, tmp_path):
    out = str(tmp_path / "out")
    export_run(runs["perm"], "verl", out)
    os.makedirs(os.path.join(out, "rl"), exist_ok=True)
    with open(os.path.join(out, "rl", "stage-09.parquet"), "wb") as handle:
        handle.write(b"an earlier export's stage")
    record = export_run(runs["perm"], "trl", out)
    tree = _tree(out)
    assert "rl/stage-09.parquet" not in tree and "reward_fn.py" not in tree
    assert sorted(tree) == sorted([f["path"] for f in record["files"]]
                                  + ["val.parquet", "export.json"])
    assert [n for n in os.listdir(tmp_path) if n != "out"] == []  # no temporary folder left


@pytest.mark.parametrize("where", ["write", "swap"])
def test_a_killed_export_leaves_the_earlier_one(runs, tmp_path, monkeypatch, where):
    out = str(tmp_path / "out")
    export_run(runs["perm"], "verl", out)
    before = _tree(out)

    class Killed(BaseException):
        pass

    if where == "write":
        calls = []

        def dies(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise Killed()
            return real(*args, **kwargs)

        real = export_build._write
        monkeypatch.setattr(export_build, "_write", dies)
        with pytest.raises(Killed):
            export_run(runs["perm"], "trl", out)
        assert _tree(out) == before
    else:  # no atomic exchange and a kill between the two renames
        monkeypatch.setattr(export_publish, "_exchange", lambda a, b: False)
        real_rename = os.rename

        def rename(src, dst):
            real_rename(src, dst)
            if dst.endswith(".out.old"):
                raise Killed()

        monkeypatch.setattr(export_publish.os, "rename", rename)
        with pytest.raises(Killed):
            export_run(runs["perm"], "trl", out)
        monkeypatch.setattr(export_publish.os, "rename", real_rename)
        assert not os.path.exists(out)
        export_publish.check_out(out, runs["perm"])  # the next export puts the old one back
        assert _tree(out) == before
    assert sorted(os.listdir(tmp_path)) == ["out"]
    export_run(runs["perm"], "trl", out)  # and replaces it
    assert "reward_fn.py" not in _tree(out)


def test_a_folder_of_other_files_is_refused(runs, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="notes.txt"):
        export_run(runs["perm"], "trl", str(tmp_path / "out"))
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
    with pytest.raises(InputError, match="holds the run"):
        export_run(runs["perm"], "trl", os.path.dirname(runs["perm"]))
    with pytest.raises(InputError, match="inside the run folder"):  # another run's folder
        export_run(runs["perm"], "trl", os.path.join(runs["answer"], "rl", "x"))
    with pytest.raises(InputError, match="not an export|holds"):  # a folder holding a run
        export_run(runs["answer"], "trl", runs["perm"])


def test_sft_modes_and_repeated_weights(runs, tmp_path):
    imitation = {r["query_id"] for r in phase_table(runs["perm"], "imitation").to_pylist()}
    rl = {r["query_id"] for r in phase_table(runs["perm"], "rl").to_pylist()}
    export_run(runs["perm"], "trl", str(tmp_path / "all"), val_fraction=0.0)
    export_run(runs["perm"], "trl", str(tmp_path / "oor"), sft="out_of_rl", val_fraction=0.0)
    every = pq.read_table(str(tmp_path / "all" / "imitation.parquet")).to_pylist()
    assert {r["query_id"] for r in every} == imitation | rl
    oor = pq.read_table(str(tmp_path / "oor" / "imitation.parquet")).to_pylist()
    assert {r["query_id"] for r in oor} == imitation
    weights = {r["query_id"]: r["weight"] for r in every}
    positive = min(w for w in weights.values() if w > 0)
    export_run(runs["perm"], "trl", str(tmp_path / "rep"), weights="repeat", val_fraction=0.0)
    repeated = pq.read_table(str(tmp_path / "rep" / "imitation.parquet")).to_pylist()
    assert {r["weight"] for r in repeated} == {1.0}
    assert len(repeated) == sum(min(round(w / positive), 100) for w in weights.values())


def test_reasonrank_rows_and_reward(runs, tmp_path):
    out = str(tmp_path / "rr")
    record = export_run(runs["perm"], "verl", out, preset="reasonrank", output="value")
    rows = pq.read_table(os.path.join(out, "val.parquet")).to_pylist()
    row = rows[0]
    info = row["extra_info"]
    assert row["data_source"] == "ranking"
    truth = row["reward_model"]["ground_truth"]
    order = [int(t.strip("[] ")) for t in truth.split(">")]
    assert [info["initial_list"][k - 1] for k in order] == info["final_list"]
    assert sorted(order) == list(range(1, len(info["doc_ids"]) + 1))
    record_json = json.loads(info["reward_record"])
    assert set(info["relevant_docids"]) == {d for d, g in zip(record_json["doc_ids"],
                                                              record_json["labels"]) if g > 0}
    assert "<think>" in row["prompt"][-1]["content"]
    assert reasonrank_compute_score("ranking", truth, truth, info) == -1.0
    good = f"<think>because</think>\n<answer>{truth}</answer>"
    expected = score_generation(good, record_json)[0]
    assert reasonrank_compute_score("ranking", good, truth, info) == pytest.approx(expected)
    assert reasonrank_reward([good, "junk"], reward_record=[info["reward_record"]] * 2) == [
        pytest.approx(expected), -1.0]
    sft = pq.read_table(os.path.join(out, "imitation.parquet")).to_pylist()
    assert all(think_then_answer(r["messages"][-1]["content"]) for r in sft)
    assert "reasonrank" in record["reward_function"]["returns"] or \
        "<think>" in record["reward_function"]["returns"]
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("rr_reward", os.path.join(out, "reward_fn.py"))
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.compute_score is reasonrank_compute_score


def test_rank_r1_rows_and_reward(runs, tmp_path):
    with pytest.raises(InputError, match="--rollout-format answer"):
        export_run(runs["perm"], "trl", str(tmp_path / "no"), preset="rank-r1")
    out = str(tmp_path / "r1")
    export_run(runs["answer"], "trl", out, preset="rank-r1")
    row = pq.read_table(os.path.join(out, "val.parquet")).to_pylist()[0]
    truth = row["ground_truth"]
    assert truth.startswith("[") and truth.endswith("]") and truth[1:-1].isdigit()
    record = json.loads(row["reward_record"])
    k = int(truth[1:-1])
    assert record["labels"][k - 1] == max(record["labels"])
    good = f"<think>it is</think><answer>{truth}</answer>"
    assert rank_r1_compute_score("x", good, truth, {"reward_record": row["reward_record"]}) == 1.0
    assert rank_r1_compute_score("x", f"<answer>{truth}</answer>", truth,
                                 {"reward_record": row["reward_record"]}) == 0.0
    other = f"[{record['labels'].index(0.0) + 1}]"  # a passage that is not relevant
    assert rank_r1_reward([good, f"<think>t</think><answer>{other}</answer>"],
                          reward_record=[row["reward_record"]] * 2) == [1.0, 0.0]


class _Tokens:
    """A stand-in tokenizer: one token per character."""

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


def test_lengths_in_tokens_and_passages_cut_by_tokens(runs, tmp_path):
    counter = TokenCounter(_Tokens(), "chars")
    record = export_run(runs["perm"], "trl", str(tmp_path / "t"), counter=counter,
                        passage_tokens=7)
    lengths = record["lengths"]
    assert lengths["unit"] == "tokens" and lengths["tokenizer"] == "chars"
    row = pq.read_table(str(tmp_path / "t" / "val.parquet")).to_pylist()[0]
    prompt_chars = sum(len(m["content"]) for m in row["prompt"])
    assert lengths["prompt"]["min"] <= prompt_chars <= lengths["prompt"]["max"]
    lines = [x for x in row["prompt"][-1]["content"].split("\n") if x.startswith("[")]
    assert lines and all(len(x.split("] ", 1)[1]) <= 7 for x in lines)
    settings = lengths["settings"]
    assert settings["verl"]["data.max_prompt_length"] >= lengths["prompt"]["max"] * 1.1
    assert settings["trl"]["SFTConfig.max_length"] >= lengths["prompt"]["max"] + \
        lengths["completion"]["max"]
    assert record["template"]["passage_cut"] == {"unit": "tokens", "max": 7, "tokenizer": "chars"}


def test_a_local_hugging_face_tokenizer_counts_the_chat_prompt(runs, tmp_path):
    transformers = pytest.importorskip("transformers", reason="the [llm] extra is not installed")
    tokenizers = pytest.importorskip("tokenizers")
    from exports.tokens import load_tokenizer

    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.train_from_iterator(["a b c [ ] >"], tokenizers.trainers.WordLevelTrainer(
        special_tokens=["<unk>", "<pad>"]))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>",
                                                pad_token="<pad>")
    fast.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                          "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")
    folder = str(tmp_path / "tok")
    fast.save_pretrained(folder)
    counter = load_tokenizer(folder)
    assert counter.unit == "tokens" and counter.name == "tok"
    record = export_run(runs["perm"], "trl", str(tmp_path / "t"), counter=counter,
                        passage_tokens=5)
    row = pq.read_table(str(tmp_path / "t" / "val.parquet")).to_pylist()[0]
    text = fast.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    n = len(fast(text, add_special_tokens=False)["input_ids"])
    assert n > 100  # the whole prompt, not the keys of an encoding
    assert record["lengths"]["prompt"]["min"] <= n <= record["lengths"]["prompt"]["max"]
    with pytest.raises(InputError, match="not found"):
        load_tokenizer(str(tmp_path / "missing"))


def test_a_killed_exports_work_folder_is_cleared_by_the_next(tmp_path):
    stale = tmp_path / ".out.partial-4194999-abc"  # above Linux's largest pid: a dead process
    stale.mkdir()
    (stale / "export.json").write_text("{}")
    mine = tmp_path / f".out.partial-{os.getpid()}-abc"  # a live process's: kept
    mine.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    export_publish.check_out(str(tmp_path / "out"), str(run))
    assert not stale.exists() and mine.exists()
