"""Shared fixtures: the real LTR sample beside the checkout (skipped with a reason when absent)."""
from __future__ import annotations

import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
YAHOO = os.path.join(os.path.dirname(REPO), "shared", "data", "ltr-yahoo-sample")


@pytest.fixture(scope="session")
def yahoo_dir() -> str:
    """Folder of ../shared/data/ltr-yahoo-sample; skips the test where ../shared is absent."""
    if not os.path.exists(os.path.join(YAHOO, "rank.train")):
        pytest.skip(f"real LTR sample not found at {YAHOO} (../shared is absent)")
    return YAHOO


@pytest.fixture(scope="session")
def yahoo_train(yahoo_dir) -> str:
    return os.path.join(yahoo_dir, "rank.train")


@pytest.fixture(scope="session")
def yahoo_test(yahoo_dir) -> str:
    return os.path.join(yahoo_dir, "rank.test")


@pytest.fixture(autouse=True)
def _no_progress_lines_in_error_checks(monkeypatch):
    """Commands print a progress line every PROGRESS_SECONDS; on a loaded machine a short build
    passes 5 s and the line lands among the one `error:` line a test expects. Tests that check
    progress lines set a short interval themselves (tests/pipelines/test_progress.py)."""
    from pipelines import progress
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 3600.0)
