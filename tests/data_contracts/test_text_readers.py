"""Text readers: TREC qrels and runs, BEIR, MS MARCO, rank_llm, HF text; the corpus join;
features; the teacher run on feature inputs."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from data_contracts.errors import InputError
from data_contracts.readers import detect_format, read_queries
from data_contracts.readers.text import (TextOptions, read_qrels, read_run, read_texts,
                                         teacher_order_of)
from data_contracts.schema import QUERY_SCHEMA
from data_contracts.text_features import TEXT_FEATURE_NAMES, query_features
from data_contracts.validate import ValidationState, validate_queries
from tests.text_fixture import make_text_fixture


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return make_text_fixture(str(tmp_path_factory.mktemp("text")))


def _read(path, fmt, batch_size=5, **options):
    batches = list(read_queries(path, fmt, batch_size=batch_size, text=TextOptions(**options)))
    for b in batches:
        assert b.queries.schema.equals(QUERY_SCHEMA)
    return (pa.concat_tables([b.queries for b in batches]),
            pa.concat_tables([b.quarantine for b in batches]))


def test_qrels_four_three_columns_header_and_gzip_agree(fx):
    want = {q: {d: float(g) for d, g in j.items()} for q, j in fx["data"]["qrels"].items()}
    for key in ("qrels", "qrels4", "qrels3", "qrels_gz"):
        assert read_qrels(fx[key]) == want, key


def test_runs_six_three_and_two_columns_agree(fx):
    six = read_run(fx["run"])
    assert list(six) == list(fx["data"]["run"])
    assert six == {q: [(d, s) for d, s in r] for q, r in fx["data"]["run"].items()}
    for key in ("run2", "run3"):
        other = read_run(fx[key])
        assert {q: [d for d, _ in r] for q, r in other.items()} == \
            {q: [d for d, _ in r] for q, r in six.items()}
        assert all(s is None for r in other.values() for _, s in r)


def test_run_orders_by_rank_column(tmp_path):
    path = tmp_path / "run.txt"
    path.write_text("q1 Q0 b 2 0.5 t\nq1 Q0 a 1 0.9 t\n# comment\n\nq2 Q0 c 1 1 t\n")
    assert read_run(str(path)) == {"q1": [("a", 0.9), ("b", 0.5)], "q2": [("c", 1.0)]}


# A line with fields after the tag is read as trec_eval reads it (test_text_conventions.py).
@pytest.mark.parametrize("text,problem", [("q1\n", "columns"),
                                          ("q1 Q0 a x 1 t\n", "rank")])
def test_bad_run_lines_name_the_line(tmp_path, text, problem):
    path = tmp_path / "run.txt"
    path.write_text("q0 Q0 z 1 1 t\n" + text)
    with pytest.raises(InputError, match=f"run.txt:2.*{problem}"):
        read_run(str(path))


def test_beir_folder_reads_every_query_with_texts_labels_and_teacher(fx):
    assert detect_format(fx["beir"]) == "beir"
    table, bad = _read(fx["beir"], "beir", candidates=fx["run"], teacher_run=fx["teacher"])
    data = fx["data"]
    assert bad.num_rows == 0 and table.num_rows == len(data["run"])
    for row in table.to_pylist():
        q = row["query_id"]
        docs = [d for d, _ in data["run"][q]]
        assert row["doc_ids"] == docs
        assert row["query_text"] == data["queries"][q]
        assert row["doc_texts"] == [data["corpus"][d] for d in docs]
        assert row["labels"] == [float(data["qrels"][q].get(d, 0)) for d in docs]
        assert row["first_stage_ranks"] == list(range(1, len(docs) + 1))
        assert [docs[j] for j in row["teacher_order"]] == [d for d, _ in data["teacher"][q]]
        assert np.asarray(row["features"]).shape == (len(docs), len(TEXT_FEATURE_NAMES))
    ok, quarantine = validate_queries(
        read_queries(fx["beir"], "beir", text=TextOptions(candidates=fx["run"])).__next__(),
        ValidationState(require_labels=True))
    assert quarantine.num_rows == 0 and ok.num_rows > 0


def test_features_do_not_depend_on_the_batch(fx):
    a, _ = _read(fx["beir"], "beir", batch_size=1, candidates=fx["run"])
    b, _ = _read(fx["beir"], "beir", batch_size=100, candidates=fx["run"])
    assert a.equals(b)


def test_msmarco_and_rankllm_read_the_same_queries_as_beir(fx):
    beir, _ = _read(fx["beir"], "beir", candidates=fx["run"])
    ms, _ = _read(fx["msmarco"], "msmarco", candidates=fx["run"])
    rl, _ = _read(fx["rankllm"], "rankllm", qrels=fx["qrels4"])
    keep = ["query_id", "doc_ids", "features", "labels", "query_text", "doc_texts",
            "first_stage_ranks", "first_stage_scores"]
    assert ms.select(keep).equals(beir.select(keep))
    assert rl.select(keep).equals(beir.select(keep))


def test_trec_run_alone_gives_first_stage_features(fx):
    table, _ = _read(fx["run"], "trec", qrels=fx["qrels3"])
    row = table.to_pylist()[0]
    assert row["query_text"] is None and row["doc_texts"] is None
    f = np.asarray(row["features"])
    assert np.all(f[:, :5] == 0) and np.allclose(f[:, 5], 1 / np.arange(1, len(f) + 1))


def test_corpus_is_streamed_and_only_needed_passages_are_kept(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"_id": f"d{i}", "title": "T" if i == 1 else "", "text": f"text {i}"})
             for i in range(1000)]
    lines.insert(500, '{"_id": "broken", "text": ')  # never parsed: nobody needs it
    corpus.write_text("\n".join(lines) + "\n")
    got = read_texts(str(corpus), {"d1", "d999", "absent"})
    assert got == {"d1": "T\ntext 1", "d999": "text 999"}
    with pytest.raises(InputError, match="corpus.jsonl:501"):
        read_texts(str(corpus), {"broken"})


def test_candidates_missing_from_the_corpus_quarantine_the_query(fx, tmp_path):
    run = tmp_path / "run.txt"
    q = next(iter(fx["data"]["run"]))
    run.write_text(f"{q} Q0 not-in-corpus 1 3.0 t\n" + open(fx["run"]).read())
    table, bad = _read(fx["beir"], "beir", candidates=str(run))
    assert bad.column("reason").to_pylist() == ["unknown_document"]
    assert bad.column("query_id").to_pylist() == [q]
    assert table.num_rows == len(fx["data"]["run"]) - 1


def test_beir_needs_candidates(fx):
    with pytest.raises(InputError, match="--candidates"):
        _read(fx["beir"], "beir")


def test_teacher_run_sets_the_order_of_feature_inputs(tmp_path):
    rows = [{"query_id": "q1", "doc_ids": ["a", "b", "c"], "features": [[1.0], [2.0], [3.0]],
             "teacher_scores": [3.0, 2.0, 1.0]},
            {"query_id": "q2", "doc_ids": ["x"], "features": [[0.0]]}]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "teacher.txt"
    run.write_text("q1 Q0 c 1 9 t\nq1 Q0 zzz 2 8 t\nq1 Q0 a 3 7 t\n")
    table, _ = _read(str(path), "jsonl", teacher_run=str(run))
    got = table.to_pylist()
    assert got[0]["teacher_order"] == [2, 0, 1] and got[0]["teacher_scores"] is None
    assert got[1]["teacher_order"] is None


def test_teacher_order_of_appends_unranked_in_candidate_order():
    assert teacher_order_of(["a", "b", "c", "d"], [("c", 1), ("a", 0), ("c", 0)]) == [2, 0, 1, 3]
    assert teacher_order_of(["a"], None) is None


def test_hf_dataset_with_text_columns(fx, tmp_path):
    datasets = pytest.importorskip("datasets")
    data = fx["data"]
    records = [{"qid": q, "query": data["queries"][q], "pids": [d for d, _ in r],
                "passages": [data["corpus"][d] for d, _ in r]} for q, r in data["run"].items()]
    datasets.Dataset.from_list(records).save_to_disk(str(tmp_path / "hf"))
    with pytest.raises(InputError, match="column-map"):  # without a map: no known columns
        _read(str(tmp_path / "hf"), "hf", qrels=fx["qrels"])
    beir, _ = _read(fx["beir"], "beir", candidates=fx["run"])
    batches = list(read_queries(str(tmp_path / "hf"), "hf", column_map={
        "query_id": "qid", "query_text": "query", "doc_ids": "pids", "doc_texts": "passages"},
        text=TextOptions(qrels=fx["qrels"])))
    hf = pa.concat_tables([b.queries for b in batches])
    keep = ["query_id", "doc_ids", "labels", "query_text", "doc_texts"]
    assert hf.select(keep).equals(beir.select(keep))
    # no first-stage scores in this dataset: those two features are 0, the rest agree
    assert np.allclose(np.asarray(hf.column("features")[0].as_py())[:, :6],
                       np.asarray(beir.column("features")[0].as_py())[:, :6])


def test_query_features_are_documented_and_sensible():
    f = query_features("red apple", ["red apple pie", "green pear", ""], [1, 2, 3],
                       [3.0, 2.0, 1.0])
    assert f.shape == (3, len(TEXT_FEATURE_NAMES)) and f.dtype == np.float32
    bm25, cosine, coverage = f[:, 0], f[:, 1], f[:, 2]
    assert bm25[0] > bm25[1] == 0 and cosine[0] > cosine[1] == 0
    assert coverage.tolist() == [1.0, 0.0, 0.0]
    assert np.allclose(f[:, 5], [1, 0.5, 1 / 3]) and np.allclose(f[:, 7].mean(), 0, atol=1e-6)
    assert np.isfinite(query_features("", ["", ""], None, None)).all()


def test_candidate_depth_keeps_the_first_candidates(fx):
    full, _ = _read(fx["beir"], "beir", candidates=fx["run"])
    cut, _ = _read(fx["beir"], "beir", candidates=fx["run"], depth=3)
    rl, _ = _read(fx["rankllm"], "rankllm", depth=3)
    assert cut.column("doc_ids").to_pylist() == [d[:3] for d in full.column("doc_ids").to_pylist()]
    assert rl.column("doc_ids").equals(cut.column("doc_ids"))
