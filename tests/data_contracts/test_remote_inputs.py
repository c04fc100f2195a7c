"""gs:// inputs read through the same code as local ones (a local GCS emulator stands in)."""
from __future__ import annotations

import gzip
import io
import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("gcp_storage_emulator")
pytest.importorskip("apache_beam.io.gcp.gcsio")


@pytest.fixture(scope="module")
def bucket(monkeypatch_module):
    from gcp_storage_emulator.server import create_server
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    probe = socket.socket()
    probe.bind(("localhost", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = create_server("localhost", port, in_memory=True, default_bucket="cases")
    server.start()
    monkeypatch_module.setenv("STORAGE_EMULATOR_HOST", f"http://localhost:{port}")
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    yield client.bucket("cases")
    server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.slow
def test_remote_layouts_detect_and_read_like_local(bucket, tmp_path):
    from data_contracts.readers import dataset_space, detect_format, read_queries

    bucket.blob("in/data.txt.gz").upload_from_string(
        gzip.compress(b"\xef\xbb\xbf# c\n1 qid:1 1:1 # d-a\n0 qid:1 3:1 # d-b\n"))
    bucket.blob("in/rank.txt").upload_from_string(b"1 1:1\n0 1:2\n")
    bucket.blob("in/rank.txt.group").upload_from_string(b"2\n")
    rows = io.BytesIO()
    pq.write_table(pa.table({"qid": [5, 5], "docid": ["x", "y"], "label": [1, 0],
                             "f1": [0.1, 0.2], "f2": [0.3, 0.4], "f3": [0.0, 1.0]}), rows)
    bucket.blob("in/rows.parquet").upload_from_string(rows.getvalue())
    paths = [f"gs://cases/in/{n}" for n in ("data.txt.gz", "rank.txt", "rows.parquet")]
    assert [detect_format(p) for p in paths] == ["svmlight", "xgboost", "parquet"]
    space = dataset_space(paths)  # sparse ids up to 3 and 3 feature columns agree
    assert (space.base, space.width, space.names) == (1, 3, ("f1", "f2", "f3"))
    got = [b for p in paths for b in read_queries(p, space=space)]
    assert [q for b in got for q in b.queries.column("query_id").to_pylist()] == [
        "1", "rank.txt:0", "5"]
    assert got[0].queries.column("doc_ids").to_pylist() == [["d-a", "d-b"]]
    assert got[1].queries.column("features").to_pylist() == [[[1.0, 0.0, 0.0],
                                                               [2.0, 0.0, 0.0]]]
    assert sum(b.skipped_lines for b in got) == 1
