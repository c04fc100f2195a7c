"""Every case of ../shared/cases/inputs (one KIND of input fault each) as a test of its expected
behaviour, at the reader level and, where the outcome is the command's, end to end.

Each case also gets variants built here (other compressions, other comment placements, ...) so
the test holds for the kind, not only for the one file. The folder is skipped with a reason
where ../shared is absent.
"""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_contracts.errors import InputError
from data_contracts.manifest import load_manifest
from data_contracts.readers import (FeatureSpace, dataset_space, detect_format, read_queries,
                                    scan_space)
from data_contracts.readers.space import resolve_space
from data_contracts.reasons import Reason
from data_contracts.usable import unusable_reason
from data_contracts.validate import ValidationState
from pipelines.build_curriculum import config_from_args, main, make_parser
from tests.conftest import REPO
from tests.data_contracts.util import read_and_validate

CASES = os.path.join(os.path.dirname(REPO), "shared", "cases", "inputs")


@pytest.fixture(scope="module")
def cases() -> str:
    if not os.path.isdir(os.path.join(CASES, "01-group-file-ids-collide")):
        pytest.skip(f"input cases not found at {CASES} (../shared is absent)")
    return CASES


def case(cases: str, name: str, *files: str):
    folder = os.path.join(cases, name)
    return [os.path.join(folder, f) for f in files] if files else folder


def ids(outcome) -> list:
    return outcome.ok.column("query_id").to_pylist()


def reasons(outcome) -> list:
    return outcome.quarantine.column("reason").to_pylist()


def skipped(path: str, fmt: str = "auto", **kwargs) -> int:
    return sum(b.skipped_lines for b in read_queries(path, fmt, **kwargs))


# --- the command, end to end ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def previous_run(tmp_path_factory, cases) -> str:
    """A good run to be replaced (or, for a failing run, kept): case 03's two queries."""
    out = str(tmp_path_factory.mktemp("previous") / "run")
    assert main(["--input", case(cases, "03-byte-order-mark", "data.txt")[0], "--out", out,
                 "--k", "4", "--k-max", "4"]) == 0
    return out


def run_cli(args: list[str], out: str, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(args + ["--out", out, "--k", "4", "--k-max", "4"])
    captured = capsys.readouterr()
    return code, captured.err


def _manifest_bytes(run: str) -> bytes:
    """The run's manifest as bytes (verified first: every listed file still matches)."""
    load_manifest(run)
    with open(os.path.join(run, "manifest.json"), "rb") as handle:
        return handle.read()


def assert_fails_keeping(previous_run, tmp_path, capsys, args, *needles) -> str:
    """The run exits 2 with one `error:` line holding `needles`; the previous run is kept."""
    out = str(tmp_path / "run")
    shutil.copytree(previous_run, out)
    before = _manifest_bytes(out)
    code, err = run_cli(args, out, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert _manifest_bytes(out) == before
    assert not [p for p in os.listdir(tmp_path) if "staging" in p]
    return lines[0]


def assert_scores(tmp_path, capsys, args, read: int, quarantined: int, scored: int) -> dict:
    out = str(tmp_path / "run")
    code, err = run_cli(args, out, capsys)
    assert code == 0, err
    counts = load_manifest(out)["counts"]
    assert (counts["read"], counts["quarantined"], counts["scored"]) == (read, quarantined,
                                                                         scored)
    return load_manifest(out)


# --- 01 group-file ids ---------------------------------------------------------------------------

def test_01_group_file_ids_are_unique_across_inputs(cases):
    a, b = case(cases, "01-group-file-ids-collide", "a.txt", "b.txt")
    state = ValidationState()
    got = ids(read_and_validate(a, state=state)) + ids(read_and_validate(b, state=state))
    assert got == ["a.txt:0", "a.txt:1", "b.txt:0", "b.txt:1"]


def test_01_end_to_end_four_queries(cases, tmp_path, capsys):
    a, b = case(cases, "01-group-file-ids-collide", "a.txt", "b.txt")
    assert_scores(tmp_path, capsys, ["--input", a, "--input", b], 4, 0, 4)


# --- 02 rows of a qid not adjacent ----------------------------------------------------------------

def test_02_not_adjacent_is_refused_naming_the_line_and_the_flag(cases):
    path, = case(cases, "02-qid-rows-not-adjacent", "data.txt")
    with pytest.raises(InputError) as info:
        list(read_queries(path))
    message = str(info.value)
    assert "\n" not in message
    assert "line 3: rows of qid 7 are not adjacent (its rows began at line 1" in message
    assert "--group-rows" in message


def test_02_group_rows_reads_whole_queries(cases):
    path, = case(cases, "02-qid-rows-not-adjacent", "data.txt")
    out = read_and_validate(path, group_rows=True)
    assert ids(out) == ["7", "8"]
    assert out.ok.column("labels").to_pylist() == [[2.0, 0.0, 1.0], [0.0, 1.0, 2.0]]
    assert reasons(out) == []


def test_02_kind_holds_for_tables(tmp_path):
    """The same rule for a one-row-per-document table (CSV): refused, or grouped."""
    path = tmp_path / "rows.csv"
    path.write_text("qid,docid,label,f1\n7,a,2,0.1\n8,b,0,0.2\n7,c,1,0.3\n")
    with pytest.raises(InputError, match="not adjacent.*--group-rows"):
        list(read_queries(str(path)))
    out = read_and_validate(str(path), group_rows=True)
    assert ids(out) == ["7", "8"]
    assert out.ok.column("doc_ids").to_pylist() == [["a", "c"], ["b"]]


def test_02_end_to_end_refused_previous_run_kept(cases, previous_run, tmp_path, capsys):
    path, = case(cases, "02-qid-rows-not-adjacent", "data.txt")
    assert_fails_keeping(previous_run, tmp_path, capsys, ["--input", path], "--group-rows",
                         "line 3")


def test_02_end_to_end_group_rows(cases, tmp_path, capsys):
    path, = case(cases, "02-qid-rows-not-adjacent", "data.txt")
    assert_scores(tmp_path, capsys, ["--input", path, "--group-rows"], 2, 0, 2)


# --- 03 byte-order mark, 04 comments --------------------------------------------------------------

def test_03_bom_is_ignored(cases, tmp_path):
    path, = case(cases, "03-byte-order-mark", "data.txt")
    out = read_and_validate(path)
    assert ids(out) == ["1", "2"] and reasons(out) == []
    # the kind: a BOM before a comment, CRLF line ends, and a BOM in JSON lines
    raw = open(path, "rb").read()
    variant = tmp_path / "crlf.txt"
    variant.write_bytes(b"\xef\xbb\xbf# header\r\n" + raw[3:].replace(b"\n", b"\r\n"))
    out = read_and_validate(str(variant))
    assert ids(out) == ["1", "2"] and reasons(out) == []
    assert skipped(str(variant)) == 1
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + json.dumps(
        {"query_id": "q", "doc_ids": ["a"], "features": [[1.0]]}).encode() + b"\n")
    assert ids(read_and_validate(str(jsonl))) == ["q"]


def test_03_end_to_end(cases, tmp_path, capsys):
    path, = case(cases, "03-byte-order-mark", "data.txt")
    assert_scores(tmp_path, capsys, ["--input", path], 2, 0, 2)


def test_04_comments_and_blanks_are_skipped_and_counted(cases, tmp_path):
    path, = case(cases, "04-comment-lines", "data.txt")
    out = read_and_validate(path)
    assert out.records == 2 and ids(out) == ["1", "2"] and reasons(out) == []
    assert skipped(path) == 3
    # the kind: comments inside a group-file layout do not shift the groups
    data = tmp_path / "rank.txt"
    data.write_text("# logged by job 7\n2 1:0.5\n\n0 1:0.1\n# next\n1 1:0.3\n")
    (tmp_path / "rank.txt.query").write_text("2\n1\n")
    out = read_and_validate(str(data))
    assert out.ok.column("labels").to_pylist() == [[2.0, 0.0], [1.0]]
    assert skipped(str(data)) == 3
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text("# comment\n\n" + json.dumps(
        {"query_id": "q", "doc_ids": ["a"], "features": [[1.0]]}) + "\n")
    out = read_and_validate(str(jsonl))
    assert out.records == 1 and skipped(str(jsonl)) == 2


def test_04_end_to_end_read_equals_scored(cases, tmp_path, capsys):
    path, = case(cases, "04-comment-lines", "data.txt")
    assert_scores(tmp_path, capsys, ["--input", path], 2, 0, 2)


def test_04_end_to_end_manifest_counts_skipped_lines(cases, tmp_path, capsys):
    path, = case(cases, "04-comment-lines", "data.txt")
    manifest = assert_scores(tmp_path, capsys, ["--input", path], 2, 0, 2)
    assert manifest["counts"]["skipped_lines"] == 3


# --- 05 no features -------------------------------------------------------------------------------

def test_05_no_features_is_quarantined_with_its_reason(cases):
    path, = case(cases, "05-no-features", "judgments.txt")
    out = read_and_validate(path)
    assert out.ok.num_rows == 0
    assert reasons(out) == [Reason.NO_FEATURES, Reason.NO_FEATURES]
    assert all("no features" in d for d in out.quarantine.column("detail").to_pylist())
    counts = {"read": 2, "quarantined": 2, "scored": 0}
    line = unusable_reason(counts, {Reason.NO_FEATURES: 2}, 0.5, {path: detect_format(path)})
    assert line.startswith("nothing scored: 2 of 2 records quarantined, top reason no_features")


def test_05_end_to_end_refused(cases, previous_run, tmp_path, capsys):
    path, = case(cases, "05-no-features", "judgments.txt")
    assert_fails_keeping(previous_run, tmp_path, capsys, ["--input", path], "no_features")


# --- 06 index base per file, 14 sparse width across files -----------------------------------------

def test_06_one_base_for_the_whole_dataset(cases):
    train, test = case(cases, "06-index-base-per-file", "train.txt", "test.txt")
    space = dataset_space([train, test])
    assert space == FeatureSpace(base=0, width=4, names=None)
    a = read_and_validate(train, space=space)
    b = read_and_validate(test, space=space)
    assert {len(r) for q in a.ok.column("features").to_pylist() for r in q} == {4}
    # test.txt's feature 1 lands in column 1, as in train.txt (not shifted into column 0)
    assert b.ok.column("features").to_pylist()[0][0] == pytest.approx([0.0, 0.7, 0.4, 0.3])


def test_06_base_is_settable_and_recorded(cases):
    train, test = case(cases, "06-index-base-per-file", "train.txt", "test.txt")
    assert dataset_space([test], zero_based=True) == FeatureSpace(base=0, width=4)
    assert dataset_space([test]) == FeatureSpace(base=1, width=3)
    with pytest.raises(InputError, match="one-based"):
        dataset_space([train, test], zero_based=False)
    assert FeatureSpace.from_dict(FeatureSpace(0, 4).to_dict()) == FeatureSpace(0, 4)
    config = config_from_args(make_parser().parse_args(["--zero-based"]))
    assert config.zero_based is True
    assert config_from_args(make_parser().parse_args(["--one-based"])).zero_based is False
    assert config_from_args(make_parser().parse_args([])).zero_based is None


def test_06_width_mismatch_is_one_line(cases):
    """An evaluation file read with a narrower space than its ids: one line, not a traceback."""
    train, = case(cases, "06-index-base-per-file", "train.txt")
    with pytest.raises(InputError) as info:
        list(read_queries(train, space=FeatureSpace(base=0, width=3)))
    message = str(info.value)
    assert "\n" not in message and "feature space" in message and "width 3" in message


def test_14_sparse_files_share_the_largest_width(cases):
    a, b = case(cases, "14-sparse-width-across-files", "a.txt", "b.txt")
    space = dataset_space([a, b])
    assert space == FeatureSpace(base=1, width=3)
    state = ValidationState()
    got = read_and_validate(a, space=space, state=state).ok.num_rows + \
        read_and_validate(b, space=space, state=state).ok.num_rows
    assert got == 2 and state.feature_width == 3
    stats = scan_space(a).merge(scan_space(b))
    assert (stats.low, stats.high) == (1, 3)
    assert resolve_space(stats) == space


def test_14_table_and_sparse_width_mismatch_is_one_line(cases, tmp_path):
    a, = case(cases, "14-sparse-width-across-files", "a.txt")
    table = tmp_path / "wide.csv"
    table.write_text("qid,label,f1,f2\n1,0,0.5,0.5\n")
    with pytest.raises(InputError) as info:
        dataset_space([a, str(table)])
    assert "\n" not in str(info.value) and "width mismatch" in str(info.value)


def test_14_end_to_end_two_queries(cases, tmp_path, capsys):
    a, b = case(cases, "14-sparse-width-across-files", "a.txt", "b.txt")
    assert_scores(tmp_path, capsys, ["--input", a, "--input", b], 2, 0, 2)


# --- 07 compressed ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["gzip", "bz2", "xz", "zstd"])
def test_07_compressed_inputs_by_magic_bytes(cases, tmp_path, kind):
    path, = case(cases, "07-gzip", "data.txt.gz")
    assert detect_format(path) == "svmlight"
    assert ids(read_and_validate(path)) == ["1", "2"]
    assert ids(read_and_validate(path, "svmlight")) == ["1", "2"]
    text = gzip.decompress(open(path, "rb").read())
    if kind == "zstd":
        zstandard = pytest.importorskip("zstandard")
        data = zstandard.ZstdCompressor().compress(text)
    else:
        data = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](text)
    other = tmp_path / "data.bin"  # the name says nothing
    other.write_bytes(data)
    assert ids(read_and_validate(str(other))) == ["1", "2"]


def test_07_end_to_end(cases, tmp_path, capsys):
    path, = case(cases, "07-gzip", "data.txt.gz")
    assert_scores(tmp_path, capsys, ["--input", path], 2, 0, 2)


# --- 08 nothing usable (TREC qrels; also a TREC run) ----------------------------------------------

def test_08_qrels_are_detected_and_named(cases, tmp_path):
    path, = case(cases, "08-nothing-usable", "qrels.test")
    assert detect_format(path) == "trec-qrels"
    with pytest.raises(InputError, match="looks like TREC qrels: qid iter docno rel"):
        read_queries(path)
    run = tmp_path / "bm25.run"
    run.write_text("q1 Q0 doc-a 1 12.5 bm25\nq1 Q0 doc-b 2 11.0 bm25\n")
    assert detect_format(str(run)) == "trec-run"
    with pytest.raises(InputError, match="looks like TREC run"):
        read_queries(str(run))


def test_08_forced_format_reads_nothing_and_the_rule_names_the_layout(cases):
    path, = case(cases, "08-nothing-usable", "qrels.test")
    out = read_and_validate(path, "svmlight")
    assert out.ok.num_rows == 0 and out.records == 4
    counts = {"read": 4, "quarantined": 4, "scored": 0}
    line = unusable_reason(counts, {"unparseable_line": 4}, 0.5, {path: detect_format(path)})
    assert line == ("nothing scored: 4 of 4 records quarantined, top reason unparseable_line "
                    "(4); the input looks like TREC qrels: qid iter docno rel")


def test_08_end_to_end_auto_fails_keeping_the_previous_run(cases, previous_run, tmp_path, capsys):
    path, = case(cases, "08-nothing-usable", "qrels.test")
    assert_fails_keeping(previous_run, tmp_path, capsys, ["--input", path],
                         "looks like TREC qrels: qid iter docno rel")


def test_08_end_to_end_forced_format_fails(cases, previous_run, tmp_path, capsys):
    path, = case(cases, "08-nothing-usable", "qrels.test")
    assert_fails_keeping(previous_run, tmp_path, capsys,
                         ["--input", path, "--input-format", "svmlight"],
                         "nothing scored", "looks like TREC qrels")


# --- 09 comment document names --------------------------------------------------------------------

def test_09_first_comment_word_is_the_document_id(cases, tmp_path):
    path, _ = case(cases, "09-comment-document-names", "train.dat", "rollouts.jsonl")
    out = read_and_validate(path, "svmlight")
    assert out.ok.column("doc_ids").to_pylist() == [["d-alpha", "d-beta", "d-gamma"]]
    # `docid =` wins where it is given; repeated names fall back to QID:N
    other = tmp_path / "mixed.txt"
    other.write_text("1 qid:1 1:1 # docid = X7 inc = 1\n0 qid:1 1:0 # X8\n"
                     "1 qid:2 1:1 # same\n0 qid:2 1:0 # same\n")
    out = read_and_validate(str(other))
    assert out.ok.column("doc_ids").to_pylist() == [["X7", "X8"], ["2:0", "2:1"]]


def test_09_end_to_end_both_rollouts_accepted(cases, tmp_path, capsys):
    path, log = case(cases, "09-comment-document-names", "train.dat", "rollouts.jsonl")
    manifest = assert_scores(tmp_path, capsys, ["--input-format", "svmlight", "--input", path,
                                                "--rollouts", log], 1, 0, 1)
    assert manifest["counts"]["rollouts_quarantined"] == 0


# --- 10 negative label range ----------------------------------------------------------------------

def test_10_label_range_with_a_leading_minus_parses(cases):
    for argv in (["--label-range", "-1,1"], ["--label-range=-1,1"]):
        config = config_from_args(make_parser().parse_args(argv))
        assert (config.label_min, config.label_max) == (-1.0, 1.0)
    path, = case(cases, "10-negative-label-range", "pm1.txt")
    out = read_and_validate(path, state=ValidationState(label_min=-1.0, label_max=1.0))
    assert ids(out) == ["a", "b"] and reasons(out) == []


def test_10_end_to_end(cases, tmp_path, capsys):
    path, = case(cases, "10-negative-label-range", "pm1.txt")
    assert_scores(tmp_path, capsys, ["--input", path, "--label-range", "-1,1"], 2, 0, 2)


# --- 11 XGBoost group file ------------------------------------------------------------------------

def test_11_group_file_is_read_like_query(cases, tmp_path):
    path, = case(cases, "11-xgboost-group-file", "rank.txt")
    assert detect_format(path) == "xgboost"
    out = read_and_validate(path)
    assert ids(out) == ["rank.txt:0", "rank.txt:1"]
    assert out.ok.column("labels").to_pylist() == [[2.0, 0.0], [1.0, 0.0]]
    assert ids(read_and_validate(path, "xgboost")) == ids(out)
    assert ids(read_and_validate(path, "svmlight")) == ids(out)
    # without its group file it is refused, saying what it needs
    alone = tmp_path / "rank.txt"
    shutil.copy(path, alone)
    assert detect_format(str(alone)) == "svmlight-no-qid"
    with pytest.raises(InputError, match=r"PATH\.query.*PATH\.group"):
        read_queries(str(alone))


def test_11_end_to_end(cases, tmp_path, capsys):
    path, = case(cases, "11-xgboost-group-file", "rank.txt")
    assert_scores(tmp_path, capsys, ["--input", path], 2, 0, 2)


# --- 12 huge feature id ---------------------------------------------------------------------------

def test_12_huge_id_is_a_reason_not_an_allocation(cases, tmp_path):
    path, = case(cases, "12-huge-feature-id", "data.txt")
    assert dataset_space([path]) == FeatureSpace(base=1, width=2)
    out = read_and_validate(path)
    assert ids(out) == ["1", "2"]
    assert reasons(out) == [Reason.UNPARSEABLE_LINE]
    # the kind: a well-formed line naming a huge id quarantines its query with its own reason
    good_label = tmp_path / "huge.txt"
    good_label.write_text("2 qid:1 1:0.8 2:0.2\n1 qid:3 1000000000:1.0\n")
    out = read_and_validate(str(good_label))
    assert ids(out) == ["1"] and reasons(out) == [Reason.FEATURE_ID_OUT_OF_RANGE]
    out = read_and_validate(str(good_label), max_feature_id=10)
    assert reasons(out) == [Reason.FEATURE_ID_OUT_OF_RANGE]


def test_12_end_to_end(cases, tmp_path, capsys):
    path, = case(cases, "12-huge-feature-id", "data.txt")
    assert_scores(tmp_path, capsys, ["--input", path], 3, 1, 2)


# --- 13 Parquet string labels ---------------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [1, 2, 3, 256])
def test_13_only_the_bad_record_is_quarantined_at_any_batch_size(cases, batch_size):
    path, = case(cases, "13-parquet-string-labels", "queries.parquet")
    out = read_and_validate(path, batch_size=batch_size)
    assert ids(out) == ["q-a", "q-c"]
    assert out.ok.column("labels").to_pylist() == [[2.0, 0.0], [1.0, 0.0]]
    assert out.quarantine.column("query_id").to_pylist() == ["q-b"]


def test_13_end_to_end(cases, tmp_path, capsys):
    path, = case(cases, "13-parquet-string-labels", "queries.parquet")
    assert_scores(tmp_path, capsys, ["--input", path, "--batch-size", "1"], 3, 1, 2)


# --- 15 empty file --------------------------------------------------------------------------------

def test_15_empty_input_reads_nothing_and_the_rule_says_so(cases, tmp_path):
    path, = case(cases, "15-empty-file", "data.txt")
    assert detect_format(path) == "empty"
    assert list(read_queries(path)) == []
    assert unusable_reason({"read": 0}, {}, 0.5, {path: "empty"}) == f"no records in {path}"
    only_comments = tmp_path / "c.txt"
    only_comments.write_text("# nothing here\n\n")
    assert detect_format(str(only_comments)) == "empty"
    gz = tmp_path / "e.gz"
    gz.write_bytes(gzip.compress(b""))
    assert detect_format(str(gz)) == "empty"


def test_15_end_to_end_refused(cases, previous_run, tmp_path, capsys):
    path, = case(cases, "15-empty-file", "data.txt")
    assert_fails_keeping(previous_run, tmp_path, capsys, ["--input", path], "no records in")


# --- 16 deep JSONL, 17 first record missing a column ----------------------------------------------

def test_16_deep_record_is_quarantined_not_a_recursion_error(cases, tmp_path):
    path, = case(cases, "16-deep-jsonl", "queries.jsonl")
    out = read_and_validate(path)
    assert ids(out) == ["r0", "r1", "r2"]
    assert reasons(out) == [Reason.UNPARSEABLE_RECORD]
    # the kind: deep but parseable nesting (below Python's recursion limit), first in the file
    deep = tmp_path / "deep.jsonl"
    good = {"query_id": "ok", "doc_ids": ["a"], "features": [[1.0]]}
    deep.write_text(json.dumps({"query_id": "d", "doc_ids": ["a"],
                                "features": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1.0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})
                    + "\n" + json.dumps(good) + "\n")
    out = read_and_validate(str(deep))
    assert ids(out) == ["ok"] and reasons(out) == [Reason.UNPARSEABLE_RECORD]


def test_16_end_to_end(cases, tmp_path, capsys):
    path, = case(cases, "16-deep-jsonl", "queries.jsonl")
    assert_scores(tmp_path, capsys, ["--input", path], 4, 1, 3)


@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize("batch_size", [1, 2, 256])
def test_17_missing_column_same_outcome_wherever_it_stands(cases, tmp_path, position,
                                                           batch_size):
    path, = case(cases, "17-jsonl-first-record-missing-column", "queries.jsonl")
    lines = open(path, encoding="utf-8").read().splitlines()
    bad, good = lines[0], lines[1:]
    order = good[:position] + [bad] + good[position:]
    moved = tmp_path / "queries.jsonl"
    moved.write_text("\n".join(order) + "\n")
    out = read_and_validate(str(moved), batch_size=batch_size)
    assert ids(out) == ["r1", "r2"]
    assert out.quarantine.column("query_id").to_pylist() == ["r0"]
    assert reasons(out) == [Reason.LENGTH_MISMATCH]


def test_17_end_to_end(cases, tmp_path, capsys):
    path, = case(cases, "17-jsonl-first-record-missing-column", "queries.jsonl")
    assert_scores(tmp_path, capsys, ["--input", path], 3, 1, 2)


def test_17_a_column_no_record_has_refuses_the_file(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"query_id": f"q{i}", "doc_ids": ["a"]}) + "\n"
                            for i in range(3)))
    with pytest.raises(InputError, match="features"):
        list(read_queries(str(path)))


@pytest.mark.parametrize("compression", ["snappy", "none"])
def test_corrupt_parquet_and_folder_with_explicit_format_are_one_line(tmp_path, compression):
    path = tmp_path / "q.parquet"
    table = pa.table({"query_id": [f"q{i}" for i in range(3000)], "doc_ids": [["a"]] * 3000,
                      "features": [[[float(i), float(i * 7 % 13)]] for i in range(3000)]})
    pq.write_table(table, str(path), compression=compression)
    data = bytearray(path.read_bytes())
    third = len(data) // 3
    data[third:third + 200] = bytes(range(200))  # corrupt pages; magic and footer intact
    path.write_bytes(bytes(data))
    for fmt in ("auto", "parquet"):
        with pytest.raises(InputError) as info:
            list(read_queries(str(path), fmt))
        assert "\n" not in str(info.value) and "corrupt Parquet data" in str(info.value)
    folder = tmp_path / "folder"
    folder.mkdir()
    for fmt in ("svmlight", "jsonl", "csv", "lightgbm", "xgboost", "catboost", "parquet"):
        with pytest.raises(InputError) as info:
            list(read_queries(str(folder), fmt))
        assert "\n" not in str(info.value)


# --- detection of the neighbouring kinds the cases stand for ----------------------------------------

def test_catboost_pool_reads_with_its_column_description(tmp_path):
    pool = tmp_path / "train.tsv"
    pool.write_text("2\t1\t0.5\t0.1\n0\t1\t0.2\t0.3\n1\t2\t0.9\t0.0\n")
    assert detect_format(str(pool)) == "catboost-tsv"
    with pytest.raises(InputError, match=r"looks like CatBoost-style TSV.*\.cd"):
        read_queries(str(pool))
    (tmp_path / "train.cd").write_text("0\tLabel\n1\tGroupId\n")
    assert detect_format(str(pool)) == "catboost"
    out = read_and_validate(str(pool))
    assert ids(out) == ["1", "2"]
    assert out.ok.column("labels").to_pylist() == [[2.0, 0.0], [1.0]]
    assert dataset_space([str(pool)]).width == 2
    # catboost.datasets.msrank_10k style: comma separated, no header
    csv_pool = tmp_path / "msrank" / "train.csv"
    csv_pool.parent.mkdir()
    csv_pool.write_text("2,1,0.5,0.1\n0,1,0.2,0.3\n1,2,0.9,0.0\n")
    assert detect_format(str(csv_pool)) == "catboost-tsv"
    (csv_pool.parent / "pool.cd").write_text("0\tLabel\n1\tQueryId\n")
    out = read_and_validate(str(csv_pool))
    assert ids(out) == ["1", "2"] and out.quarantine.num_rows == 0


def test_json_qrels_and_json_documents_are_named(tmp_path):
    qrels = tmp_path / "qrels.json"
    qrels.write_text(json.dumps({"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}) + "\n")
    assert detect_format(str(qrels)) == "json-qrels"
    with pytest.raises(InputError, match="looks like a JSON qrels"):
        read_queries(str(qrels))
    pretty = tmp_path / "queries.json"
    pretty.write_text(json.dumps([{"query_id": "q"}], indent=2))
    with pytest.raises(InputError, match="not JSON lines"):
        detect_format(str(pretty))


# --- the run-level contract, as the pipeline is to wire it (plan_inputs -> validate -> rule) -----

def read_run(paths: list[str], fmt: str = "auto", **plan_kwargs):
    """What ReadAndValidateFn + run() do with the readers' pieces, without Beam: one plan for
    all inputs, one validation state started at the dataset width, then the run-level rule."""
    from collections import Counter

    from data_contracts.readers import plan_inputs
    from data_contracts.validate import validate_queries

    plan = plan_inputs(paths, fmt, **plan_kwargs)
    state = ValidationState(feature_width=plan.space.width)
    counts, reasons_seen, ok = Counter(), Counter(), []
    for path in paths:
        for batch in plan.read(path):
            good, bad = validate_queries(batch, state)
            counts["read"] += batch.records
            counts["skipped_lines"] += batch.skipped_lines
            counts["quarantined"] += bad.num_rows
            counts["scored"] += good.num_rows
            reasons_seen.update(bad.column("reason").to_pylist())
            ok += good.column("query_id").to_pylist()
    return plan, counts, ok, unusable_reason(counts, reasons_seen, 0.5, plan.layouts)


def test_run_contract_for_every_case_that_needs_the_wiring(cases):
    _, counts, ok, problem = read_run(case(cases, "02-qid-rows-not-adjacent", "data.txt"),
                                      group_rows=True)
    assert ok == ["7", "8"] and problem is None
    _, counts, _, problem = read_run(case(cases, "04-comment-lines", "data.txt"))
    assert (counts["read"], counts["scored"], counts["skipped_lines"], problem) == (2, 2, 3, None)
    _, _, _, problem = read_run(case(cases, "05-no-features", "judgments.txt"))
    assert problem.startswith("nothing scored: 2 of 2 records quarantined, top reason "
                              "no_features (2)")
    plan, _, ok, problem = read_run(case(cases, "06-index-base-per-file", "train.txt", "test.txt"))
    assert plan.space.to_dict() == {"base": 0, "width": 4, "names": None}
    assert ok == ["1", "2", "3"] and problem is None
    path = case(cases, "08-nothing-usable", "qrels.test")
    _, _, _, problem = read_run(path, "svmlight")
    assert problem == ("nothing scored: 4 of 4 records quarantined, top reason unparseable_line "
                       "(4); the input looks like TREC qrels: qid iter docno rel")
    _, _, ok, problem = read_run(case(cases, "14-sparse-width-across-files", "a.txt", "b.txt"))
    assert ok == ["1", "2"] and problem is None
    path = case(cases, "15-empty-file", "data.txt")
    _, _, _, problem = read_run(path)
    assert problem == f"no records in {path[0]}"


def test_max_quarantine_share(cases, tmp_path):
    path = tmp_path / "mostly-bad.txt"
    path.write_text("1 qid:1 1:1\n9 qid:2 1:1\n9 qid:3 1:1\n")
    _, counts, ok, problem = read_run([str(path)])
    assert ok == ["1"]
    assert problem == ("2 of 3 records quarantined (67%), more than --max-quarantine 0.5, top "
                       "reason label_out_of_range (2)")
    assert unusable_reason(counts, {"label_out_of_range": 2}, 0.7, {}) is None
    # a rollout log covering part of the input: the rest is no_rollouts, not an input fault
    log_counts = {"read": 10, "quarantined": 8, "scored": 2}
    assert unusable_reason(log_counts, {Reason.NO_ROLLOUTS: 8}, 0.5, {}) is None
    assert unusable_reason({"read": 10, "quarantined": 10, "scored": 0},
                           {Reason.NO_ROLLOUTS: 10}, 0.5, {}).startswith("nothing scored")


def test_rows_tables_as_pandas_writes_them(tmp_path):
    """pandas' to_csv / to_parquet keep the index as a column: it is not a feature."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"qid": [3, 3, 4], "doc": ["a", "b", "c"], "relevance": [1, 0, 2],
                          "bm25": [1.5, 0.5, 2.0], "tf": [3, 1, 4], "weight": [1.0, 1.0, 2.0]},
                         index=[10, 11, 12])
    frame.to_csv(tmp_path / "rows.csv")
    frame.to_parquet(tmp_path / "rows.parquet")
    for name in ("rows.csv", "rows.parquet"):
        path = str(tmp_path / name)
        assert dataset_space([path]).names == ("bm25", "tf")
        out = read_and_validate(path)
        assert ids(out) == ["3", "4"]
        assert out.ok.column("doc_ids").to_pylist() == [["a", "b"], ["c"]]
        assert out.ok.column("features").to_pylist() == [[[1.5, 3.0], [0.5, 1.0]], [[2.0, 4.0]]]
        assert out.ok.column("labels").to_pylist() == [[1.0, 0.0], [2.0]]
    mapped = read_and_validate(str(tmp_path / "rows.parquet"),
                               column_map={"query_id": "doc", "features": "bm25|tf"})
    assert ids(mapped) == ["a", "b", "c"]


@pytest.mark.parametrize("position", [0, 1, 2, 3])
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_rows_table_bad_value_same_outcome_wherever_it_stands(tmp_path, position, fmt):
    """A label `very` in a rows table quarantines its own query only, at any batch size and
    wherever it stands (CSV is read as text: no type guessed from the first block)."""
    queries = [(f"q{i}", "2" if i != position else "very") for i in range(4)]
    path = tmp_path / f"rows.{fmt}"
    if fmt == "csv":
        body = "".join(f"{q},a,{label},0.5\n{q},b,0,0.1\n" for q, label in queries)
        path.write_text("qid,docid,label,f1\n" + body)
    else:
        path.write_text("".join(
            json.dumps({"qid": q, "docid": d, "label": (float(lab) if lab != "very" else lab)
                        if d == "a" else 0, "f1": 0.5}) + "\n"
            for q, lab in queries for d in ("a", "b")))
    for batch_size in (1, 3, 256):
        out = read_and_validate(str(path), batch_size=batch_size)
        assert ids(out) == [q for q, _ in queries if q != f"q{position}"]
        assert out.quarantine.column("query_id").to_pylist() == [f"q{position}"]
        assert reasons(out) == [Reason.UNPARSEABLE_RECORD]


def test_06_scikit_learn_declares_its_base(tmp_path):
    """dump_svmlight_file(..., comment=...) says `Column indices are zero-based`: a zero-based
    file that never names feature 0 is still read zero-based."""
    import numpy as np

    dump_svmlight_file = pytest.importorskip("sklearn.datasets").dump_svmlight_file

    path = tmp_path / "sk.txt"
    X = np.array([[0.0, 0.5, 0.25], [0.0, 0.1, 0.0]])
    dump_svmlight_file(X, [1, 0], str(path), query_id=[4, 4], comment="exported")
    assert "zero-based" in path.read_text()
    space = dataset_space([str(path)])
    assert (space.base, space.width) == (0, 3)
    out = read_and_validate(str(path), space=space)
    assert out.ok.column("features").to_pylist()[0] == [pytest.approx(r) for r in X.tolist()]
    assert skipped(str(path)) >= 2


def test_01_same_file_name_in_two_folders(cases, tmp_path):
    a, = case(cases, "01-group-file-ids-collide", "a.txt")
    paths = []
    for folder in ("train", "test"):
        (tmp_path / folder).mkdir()
        shutil.copy(a, tmp_path / folder / "rank.txt")
        shutil.copy(a + ".query", tmp_path / folder / "rank.txt.query")
        paths.append(str(tmp_path / folder / "rank.txt"))
    _, counts, ok, problem = read_run(paths)
    assert ok == ["train/rank.txt:0", "train/rank.txt:1", "test/rank.txt:0", "test/rank.txt:1"]
    assert problem is None


def test_forced_format_that_reads_nothing_names_what_the_input_is(tmp_path):
    path = tmp_path / "q.parquet"
    pq.write_table(pa.table({"query_id": ["q"], "doc_ids": [["a"]], "features": [[[1.0]]]}),
                   str(path))
    line = unusable_reason({"read": 3, "quarantined": 3, "scored": 0},
                           {"unparseable_line": 3}, 0.5, {str(path): detect_format(str(path))},
                           forced_format="svmlight")
    assert line.endswith(f"{path} looks like parquet, not svmlight (try --input-format auto)")
