"""A small text reranking set made for the tests, in every layout the text readers accept.

`make_text_fixture(folder)` writes, from one deterministic synthetic set (24 queries, 8 candidates
each): a BEIR folder (corpus, queries, qrels/test.tsv) with a first-stage TREC run and a teacher
run; the same as MS MARCO TSVs, as rank_llm request JSONL, as 3-column qrels, a gzip qrels and
2- and 3-column runs; and an LLM rollout log (JSONL, `generation` text) of 4 rollouts per query
in which some outputs are malformed (a missing id, a repeated id, an id out of range, no ranking)
and some wrap a well-formed ranking in extra text or a `<think>` block.
"""
from __future__ import annotations

import gzip
import json
import os

import numpy as np

from data_contracts.synthetic_text import SyntheticTextConfig, build, write_beir

CONFIG = SyntheticTextConfig(n_queries=24, candidates=8, shared_passages=40, seed=7)
ROLLOUTS_PER_QUERY = 4


def _malformed(i: int, r: int, order: list[int]) -> tuple[str, str | None]:
    """(generation, expected malformation) of rollout r of query i; `order` 0-based."""
    ids = [k + 1 for k in order]
    if r == 0 and i % 3 == 0:
        return " > ".join(f"[{k}]" for k in ids[:-1]), "missing_id"
    if r == 1 and i % 4 == 0:
        return " > ".join(f"[{k}]" for k in ids + [ids[0]]), "repeated_id"
    if r == 2 and i % 5 == 0:
        return " > ".join(f"[{k}]" for k in ids[:-1] + [len(ids) + 3]), "id_out_of_range"
    if r == 3 and i % 6 == 0:
        return "I am unable to rank these passages.", "no_ranking"
    perm = " > ".join(f"[{k}]" for k in ids)
    if r == 1:
        return f"<think>Passage [{ids[0]}] answers it best.</think>\n<answer>{perm}</answer>", None
    if r == 2:
        return f"Here is the ranking: {perm}. Done.", None
    return perm, None


def make_text_fixture(folder: str) -> dict:
    """Writes the fixture under `folder`; returns the paths and the expected counts.

    Returns:
      {"beir", "run", "teacher", "qrels", "qrels3", "qrels_gz", "run2", "run3", "msmarco",
       "rankllm", "rollouts": paths; "data": the set in memory (synthetic_text.build);
       "malformed": {reason: count} in the rollout log; "rollouts_total": rows in the log}.
    """
    beir = os.path.join(folder, "beir")
    paths = write_beir(beir, CONFIG)
    data = build(CONFIG)
    out = {"beir": beir, "run": paths["run"], "teacher": paths["teacher"],
           "qrels": paths["qrels"], "data": data}
    lines = [f"{q} 0 {d} {g}\n" for q, j in data["qrels"].items() for d, g in j.items()]
    out["qrels4"] = os.path.join(folder, "qrels.txt")
    with open(out["qrels4"], "w") as f:
        f.writelines(lines)
    out["qrels3"] = os.path.join(folder, "qrels3.txt")
    with open(out["qrels3"], "w") as f:
        f.writelines(f"{q} {d} {g}\n" for q, j in data["qrels"].items() for d, g in j.items())
    out["qrels_gz"] = os.path.join(folder, "qrels.txt.gz")
    with gzip.open(out["qrels_gz"], "wt") as f:
        f.writelines(lines)
    out["run2"] = os.path.join(folder, "run2.txt")
    out["run3"] = os.path.join(folder, "run3.tsv")
    with open(out["run2"], "w") as f2, open(out["run3"], "w") as f3:
        for q, ranked in data["run"].items():
            for rank, (d, _) in enumerate(ranked, 1):
                f2.write(f"{q} {d}\n")
                f3.write(f"{q}\t{d}\t{rank}\n")
    ms = os.path.join(folder, "msmarco")
    os.makedirs(ms)
    with open(os.path.join(ms, "collection.tsv"), "w") as f:
        f.writelines(f"{d}\t{t}\n" for d, t in sorted(data["corpus"].items()))
    with open(os.path.join(ms, "queries.tsv"), "w") as f:
        f.writelines(f"{q}\t{t}\n" for q, t in data["queries"].items())
    with open(os.path.join(ms, "qrels.tsv"), "w") as f:
        f.writelines(lines)
    out["msmarco"] = ms
    out["rankllm"] = os.path.join(folder, "requests.jsonl")
    with open(out["rankllm"], "w") as f:
        for q, ranked in data["run"].items():
            f.write(json.dumps({"query": {"text": data["queries"][q], "qid": q}, "candidates": [
                {"docid": d, "score": s, "doc": {"contents": data["corpus"][d]}}
                for d, s in ranked]}) + "\n")
    # The LLM's rollouts: a noisy version of the qrels' order, some outputs malformed.
    out["rollouts"] = os.path.join(folder, "rollouts.jsonl")
    malformed: dict[str, int] = {}
    total = 0
    with open(out["rollouts"], "w") as f:
        for i, (q, ranked) in enumerate(data["run"].items()):
            grades = np.array([data["qrels"][q].get(d, 0) for d, _ in ranked], float)
            for r in range(ROLLOUTS_PER_QUERY):
                rng = np.random.default_rng([i, r])
                order = np.argsort(-(grades + rng.normal(0, 0.8 + 0.1 * (i % 7), len(grades))),
                                   kind="stable").tolist()
                text, reason = _malformed(i, r, order)
                if reason:
                    malformed[reason] = malformed.get(reason, 0) + 1
                f.write(json.dumps({"query_id": q, "rollout_id": f"r{r}", "generation": text,
                                    "policy_id": "tiny-llm"}) + "\n")
                total += 1
    out["malformed"] = malformed
    out["rollouts_total"] = total
    return out
