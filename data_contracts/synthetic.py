"""Embedded default input: a deterministic generator of reranking data in the canonical contract.

Each query has a latent relevance per document and an *intent*: which of the informative feature
groups carries the relevance signal for it (imbalanced on purpose, so some behaviors are rare and
demonstration diversity matters). Documents get graded labels 0-4 by quantizing the latent
relevance; features are noisy views of it, with a per-query noise scale spread from easy to nearly
impossible; noise features carry nothing. The teacher scores each document from the latent
relevance plus its own noise: good but imperfect, so behavior cloning can reach the teacher and RL
can beat it on the reward.

Knobs (`SyntheticConfig`) and defaults:
  n_queries=800, docs per query 8..40, n_groups=4 informative groups of group_width=4 features,
  n_noise=8 noise features, 2 intent-hint features, intent_probs=(0.55, 0.25, 0.15, 0.05),
  query noise scale log-uniform in [0.15, 3.0], teacher_noise=0.35, seed=0.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa

from data_contracts.readers.base import QueryBatch, rows_to_batch


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the embedded generator (see the module docstring for what each does)."""

    n_queries: int = 800
    min_docs: int = 8
    max_docs: int = 40
    n_groups: int = 4
    group_width: int = 4
    n_noise: int = 8
    intent_probs: tuple = (0.55, 0.25, 0.15, 0.05)
    noise_low: float = 0.15
    noise_high: float = 3.0
    teacher_noise: float = 0.35
    seed: int = 0
    split: str = "train"

    @property
    def n_features(self) -> int:
        return self.n_groups * self.group_width + self.n_noise + 2


def _query(cfg: SyntheticConfig, index: int) -> dict:
    query_id = f"syn-{cfg.split}-{index:06d}"
    rng = np.random.default_rng([cfg.seed, zlib.crc32(query_id.encode())])
    n = int(rng.integers(cfg.min_docs, cfg.max_docs + 1))
    intent = int(rng.choice(cfg.n_groups, p=np.asarray(cfg.intent_probs) / sum(cfg.intent_probs)))
    noise = float(np.exp(rng.uniform(np.log(cfg.noise_low), np.log(cfg.noise_high))))
    latent = rng.normal(size=n)
    # Labels: most documents are irrelevant, a few are highly relevant (graded 0-4).
    cuts = np.quantile(latent, [0.45, 0.7, 0.87, 0.96]) + rng.normal(0, 0.05, size=4)
    labels = np.searchsorted(np.sort(cuts), latent).astype(np.float32)
    features = []
    for g in range(cfg.n_groups):
        strength = 1.0 if g == intent else 0.15  # the intent's group carries the signal
        block = strength * latent[:, None] + noise * rng.normal(size=(n, cfg.group_width))
        features.append(block)
    features.append(rng.normal(size=(n, cfg.n_noise)))
    hint = np.zeros((n, 2))  # the intent, noisily visible at query level (like query features)
    angle = 2 * np.pi * intent / cfg.n_groups
    hint[:] = [np.cos(angle) + rng.normal(0, 0.2), np.sin(angle) + rng.normal(0, 0.2)]
    features.append(hint)
    matrix = np.concatenate(features, axis=1).astype(np.float32)
    teacher = (latent + cfg.teacher_noise * rng.normal(size=n)).astype(np.float32)
    return {
        "query_id": query_id, "doc_ids": [f"{query_id}-d{d:03d}" for d in range(n)],
        "features": matrix, "labels": labels.tolist(), "teacher_scores": teacher.tolist(),
        "source": "synthetic", "split": cfg.split, "_location": f"synthetic:{cfg.split}#{index}",
    }


def generate(cfg: SyntheticConfig = SyntheticConfig(), batch_size: int = 256
             ) -> Iterator[QueryBatch]:
    """Yields the synthetic dataset as query batches; identical for the same config."""
    for start in range(0, cfg.n_queries, batch_size):
        rows = [_query(cfg, i) for i in range(start, min(cfg.n_queries, start + batch_size))]
        yield rows_to_batch(rows, [], step="read")


def generate_table(cfg: SyntheticConfig = SyntheticConfig()) -> pa.Table:
    """The whole synthetic dataset as one table (for tests and small tools)."""
    return pa.concat_tables([b.queries for b in generate(cfg)])


def config_from_dict(data: dict) -> SyntheticConfig:
    """A config recorded as JSON (a manifest's), back as a SyntheticConfig."""
    return SyntheticConfig(**{**data, "intent_probs": tuple(data["intent_probs"])})


def describe(cfg: SyntheticConfig = SyntheticConfig()) -> str:
    """The config's knobs and what it generates, as Markdown (the README quotes it verbatim).

    Every number is read from `cfg` or counted in `generate_table(cfg)`, never typed by hand:
    documents per query (smallest, largest, mean) and the share of each graded label.

    Returns:
      a Markdown table and one line of counts, ending in a newline.
    """
    table = generate_table(cfg)
    sizes = np.asarray([len(d) for d in table.column("doc_ids").to_pylist()])
    labels = np.concatenate([np.asarray(v) for v in table.column("labels").to_pylist()])
    values, counts = np.unique(labels, return_counts=True)
    shares = ", ".join(f"{v:g}: {c / labels.size:.1%}" for v, c in zip(values, counts))
    probs = " / ".join(f"{p:g}" for p in cfg.intent_probs)
    rows = [
        ("queries (`--synthetic-queries`)", f"{cfg.n_queries}"),
        ("documents per query", f"{cfg.min_docs} to {cfg.max_docs}, uniform"),
        ("features", f"{cfg.n_features}: {cfg.n_groups} informative groups of {cfg.group_width}, "
                     f"{cfg.n_noise} noise features, 2 query-level intent hints"),
        ("intent probabilities (which group carries a query's signal)", probs),
        ("query noise scale", f"log-uniform from {cfg.noise_low:g} to {cfg.noise_high:g}"),
        ("teacher noise (sd, on the true relevance)", f"{cfg.teacher_noise:g}"),
        ("seed", f"{cfg.seed}"),
    ]
    lines = ["| knob | default |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), "",
             f"Generated: {table.num_rows} queries, {labels.size} documents ({sizes.min()} to "
             f"{sizes.max()} per query, mean {sizes.mean():.1f}); graded labels {shares}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m data_contracts.synthetic --out DIR`: writes DIR/defaults.md (`describe`)."""
    import argparse
    import os

    parser = argparse.ArgumentParser(prog="python -m data_contracts.synthetic",
                                     description="Writes OUT/defaults.md: the embedded default "
                                                 "input's knobs and what they generate.")
    parser.add_argument("--out", required=True, help="folder to write defaults.md into")
    args = parser.parse_args(argv)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.exit(2, f"error: --out {args.out} exists and is not a folder\n")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "defaults.md"), "w", encoding="utf-8") as handle:
        handle.write(describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
