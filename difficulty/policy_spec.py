"""How a policy is named (`base`, `teacher` or a checkpoint path), without importing torch.

The launcher of a pipeline names and fingerprints the policy; only the workers that score (and a
checkpoint's validation, through difficulty.checkpoint) need the network and torch.
"""
from __future__ import annotations

from dataclasses import dataclass

from data_contracts import fs
from data_contracts.teacher import TEACHER_MODES
from difficulty.checkpoint import CHECKPOINT_FORMAT, load_policy_checkpoint


@dataclass(frozen=True)
class PolicySpec:
    """A policy as named on the command line: `base`, `teacher` or a checkpoint path.

    Attributes:
      name: the spec as given.
      seed: seed of the `base` policy's weights.
      teacher_mode: where `teacher` scores come from (see `data_contracts.teacher`).
      hidden: width of the `base` policy.
    """

    name: str = "base"
    seed: int = 0
    teacher_mode: str = "auto"
    hidden: int = 64

    def validate(self) -> None:
        if self.name not in ("base", "teacher", "none"):
            load_policy_checkpoint(self.name)  # fail fast: config and weights must load too
        if self.teacher_mode not in TEACHER_MODES:
            raise ValueError(f"unknown teacher mode {self.teacher_mode!r}")

    def fingerprint(self) -> str:
        """Identifies the policy's behaviour: weights hash for checkpoints."""
        if self.name == "base":
            return f"base:{CHECKPOINT_FORMAT}:seed={self.seed}:hidden={self.hidden}"
        if self.name == "teacher":
            return f"teacher:{self.teacher_mode}"
        if self.name == "none":
            return "none"
        return f"checkpoint:sha256={fs.sha256(self.name)}"

    @property
    def policy_id(self) -> str:
        if self.name in ("base", "teacher", "none"):
            return self.name
        return f"checkpoint:{fs.basename(self.name)}"
