"""Trainer tests run torch on one thread: the models are small, and extra threads only contend
on a shared machine (results do not depend on the thread count for these CPU ops)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
