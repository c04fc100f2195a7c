"""Each recipe's own public reward, run on the rows `--preset reasonrank` / `--preset rank-r1`
export, against the preset's reward (which scores with the product's reward code).

The recipes' rewards are in tests/exports/fixtures (ReasonRank's verl `ranking` reward, Rank-R1's
TRL `reward_func_setwise`; sources, commits and licences in their headers). Each is called in the
shape its trainer calls it: verl's `default_compute_score(data_source, solution_str,
reward_model.ground_truth, extra_info)` on a verl row, TRL's `reward_funcs(completions,
**columns)` with conversational completions on a TRL row.

They agree exactly on the format rule (penalty -1 / 0 without `<think>...</think>` followed,
across whitespace only, by `<answer>...</answer>`) and on malformed answers. Where they differ,
the difference is intentional (the trainer's reward is the one the pass rates were measured with)
and asserted exactly:

- ReasonRank, scored answers: the recipe's NDCG@10 uses binary gains (its `relevant_docids`), the
  product's the graded labels; its RBO is the `rbo` package's p=1 average overlap, the product's
  the extrapolated RBO_ext with p=0.9. Recall@10 agrees. So recipe - preset equals
  (NDCG_binary - NDCG_graded) + 0.1 * (AO - RBO_ext), to 1e-9.
- ReasonRank: ids separated by spaces only (`6 8 13`) and an answer with an id outside 1..n are
  scored by the recipe (it reads every digit run, drops indices past the list) and fail in the
  product's parser (`--malformed fail`): preset 0.
- Rank-R1: the recipe compares the answer text with `[k]` exactly, the product parses it: `k` or
  `[ k ]` pass the preset only. A passage tied with the ground truth's top label passes the
  preset (ndcg@1>=1) but not the recipe (whose data has one relevant passage). Two answer blocks:
  the recipe reads the first, the product's parser the last.
"""
from __future__ import annotations

import json
import os
import random
from importlib.util import module_from_spec, spec_from_file_location

import numpy as np
import pyarrow.parquet as pq
import pytest

from difficulty.generations import parse_generation
from difficulty.rewards import ndcg_of_rankings, rbo_of_rankings
from exports.build import export_run
from exports.presets import FORMAT_PENALTY, rank_r1_reward
from pipelines.build_curriculum import main as build_main
from tests.exports.fixtures import rankr1_reward, reasonrank_reward

pytest.importorskip("pytrec_eval", reason="ReasonRank's reward scores with pytrec_eval")

REASONRANK_REWARD = "ndcg@10+0.2*recall@10+0.1*rbo>=0.8"  # ReasonRank's reward, as a run's


def _rows(folder: str) -> list[dict]:
    paths = [os.path.join(here, n) for here, _, names in os.walk(folder) for n in names
             if n.endswith(".parquet") and n != "imitation.parquet"]
    return [r for p in sorted(paths) for r in pq.read_table(p).to_pylist()]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipes")
    perm, answer = str(root / "perm"), str(root / "answer")
    assert build_main(["--synthetic", "text", "--synthetic-queries", "12", "--k", "4",
                       "--k-max", "4", "--reward", REASONRANK_REWARD, "--out", perm]) == 0
    assert build_main(["--synthetic", "text", "--synthetic-queries", "12", "--k", "4",
                       "--k-max", "4", "--rollout-format", "answer", "--reward", "ndcg@1>=1",
                       "--out", answer]) == 0
    rr, r1 = str(root / "rr"), str(root / "r1")
    export_run(perm, "verl", rr, preset="reasonrank", output="value")
    export_run(answer, "trl", r1, preset="rank-r1")
    spec = spec_from_file_location("rr_reward_fn", os.path.join(rr, "reward_fn.py"))
    module = module_from_spec(spec)
    spec.loader.exec_module(module)  # the file verl's reward loader reads
    return {"reasonrank": _rows(rr), "rank-r1": _rows(r1), "verl_compute_score":
            module.compute_score}


def _think(answer: str) -> str:
    return f"<think>I compare the passages with the query.</think>\n<answer>{answer}</answer>"


def _product_terms(text: str, record: dict) -> tuple[float, float, float, list[str]]:
    """The product's NDCG@10 (graded labels), NDCG@10 (binary: label > 0) and RBO_ext (p=0.9,
    against the teacher's order) of a well-formed permutation answer, and its 1-based ids."""
    parsed = parse_generation(text, len(record["doc_ids"]), "permutation", "fail")
    assert parsed.ranking is not None, text
    ranking = np.asarray(parsed.ranking)[None, None, :]
    labels = np.asarray(record["labels"], dtype=np.float64)[None, :]
    mask = np.ones_like(labels, dtype=bool)
    graded = ndcg_of_rankings(ranking, labels, mask, 10)[0, 0]
    binary = ndcg_of_rankings(ranking, (labels > 0).astype(np.float64), mask, 10)[0, 0]
    reference = np.asarray(record["teacher_order"])[None, :]
    rbo_ext = rbo_of_rankings(ranking, reference, mask, 0.9)[0, 0]
    return graded, binary, rbo_ext, [str(j + 1) for j in parsed.ranking]


def test_reasonrank_recipe_reward_on_the_exported_rows(exported):
    preset_score = exported["verl_compute_score"]
    rows = [r for r in exported["reasonrank"] if r["extra_info"]["relevant_docids"]]
    assert len(rows) >= len(exported["reasonrank"]) // 2 and rows  # the rest: no relevant doc
    rng = random.Random(7)
    scored = agreed = 0
    for row in rows:
        source, truth = row["data_source"], row["reward_model"]["ground_truth"]
        info = row["extra_info"]
        record = json.loads(info["reward_record"])

        def both(text):
            return (reasonrank_reward.default_compute_score(source, text, truth, info),
                    preset_score(source, text, truth, info))

        ids = [t.strip("[] ") for t in truth.split(">")]
        n = len(ids)
        orders = [ids, ids[::-1], [str(k) for k in range(1, n + 1)]]
        orders += [rng.sample(ids, n) for _ in range(3)]
        for order in orders:  # well-formed: the exact difference of the two metrics
            for answer in (" > ".join(f"[{k}]" for k in order), "[" + ", ".join(order) + "]"):
                text = _think(answer)
                recipe, preset = both(text)
                graded, binary, rbo_ext, pred = _product_terms(text, record)
                assert pred == order
                average_overlap = reasonrank_reward.average_overlap(pred, ids)
                assert recipe == pytest.approx(
                    preset - graded + binary + 0.1 * (average_overlap - rbo_ext), abs=1e-9)
                assert recipe > 0 and preset > 0
                scored += 1
        perm = " > ".join(f"[{k}]" for k in orders[3])
        same = {
            "no think": f"<answer>{perm}</answer>",
            "no answer": f"<think>reasons</think>\n{perm}",
            "unclosed answer": f"<think>reasons</think>\n<answer>{perm}",
            "unclosed think": f"<think>reasons <answer>{perm}</answer>",
            "answer before think": f"<answer>{perm}</answer><think>reasons</think>",
            "text between": f"<think>reasons</think> So: <answer>{perm}</answer>",
            "upper-case tags": f"<THINK>reasons</THINK><ANSWER>{perm}</ANSWER>",
            "empty": "",
            "missing id": _think(" > ".join(f"[{k}]" for k in orders[3][:-1])),
            "repeated id": _think(" > ".join(f"[{k}]" for k in orders[3][:-1] + orders[3][:1])),
            "no ids": _think("none of them"),
            "empty answer": _think(""),
        }
        for name, text in same.items():
            recipe, preset = both(text)
            assert recipe == preset, (name, recipe, preset)
            if name in ("missing id", "repeated id", "no ids", "empty answer"):
                assert recipe == 0.0, name
            else:
                assert recipe == FORMAT_PENALTY, name
            agreed += 1
        # the recipe reads any digit runs and drops ids past the list; the product's parser
        # fails both (as the pass rates counted them)
        spaced = _think(" ".join(orders[3]))
        assert both(spaced) == (both(_think(perm))[0], 0.0)
        outside = orders[3][:-1] + [str(n + 5)]
        recipe, preset = both(_think(" > ".join(f"[{k}]" for k in outside)))
        docs = [info["initial_list"][int(k) - 1] for k in outside[:-1]]
        ndcg, recall = reasonrank_reward.ndcg_recall_at_10(docs, info["relevant_docids"])
        assert preset == 0.0
        assert recipe == pytest.approx(
            ndcg + 0.2 * recall + 0.1 * reasonrank_reward.average_overlap(outside, ids))
    assert scored >= 12 * len(rows) and agreed == 12 * len(rows)


def test_rank_r1_recipe_reward_on_the_exported_rows(exported):
    rows = [r for r in exported["rank-r1"] if max(json.loads(r["reward_record"])["labels"]) > 0]
    assert len(rows) >= len(exported["rank-r1"]) // 2 and rows  # the rest: no relevant passage
    for row in rows:
        truth, record = row["ground_truth"], json.loads(row["reward_record"])
        labels = record["labels"]
        top = max(labels)
        assert truth == f"[{labels.index(top) + 1}]"  # the recipe's ground-truth shape

        def both(texts):
            completions = [[{"role": "assistant", "content": t}] for t in texts]
            columns = {key: [row[key]] * len(texts) for key in row if key != "prompt"}
            return (rankr1_reward.reward_func_setwise(completions, **columns),
                    rank_r1_reward(completions, **columns))

        n = len(labels)
        chosen = [_think(f"[{k}]") for k in range(1, n + 1)]
        recipe, preset = both(chosen)
        assert recipe == [int(f"[{k}]" == truth) for k in range(1, n + 1)]
        assert preset == [float(labels[k - 1] == top) for k in range(1, n + 1)]  # ties at top
        k_true = int(truth[1:-1])
        other = next(k for k in range(1, n + 1) if labels[k - 1] < top)
        same = [f"<answer>{truth}</answer>", f"<think>x</think>\n{truth}", "",
                f"<think>x</think> so <answer>{truth}</answer>",
                f"<THINK>x</THINK><ANSWER>{truth}</ANSWER>", f"<think>x<answer>{truth}</answer>",
                _think(f"[{other}]"), _think(""), _think("no idea"), _think(f"[{n + 1}]"),
                _think(f"[{k_true}] or [{other}]"),
                f"<think>x</think>\n<answer>\n{truth} \n</answer>"]
        recipe, preset = both(same)
        assert recipe == [0] * (len(same) - 1) + [1]
        assert preset == [float(x) for x in recipe]
        # the product parses the answer; the recipe compares its text; last vs first answer block
        differ = [_think(str(k_true)), _think(f"[ {k_true} ]"),
                  _think(truth) + f"\n<answer>[{other}]</answer>",
                  _think(f"[{other}]") + f"\n<answer>{truth}</answer>"]
        assert both(differ) == ([0, 0, 1, 0], [1.0, 1.0, 0.0, 1.0])
