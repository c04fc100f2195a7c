"""The reranking policy as the rest of the house uses it: `PolicyScorer` scores padded queries
with a policy named by a `PolicySpec` (`base`, `teacher` or a checkpoint path).

Its parts, each in its own module and re-exported here: the network (difficulty.model: see its
docstring for the feature normalisation), the checkpoint file (difficulty.checkpoint) and the
torch-free naming of a policy (difficulty.policy_spec).
"""
from __future__ import annotations

import numpy as np

from data_contracts.arrays import PaddedQueries
from data_contracts.errors import InputError
from difficulty.checkpoint import (CHECKPOINT_FORMAT, load_checkpoint, load_policy_checkpoint,
                                   save_policy)
from difficulty.model import (QUERY_STD_EPS, SCORE_CHUNK_VALUES, PolicyConfig, RerankPolicy,
                              base_policy, fit_normaliser, score_in_chunks, slog1p)
from difficulty.policy_spec import PolicySpec


class PolicyScorer:
    """Scores padded queries with a policy spec; the model is built once and reused.

    Args:
      spec: which policy.
      n_features: the data's feature width (for `base`).
    """

    def __init__(self, spec: PolicySpec, n_features: int | None = None):
        self.spec = spec
        self.model: RerankPolicy | None = None
        if spec.name == "base":
            if n_features is not None:
                self.model = base_policy(n_features, spec.seed, spec.hidden)
        elif spec.name != "teacher":
            self.model = load_policy_checkpoint(spec.name)
        if self.model is not None:
            self.model.eval()

    def scores(self, batch: PaddedQueries, teacher: np.ndarray | None = None) -> np.ndarray:
        """[B, D] float32 scores (padded positions are arbitrary; the sampler masks them)."""
        if self.spec.name == "teacher":
            if teacher is None:
                raise ValueError("the teacher policy needs teacher scores")
            return teacher.astype(np.float32)
        if batch.features.shape[0] == 0:  # an empty batch has no feature width to build from
            return np.zeros(batch.mask.shape, dtype=np.float32)
        if self.model is None:  # base policy whose width is first known here
            self.model = base_policy(batch.features.shape[-1], self.spec.seed, self.spec.hidden)
            self.model.eval()
        if self.model.config.n_features != batch.features.shape[-1]:
            raise InputError(self.spec.name, f"policy expects {self.model.config.n_features} "
                                             f"features, the data has {batch.features.shape[-1]}")
        return score_in_chunks(self.model, batch.features, batch.mask)


__all__ = ["CHECKPOINT_FORMAT", "QUERY_STD_EPS", "SCORE_CHUNK_VALUES", "PolicyConfig",
           "PolicyScorer", "PolicySpec", "RerankPolicy", "base_policy", "fit_normaliser",
           "load_checkpoint", "load_policy_checkpoint", "save_policy", "score_in_chunks",
           "slog1p"]
