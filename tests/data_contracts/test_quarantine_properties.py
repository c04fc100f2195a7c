"""Every corrupted record ends ok or quarantined with the right reason; nothing is lost.

Property tests generate streams of records, corrupt some of them in every way the contract
names, and compare the pipeline (read_queries / read_rollouts, then validate_queries /
validate_rollouts) with a plain, one-record-at-a-time model of the contract written here.
For records carrying exactly one corruption the model must also give that corruption's own
reason, so the model cannot drift into agreeing with a wrong implementation.
"""
from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from data_contracts.errors import InputError
from data_contracts.readers import read_rollouts
from data_contracts.readers.base import rows_to_batch
from data_contracts.reasons import Reason
from data_contracts.validate import ValidationState, validate_queries, validate_rollouts
from tests.data_contracts.util import read_and_validate

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
LABEL_MIN, LABEL_MAX = 0.0, 4.0

# --- query records -----------------------------------------------------------------------------

# corruption kind -> the reason it must produce on an otherwise valid record
QUERY_KINDS = {
    "empty_query_id": Reason.EMPTY_QUERY_ID,
    "duplicate_query_id": Reason.DUPLICATE_QUERY_ID,
    "no_documents": Reason.NO_DOCUMENTS,
    "fewer_feature_rows": Reason.LENGTH_MISMATCH,
    "extra_doc_id": Reason.LENGTH_MISMATCH,
    "missing_label": Reason.LENGTH_MISMATCH,
    "ragged_row": Reason.RAGGED_FEATURES,
    "null_row": Reason.RAGGED_FEATURES,
    "dataset_width": Reason.RAGGED_FEATURES,
    "non_finite": Reason.NON_FINITE_FEATURES,
    "label_out_of_range": Reason.LABEL_OUT_OF_RANGE,
    "duplicate_doc_id": Reason.DUPLICATE_DOC_ID,
    "bad_type": Reason.UNPARSEABLE_RECORD,
    "bad_json": Reason.UNPARSEABLE_RECORD,
}
BAD_JSON = ["{not json", "[1, 2, 3]", '"a string"', '{"query_id": "q', "null"]

finite32 = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)


def _apply(draw, record: dict, kind: str, width: int):
    """Corrupts `record` in place by `kind`; returns the record or a raw (bad JSON) line."""
    docs, feats, labels = record["doc_ids"], record["features"], record["labels"]
    if kind == "empty_query_id":
        record["query_id"] = draw(st.sampled_from(["", "   ", None]))
    elif kind == "duplicate_query_id":
        record["query_id"] = "q0"
    elif kind == "no_documents":
        record["doc_ids"], record["features"], record["labels"] = [], [], []
    elif kind == "fewer_feature_rows":
        if feats:
            feats.pop()
    elif kind == "extra_doc_id":
        docs.append(f"{record['query_id']}-extra")
    elif kind == "missing_label":
        if labels:
            labels.pop()
    elif kind == "ragged_row":
        if len(feats) == 1:  # raggedness needs two rows: add one of a different width
            docs.append(f"{docs[0] if docs else 'x'}-2")
            labels.append(0.0)
            feats.append([0.5] * (width + 1))
        elif feats and feats[0] is not None:
            feats[0] = feats[0] + [1.0]
    elif kind == "null_row":
        if feats:
            feats[draw(st.integers(0, len(feats) - 1))] = None
    elif kind == "dataset_width":
        record["features"] = [None if r is None else r + [2.0] for r in feats]
    elif kind == "non_finite":
        rows = [i for i, r in enumerate(feats) if r]
        if rows:
            r = draw(st.sampled_from(rows))
            c = draw(st.integers(0, len(feats[r]) - 1))
            feats[r][c] = draw(st.sampled_from([math.nan, math.inf, -math.inf, None]))
    elif kind == "label_out_of_range":
        if labels:
            i = draw(st.integers(0, len(labels) - 1))
            labels[i] = draw(st.sampled_from([-1.0, 5.0, 4.5, -0.25, 1e9, math.nan, None]))
    elif kind == "duplicate_doc_id":
        if draw(st.booleans()) and docs:
            docs[-1] = ""
        elif docs and feats and labels:
            docs.append(docs[0])
            feats.append(list(feats[0]) if feats[0] is not None else None)
            labels.append(labels[0])
    elif kind == "bad_type":
        field, value = draw(st.sampled_from([("features", "oops"), ("doc_ids", 7),
                                             ("doc_ids", [1.5, 2.5]), ("labels", "x"),
                                             ("features", [1.0, 2.0]), ("query_id", 1.5)]))
        record[field] = value
    elif kind == "bad_json":
        return draw(st.sampled_from(BAD_JSON))
    return record


@st.composite
def query_streams(draw):
    """(records, kinds applied per record, blank lines before each record, batch size)."""
    width = draw(st.integers(1, 4))
    clean_first = draw(st.booleans())
    n = draw(st.integers(1, 10))
    records, kinds = [], []
    for i in range(n):
        k = draw(st.integers(1, 4))
        record = {
            "query_id": f"q{i}",
            "doc_ids": [f"q{i}-d{j}" for j in range(k)],
            "features": draw(st.lists(st.lists(finite32, min_size=width, max_size=width),
                                      min_size=k, max_size=k)),
            "labels": [float(x) for x in draw(st.lists(st.integers(0, 4), min_size=k,
                                                       max_size=k))],
        }
        choices = sorted(set(QUERY_KINDS) - ({"duplicate_query_id"} if i == 0 else set()))
        applied = [] if (i == 0 and clean_first) else draw(
            st.lists(st.sampled_from(choices), max_size=2, unique=True))
        # type and JSON corruptions go last: they leave nothing for the others to edit
        for kind in sorted(applied, key=lambda k: {"bad_type": 1, "bad_json": 2}.get(k, 0)):
            record = _apply(draw, record, kind, width)
        records.append(record)
        kinds.append(applied)
    blanks = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    batch_size = draw(st.integers(1, 5))
    return records, kinds, blanks, batch_size, clean_first


def _is_number(x) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _id(value):
    """The reader's reading of an id: an integer (not a bool) is its decimal string."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def normalise(record):
    """A record as the contract reads it: integer query and document ids become strings."""
    if not isinstance(record, dict):
        return record
    out = dict(record)
    if "query_id" in out:
        out["query_id"] = _id(out["query_id"])
    if isinstance(out.get("doc_ids"), list):
        out["doc_ids"] = [_id(d) for d in out["doc_ids"]]
    return out


def _converts(record: dict) -> bool:
    """Whether a JSON record's values have the contract's types at all."""
    record = normalise(record)
    qid, docs, feats, labels = (record.get(k) for k in ("query_id", "doc_ids", "features",
                                                        "labels"))
    return ((qid is None or isinstance(qid, str))
            and isinstance(docs, list) and all(isinstance(d, str) for d in docs)
            and isinstance(feats, list)
            and all(r is None or (isinstance(r, list) and all(_is_number(v) for v in r))
                    for r in feats)
            and (labels is None or (isinstance(labels, list) and all(map(_is_number, labels)))))


def _content_reason(record: dict, width: int | None) -> str | None:
    """The contract's first failing content check for one record (None: passes)."""
    qid, docs, feats, labels = (record.get(k) for k in ("query_id", "doc_ids", "features",
                                                        "labels"))
    if qid is None or not qid.strip():
        return Reason.EMPTY_QUERY_ID
    if not docs:
        return Reason.NO_DOCUMENTS
    if len(feats) != len(docs) or (labels is not None and len(labels) != len(docs)):
        return Reason.LENGTH_MISMATCH
    if any(r is None for r in feats) or len({len(r) for r in feats}) != 1:
        return Reason.RAGGED_FEATURES
    if width is not None and len(feats[0]) != width:
        return Reason.RAGGED_FEATURES
    if any(v is None or not math.isfinite(v) for r in feats for v in r):
        return Reason.NON_FINITE_FEATURES
    if labels is not None and any(x is None or not LABEL_MIN <= x <= LABEL_MAX for x in labels):
        return Reason.LABEL_OUT_OF_RANGE
    if len(set(docs)) != len(docs) or any(d == "" for d in docs):
        return Reason.DUPLICATE_DOC_ID
    return None


def expected_query_reasons(records: list) -> list:
    """Reason (or None for ok) of each record, validating one record at a time in order.

    The first valid record sets the dataset width; a query id repeats only against an earlier
    valid record; a record whose values do not convert never reaches validation.
    """
    width, seen, out = None, set(), []
    for record in map(normalise, records):
        if isinstance(record, str) or not _converts(record):
            out.append(Reason.UNPARSEABLE_RECORD)
            continue
        reason = _content_reason(record, width)
        if reason is None:
            if width is None:
                width = len(record["features"][0])
            if record["query_id"] in seen:
                reason = Reason.DUPLICATE_QUERY_ID
            else:
                seen.add(record["query_id"])
        out.append(reason)
    return out


@SETTINGS
@given(stream=query_streams())
def test_query_records_end_ok_or_with_reason(tmp_path_factory, stream):
    """JSONL query records: each ends ok or quarantined with its reason; read = ok + quarantined."""
    records, kinds, blanks, batch_size, clean_first = stream
    path = tmp_path_factory.mktemp("q") / "queries.jsonl"
    lines, numbers = [], []
    for record, blank in zip(records, blanks):
        if blank:
            lines.append("")
        lines.append(record if isinstance(record, str) else json.dumps(record))
        numbers.append(len(lines))
    path.write_text("\n".join(lines) + "\n")

    out = read_and_validate(str(path), "jsonl", batch_size=batch_size)
    expected = expected_query_reasons(records)

    # read = ok + quarantined, and every record is one of them exactly once
    assert out.records == len(records) == out.ok.num_rows + out.quarantine.num_rows
    locations = out.quarantine.column("location").to_pylist()
    assert len(set(locations)) == len(locations)
    got = dict(zip(locations, out.quarantine.column("reason").to_pylist()))
    want = {f"{path}:{numbers[i]}": r for i, r in enumerate(expected) if r is not None}
    assert got == want
    ok_records = [normalise(r) for r, reason in zip(records, expected) if reason is None]
    assert out.ok.column("query_id").to_pylist() == [r["query_id"] for r in ok_records]
    assert out.ok.column("doc_ids").to_pylist() == [r["doc_ids"] for r in ok_records]
    assert out.ok.column("features").to_pylist() == [r["features"] for r in ok_records]
    assert out.ok.column("labels").to_pylist() == [r["labels"] for r in ok_records]
    # quarantined rows keep the query id they had, when they had one
    by_location = dict(zip(locations, out.quarantine.column("query_id").to_pylist()))
    for i, record in enumerate(records):
        if isinstance(record, dict) and expected[i] is not None \
                and isinstance(record.get("query_id"), str):
            assert by_location[f"{path}:{numbers[i]}"] == record["query_id"]

    # the model itself gives each single corruption its own reason (after a clean first record:
    # a corrupted but valid first record may set another dataset width, which then takes
    # precedence as ragged_features)
    for i, (applied, reason) in enumerate(zip(kinds, expected)):
        if len(applied) == 1 and clean_first:
            assert reason == QUERY_KINDS[applied[0]], (i, applied, records[i])
        if not applied and clean_first:  # else a corrupted first record may set another width
            assert reason is None, (i, records[i])


@pytest.mark.parametrize("kind", sorted(set(QUERY_KINDS) - {"bad_json", "bad_type"}))
def test_each_query_corruption_has_its_reason(kind):
    """One record per corruption kind, after a valid first record, gets that kind's reason."""
    first = {"query_id": "q0", "doc_ids": ["a", "b"], "features": [[1.0, 2.0], [3.0, 4.0]],
             "labels": [0.0, 4.0]}
    record = {"query_id": "q1", "doc_ids": ["a", "b"], "features": [[1.0, 2.0], [3.0, 4.0]],
              "labels": [1.0, 2.0]}

    record = _apply(_simplest, record, kind, 2)
    rows = [dict(first, _location="mem:1"), dict(record, _location="mem:2")]
    ok, quarantine = validate_queries(rows_to_batch(rows, [], "read"), ValidationState())
    assert ok.column("query_id").to_pylist() == ["q0"]
    assert quarantine.column("reason").to_pylist() == [QUERY_KINDS[kind]]
    assert quarantine.column("location").to_pylist() == ["mem:2"]


def _simplest(strategy):
    """A stand-in for hypothesis' `draw`: each strategy's simplest value."""
    return find(strategy, lambda _: True)


def test_width_is_set_by_first_valid_query():
    """A first query that fails other checks does not decide the dataset's feature width."""
    rows = [
        {"query_id": "bad", "doc_ids": ["a"], "features": [[math.nan, 1.0, 1.0]],
         "labels": [0.0]},
        {"query_id": "good", "doc_ids": ["a"], "features": [[1.0, 2.0]], "labels": [0.0]},
        {"query_id": "wide", "doc_ids": ["a"], "features": [[1.0, 2.0, 3.0]], "labels": [0.0]},
    ]
    for batch_size in (1, 3):
        state = ValidationState()
        reasons, ok_ids = [], []
        for start in range(0, 3, batch_size):
            chunk = [dict(r, _location=f"mem:{start + i}")
                     for i, r in enumerate(rows[start:start + batch_size])]
            ok, quarantine = validate_queries(rows_to_batch(chunk, [], "read"), state)
            ok_ids += ok.column("query_id").to_pylist()
            reasons += quarantine.column("reason").to_pylist()
        assert state.feature_width == 2
        assert ok_ids == ["good"]
        assert reasons == [Reason.NON_FINITE_FEATURES, Reason.RAGGED_FEATURES]


def test_duplicate_id_does_not_shadow_a_later_valid_query():
    """An invalid record does not claim its query id: a later valid one with that id is kept."""
    rows = [
        {"query_id": "q", "doc_ids": ["a"], "features": [[1.0]], "labels": [9.0],
         "_location": "mem:1"},
        {"query_id": "q", "doc_ids": ["a"], "features": [[1.0]], "labels": [1.0],
         "_location": "mem:2"},
        {"query_id": "q", "doc_ids": ["a"], "features": [[1.0]], "labels": [2.0],
         "_location": "mem:3"},
    ]
    ok, quarantine = validate_queries(rows_to_batch(rows, [], "read"), ValidationState())
    assert ok.column("labels").to_pylist() == [[1.0]]
    assert quarantine.column("reason").to_pylist() == [Reason.LABEL_OUT_OF_RANGE,
                                                       Reason.DUPLICATE_QUERY_ID]


# --- SVMlight lines ----------------------------------------------------------------------------

LINE_KINDS = ("bad_label", "bad_token", "bad_value", "bad_fid", "no_qid", "no_qid_bad")
SVM_WIDTH = 4


@st.composite
def svmlight_files(draw):
    """(layout, groups of (label, {fid: value}, kind or None) lines, blanks, zero groups, batch)."""
    layout = draw(st.sampled_from(["qid", "query_file"]))
    kinds = [k for k in LINE_KINDS if layout == "qid" or not k.startswith("no_qid")]
    groups = []
    for _ in range(draw(st.integers(1, 6))):
        lines = []
        for _ in range(draw(st.integers(1, 4))):
            label = draw(st.integers(0, 4))
            feats = draw(st.dictionaries(st.integers(1, SVM_WIDTH), finite32, max_size=SVM_WIDTH))
            kind = draw(st.none() | st.none() | st.none() | st.sampled_from(kinds))
            lines.append((label, feats, kind))
        groups.append(lines)
    n_lines = sum(map(len, groups))
    blanks = draw(st.lists(st.booleans(), min_size=n_lines, max_size=n_lines))
    zero_groups = draw(st.lists(st.booleans(), min_size=len(groups), max_size=len(groups)))
    return layout, groups, blanks, zero_groups, draw(st.integers(1, 4))


def _svm_line(label, feats, kind, qid, docid) -> str:
    """One SVMlight line, corrupted by `kind`."""
    tokens = ["x" if kind in ("bad_label", "no_qid_bad") else str(label)]
    if qid is not None and not (kind or "").startswith("no_qid"):
        tokens.append(f"qid:{qid}")
    tokens += [f"{fid}:{value!r}" for fid, value in sorted(feats.items())]
    if kind == "bad_token":
        tokens.insert(1 + (qid is not None), "junk")
    elif kind == "bad_value":
        tokens.append(f"{SVM_WIDTH}:abc")
    elif kind == "bad_fid":
        tokens.append("x:1")
    return " ".join(tokens) + f" #docid = {docid}"


@SETTINGS
@given(spec=svmlight_files())
def test_svmlight_lines_end_ok_or_with_reason(tmp_path_factory, spec):
    """SVMlight: a group with a bad line is quarantined at that file:line, a qid-less line alone."""
    layout, groups, blanks, zero_groups, batch_size = spec
    folder = tmp_path_factory.mktemp("svm")
    path = folder / "data.txt"
    text, sizes = [], []
    expected_ok, expected_bad = [], {}  # location -> (reason, query id)
    blank_iter = iter(blanks)
    for g, lines in enumerate(groups):
        if layout == "query_file" and zero_groups[g]:
            sizes.append(0)  # an empty group takes an index and holds nothing
        qid = f"data.txt:{len(sizes)}" if layout == "query_file" else f"g{g}"
        sizes.append(len(lines))
        kept, first_bad = [], None
        for j, (label, feats, kind) in enumerate(lines):
            if next(blank_iter):
                text.append("")
            docid = f"{qid}-d{j}"
            text.append(_svm_line(label, feats, kind, qid if layout == "qid" else None, docid))
            number = len(text)
            if kind in ("no_qid", "no_qid_bad"):
                expected_bad[f"{path}:{number}"] = (Reason.UNPARSEABLE_LINE, None)
                continue
            if kind is not None and first_bad is None:
                first_bad = number
            kept.append((label, feats, docid))
        if not kept:
            continue
        if first_bad is not None:
            expected_bad[f"{path}:{first_bad}"] = (Reason.UNPARSEABLE_LINE, qid)
        else:
            dense = [[feats.get(f, 0.0) for f in range(1, SVM_WIDTH + 1)] for _, feats, _ in kept]
            expected_ok.append((qid, [d for *_, d in kept], [float(x) for x, *_ in kept], dense))
    path.write_text("\n".join(text) + "\n")
    if layout == "query_file":
        (folder / "data.txt.query").write_text("".join(f"{s}\n" for s in sizes))

    if layout == "qid" and all(kind in ("no_qid", "no_qid_bad") for lines in groups
                               for *_, kind in lines):
        # no line carries a qid and no group file is beside: refused, saying what it looks like
        with pytest.raises(InputError, match="looks like SVMlight without qid"):
            read_and_validate(str(path), "auto", batch_size=batch_size, num_features=SVM_WIDTH)
        return
    out = read_and_validate(str(path), "auto", batch_size=batch_size, num_features=SVM_WIDTH)

    assert out.records == len(expected_ok) + len(expected_bad)
    assert out.records == out.ok.num_rows + out.quarantine.num_rows
    got_bad = {loc: (reason, qid) for loc, reason, qid in zip(
        out.quarantine.column("location").to_pylist(), out.quarantine.column("reason").to_pylist(),
        out.quarantine.column("query_id").to_pylist())}
    assert got_bad == expected_bad
    got_ok = list(zip(*(out.ok.column(c).to_pylist()
                        for c in ("query_id", "doc_ids", "labels", "features"))))
    assert got_ok == [tuple(e) for e in expected_ok]


# --- rollouts ----------------------------------------------------------------------------------

ROLLOUT_KINDS = {
    "unknown_query": Reason.UNKNOWN_QUERY,
    "unknown_document": Reason.UNKNOWN_DOCUMENT,
    "repeated_document": Reason.REPEATED_DOCUMENT,
    "duplicate_rollout_id": Reason.DUPLICATE_ROLLOUT_ID,
    "no_outcome": Reason.ROLLOUT_WITHOUT_OUTCOME,
    "empty_ranking": Reason.EMPTY_RANKING,
    "bad_reward": Reason.REWARD_OUT_OF_RANGE,
    "reward_only": None,
}
READ_REASONS = {Reason.ROLLOUT_WITHOUT_OUTCOME, Reason.EMPTY_RANKING}  # found by the reader


@st.composite
def rollout_logs(draw):
    """(known_docs, rollout rows, kinds applied per row, batch size)."""
    known = {}
    for q in range(draw(st.integers(1, 4))):
        known[f"q{q}"] = [f"q{q}-d{j}" for j in range(draw(st.integers(1, 5)))]
    rows, kinds = [], []
    for i in range(draw(st.integers(1, 12))):
        qid = draw(st.sampled_from(sorted(known)))
        ranking = draw(st.permutations(known[qid]))[:draw(st.integers(1, len(known[qid])))]
        row = {"query_id": qid, "rollout_id": f"r{i}", "ranking": list(ranking),
               "reward": draw(st.floats(0, 1)), "passed": draw(st.booleans()),
               "policy_id": "p"}
        choices = sorted(set(ROLLOUT_KINDS) - ({"duplicate_rollout_id"} if i == 0 else set()))
        applied = draw(st.lists(st.sampled_from(choices), max_size=2, unique=True))
        for kind in applied:
            if kind == "unknown_query":
                row["query_id"] = "nowhere"
            elif kind == "unknown_document" and row["ranking"] is not None:
                row["ranking"].insert(draw(st.integers(0, len(row["ranking"]))), "ghost")
            elif kind == "repeated_document" and row["ranking"] is not None:
                docs = row["ranking"] or known.get(row["query_id"], ["ghost"])[:1]
                row["ranking"] = list(row["ranking"]) + [docs[0]] + \
                    ([] if row["ranking"] else [docs[0]])
            elif kind == "duplicate_rollout_id":
                earlier = rows[draw(st.integers(0, i - 1))]
                row["query_id"], row["rollout_id"] = earlier["query_id"], earlier["rollout_id"]
            elif kind == "no_outcome":
                row["ranking"] = row["reward"] = row["passed"] = None
            elif kind == "empty_ranking":
                row["ranking"] = []
            elif kind == "bad_reward":
                row["reward"] = draw(st.sampled_from([float("nan"), float("inf"), -0.5, 1.5]))
            elif kind == "reward_only":
                row["ranking"] = row["passed"] = None
                row["reward"] = 1.0
        rows.append(row)
        kinds.append(applied)
    return known, rows, kinds, draw(st.integers(1, 5))


def expected_rollout_reasons(rows: list, known: dict) -> list:
    """Reason (or None) of each rollout, one at a time; only accepted rollouts claim their id."""
    seen, out = set(), []
    for row in rows:
        qid, rid, ranking = row["query_id"], row["rollout_id"], row["ranking"]
        reward = row["reward"]
        if ranking is None and reward is None and row["passed"] is None:
            out.append(Reason.ROLLOUT_WITHOUT_OUTCOME)
        elif ranking == []:
            out.append(Reason.EMPTY_RANKING)
        elif reward is not None and not math.isfinite(reward):
            out.append(Reason.REWARD_OUT_OF_RANGE)  # found by the reader (its own row order)
        elif qid not in known:
            out.append(Reason.UNKNOWN_QUERY)
        elif (qid, rid) in seen:
            out.append(Reason.DUPLICATE_ROLLOUT_ID)
        elif reward is not None and not 0.0 <= reward <= 1.0:
            out.append(Reason.REWARD_OUT_OF_RANGE)
        elif ranking is not None and any(d not in known[qid] for d in ranking):
            out.append(Reason.UNKNOWN_DOCUMENT)
        elif ranking is not None and len(set(ranking)) != len(ranking):
            out.append(Reason.REPEATED_DOCUMENT)
        else:
            seen.add((qid, rid))
            out.append(None)
    return out


@SETTINGS
@given(log=rollout_logs())
def test_rollouts_end_ok_or_with_reason(tmp_path_factory, log):
    """Rollouts: unknown query, unknown or repeated ranked documents, repeats, no outcome, an
    empty ranking, a reward that is not finite or outside [0, 1]."""
    known, rows, kinds, batch_size = log
    path = tmp_path_factory.mktemp("r") / "rollouts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    expected = expected_rollout_reasons(rows, known)

    if all(r == Reason.ROLLOUT_WITHOUT_OUTCOME for r in expected):
        with pytest.raises(InputError, match="no outcome"):
            list(read_rollouts(str(path), batch_size=batch_size))
        return
    read = list(read_rollouts(str(path), batch_size=batch_size))
    table = pa.concat_tables([t for t, _ in read])
    read_bad = pa.concat_tables([q for _, q in read])
    ok, bad = validate_rollouts(table, known, source=str(path), reward_max=1.0)

    at_read = [r in READ_REASONS or (r == Reason.REWARD_OUT_OF_RANGE
                                     and not math.isfinite(row["reward"]))
               for row, r in zip(rows, expected)]
    assert ok.num_rows + read_bad.num_rows + bad.num_rows == len(rows)  # read = ok + quarantined
    assert list(zip(read_bad.column("location").to_pylist(),
                    read_bad.column("reason").to_pylist())) == [
        (f"{path}:{i + 1}", r) for i, r in enumerate(expected) if at_read[i]]
    later = [(row, r) for row, r, read_time in zip(rows, expected, at_read) if not read_time]
    assert [(r["query_id"], r["rollout_id"]) for r in ok.to_pylist()] == [
        (row["query_id"], row["rollout_id"]) for row, r in later if r is None]
    got = [(q, reason, json.loads(raw)["rollout_id"]) for q, reason, raw in zip(
        bad.column("query_id").to_pylist(), bad.column("reason").to_pylist(),
        bad.column("raw").to_pylist())]
    assert got == [(row["query_id"], r, row["rollout_id"]) for row, r in later if r is not None]
    for applied, reason in zip(kinds, expected):
        if len(applied) == 1 and applied[0] != "duplicate_rollout_id":
            assert reason == ROLLOUT_KINDS[applied[0]], applied
