"""Fixtures of the inspection tests: a small synthetic run (no ../shared needed), a fresh copy of
it per test that may damage it, training metrics, and a local GCS emulator."""
from __future__ import annotations

import json
import os
import shutil
import socket

import pytest

from data_contracts.synthetic import SyntheticConfig
from pipelines.build_curriculum import run as build_run
from pipelines.config import CurriculumConfig

EMULATOR_BUCKET = "inspection-test-bucket"


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> str:
    """A run built from 60 synthetic queries (every phase but quarantine has files)."""
    out = tmp_path_factory.mktemp("small") / "run"
    return build_run(CurriculumConfig(out=str(out),
                                      synthetic=SyntheticConfig(n_queries=60))).out


@pytest.fixture()
def run_copy(small_run, tmp_path) -> str:
    """A copy of `small_run` this test may change."""
    copy = str(tmp_path / "run")
    shutil.copytree(small_run, copy)
    return copy


def write_metrics(folder, lines: list[dict]) -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "metrics.jsonl")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(line) + "\n" for line in lines))
    return str(folder)


@pytest.fixture(scope="session")
def gcs_emulator():
    """A gcp-storage-emulator on 127.0.0.1 with one bucket; yields the bucket's gs:// URL.

    Beam's credential lookup (which retries for ~25 s without credentials) is short-circuited to
    an anonymous client, which is what the emulator accepts.
    """
    server_mod = pytest.importorskip("gcp_storage_emulator.server")
    auth = pytest.importorskip("apache_beam.internal.gcp.auth")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = server_mod.create_server("127.0.0.1", port, in_memory=True,
                                      default_bucket=EMULATOR_BUCKET)
    server.start()
    saved_env = os.environ.get("STORAGE_EMULATOR_HOST")
    saved_auth = (auth._Credentials._credentials_init, auth._Credentials._credentials)
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    auth._Credentials._credentials_init, auth._Credentials._credentials = True, None
    try:
        yield f"gs://{EMULATOR_BUCKET}"
    finally:
        auth._Credentials._credentials_init, auth._Credentials._credentials = saved_auth
        if saved_env is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved_env
        server.stop()
