"""Embedded text default (`--synthetic text`): a deterministic generator of a text reranking set.

The text sibling of data_contracts/synthetic.py. Words are made from syllables; each of
`n_topics` topics owns `topic_words` words. A query picks a topic and 2-4 of its words. Each query
has `candidates` candidate passages: a few written for it with a graded relevance 0-3 (a passage
of grade g holds about g of the query's words among its topic's words and filler), and distractors
drawn from a shared pool of off-topic passages (shared across queries, so a corpus join is a
join). Per query, a difficulty in [0, 1] blurs the first-stage scores (lexical overlap plus noise),
so some queries are easy for a policy that follows the first stage and some nearly impossible.
The qrels judge every passage written for the query (grades 0-3); the first-stage run lists the
candidates by that noisy score; the teacher run orders them by grade plus a little noise (good but
imperfect, as a strong LLM's listwise rankings are).

Knobs (`SyntheticTextConfig`): n_queries=200, candidates=20, n_topics=30, topic_words=14,
passage_words=30, shared_passages=300, seed=0, split=train. The same config gives the same files and
batches, byte for byte.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa

from data_contracts import fs
from data_contracts.readers.base import QueryBatch

_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qu", "do", "fe",
              "gi", "ho", "ju")


@dataclass(frozen=True)
class SyntheticTextConfig:
    """Knobs of the text generator (see the module docstring)."""

    n_queries: int = 200
    candidates: int = 20
    n_topics: int = 30
    topic_words: int = 14
    passage_words: int = 30
    shared_passages: int = 300
    seed: int = 0
    split: str = "train"


def _word(index: int) -> str:
    a, b, c = index % 16, (index // 16) % 16, (index // 256) % 16
    return _SYLLABLES[a] + _SYLLABLES[b] + _SYLLABLES[c]


def _rng(cfg: SyntheticTextConfig, key: str) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, zlib.crc32(key.encode())])


def _topic_words(cfg: SyntheticTextConfig, topic: int) -> list[str]:
    return [_word(topic * cfg.topic_words + j) for j in range(cfg.topic_words)]


def _filler(rng: np.random.Generator, cfg: SyntheticTextConfig, n: int) -> list[str]:
    base = cfg.n_topics * cfg.topic_words  # filler words belong to no topic
    return [_word(base + int(i)) for i in rng.integers(0, 200, size=n)]


def _shared(cfg: SyntheticTextConfig) -> list[tuple[str, str, int]]:
    out = []
    for k in range(cfg.shared_passages):
        rng = _rng(cfg, f"shared-{k}")
        topic = int(rng.integers(cfg.n_topics))
        words = list(rng.choice(_topic_words(cfg, topic), size=cfg.passage_words // 3))
        words += _filler(rng, cfg, cfg.passage_words - len(words))
        rng.shuffle(words)
        out.append((f"s{k:05d}", " ".join(words), topic))
    return out


def build(cfg: SyntheticTextConfig = SyntheticTextConfig()) -> dict:
    """The whole set in memory: queries, corpus, qrels, first-stage run and teacher run.

    Returns:
      {"queries": {qid: text}, "corpus": {docid: text}, "qrels": {qid: {docid: grade}},
       "run": {qid: [(docid, score), ...] best first}, "teacher": {qid: [(docid, score), ...]}}.
    """
    shared = _shared(cfg)
    queries, corpus, qrels, run, teacher = {}, {d: t for d, t, _ in shared}, {}, {}, {}
    for i in range(cfg.n_queries):
        qid = f"tq-{cfg.split}-{i:05d}"
        rng = _rng(cfg, qid)
        topic = int(rng.integers(cfg.n_topics))
        words = _topic_words(cfg, topic)
        terms = list(rng.choice(words, size=int(rng.integers(2, 5)), replace=False))
        queries[qid] = " ".join(terms)
        n_own = int(rng.integers(3, 8))
        grades = rng.choice(4, size=n_own, p=[0.35, 0.3, 0.2, 0.15])
        grades[0] = max(int(grades[0]), 1)  # every query has a relevant passage
        judged = {}
        for j, g in enumerate(grades.tolist()):
            pid = f"{qid}-p{j}"
            hits = [terms[t % len(terms)] for t in range(g + int(rng.integers(0, 2)) * (g > 0))]
            body = list(rng.choice(words, size=cfg.passage_words // 3)) + hits * 2
            body += _filler(rng, cfg, cfg.passage_words - len(body))
            rng.shuffle(body)
            corpus[pid] = " ".join(body)
            judged[pid] = g
        qrels[qid] = judged
        others = rng.choice(len(shared), size=cfg.candidates - n_own, replace=False)
        cands = list(judged) + [shared[int(k)][0] for k in sorted(others.tolist())]
        difficulty = float(rng.uniform(0, 1))
        term_set = set(terms)
        overlap = np.array([sum(w in term_set for w in corpus[d].split()) for d in cands], float)
        score = overlap + rng.normal(0, 0.3 + 4.0 * difficulty, size=len(cands))
        order = np.argsort(-score, kind="stable")
        run[qid] = [(cands[j], round(float(score[j]), 4)) for j in order]
        grade = np.array([judged.get(d, 0) for d in cands], float)
        t_score = grade + rng.normal(0, 0.4, size=len(cands))
        t_order = np.argsort(-t_score, kind="stable")
        teacher[qid] = [(cands[j], round(float(t_score[j]), 4)) for j in t_order]
    return {"queries": queries, "corpus": corpus, "qrels": qrels, "run": run, "teacher": teacher}


def _write_run(path: str, run: dict, tag: str) -> None:
    lines = [f"{qid} Q0 {doc} {rank} {score:.4f} {tag}\n" for qid, ranked in run.items()
             for rank, (doc, score) in enumerate(ranked, 1)]
    fs.write_bytes(path, "".join(lines).encode())


def write_beir(folder: str, cfg: SyntheticTextConfig = SyntheticTextConfig()) -> dict:
    """Writes the set as a BEIR folder plus TREC runs; returns their paths.

    Files: `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`, `run.trec` (first stage) and
    `teacher.trec` (the teacher's order), all under `folder`.
    """
    data = build(cfg)
    corpus = "".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n"
                     for d, t in sorted(data["corpus"].items()))
    queries = "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in data["queries"].items())
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{g}\n" for q, judged in data["qrels"].items() for d, g in judged.items())
    paths = {"folder": folder, "corpus": fs.join(folder, "corpus.jsonl"),
             "queries": fs.join(folder, "queries.jsonl"),
             "qrels": fs.join(folder, "qrels", f"{cfg.split}.tsv"),
             "run": fs.join(folder, "run.trec"), "teacher": fs.join(folder, "teacher.trec")}
    fs.write_bytes(paths["corpus"], corpus.encode())
    fs.write_bytes(paths["queries"], queries.encode())
    fs.write_bytes(paths["qrels"], qrels.encode())
    _write_run(paths["run"], data["run"], "synthetic-bm25")
    _write_run(paths["teacher"], data["teacher"], "synthetic-teacher")
    return paths


def generate_text(cfg: SyntheticTextConfig = SyntheticTextConfig(), batch_size: int = 256
                  ) -> Iterator[QueryBatch]:
    """Yields the set as featurized query batches (as the BEIR reader would read it)."""
    from data_contracts.readers.text import candidate_rows, featurized_batches

    data = build(cfg)
    rows = candidate_rows(data["run"], "synthetic:text", data["queries"], data["corpus"],
                           data["qrels"], data["teacher"], "synthetic-text", cfg.split)
    return featurized_batches(rows, batch_size)


def generate_text_table(cfg: SyntheticTextConfig = SyntheticTextConfig()) -> pa.Table:
    """The whole set as one validated-shape table (QUERY_SCHEMA), e.g. a held-out split:
    `SyntheticTextConfig(split="heldout", n_queries=300)` has query ids of its own."""
    return pa.concat_tables([b.queries for b in generate_text(cfg)])
