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


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> str:
    """A small synthetic curriculum (built once for the session)."""
    from dataclasses import replace

    from data_contracts.synthetic import SyntheticConfig
    from pipelines.build_curriculum import run
    from pipelines.config import CurriculumConfig

    out = str(tmp_path_factory.mktemp("run") / "run")
    config = CurriculumConfig(synthetic=replace(SyntheticConfig(), n_queries=120), out=out,
                              order=replace(CurriculumConfig().order, stages=2))
    run(config)
    return out
