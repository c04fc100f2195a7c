"""Output locations that no command may replace whole (data_contracts.fs)."""
from __future__ import annotations

import pytest

from data_contracts import fs


@pytest.mark.parametrize("out", ["", "  ", "/", "gs://bucket", "gs://bucket/", "gs://b/.",
                                 "gs://b/./run", "gs://b/..", "gs://b/run/ ", "gs://b//run"])
def test_output_locations_no_run_may_replace(out):
    from data_contracts.errors import InputError

    with pytest.raises(InputError, match="--out"):
        fs.check_replaceable_location(out)


@pytest.mark.parametrize("out", ["gs://bucket/runs/a", "s3://bucket/a/", "runs/new"])
def test_ordinary_output_locations_pass(out, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fs.check_replaceable_location(out)


def test_a_file_url_is_a_local_path_whatever_its_case():
    assert not fs.is_remote("File:///tmp/x") and fs.normalize("FILE:///tmp/x") == "/tmp/x"
