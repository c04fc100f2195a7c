"""The reranking policy network (shared by difficulty scoring and the trainer).

A policy is a permutation-equivariant scorer: an MLP over each document's (normalised) features,
its features standardised within the query, and the query's mean document (pooled context). Its
scores define a Plackett-Luce distribution over rankings.

Feature normalisation, in `RerankPolicy.normalise`, has two parts, both inside the model so that
every user of a checkpoint (the trainer, `--policy CHECKPOINT` in the pipeline) scores alike:

1. global: x -> (slog1p(x) - shift) / scale, with slog1p(x) = sign(x) log(1 + |x|) and the
   per-feature `shift`/`scale` buffers fitted on the training data by `fit_normaliser` (mean and
   standard deviation of slog1p over all training documents) and stored in the state dict. An
   untrained `base` policy has shift 0 and scale 1: only slog1p, which maps raw MSLR-scale values
   (up to ~1e6) to at most ~14, so large features do not saturate the network.
2. per query, scale-free: z = (x - mean_q(x)) / (std_q(x) + 0.01) per feature over the query's
   real documents. It needs no global statistics and is invariant to any affine rescaling of a
   feature, so the relative order information reaches the network at unit scale even for a policy
   that was never fitted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

QUERY_STD_EPS = 0.01  # added to the within-query std of a (globally normalised) feature
# Inference runs the model this many feature values (query x document x feature) at a time, about
# 1 MiB of float32: every intermediate [B, D, F] tensor of the forward pass then stays in a
# core's L2 cache instead of streaming through memory: on one core 2.0x faster at 256 x 100 x
# 136 and 4.2x at 256 x 300 x 136 (`benchmarks/bench_forward.py`). Queries are scored
# independently; the chunking changes only the matrix shapes handed to BLAS, which can move a
# score by a unit in the last place (as a different batch size or padding width always could)
# and leaves the sampled rankings and outcomes unchanged (tests/difficulty/test_policy.py,
# test_scoring.py).
SCORE_CHUNK_VALUES = 1 << 18


@dataclass(frozen=True)
class PolicyConfig:
    """Architecture of `RerankPolicy`."""

    n_features: int
    hidden: int = 64
    context: bool = True


class RerankPolicy(nn.Module):
    """Scores documents; `forward(features [B,D,F], mask [B,D]) -> scores [B,D]`.

    Buffers `shift` and `scale` ([F] float32) hold the global normaliser (see the module
    docstring); `set_normaliser` installs fitted values. With `config.context` the MLP input per
    document is [x, z, mean_q(x)] (3F), else [x, z] (2F).
    """

    def __init__(self, config: PolicyConfig):
        super().__init__()
        self.config = config
        self.register_buffer("shift", torch.zeros(config.n_features))
        self.register_buffer("scale", torch.ones(config.n_features))
        width = config.n_features * (3 if config.context else 2)
        self.net = nn.Sequential(
            nn.Linear(width, config.hidden), nn.GELU(),
            nn.Linear(config.hidden, config.hidden), nn.GELU(),
            nn.Linear(config.hidden, 1),
        )

    def set_normaliser(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        """Installs a fitted global normaliser ([F] each; scale > 0)."""
        self.shift.copy_(torch.as_tensor(shift, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

    def normalise(self, features: torch.Tensor, mask: torch.Tensor) -> tuple:
        """(x, z, mean_q): globally normalised features, within-query standardised ones, and the
        query mean of x ([B,1,F]); padded positions of x and z are 0."""
        weights = mask.unsqueeze(-1).to(features.dtype)
        x = (slog1p(features) - self.shift) / self.scale * weights
        count = weights.sum(1, keepdim=True).clamp(min=1)
        mean = x.sum(1, keepdim=True) / count
        var = (((x - mean) * weights) ** 2).sum(1, keepdim=True) / count
        z = (x - mean) / (var.sqrt() + QUERY_STD_EPS) * weights
        return x, z, mean

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x, z, mean = self.normalise(features, mask)
        parts = [x, z] + ([mean.expand_as(x)] if self.config.context else [])
        return self.net(torch.cat(parts, dim=-1)).squeeze(-1)


def slog1p(x: torch.Tensor) -> torch.Tensor:
    """sign(x) * log(1 + |x|), elementwise (keeps sign and order; compresses large values)."""
    return torch.sign(x) * torch.log1p(x.abs())


def fit_normaliser(batches, n_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and standard deviation of slog1p(feature) over all real documents.

    Args:
      batches: iterable of (features [B,D,F], mask [B,D]) numpy arrays or tensors, e.g. the
        training shards streamed a batch at a time (memory bounded by the batch).
      n_features: F.

    Returns:
      (shift [F], scale [F]) float32; a feature that never varies gets scale 1 (it then maps to
      0 after the shift, whatever its value).
    """
    total = torch.zeros(n_features, dtype=torch.float64)
    total_sq = torch.zeros(n_features, dtype=torch.float64)
    count = 0
    for features, mask in batches:
        m = torch.as_tensor(mask)
        rows = slog1p(torch.as_tensor(features)[m]).to(torch.float64)  # [N, F] real documents
        total += rows.sum(0)
        total_sq += (rows ** 2).sum(0)
        count += rows.shape[0]
    mean = total / max(count, 1)
    std = (total_sq / max(count, 1) - mean ** 2).clamp(min=0).sqrt()
    scale = torch.where(std > 1e-6, std, torch.ones_like(std))
    return mean.to(torch.float32), scale.to(torch.float32)


def base_policy(n_features: int, seed: int, hidden: int = 64) -> RerankPolicy:
    """The untrained policy at a fixed seed (identical weights for the same seed and width)."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return RerankPolicy(PolicyConfig(n_features=n_features, hidden=hidden))
    finally:
        torch.random.set_rng_state(generator_state)


def score_in_chunks(model: RerankPolicy, features: np.ndarray, mask: np.ndarray,
                    chunk_values: int = SCORE_CHUNK_VALUES) -> np.ndarray:
    """Inference scores of padded queries, a few queries at a time (see SCORE_CHUNK_VALUES).

    Args:
      model: the policy (put in eval mode by the caller).
      features: [B, D, F] float32.
      mask: [B, D] bool, True for real documents.
      chunk_values: at most this many feature values per forward call (at least one query).

    Returns:
      [B, D] float32 scores: those of one `model(features, mask)` call, to float32 rounding
      (BLAS may round a differently shaped product differently in the last bit).
    """
    per_query = max(1, features.shape[1] * features.shape[2])
    step = max(1, chunk_values // per_query)
    out = np.empty(mask.shape, dtype=np.float32)
    with torch.no_grad():
        for start in range(0, features.shape[0], step):
            stop = start + step
            out[start:stop] = model(torch.from_numpy(features[start:stop]),
                                    torch.from_numpy(mask[start:stop])).numpy()
    return out


__all__ = ["QUERY_STD_EPS", "SCORE_CHUNK_VALUES", "PolicyConfig", "RerankPolicy", "base_policy",
           "fit_normaliser", "score_in_chunks", "slog1p"]
