"""Every reader yields tables in its contract schema that survive a Parquet round trip."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_contracts.readers import detect_format, read_rollouts
from data_contracts.reasons import Reason
from data_contracts.schema import QUARANTINE_SCHEMA, QUERY_SCHEMA, ROLLOUT_SCHEMA, conform
from tests.data_contracts.util import assert_parquet_round_trip, read_and_validate, write_jsonl

# An MSLR/LETOR-like file: `label qid:Q fid:value ... #docid = X inc = ... prob = ...`.
MSLR_LINES = [
    "2 qid:10 1:0.5 3:1.25 5:-2 #docid = GX000-00-0000001 inc = 1 prob = 0.0365",
    "0 qid:10 2:1 4:0.75 #docid = GX000-00-0000002 inc = 0.5 prob = 0.12",
    "4 qid:10 1:3 5:1 #docid = GX000-00-0000003 inc = 0.2 prob = 0.5",
    "1 qid:11 1:0.1 2:0.2 3:0.3 4:0.4 5:0.5 #docid = GX001-00-0000001",
    "3 qid:12 5:9 #docid = GX002-00-0000001",
    "0 qid:12 #docid = GX002-00-0000002",
]

QUERY_ROWS = [
    {"query_id": "a", "doc_ids": ["a1", "a2"], "features": [[1.0, 2.0], [3.0, 4.5]],
     "labels": [1.0, 0.0], "teacher_scores": [0.5, -1.0], "teacher_order": [0, 1],
     "source": "web", "split": "train"},
    {"query_id": "b", "doc_ids": ["b1"], "features": [[0.0, -1.0]], "labels": [4.0]},
    {"query_id": "c", "doc_ids": ["c1", "c2", "c3"],
     "features": [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]},
]


def _check_query_output(path: str, fmt: str, tmp_path, **kwargs) -> pa.Table:
    """Reads `path`, asserts schema, full validity and a Parquet round trip (also re-read)."""
    out = read_and_validate(path, fmt, **kwargs)
    assert out.quarantine.num_rows == 0, out.quarantine.to_pylist()
    assert out.ok.schema.equals(QUERY_SCHEMA)
    assert conform(out.ok, QUERY_SCHEMA).equals(out.ok)
    written = tmp_path / "roundtrip.parquet"
    assert_parquet_round_trip(out.ok, QUERY_SCHEMA, written)
    again = read_and_validate(str(written), "auto")
    assert again.ok.equals(out.ok)  # the Parquet reader gives back exactly what was written
    return out.ok


def test_svmlight_qid_with_docid_comments(tmp_path):
    """SVMlight with `qid:` and `#docid = X`: docids become document ids, sparse ids densify."""
    path = tmp_path / "mslr.txt"
    path.write_text("\n".join(MSLR_LINES) + "\n")
    assert detect_format(str(path)) == "svmlight"
    table = _check_query_output(str(path), "auto", tmp_path, split="train")
    assert table.column("query_id").to_pylist() == ["10", "11", "12"]
    assert table.column("doc_ids").to_pylist() == [
        ["GX000-00-0000001", "GX000-00-0000002", "GX000-00-0000003"],
        ["GX001-00-0000001"],
        ["GX002-00-0000001", "GX002-00-0000002"],
    ]
    assert table.column("labels").to_pylist() == [[2.0, 0.0, 4.0], [1.0], [3.0, 0.0]]
    features = table.column("features").to_pylist()
    assert features[0] == [[0.5, 0, 1.25, 0, -2], [0, 1, 0, 0.75, 0], [3, 0, 0, 0, 1]]
    np.testing.assert_allclose(features[1], [[0.1, 0.2, 0.3, 0.4, 0.5]], rtol=1e-6)
    assert features[2] == [[0, 0, 0, 0, 9], [0, 0, 0, 0, 0]]
    assert set(table.column("source").to_pylist()) == {"mslr.txt"}
    assert set(table.column("split").to_pylist()) == {"train"}


def test_svmlight_without_docid_numbers_documents(tmp_path):
    """Without a docid comment, document ids are `qid:index`, unique within the query."""
    path = tmp_path / "plain.svm"
    path.write_text("1 qid:7 1:1\n0 qid:7 2:1\n")
    table = _check_query_output(str(path), "svmlight", tmp_path)
    assert table.column("doc_ids").to_pylist() == [["7:0", "7:1"]]


def test_svmlight_with_query_file(tmp_path):
    """SVMlight without qid plus a `.query` file: one query per group size, in file order."""
    path = tmp_path / "rank.train"
    path.write_text("1 1:0.5 2:1\n0 3:2\n2 1:1\n4 2:4 3:1\n0 1:0\n")
    (tmp_path / "rank.train.query").write_text("2\n0\n3\n")
    assert detect_format(str(path)) == "lightgbm"
    table = _check_query_output(str(path), "auto", tmp_path)
    # a zero-size group holds no query but still takes its index; ids are FILE:INDEX
    assert table.column("query_id").to_pylist() == ["rank.train:0", "rank.train:2"]
    assert table.column("doc_ids").to_pylist() == [
        ["rank.train:0:0", "rank.train:0:1"],
        ["rank.train:2:0", "rank.train:2:1", "rank.train:2:2"]]
    assert table.column("labels").to_pylist() == [[1.0, 0.0], [2.0, 4.0, 0.0]]
    assert table.column("features").to_pylist()[1] == [[1, 0, 0], [0, 4, 1], [0, 0, 0]]


def test_qid_lines_ignore_stray_query_file(tmp_path):
    """Lines that carry `qid:` keep their own groups even when a `.query` file sits beside."""
    path = tmp_path / "data.txt"
    path.write_text("1 qid:a 1:1\n0 qid:b 1:2\n")
    (tmp_path / "data.txt.query").write_text("2\n")
    assert detect_format(str(path)) == "svmlight"
    out = read_and_validate(str(path))
    assert out.ok.column("query_id").to_pylist() == ["a", "b"]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_canonical_tables(tmp_path, fmt):
    """Parquet and JSONL in the canonical columns read back every value, missing ones null."""
    if fmt == "parquet":
        path = tmp_path / "queries.parquet"
        pq.write_table(pa.Table.from_pylist(QUERY_ROWS), str(path))  # inferred, looser types
    else:
        path = tmp_path / "queries.jsonl"
        write_jsonl(path, QUERY_ROWS)
    table = _check_query_output(str(path), "auto", tmp_path, batch_size=2)
    rows = table.to_pylist()
    for row, given in zip(rows, QUERY_ROWS):
        for key, value in given.items():
            assert row[key] == value
    assert rows[1]["teacher_scores"] is None and rows[2]["labels"] is None
    # `source` defaults to the file name where the record has none
    assert [r["source"] for r in rows] == ["web", path.name, path.name]


def test_hf_saved_dataset_with_column_map(tmp_path):
    """A `save_to_disk` dataset with its own column names maps onto the contract."""
    datasets = pytest.importorskip("datasets")
    data = {
        "qid": ["q1", "q2"],
        "passages": [["p1", "p2"], ["p3"]],
        "vectors": [[[0.5, 1.0], [2.0, 3.0]], [[4.0, 5.0]]],
        "relevance": [[3, 0], [1]],
        "unrelated": ["x", "y"],
    }
    folder = tmp_path / "hf_ds"
    datasets.Dataset.from_dict(data).save_to_disk(str(folder))
    assert detect_format(str(folder)) == "hf"
    column_map = {"query_id": "qid", "doc_ids": "passages", "features": "vectors",
                  "labels": "relevance"}
    table = _check_query_output(str(folder), "auto", tmp_path, column_map=column_map,
                                split="dev")
    assert table.column("query_id").to_pylist() == ["q1", "q2"]
    assert table.column("doc_ids").to_pylist() == data["passages"]
    assert table.column("features").to_pylist() == data["vectors"]
    assert table.column("labels").to_pylist() == [[3.0, 0.0], [1.0]]
    assert set(table.column("split").to_pylist()) == {"dev"}
    assert set(table.column("source").to_pylist()) == {"hf_ds"}


ROLLOUT_ROWS = [
    {"query_id": "a", "rollout_id": "r1", "ranking": ["a2", "a1"], "reward": 0.5,
     "passed": True, "policy_id": "p0"},
    {"query_id": "a", "rollout_id": "r2", "reward": -1.0},
    {"query_id": "b", "rollout_id": "r1", "passed": False},
    {"query_id": "b", "rollout_id": "r3"},  # no outcome: quarantined at read
]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_rollout_logs(tmp_path, fmt):
    """Rollout logs read into ROLLOUT_SCHEMA; a row with no outcome is quarantined, not lost."""
    if fmt == "parquet":
        path = tmp_path / "rollouts.parquet"
        pq.write_table(pa.Table.from_pylist(ROLLOUT_ROWS), str(path))
    else:
        path = tmp_path / "rollouts.jsonl"
        write_jsonl(path, ROLLOUT_ROWS)
    oks, bads = [], []
    for table, quarantine in read_rollouts(str(path), batch_size=3):
        assert table.schema.equals(ROLLOUT_SCHEMA)
        assert quarantine.schema.equals(QUARANTINE_SCHEMA)
        oks.append(table)
        bads.append(quarantine)
    ok, bad = pa.concat_tables(oks), pa.concat_tables(bads)
    assert ok.num_rows + bad.num_rows == len(ROLLOUT_ROWS)
    assert ok.to_pylist() == [
        {"query_id": r["query_id"], "rollout_id": r["rollout_id"], "ranking": r.get("ranking"),
         "reward": r.get("reward"), "passed": r.get("passed"), "policy_id": r.get("policy_id"),
         "generation": r.get("generation")}
        for r in ROLLOUT_ROWS[:3]]
    assert bad.column("reason").to_pylist() == [Reason.ROLLOUT_WITHOUT_OUTCOME]
    assert bad.column("query_id").to_pylist() == ["b"]
    expected_location = f"{path}:4" if fmt == "jsonl" else f"{path}#3"
    assert bad.column("location").to_pylist() == [expected_location]
    assert_parquet_round_trip(ok, ROLLOUT_SCHEMA, tmp_path / "rollouts_back.parquet")
    again = pa.concat_tables([t for t, _ in read_rollouts(str(tmp_path / "rollouts_back.parquet"))])
    assert again.equals(ok)


def test_rollout_outcomes_only_late_in_log(tmp_path):
    """A log whose first batch has no outcomes but later rows do is usable, not an InputError."""
    rows = [{"query_id": "a", "rollout_id": f"r{i}"} for i in range(4)]
    rows.append({"query_id": "a", "rollout_id": "r9", "reward": 1.0})
    path = tmp_path / "late.jsonl"
    write_jsonl(path, rows)
    results = list(read_rollouts(str(path), batch_size=2))
    ok = pa.concat_tables([t for t, _ in results])
    bad = pa.concat_tables([q for _, q in results])
    assert ok.column("rollout_id").to_pylist() == ["r9"]
    assert bad.num_rows == 4


def test_quarantine_round_trips(tmp_path):
    """Quarantine rows (read-time and validation) keep QUARANTINE_SCHEMA through Parquet."""
    path = tmp_path / "mixed.txt"
    path.write_text("1 qid:1 1:1\nnot a line\n9 qid:2 1:1\n")
    out = read_and_validate(str(path))
    assert sorted(out.quarantine.column("reason").to_pylist()) == [
        Reason.LABEL_OUT_OF_RANGE, Reason.UNPARSEABLE_LINE]
    assert_parquet_round_trip(out.quarantine, QUARANTINE_SCHEMA, tmp_path / "q.parquet")


def test_text_columns_must_match_the_documents():
    """doc_texts and the first-stage columns are per document: a length that differs from the
    doc ids quarantines the query (length_mismatch), as for labels."""
    import pyarrow as pa

    from data_contracts.readers.base import QueryBatch
    from data_contracts.schema import QUERY_SCHEMA, conform
    from data_contracts.validate import ValidationState, validate_queries

    good = {"query_id": "a", "doc_ids": ["x", "y"], "features": [[0.1], [0.2]],
            "labels": [1.0, 0.0], "doc_texts": ["one", "two"], "first_stage_ranks": [1, 2],
            "first_stage_scores": [0.9, 0.4]}
    rows = [good, {**good, "query_id": "b", "doc_texts": ["only one"]},
            {**good, "query_id": "c", "first_stage_scores": [0.5]}]
    table = conform(pa.Table.from_pylist(rows), QUERY_SCHEMA)
    ok, bad = validate_queries(QueryBatch(table, ["f:1", "f:2", "f:3"]), ValidationState())
    assert ok.column("query_id").to_pylist() == ["a"]
    assert bad.column("reason").to_pylist() == ["length_mismatch", "length_mismatch"]
    assert "doc_texts" in bad.column("detail")[0].as_py()


def _rows_with_a_bad_cell(bad_at: int) -> list[dict]:
    rows = []
    for q in range(30):
        for d in range(4):
            rows.append({"qid": q, "label": d % 3, "f1": q * 0.1 + d,
                         "f2": "abc" if (q, d) == (bad_at, 1) else str(d * 0.5),
                         "title": f"doc {q}-{d}"})
    return rows


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
@pytest.mark.parametrize("bad_at", [3, 29])  # in the sampled head, and at the end
def test_one_bad_cell_quarantines_its_query_and_keeps_the_feature_column(tmp_path, fmt,
                                                                         bad_at):
    """A feature column with a bad cell (`abc`) stays a feature for every other query (its
    query is quarantined, `unparseable_record`); a column of words (`title`) is no feature;
    numbers stored as text are features."""
    import json

    rows = _rows_with_a_bad_cell(bad_at)
    path = tmp_path / f"rows.{fmt}"
    if fmt == "csv":
        path.write_text("qid,label,f1,f2,title\n" + "".join(
            f"{r['qid']},{r['label']},{r['f1']},{r['f2']},{r['title']}\n" for r in rows))
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=40)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = read_and_validate(str(path), batch_size=7)
    assert out.quarantine.column("reason").to_pylist() == [Reason.UNPARSEABLE_RECORD]
    assert out.quarantine.column("query_id").to_pylist() == [str(bad_at)]
    assert "f2" in out.quarantine.column("detail")[0].as_py()
    assert out.ok.num_rows == 29
    features = out.ok.column("features").to_pylist()
    assert {len(doc) for query in features for doc in query} == {2}  # f1 and f2, no title
    assert out.ok.to_pylist()[0]["features"][3] == pytest.approx([3.0, 1.5])  # query 0, doc 3


@pytest.mark.parametrize("bad_line,words", [
    ("1 qid:2 1:0.5 +9:0.3 2:0.1", "ASCII digits"),     # int() would read 9
    ("1 qid:2 1:0.5 1_0:0.3 2:0.1", "ASCII digits"),    # int() would read 10
    ("1 qid:2 1:0.5 \u0669:0.3 2:0.1", "ASCII digits"),  # an Arabic-Indic nine
    ("1 qid:2 1:0.5 -3:0.3 2:0.1", "not negative"),
    ("1 qid:2 1:0.5 1:0.3 2:0.1", "--repeated-features last"),  # with `quarantine`
    ("1 qid:2 qid:3 1:0.5 2:0.1", "two qid"),
    ("1 qid:2 1:0.5 2:1_0", "not an ASCII number"),            # float() would read 10
    ("1 qid:2 1:0.5 2:\u0669", "not an ASCII number"),          # and 9
    ("1 qid:2 1:0.5 2:\uff10.5", "not an ASCII number"),        # and 0.5 (fullwidth zero)
    ("1_0 qid:2 1:0.5 2:0.1", "label"),
    ("1 qid:2 1:0.5\u00a07:0.3 2:0.1", "non-ASCII whitespace"),  # the scan sees no id 7
])
def test_a_malformed_feature_token_quarantines_its_query_not_the_run(tmp_path, bad_line, words):
    """A feature id that is not ASCII digits, a repeated id (under `--repeated-features
    quarantine`; the default keeps the last value) or a second qid token is the line's fault: its
    query is quarantined (`unparseable_line`) and the feature space stays 1..3."""
    lines = [f"{d % 3} qid:{q} 1:{q * 0.1:.2f} 2:{d * 0.2:.2f} 3:0.5"
             for q in range(1, 6) for d in range(4)]
    lines[5] = bad_line  # a line of query 2
    path = tmp_path / "train.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = read_and_validate(str(path), repeated_features="quarantine")
    assert out.quarantine.column("reason").to_pylist() == [Reason.UNPARSEABLE_LINE]
    assert out.quarantine.column("query_id").to_pylist() == ["2"]
    assert words in out.quarantine.column("detail")[0].as_py()
    assert out.ok.column("query_id").to_pylist() == ["1", "3", "4", "5"]
    assert {len(doc) for query in out.ok.column("features").to_pylist() for doc in query} == {3}


def test_a_json_boolean_is_not_a_number(tmp_path):
    """Arrow converts true to 1.0 without a word: a boolean reward or label quarantines its
    record (`unparseable_record`) instead."""
    log = tmp_path / "rollouts.jsonl"
    write_jsonl(log, [{"query_id": "q", "rollout_id": "a", "reward": True},
                      {"query_id": "q", "rollout_id": "b", "reward": 0.5}])
    (table, bad), = list(read_rollouts(str(log)))
    assert table.column("rollout_id").to_pylist() == ["b"]
    assert bad.column("reason").to_pylist() == [Reason.UNPARSEABLE_RECORD]
    assert "boolean" in bad.column("detail")[0].as_py()
    queries = tmp_path / "queries.jsonl"
    good = {"query_id": "q1", "doc_ids": ["a", "b"], "features": [[1.0], [2.0]],
            "labels": [1.0, 0.0]}
    write_jsonl(queries, [good, {**good, "query_id": "q2", "labels": [True, False]}])
    out = read_and_validate(str(queries))
    assert out.ok.column("query_id").to_pylist() == ["q1"]
    assert out.quarantine.column("reason").to_pylist() == [Reason.UNPARSEABLE_RECORD]


def test_booleans_among_a_canonical_records_features_are_not_numbers(tmp_path):
    queries = tmp_path / "queries.jsonl"
    good = {"query_id": "q1", "doc_ids": ["a", "b"], "features": [[1.0, 0.5], [2.0, 0.1]],
            "labels": [1.0, 0.0]}
    write_jsonl(queries, [good, {**good, "query_id": "q2", "features": [[True, 0.5], [2.0, 0.1]]},
                          {**good, "query_id": "q3", "features": [[True, False], [1, 0]]}])
    out = read_and_validate(str(queries))
    assert out.ok.column("query_id").to_pylist() == ["q1"]
    assert out.quarantine.column("reason").to_pylist() == [Reason.UNPARSEABLE_RECORD] * 2
