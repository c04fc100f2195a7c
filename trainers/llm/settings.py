"""One GRPO setting of the LLM arm (`RL`): what the sweep varies, its name in the results rows,
and the `--rl` form that reruns it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RL:
    """One GRPO setting."""

    lr: float = 3e-4
    beta: float = 0.0
    reward: str = "pass"  # pass (at tau) or value (the graded NDCG)
    steps: float = 1.0    # GRPO steps as a multiple of Settings.grpo_steps

    @property
    def name(self) -> str:
        """`lr=..,beta=..,reward=..`, then `,steps=xF` where the steps are not the base's."""
        tail = f",steps=x{self.steps:g}" if self.steps != 1.0 else ""
        return f"lr={self.lr:g},beta={self.beta:g},reward={self.reward}{tail}"

    def grpo_steps(self, base: int) -> int:
        """The GRPO steps of this setting, given the base steps (at least 1)."""
        return max(1, int(round(base * self.steps)))

    @staticmethod
    def parse(text: str) -> "RL":
        """`LR,BETA,REWARD[,xF]` (e.g. `0.0003,0,pass,x4`) as a setting.

        Raises:
          ValueError: not that form, a reward other than pass|value, or F not above 0.
        """
        parts = text.split(",")
        if len(parts) not in (3, 4) or parts[2] not in ("pass", "value") or (
                len(parts) == 4 and not parts[3].startswith("x")):
            raise ValueError(f"{text!r} is not LR,BETA,pass|value[,xF]")
        try:
            lr, beta = float(parts[0]), float(parts[1])
            steps = float(parts[3][1:]) if len(parts) == 4 else 1.0
        except ValueError:
            raise ValueError(f"{text!r} is not LR,BETA,pass|value[,xF] (numbers)") from None
        if not steps > 0:
            raise ValueError(f"{text!r}: the steps factor must be above 0")
        return RL(lr=lr, beta=beta, reward=parts[2], steps=steps)

    @staticmethod
    def from_name(name: str) -> "RL":
        """The setting whose `name` this is (`lr=..,beta=..,reward=..[,steps=xF]`).

        Raises:
          ValueError: not such a name.
        """
        try:
            values = [part.split("=", 1)[1] for part in name.split(",")]
        except IndexError:
            raise ValueError(f"{name!r} is not an RL setting's name") from None
        return RL.parse(",".join(values))
