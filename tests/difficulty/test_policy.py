"""The reranking policy: seeded construction, checkpoint round trips, corrupt checkpoints."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from data_contracts.arrays import PaddedQueries
from data_contracts.errors import InputError
from difficulty.policy import (CHECKPOINT_FORMAT, PolicyConfig, PolicyScorer, PolicySpec,
                               RerankPolicy, base_policy, load_checkpoint,
                               load_policy_checkpoint, save_policy, score_in_chunks)

N_FEATURES = 7


class NotAllowed:
    """A class `torch.load(weights_only=True)` refuses to unpickle."""


def padded_batch(seed: int = 0, batch: int = 6, max_docs: int = 9) -> PaddedQueries:
    """Random padded queries of N_FEATURES features, zeros where padded."""
    rng = np.random.default_rng(seed)
    n_docs = rng.integers(1, max_docs + 1, size=batch)
    d = int(n_docs.max())
    mask = np.arange(d)[None, :] < n_docs[:, None]
    features = np.where(mask[..., None], rng.normal(size=(batch, d, N_FEATURES)), 0.0)
    return PaddedQueries(query_ids=[f"q{i}" for i in range(batch)],
                         features=features.astype(np.float32), mask=mask,
                         labels=np.zeros((batch, d), np.float32),
                         has_labels=np.ones(batch, bool), n_docs=n_docs)


def trained_like(seed: int = 5) -> RerankPolicy:
    """A base policy whose weights were moved away from their initialization."""
    model = base_policy(N_FEATURES, seed=seed, hidden=16)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def scores_of(model: RerankPolicy, batch: PaddedQueries) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(batch.features), torch.from_numpy(batch.mask)).numpy()


@pytest.mark.parametrize("chunk_values", [1, N_FEATURES * 9, N_FEATURES * 9 * 4, 10 ** 9])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunked_scores_match_one_call(chunk_values, seed):
    batch = padded_batch(seed, batch=23)
    model = trained_like(seed)
    chunked = score_in_chunks(model, batch.features, batch.mask, chunk_values=chunk_values)
    assert chunked.dtype == np.float32 and chunked.shape == batch.mask.shape
    whole = scores_of(model, batch)
    real = batch.mask
    np.testing.assert_allclose(chunked[real], whole[real], rtol=1e-6, atol=1e-7)
    # a wrong slice or a query scored with another's statistics is far off
    assert not np.allclose(np.roll(chunked, 1, axis=0)[real], whole[real], atol=1e-3)


def test_chunked_scores_at_a_realistic_width_match_one_call():
    """256 queries x 100 documents x 136 features, the default chunk (about 19 queries)."""
    rng = np.random.default_rng(3)
    features = rng.standard_normal((256, 100, 136), dtype=np.float32)
    mask = np.arange(100)[None, :] < rng.integers(1, 101, size=256)[:, None]
    model = base_policy(136, seed=0)
    with torch.no_grad():
        whole = model(torch.from_numpy(features), torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(score_in_chunks(model, features, mask)[mask], whole[mask],
                               rtol=1e-6, atol=1e-7)


def test_scorer_scores_in_chunks():
    batch = padded_batch(4, batch=40)
    scorer = PolicyScorer(PolicySpec("base", seed=3, hidden=16), n_features=N_FEATURES)
    expected = score_in_chunks(scorer.model, batch.features, batch.mask)
    assert np.array_equal(scorer.scores(batch), expected)


def test_base_policy_is_identical_for_the_same_seed():
    a, b = base_policy(N_FEATURES, seed=3), base_policy(N_FEATURES, seed=3)
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), name
    c = base_policy(N_FEATURES, seed=4)
    assert not torch.equal(a.state_dict()["net.0.weight"], c.state_dict()["net.0.weight"])
    batch = padded_batch()
    assert np.array_equal(scores_of(a, batch), scores_of(b, batch))


def test_base_policy_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    base_policy(N_FEATURES, seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_scores_ignore_padding_and_are_permutation_equivariant():
    model = trained_like()
    batch = padded_batch(seed=1)
    full = scores_of(model, batch)
    rng = np.random.default_rng(2)
    for i, n in enumerate(batch.n_docs):
        alone = PaddedQueries([batch.query_ids[i]], batch.features[i:i + 1, :n],
                              batch.mask[i:i + 1, :n], batch.labels[i:i + 1, :n],
                              batch.has_labels[i:i + 1], batch.n_docs[i:i + 1])
        np.testing.assert_allclose(scores_of(model, alone)[0], full[i, :n], rtol=1e-5, atol=1e-6)
        perm = rng.permutation(n)
        shuffled = PaddedQueries(alone.query_ids, alone.features[:, perm], alone.mask,
                                 alone.labels, alone.has_labels, alone.n_docs)
        np.testing.assert_allclose(scores_of(model, shuffled)[0], full[i, :n][perm],
                                   rtol=1e-5, atol=1e-6)


def test_checkpoint_round_trip_gives_identical_scores(tmp_path):
    model = trained_like()
    path = str(tmp_path / "policy.pt")
    save_policy(model, path, extra={"step": 7})
    payload = torch.load(path, map_location="cpu", weights_only=True)  # loads safely
    assert payload["format"] == CHECKPOINT_FORMAT and payload["step"] == 7
    assert payload["config"] == {"n_features": N_FEATURES, "hidden": 16, "context": True}
    loaded = load_policy_checkpoint(path)
    assert loaded.config == model.config
    batch = padded_batch(seed=4)
    assert np.array_equal(scores_of(loaded.eval(), batch), scores_of(model, batch))
    # through the scorer, as the pipeline uses it
    spec = PolicySpec(name=path)
    spec.validate()
    assert spec.policy_id == "checkpoint:policy.pt"
    assert np.array_equal(PolicyScorer(spec).scores(batch), scores_of(model, batch))


def test_fingerprint_follows_checkpoint_content(tmp_path):
    a, b = str(tmp_path / "a.pt"), str(tmp_path / "b.pt")
    save_policy(trained_like(1), a)
    save_policy(trained_like(2), b)
    assert PolicySpec(a).fingerprint() != PolicySpec(b).fingerprint()
    assert PolicySpec(a).fingerprint() == PolicySpec(a).fingerprint()
    assert PolicySpec("base", seed=1).fingerprint() != PolicySpec("base", seed=2).fingerprint()


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def corrupt_checkpoints(tmp_path) -> dict:
    """name -> path of a file that is not a usable policy checkpoint."""
    good = str(tmp_path / "good.pt")
    save_policy(trained_like(), good)
    raw = open(good, "rb").read()
    out = {
        "empty": _write(str(tmp_path / "empty.pt"), b""),
        "garbage": _write(str(tmp_path / "garbage.pt"), b"not a checkpoint\n" * 10),
        "truncated": _write(str(tmp_path / "truncated.pt"), raw[: len(raw) // 2]),
        "flipped": _write(str(tmp_path / "flipped.pt"),
                          raw[:200] + bytes(b ^ 0xFF for b in raw[200:400]) + raw[400:]),
        "missing": str(tmp_path / "missing.pt"),
        "folder": str(tmp_path),
    }
    torch.save({"format": CHECKPOINT_FORMAT, "obj": NotAllowed()}, str(tmp_path / "unsafe.pt"))
    out["unsafe"] = str(tmp_path / "unsafe.pt")
    torch.save({"weights": torch.zeros(2)}, str(tmp_path / "other.pt"))
    out["other_format"] = str(tmp_path / "other.pt")
    torch.save([1, 2, 3], str(tmp_path / "list.pt"))
    out["not_a_dict"] = str(tmp_path / "list.pt")
    payload = torch.load(good, weights_only=True)
    bad_config = dict(payload, config={"n_features": N_FEATURES, "width": 3})
    torch.save(bad_config, str(tmp_path / "bad_config.pt"))
    out["bad_config"] = str(tmp_path / "bad_config.pt")
    no_weights = {k: v for k, v in payload.items() if k != "state_dict"}
    torch.save(no_weights, str(tmp_path / "no_weights.pt"))
    out["no_weights"] = str(tmp_path / "no_weights.pt")
    wrong_shape = dict(payload, config=dict(payload["config"], hidden=8))
    torch.save(wrong_shape, str(tmp_path / "wrong_shape.pt"))
    out["wrong_shape"] = str(tmp_path / "wrong_shape.pt")
    return out


def test_corrupt_checkpoints_raise_input_error(tmp_path):
    for name, path in corrupt_checkpoints(tmp_path).items():
        with pytest.raises(InputError) as info:
            load_policy_checkpoint(path)
        message = str(info.value)
        assert message.startswith(path) and "\n" not in message, (name, message)
        with pytest.raises(InputError):
            PolicySpec(name=path).validate()  # the command line fails before any work
        if name in ("empty", "garbage", "truncated", "missing"):
            with pytest.raises(InputError):
                load_checkpoint(path)
    assert os.path.exists(str(tmp_path / "good.pt"))


def test_scorer_checks_width_and_teacher():
    batch = padded_batch()
    scorer = PolicyScorer(PolicySpec("base"), n_features=N_FEATURES + 1)
    with pytest.raises(InputError):
        scorer.scores(batch)
    lazy = PolicyScorer(PolicySpec("base", seed=2, hidden=16))
    eager = PolicyScorer(PolicySpec("base", seed=2, hidden=16), n_features=N_FEATURES)
    assert np.array_equal(lazy.scores(batch), eager.scores(batch))
    teacher = PolicyScorer(PolicySpec("teacher"))
    with pytest.raises(ValueError):
        teacher.scores(batch)
    given = np.arange(batch.mask.size, dtype=np.float64).reshape(batch.mask.shape)
    out = teacher.scores(batch, given)
    assert out.dtype == np.float32 and np.array_equal(out, given.astype(np.float32))
    with pytest.raises(ValueError):
        PolicySpec("teacher", teacher_mode="oracle").validate()


def test_policy_config_without_context():
    model = RerankPolicy(PolicyConfig(n_features=N_FEATURES, hidden=8, context=False))
    batch = padded_batch()
    out = scores_of(model, batch)
    assert out.shape == batch.mask.shape and np.isfinite(out).all()
