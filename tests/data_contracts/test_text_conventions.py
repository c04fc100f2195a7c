"""Text inputs as IR people hold them (issue 27 items 2-5, issue 25's text breaker): unjudged
topics, trec_eval's conventions, binary side files, JSON field names and types, number rules,
qrels and runs told apart, corpus hygiene. Every file is written here, small."""
from __future__ import annotations

import gzip
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_contracts.errors import InputError
from data_contracts.readers import read_queries
from data_contracts.readers.text import TextOptions, read_qrels, read_run, read_texts
from data_contracts.readers.text_trec import TextCounts
from data_contracts.usable import unusable_reason
from data_contracts.validate import ValidationState, validate_queries


def _write(path, text: str | bytes):
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


def _read(path, fmt, column_map=None, **options):
    """(rows as dicts, quarantine rows, summed counts incl. skipped_lines)."""
    batches = list(read_queries(str(path), fmt, batch_size=2, column_map=column_map,
                                text=TextOptions(**options)))
    counts: dict = {}
    for b in batches:
        for k, v in b.counts.items():
            counts[k] = counts.get(k, 0) + v
        counts["skipped_lines"] = counts.get("skipped_lines", 0) + b.skipped_lines
    rows = [r for b in batches for r in b.queries.to_pylist()]
    bad = [r for b in batches for r in b.quarantine.to_pylist()]
    return rows, bad, counts


def _run_text(queries, docs=3):
    return "".join(f"{q} Q0 d{j} {j} {10 - j}.5 bm25\n" for q in queries
                   for j in range(1, docs + 1))


def _beir(folder, queries=("q1", "q2"), docs=3, qrels_at="qrels/test.tsv", qrels=None):
    folder.mkdir()
    _write(folder / "corpus.jsonl", "".join(json.dumps({"_id": f"d{j}", "title": "",
                                                        "text": f"passage {j}"}) + "\n"
                                            for j in range(1, docs + 1)))
    _write(folder / "queries.jsonl", "".join(json.dumps({"_id": q, "text": f"query {q}"}) + "\n"
                                             for q in queries))
    if qrels_at:
        (folder / qrels_at).parent.mkdir(parents=True, exist_ok=True)
        _write(folder / qrels_at, qrels if qrels is not None else
               "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\td1\t1\n" for q in queries))
    return str(folder)


# --- 27.2 unjudged is not broken ----------------------------------------------------------

def test_unjudged_queries_are_skipped_and_counted_not_quarantined(tmp_path):
    run = _write(tmp_path / "run.txt", _run_text([f"q{i}" for i in range(1, 7)]))
    qrels = _write(tmp_path / "qrels.txt", "q2 0 d1 1\nq5 0 d2 2\n")
    rows, bad, counts = _read(run, "trec", qrels=qrels)
    assert [r["query_id"] for r in rows] == ["q2", "q5"] and bad == []
    assert counts["unjudged"] == 4
    assert rows[0]["labels"] == [1.0, 0.0, 0.0]
    # and in a folder layout, with texts (the unjudged queries' texts are never looked up)
    beir = _beir(tmp_path / "beir", queries=("q1", "q2"))
    rows, bad, counts = _read(beir, "beir", candidates=_write(tmp_path / "c.txt", _run_text(
        ["q1", "q2", "q9"])))
    assert [r["query_id"] for r in rows] == ["q1", "q2"] and bad == [] and counts["unjudged"] == 1


def test_a_run_with_no_judged_query_is_refused_saying_so(tmp_path):
    run = _write(tmp_path / "run.txt", _run_text(["q1", "q2"]))
    qrels = _write(tmp_path / "qrels.txt", "301 0 d1 1\n")
    with pytest.raises(InputError, match=r"none of its 2 queries is judged.*'q1'.*'301'"):
        _read(run, "trec", qrels=qrels)
    req = _write(tmp_path / "req.jsonl", json.dumps({"query": {"qid": "q1", "text": "a"},
                                                     "candidates": []}) + "\n")
    with pytest.raises(InputError, match="none of its 1 queries is judged"):
        _read(req, "rankllm", qrels=qrels)


@pytest.mark.parametrize("fmt,qrels_at", [("msmarco", "qrels.txt"), ("msmarco", "qrels.tsv.gz"),
                                          ("beir", "qrels.tsv"), ("beir", "qrels/dev.tsv")])
def test_layout_qrels_are_found_under_common_names(tmp_path, fmt, qrels_at):
    folder = tmp_path / "f"
    if fmt == "beir":
        _beir(folder, qrels_at=None)
    else:
        folder.mkdir()
        _write(folder / "collection.tsv", "".join(f"d{j}\tpassage {j}\n" for j in (1, 2, 3)))
        _write(folder / "queries.tsv", "q1\tquery one\nq2\tquery two\n")
    target = folder / qrels_at
    target.parent.mkdir(parents=True, exist_ok=True)
    body = "q1 0 d2 1\nq2 0 d1 1\n"
    if qrels_at.endswith(".gz"):
        target.write_bytes(gzip.compress(body.encode()))
    else:
        target.write_text(body)
    rows, bad, _ = _read(folder, fmt, candidates=_write(tmp_path / "c.txt",
                                                        _run_text(["q1", "q2"])))
    assert [r["labels"] for r in rows] == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]] and bad == []


def test_a_folder_without_qrels_names_the_files_looked_for(tmp_path):
    beir = _beir(tmp_path / "beir", qrels_at=None)
    run = _write(tmp_path / "c.txt", _run_text(["q1", "q2"]))
    with pytest.raises(InputError, match=r"no qrels found.*looked for qrels/test\.tsv, .*"
                                         r"qrels\.tsv.*--qrels"):
        _read(beir, "beir", candidates=run)
    rows, _, _ = _read(beir, "beir", candidates=run, require_qrels=False)  # a logged reward
    assert [r["labels"] for r in rows] == [None, None]


# --- 27.3 trec_eval's conventions ---------------------------------------------------------

def test_negative_judgments_are_non_relevant_and_do_not_quarantine(tmp_path):
    run = _write(tmp_path / "run.txt", _run_text(["q1"]))
    qrels = _write(tmp_path / "qrels.txt", "q1 0 d1 -1\nq1 0 d2 2\nq1 0 d3 -1\n")
    counts = TextCounts()
    assert read_qrels(qrels, counts) == {"q1": {"d1": 0.0, "d2": 2.0, "d3": 0.0}}
    assert counts.take() == {"negative_judgments": 2}
    batch = next(iter(read_queries(run, "trec", text=TextOptions(qrels=qrels))))
    ok, quarantined = validate_queries(batch, ValidationState(require_labels=True))
    assert ok.num_rows == 1 and quarantined.num_rows == 0
    assert batch.counts["negative_judgments"] == 2


def test_run_lines_with_extra_fields_are_read_and_counted(tmp_path):
    run = _write(tmp_path / "run.txt", "q1 Q0 a 1 2.5 tag extra fields\nq1 Q0 b 2 1.5 tag\n")
    counts = TextCounts()
    assert read_run(run, counts=counts) == {"q1": [("a", 2.5), ("b", 1.5)]}
    assert counts.take() == {"run_extra_fields": 1}


def test_comment_and_blank_lines_of_qrels_and_runs_are_counted(tmp_path):
    run = _write(tmp_path / "run.txt", "# a run\n" + _run_text(["q1"]) + "\n# end\n")
    qrels = _write(tmp_path / "qrels.txt", "# judged by NIST\nq1 0 d1 1\n\n")
    _, _, counts = _read(run, "trec", qrels=qrels)
    assert counts["skipped_lines"] == 5


# --- 27.4 binary files on the text path ---------------------------------------------------

def test_ranx_parquet_and_json_dictionaries_read_as_the_text_files(tmp_path):
    text_qrels = read_qrels(_write(tmp_path / "q.txt", "q1 0 a 1\nq1 0 b 0\nq2 0 c 2\n"))
    text_run = read_run(_write(tmp_path / "r.txt", "q1 Q0 b 1 3.0 t\nq1 Q0 a 2 2.0 t\n"
                                                   "q2 Q0 c 1 1.0 t\n"))
    pq.write_table(pa.table({"q_id": ["q1", "q1", "q2"], "doc_id": ["a", "b", "c"],
                             "score": [1, 0, 2]}), tmp_path / "qrels.parquet")
    pq.write_table(pa.table({"q_id": ["q1", "q1", "q2"], "doc_id": ["a", "b", "c"],
                             "score": [2.0, 3.0, 1.0]}), tmp_path / "run.parquet")
    assert read_qrels(str(tmp_path / "qrels.parquet")) == text_qrels
    assert read_run(str(tmp_path / "run.parquet")) == text_run
    assert read_qrels(_write(tmp_path / "q.json", json.dumps(
        {"q1": {"a": 1, "b": 0}, "q2": {"c": 2}}))) == text_qrels
    assert read_run(_write(tmp_path / "r.json", json.dumps(
        {"q1": {"a": 2.0, "b": 3.0}, "q2": {"c": 1.0}}))) == text_run


@pytest.mark.parametrize("content,said", [
    (b"\x04\x22\x4d\x18" + b"\x00" * 20, "an lz4-compressed file, not TREC qrels.*decompress"),
    (b"PK\x03\x04" + b"\x00" * 20, "a zip archive, not TREC qrels"),
    (b"q1 0 d1 1\x00\x01\x02\n", "a binary file .*NUL.*not TREC qrels"),
    (b'[{"q1": 1}]', "a JSON array, not TREC qrels"),
    (b'{"q1": {"d1": "yes"}}', "is str 'yes', not a number"),
    (b'{"q1": {"d1": 1}}\n{"q2": {"d1": 1}}\n', "does not parse as one JSON document"),
])
def test_binary_or_foreign_qrels_are_named(tmp_path, content, said):
    with pytest.raises(InputError, match=said):
        read_qrels(_write(tmp_path / "qrels.txt", content))


def test_parquet_of_another_layout_names_its_columns(tmp_path):
    pq.write_table(pa.table({"topic": ["q1"], "doc": ["a"]}), tmp_path / "run.parquet")
    with pytest.raises(InputError, match="columns topic, doc; expected ranx's layout q_id, "
                                         "doc_id, score"):
        read_run(str(tmp_path / "run.parquet"))
    with pytest.raises(InputError, match="corpus is a Parquet file"):
        read_texts(str(tmp_path / "run.parquet"))


# --- 27.5 JSON field names, empty texts, rank_llm arrays ----------------------------------

def test_jsonl_ids_and_texts_under_other_known_keys(tmp_path):
    corpus = _write(tmp_path / "c.jsonl", json.dumps({"docid": 7, "contents": "seven"}) + "\n"
                    + json.dumps({"id": "x", "title": "T", "body": "ex"}) + "\n")
    assert read_texts(corpus) == {"7": "seven", "x": "T\nex"}


def test_a_record_without_an_id_key_names_its_keys_and_the_map_reads_it(tmp_path):
    corpus = _write(tmp_path / "c.jsonl", json.dumps({"doc_id": "a", "full_text": "body",
                                                      "name": "Title"}) + "\n")
    with pytest.raises(InputError, match=r"c.jsonl:1: record has no id key .*it has doc_id, "
                                         r"full_text, name.*--column-map doc_id=NAME"):
        read_texts(corpus)
    got = read_texts(corpus, column_map={"doc_id": "doc_id", "doc_text": "full_text",
                                         "doc_title": "name"})
    assert got == {"a": "Title\nbody"}


def test_column_map_reaches_a_beir_folder_and_empty_texts_are_counted(tmp_path):
    folder = tmp_path / "b"
    folder.mkdir()
    _write(folder / "corpus.jsonl", "".join(json.dumps({"pid": p, "abstract": t}) + "\n"
                                            for p, t in (("d1", "one"), ("d2", ""), ("d3", " "))))
    _write(folder / "queries.jsonl", json.dumps({"key": "q1", "question": ""}) + "\n")
    (folder / "qrels").mkdir()
    _write(folder / "qrels" / "test.tsv", "q1\td1\t1\n")
    rows, bad, counts = _read(folder, "beir", column_map={
        "doc_id": "pid", "doc_text": "abstract", "query_id": "key", "query_text": "question"},
        candidates=_write(tmp_path / "c.txt", _run_text(["q1"])))
    assert bad == [] and rows[0]["doc_texts"] == ["one", "", " "]
    assert counts["empty_passages"] == 2 and counts["empty_queries"] == 1


def _request(qid, docs, text="a query", **over):
    return {"query": {"qid": qid, "text": text},
            "candidates": [{"docid": d, "score": 10.0 - j, "doc": {"contents": f"text {d}"}}
                           for j, d in enumerate(docs)], **over}


def test_rankgpt_json_array_reads_as_rank_llm_jsonl(tmp_path):
    jsonl = _write(tmp_path / "r.jsonl", "".join(json.dumps(_request(q, ["a", "b"])) + "\n"
                                                 for q in ("q1", "q2")))
    array = _write(tmp_path / "r.json", json.dumps([
        {"query": "a query", "hits": [{"qid": q, "docid": d, "rank": j + 1, "score": 10.0 - j,
                                       "content": f"text {d}"} for j, d in enumerate("ab")]}
        for q in ("q1", "q2")], indent=1))
    keep = ["query_id", "doc_ids", "query_text", "doc_texts", "first_stage_scores", "features"]
    a, _, _ = _read(jsonl, "rankllm")
    b, bad, _ = _read(array, "rankllm")
    assert bad == [] and [{k: r[k] for k in keep} for r in a] == \
        [{k: r[k] for k in keep} for r in b]


def test_forced_text_format_errors_carry_no_feature_layout_guess():
    line = unusable_reason({"read": 4, "quarantined": 4, "scored": 0},
                           {"unknown_document": 4}, 0.5, {"ms": "unknown"},
                           forced_format="msmarco")
    assert "looks like" not in line and "try --input-format" not in line
    line = unusable_reason({"read": 4, "quarantined": 4, "scored": 0},
                           {"missing_labels": 4}, 0.5, {"run.txt": "trec-run"},
                           forced_format="trec")
    assert "looks like" not in line


# --- 25: numbers in runs, qrels and runs told apart ---------------------------------------

@pytest.mark.parametrize("line,problem", [
    ("q1 Q0 a 1 inf t", "score 'inf' is not a decimal number"),
    ("q1 Q0 a 1 nan t", "score 'nan' is not a decimal number"),
    ("q1 Q0 a 1 1e309 t", "score '1e309' is not finite"),
    ("q1 Q0 a 1 1e300 t", "score '1e300' is beyond float32"),
    ("q1 Q0 a nan 1 t", "rank 'nan' is not an integer"),
    ("q1 Q0 a 1e309 1 t", "rank '1e309' is not an integer"),
    ("q1 Q0 a 1_0 1 t", "rank '1_0' is not an integer"),
    ("q1 a 1.5", "rank '1.5' is not an integer"),
])
def test_run_numbers_obey_number_rules(tmp_path, line, problem):
    run = _write(tmp_path / "run.txt", "q0 Q0 z 1 1 t\n" + line + "\n")
    with pytest.raises(InputError, match=f"run.txt:2: {problem}"):
        read_run(run)


def test_qrels_relevance_must_be_a_finite_number(tmp_path):
    with pytest.raises(InputError, match="qrels.txt:1: relevance 'nan'"):
        read_qrels(_write(tmp_path / "qrels.txt", "q1 0 d1 nan\n"))


@pytest.mark.parametrize("text", ["q1 0 a 1\nq1 0 b 0\nq1 0 c 1\nq2 0 d 2\n",
                                  "query-id\tcorpus-id\tscore\nq1\ta\t1\n",
                                  "q1\ta\t1\nq1\tb\t1\n"])
def test_qrels_given_as_a_run_are_refused_saying_which_is_which(tmp_path, text):
    path = _write(tmp_path / "judged.txt", text)
    with pytest.raises(InputError, match=r"--teacher-run looks like TREC qrels.*, not a run "
                                         r"\(.*\); give it as --qrels and the run as "
                                         r"--teacher-run"):
        read_run(path, role="--teacher-run")
    assert read_qrels(path)  # where it belongs, it reads


@pytest.mark.parametrize("text,said", [
    ("q1 Q0 a 1 9.5 bm25\n", "the shape of a TREC run .*give the run as --candidates"),
    ("".join(f"q{q} Q0 d{j} {j}\n" for q in (1, 2) for j in range(1, 7)),
     "looks like a TREC run without scores"),
])
def test_a_run_given_as_qrels_is_refused(tmp_path, text, said):
    with pytest.raises(InputError, match=said):
        read_qrels(_write(tmp_path / "run.txt", text))


# --- 25: JSON records validated by type ---------------------------------------------------

@pytest.mark.parametrize("change,detail", [
    (lambda r: r["candidates"][0].update(doc="a plain string"), "candidates\\[0\\].doc` is string"),
    (lambda r: r["query"].update(text=None), "query.text` is null"),
    (lambda r: r["candidates"][1].update(docid=None), "candidates\\[1\\].docid` is null"),
    (lambda r: r["candidates"][0]["doc"].update(contents=7), "`contents` is number"),
    (lambda r: r["candidates"][0].update(score=True), "score` is boolean"),
    (lambda r: r["candidates"][0].update(score=1e300), "not a finite float32"),
])
def test_rank_llm_records_of_a_wrong_type_are_counted_quarantine(tmp_path, change, detail):
    good, broken = _request("q1", ["a", "b"]), _request("q2", ["a", "b"])
    change(broken)
    path = _write(tmp_path / "r.jsonl", json.dumps(good) + "\n" + json.dumps(broken) + "\n")
    rows, bad, _ = _read(path, "rankllm")
    assert [r["query_id"] for r in rows] == ["q1"]
    assert [(b["reason"], b["location"]) for b in bad] == [("wrong_type", f"{path}:2")]
    assert bad[0]["query_id"] == "q2"
    assert re.search(detail, bad[0]["detail"])


def test_corpus_records_of_a_wrong_type_quarantine_the_query_that_needs_them(tmp_path):
    folder = tmp_path / "b"
    _beir(folder, queries=("q1", "q2"), docs=3)
    with open(folder / "corpus.jsonl", "a") as f:
        f.write(json.dumps({"_id": "d4", "text": 12}) + "\n")
        f.write(json.dumps({"_id": None, "text": "lost"}) + "\n")
    run = _write(tmp_path / "c.txt", _run_text(["q1"]) + "q2 Q0 d4 1 1 t\n")
    rows, bad, _ = _read(folder, "beir", candidates=run)
    assert [r["query_id"] for r in rows] == ["q1"]
    got = sorted((b["reason"], str(b["query_id"]), b["location"]) for b in bad)
    assert got == [("wrong_type", "None", f"{folder}/corpus.jsonl:5"),
                   ("wrong_type", "q2", f"{folder}/corpus.jsonl:4")]


@pytest.mark.parametrize("line", ['{"_id": "a\\x", "text": "t"}',
                                  '{"_id": "a\x01b", "text": "t"}',
                                  '{"_id": "a\\ud800", "text": "t"}'])
def test_a_bad_escape_or_control_character_in_an_id_is_one_line(tmp_path, line):
    corpus = _write(tmp_path / "c.jsonl", line + "\n")
    problems: list = []
    try:
        got = read_texts(corpus, {"a", "zz"}, problems=problems)  # "a..." is not needed
    except InputError as exc:
        assert "c.jsonl:1" in str(exc)
    else:  # a lone surrogate parses: a wrong-type problem, never a string Arrow cannot hold
        assert got == {} and problems and problems[0][1] == "wrong_type"


def test_the_fast_path_never_hides_the_real_id(tmp_path):
    corpus = _write(tmp_path / "c.jsonl", "\n".join([
        '{"meta": {"_id": "d1"}, "_id": "d2", "text": "two"}',
        '{"_id": "d3", "meta": {"_id": "d4"}, "text": "three"}',
        '{"_id": "d5", "_id": "d6", "text": "six"}',
        '{"_id": "d\\u0037", "text": "seven"}',
        '{"id": "d8", "_id": "d9", "text": "nine"}',
        '{"docid": "d10", "text": "_id"}']) + "\n")
    assert read_texts(corpus, {"d1", "d2", "d4", "d5", "d6", "d7", "d8", "d9", "d10"}) == \
        {"d2": "two", "d6": "six", "d7": "seven", "d9": "nine", "d10": "_id"}


_ids = st.one_of(st.text(max_size=4), st.integers(-5, 5), st.none(), st.booleans())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries(
    {"id": _ids, "text": st.one_of(st.text(max_size=5), st.integers(0, 3))},
    optional={"_id": _ids, "docid": _ids,
              "title": st.one_of(st.none(), st.text(max_size=3))}), max_size=6),
    st.sets(st.text(max_size=4), max_size=4))
def test_reading_with_needed_ids_equals_the_full_parse_restricted(tmp_path_factory, records,
                                                                  needed):
    path = tmp_path_factory.mktemp("p") / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    full_problems, part_problems = [], []
    full = read_texts(str(path), problems=full_problems)
    part = read_texts(str(path), set(needed), problems=part_problems)
    assert part == {k: v for k, v in full.items() if k in needed}
    assert [p for p in part_problems if p[0] is None or p[0] in needed] == \
        [p for p in full_problems if p[0] is None or p[0] in needed]


# --- 25: corpus hygiene ---------------------------------------------------------------------

def test_duplicates_bad_bytes_and_colliding_ids_are_counted(tmp_path):
    corpus = _write(tmp_path / "c.jsonl", b"\n".join([
        b'{"_id": "a", "text": "first"}',
        b'{"_id": "a", "text": "second"}',       # duplicate, same as written
        b'{"_id": 1, "text": "int"}',
        b'{"_id": "1", "text": "str"}',           # collides after decoding
        b'{"_id": "b", "text": "bad \xff byte"}',  # not UTF-8
    ]) + b"\n")
    counts = TextCounts()
    got = read_texts(corpus, counts=counts)
    assert got == {"a": "second", "1": "str", "b": "bad \ufffd byte"}
    assert counts.take() == {"duplicate_ids": 2, "id_collisions": 1, "non_utf8_lines": 1}
    tsv = _write(tmp_path / "c.tsv", b"p\xff1\tone\np\xfe1\ttwo\n")
    counts = TextCounts()
    assert read_texts(tsv, counts=counts) == {"p\ufffd1": "two"}
    assert counts.take() == {"non_utf8_lines": 2, "duplicate_ids": 1, "id_collisions": 1}


def test_a_non_finite_first_stage_score_quarantines_never_a_silent_zero():
    from data_contracts.text_features import featurize_rows

    rows = [{"query_id": "q", "doc_ids": ["a", "b"], "first_stage_scores": [1.0, float("inf")],
             "_location": "hf#0"},
            {"query_id": "r", "doc_ids": ["a"], "first_stage_scores": [1e300], "_location": "hf#1"},
            {"query_id": "s", "doc_ids": ["a"], "first_stage_scores": [2.0], "_location": "hf#2"}]
    featurize_rows(rows)
    assert [r.get("_error", (None,))[0] for r in rows] == \
        ["non_finite_features", "non_finite_features", None]
    assert "first_stage_scores[1] = inf" in rows[0]["_error"][2]
    assert rows[2]["features"].shape == (1, 8)


def test_a_query_record_of_a_wrong_type_quarantines_only_its_query(tmp_path):
    folder = tmp_path / "b"
    _beir(folder, queries=("q1", "q2"), docs=3)
    _write(folder / "queries.jsonl", json.dumps({"_id": "q1", "text": "fine"}) + "\n"
           + json.dumps({"_id": "q2", "text": ["a", "list"]}) + "\n")
    _write(folder / "corpus.jsonl", "".join(json.dumps({"_id": d, "text": d}) + "\n"
                                            for d in ("d1", "d2", "d3", "q1")))
    rows, bad, _ = _read(folder, "beir", candidates=_write(tmp_path / "c.txt",
                                                           _run_text(["q1", "q2"])))
    assert [r["query_id"] for r in rows] == ["q1"]
    assert [(b["reason"], b["query_id"], b["location"]) for b in bad] == \
        [("wrong_type", "q2", f"{folder}/queries.jsonl:2")]


@pytest.mark.parametrize("text", ['[{"_id": "a", "text": "t"}]\n',
                                  '{\n  "_id": "a",\n  "text": "t"\n}\n'])
def test_a_json_document_corpus_is_named_not_a_parse_error(tmp_path, text):
    with pytest.raises(InputError, match="c.jsonl:1: corpus is a JSON document .*not JSON lines"):
        read_texts(_write(tmp_path / "c.jsonl", text))
