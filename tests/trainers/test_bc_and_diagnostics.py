"""BC ignores the file order of tied labels; diagnostics equal a direct computation; the policy's
normaliser travels with the checkpoint."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
import torch

from data_contracts.arrays import pad_queries
from data_contracts.schema import QUERY_SCHEMA
from data_contracts.teacher import teacher_orders, teacher_scores
from difficulty.policy import (PolicyScorer, PolicySpec, base_policy, fit_normaliser,
                               load_policy_checkpoint, save_policy)
from difficulty.rewards import parse_reward
from trainers.evaluate import group_diagnostics, within_label_position_spearman
from trainers.losses import bc_loss, bc_teacher


def tied_queries(n_queries: int, n_docs: int, seed: int) -> pa.Table:
    """Queries whose labels (0/1/2, many ties) follow feature 1; feature 0 is the document's file
    position (carries no label information); features 2-3 are noise. Imitation rows as the
    pipeline writes them: teacher_order = the labels' stable ideal order, weight 1."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_queries):
        signal = rng.normal(size=n_docs)
        labels = np.digitize(signal + 0.3 * rng.normal(size=n_docs), [-0.4, 0.6]).astype(float)
        position = np.arange(n_docs) / n_docs
        features = np.column_stack([position, signal, rng.normal(size=(n_docs, 2))])
        rows.append({"query_id": f"q{q:03d}", "doc_ids": [f"d{j}" for j in range(n_docs)],
                     "features": features.astype(np.float32).tolist(),
                     "labels": labels.tolist(), "teacher_scores": None, "teacher_order": None,
                     "source": "test", "split": "train"})
    table = pa.Table.from_pylist(rows, schema=QUERY_SCHEMA)
    scores, _ = teacher_scores(table, "labels")
    orders = teacher_orders(scores, np.full(n_queries, n_docs))
    table = table.set_column(table.schema.get_field_index("teacher_order"), "teacher_order",
                             pa.array(orders, pa.list_(pa.int32())))
    return table.append_column("weight", pa.array(np.ones(n_queries), pa.float32()))


def _clone(loss: str, table: pa.Table, steps: int = 150) -> torch.nn.Module:
    torch.manual_seed(0)
    model = base_policy(4, seed=0, hidden=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = SimpleNamespace(table=table, padded=pad_queries(table), rows=table.num_rows)
    for _ in range(steps):
        value = bc_loss(model, batch, "auto", loss)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    return model.eval()


def test_bc_teacher_recovers_the_ties_of_label_demonstrations():
    table = tied_queries(3, 8, seed=1)
    labels = pad_queries(table).labels
    assert np.array_equal(bc_teacher(table, "auto"), labels)
    assert np.array_equal(bc_teacher(table, "labels"), labels)


def test_tie_aware_bc_does_not_learn_file_order_but_file_order_listmle_does():
    train, held_out = tied_queries(64, 12, seed=0), tied_queries(64, 12, seed=1)
    old = within_label_position_spearman(_clone("listmle", train), held_out)
    for loss in ("listmle_ties", "listnet"):
        model = _clone(loss, train)
        rho = within_label_position_spearman(model, held_out)
        assert abs(rho) < 0.12, (loss, rho)
    assert old > 0.3, old  # ties kept in file order: the position feature is learned


def _direct_diagnostics(model, table, tau: float, k: int, seed: int, stream: int) -> dict:
    """An independent computation: per query its own generator, Gumbel-argmax rankings, linear
    gain NDCG@10, informative = some rollouts pass and some fail."""
    padded = pad_queries(table)
    with torch.no_grad():
        scores = model(torch.from_numpy(padded.features), torch.from_numpy(padded.mask)).numpy()
    passes, informative = [], []
    for i, qid in enumerate(padded.query_ids):
        n = int(padded.n_docs[i])
        rng = np.random.default_rng([seed, __import__("zlib").crc32(qid.encode()), stream])
        g = rng.gumbel(size=(k, n))
        labels = padded.labels[i, :n]
        ideal = np.sort(labels)[::-1][:10]
        idcg = (ideal / np.log2(np.arange(2, len(ideal) + 2))).sum()
        got = []
        for r in range(k):
            order = np.argsort(-(scores[i, :n] + g[r]), kind="stable")[:10]
            dcg = (labels[order] / np.log2(np.arange(2, len(order) + 2))).sum()
            got.append(idcg > 0 and dcg / idcg >= tau - 1e-12)
        passes.extend(got)
        informative.append(any(got) and not all(got))
    return {"pass_rate": float(np.mean(passes)), "informative_fraction": float(np.mean(informative))}


@pytest.mark.parametrize("tau", [0.5, 0.9])
def test_fixed_set_diagnostics_equal_a_direct_computation(tau):
    table = tied_queries(30, 10, seed=2).drop_columns(["weight"])
    model = _clone("listmle_ties", tied_queries(32, 10, seed=3), steps=30)
    got = group_diagnostics(model, table, parse_reward(f"ndcg@10>={tau}"), 16, 5, 1.0, 10_000)
    want = _direct_diagnostics(model, table, tau, 16, 5, 10_000)
    assert got["queries"] == 30
    assert got["pass_rate"] == pytest.approx(want["pass_rate"], abs=1e-9)
    assert got["informative_fraction"] == pytest.approx(want["informative_fraction"], abs=1e-9)


def test_normaliser_is_stored_in_the_checkpoint_and_applied_on_load(tmp_path):
    table = tied_queries(20, 6, seed=4)
    padded = pad_queries(table)
    features = padded.features * np.array([1e5, 1.0, 300.0, 1e-3], dtype=np.float32)
    shift, scale = fit_normaliser([(features, padded.mask)], 4)
    x = np.sign(features[padded.mask]) * np.log1p(np.abs(features[padded.mask]))
    assert np.allclose(shift.numpy(), x.mean(0), atol=1e-4)
    assert np.allclose(scale.numpy(), x.std(0), rtol=1e-3)
    model = base_policy(4, seed=0)
    model.set_normaliser(shift, scale)
    path = str(tmp_path / "policy.pt")
    save_policy(model, path)
    loaded = load_policy_checkpoint(path)
    assert torch.equal(loaded.shift, shift) and torch.equal(loaded.scale, scale)
    batch = padded.__class__(**{**padded.__dict__, "features": features})
    with torch.no_grad():
        want = model(torch.from_numpy(features), torch.from_numpy(padded.mask)).numpy()
    got = PolicyScorer(PolicySpec(name=path)).scores(batch)
    assert np.array_equal(got, want)
    unfitted = PolicyScorer(PolicySpec(name="base"), 4).scores(batch)
    assert not np.allclose(unfitted, got)  # the stored normaliser changed the scores


def test_base_policy_scores_raw_msrl_scale_features_without_saturating():
    table = tied_queries(10, 8, seed=5)
    padded = pad_queries(table)
    raw = padded.features * np.float32(1e6)
    model = base_policy(4, seed=0).eval()
    with torch.no_grad():
        s = model(torch.from_numpy(raw), torch.from_numpy(padded.mask)).numpy()
    assert np.isfinite(s).all()
    assert np.abs(s).max() < 50  # slog1p and the per-query standardisation keep inputs small
    assert (s.std(-1) > 1e-4).all()  # documents still get different scores
