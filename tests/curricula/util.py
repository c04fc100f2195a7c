"""Small scored tables (SCORED_QUERY_SCHEMA) built by hand for routing and pipeline tests."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from data_contracts.schema import SCORED_QUERY_SCHEMA


def scored_row(qid: str, band: str, *, n_docs: int = 4, labels="graded", teacher=None,
               trials: int = 16, successes: int | None = None, zero_variance: bool = False,
               n_features: int = 3, seed: int = 0) -> dict:
    """One scored query. labels: "graded" (0..n-1), "zeros", None (no labels) or a list."""
    rng = np.random.default_rng(seed)
    if isinstance(labels, str):
        labels = ([float(i % 5) for i in range(n_docs)] if labels == "graded"
                  else [0.0] * n_docs)
    if successes is None:
        successes = {"too_hard": 0, "learnable": trials // 2, "too_easy": trials}[band]
    rate = (successes + 1.0) / (trials + 2.0)
    return {
        "query_id": qid, "doc_ids": [f"{qid}-d{j}" for j in range(n_docs)],
        "features": rng.normal(size=(n_docs, n_features)).astype(np.float32).tolist(),
        "labels": labels, "teacher_scores": teacher, "teacher_order": None,
        "source": "test", "split": "train", "policy_id": "base",
        "trials": trials, "successes": successes, "pass_rate": rate,
        "interval_low": max(rate - 0.1, 0.0), "interval_high": min(rate + 0.1, 1.0),
        "pass_at_k": 1.0 if successes else 0.0, "reward_mean": rate,
        "reward_std": 0.0 if zero_variance else 0.3, "zero_variance": zero_variance,
        "band": band, "band_confidence": 0.95, "decided": True, "rule": "test",
    }


def scored_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCORED_QUERY_SCHEMA)
