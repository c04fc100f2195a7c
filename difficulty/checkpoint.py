"""The policy checkpoint file: its format tag, and how a policy is saved and loaded.

Torch (and the network, difficulty.model) is imported by the functions that need it, not by this
module: the launcher of a pipeline names and fingerprints a policy (difficulty.policy_spec, which
reads CHECKPOINT_FORMAT here) without torch; only loading or saving a checkpoint needs it.
"""
from __future__ import annotations

import io
from dataclasses import asdict
from typing import TYPE_CHECKING

from data_contracts import fs
from data_contracts.errors import InputError

if TYPE_CHECKING:
    from difficulty.model import RerankPolicy

CHECKPOINT_FORMAT = "rerank-policy/2"  # /2: normaliser buffers in the state dict


def save_policy(model: RerankPolicy, path: str, extra: dict | None = None) -> None:
    """Saves a checkpoint loadable with `torch.load(weights_only=True)`."""
    import torch

    payload = {"format": CHECKPOINT_FORMAT, "config": asdict(model.config),
               "state_dict": model.state_dict()}
    payload.update(extra or {})
    torch.save(payload, path)


def load_checkpoint(path: str) -> dict:
    """Loads a checkpoint safely (tensors and plain values only), local or gs:// / s3://."""
    import torch

    if not fs.isfile(path):
        raise InputError(path, "checkpoint not found (expected base, teacher or a checkpoint file)")
    try:
        data = io.BytesIO(fs.read_bytes(path))  # local, gs://, s3://
        payload = torch.load(data, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        first_line = (str(exc).splitlines() or [""])[0][:200]  # some errors have no message
        raise InputError(path, f"unreadable checkpoint ({type(exc).__name__}: {first_line})"
                         ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, f"not a {CHECKPOINT_FORMAT} checkpoint")
    return payload


def load_policy_checkpoint(path: str) -> RerankPolicy:
    """Loads a policy saved by `save_policy`.

    Raises:
      InputError: the file is missing, unreadable, not a policy checkpoint, or its config and
        weights do not make a `RerankPolicy` (missing keys, wrong shapes).
    """
    from difficulty.model import PolicyConfig, RerankPolicy  # torch

    payload = load_checkpoint(path)
    try:
        model = RerankPolicy(PolicyConfig(**payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first_line = (str(exc).splitlines() or [""])[0][:200]
        raise InputError(path, f"corrupt {CHECKPOINT_FORMAT} checkpoint "
                               f"({type(exc).__name__}: {first_line})") from None
    return model


__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint", "load_policy_checkpoint", "save_policy"]
