"""Property tests: one set of queries written in every supported layout reads back as the same
canonical queries; shuffled rows grouped with group_rows read the same; byte-range splits of a
file together read exactly what the whole file reads."""
from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_contracts.errors import InputError
from data_contracts.readers import FeatureSpace, detect_format, plan_splits, read_queries
from tests.data_contracts.util import read_and_validate

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
f32 = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def query_sets(draw):
    """(width, [(qid, [doc id], [label], [[feature]])]) with distinct qids and doc ids."""
    width = draw(st.integers(1, 4))
    queries = []
    for q in range(draw(st.integers(1, 5))):
        n = draw(st.integers(1, 4))
        feats = [[draw(st.sampled_from([0.0])) if draw(st.booleans()) else draw(f32)
                  for _ in range(width)] for _ in range(n)]
        labels = [float(draw(st.integers(0, 4))) for _ in range(n)]
        queries.append((f"q{q}", [f"q{q}-d{j}" for j in range(n)], labels, feats))
    return width, queries


def _svm_lines(queries, with_qid: bool) -> list[str]:
    lines = []
    for qid, docs, labels, feats in queries:
        for doc, label, row in zip(docs, labels, feats):
            tokens = [f"{label:g}"] + ([f"qid:{qid}"] if with_qid else [])
            tokens += [f"{j + 1}:{v!r}" for j, v in enumerate(row) if v != 0.0]  # sparse
            lines.append(" ".join(tokens) + f" #docid = {doc}")
    return lines


def _noisy(lines: list[str], noise: tuple) -> str:
    """Lines with what is not a record added: a BOM, `#` comments, blank lines, CRLF ends."""
    bom, comment_every, crlf = noise
    out = []
    for i, line in enumerate(lines):
        if comment_every and i % comment_every == 0:
            out += ["# a comment", ""]
        out.append(line)
    text = ("\r\n" if crlf else "\n").join(out) + ("\r\n" if crlf else "\n")
    return ("\ufeff" if bom else "") + text


def _write(folder, layout: str, width: int, queries, noise=(False, 0, False)) -> str:
    """Writes `queries` in `layout`; returns the path to read."""
    sizes = "".join(f"{len(d)}\n" for _, d, _, _ in queries)
    if layout.startswith("svmlight"):
        with_qid = layout in ("svmlight", "svmlight.gz")
        text = _noisy(_svm_lines(queries, with_qid), noise)
        path = folder / ("data.txt.gz" if layout.endswith(".gz") else "data.txt")
        path.write_bytes(gzip.compress(text.encode()) if layout.endswith(".gz") else text.encode())
        if "query" in layout:
            (folder / "data.txt.query").write_text(sizes)
        if "group" in layout:
            (folder / "data.txt.group").write_text(sizes)
        return str(path)
    rows = [{"qid": qid, "docid": doc, "label": label, **{f"f{j}": v for j, v in enumerate(r)}}
            for qid, docs, labels, feats in queries for doc, label, r in zip(docs, labels, feats)]
    if layout == "rows.parquet":
        path = folder / "rows.parquet"
        listed = [{"qid": r["qid"], "docid": r["docid"], "label": r["label"],
                   "features": [r[f"f{j}"] for j in range(width)]} for r in rows]
        pq.write_table(pa.Table.from_pylist(listed), str(path), row_group_size=2)
    elif layout == "rows.csv":
        path = folder / "rows.csv"
        header = ["qid", "docid", "label"] + [f"f{j}" for j in range(width)]
        body = [",".join(str(r[h]) if not h.startswith("f") else repr(r[h]) for h in header)
                for r in rows]
        path.write_text("\n".join([",".join(header)] + body) + "\n")
    elif layout == "rows.jsonl":
        path = folder / "rows.jsonl"
        path.write_bytes(_noisy([json.dumps(r) for r in rows], noise).encode())
    elif layout == "nested.parquet":
        path = folder / "queries.parquet"
        pq.write_table(pa.Table.from_pylist(
            [{"query_id": q, "doc_ids": d, "labels": lab, "features": f}
             for q, d, lab, f in queries]), str(path), row_group_size=2)
    elif layout == "queries.jsonl":
        path = folder / "queries.jsonl"
        path.write_bytes(_noisy([json.dumps({"query_id": q, "doc_ids": d, "labels": lab,
                                             "features": f}) for q, d, lab, f in queries],
                                noise).encode())
    else:
        raise AssertionError(layout)
    return str(path)


LAYOUTS = ["svmlight", "svmlight.gz", "svmlight-query", "svmlight-query.gz", "svmlight-group",
           "svmlight-group.gz", "rows.parquet", "rows.csv", "rows.jsonl", "nested.parquet",
           "queries.jsonl"]
MADE_UP_IDS = {"svmlight-query", "svmlight-query.gz", "svmlight-group", "svmlight-group.gz"}


def canonical(table: pa.Table, keep_ids: bool) -> list:
    out = []
    for row in table.to_pylist():
        out.append((row["query_id"] if keep_ids else None, row["doc_ids"], row["labels"],
                    [[float(np.float32(v)) for v in r] for r in row["features"]]))
    return out


@SETTINGS
@given(data=query_sets(), batch_size=st.integers(1, 4),
       noise=st.tuples(st.booleans(), st.integers(0, 3), st.booleans()))
def test_every_layout_reads_the_same_queries(tmp_path_factory, data, batch_size, noise):
    """Also with a BOM, comment and blank lines, and CRLF line ends where a layout has lines."""
    width, queries = data
    expected = [(q, d, lab, [[float(np.float32(v)) for v in r] for r in f])
                for q, d, lab, f in queries]
    for layout in LAYOUTS:
        folder = tmp_path_factory.mktemp(layout.replace(".", "_"))
        path = _write(folder, layout, width, queries, noise)
        out = read_and_validate(path, batch_size=batch_size,
                                space=FeatureSpace(base=1, width=width))
        assert out.quarantine.num_rows == 0, (layout, out.quarantine.to_pylist())
        keep = layout not in MADE_UP_IDS
        got = canonical(out.ok, keep)
        want = [(q if keep else None, d, lab, f) for q, d, lab, f in expected]
        assert got == want, layout
        if not keep:
            name = path.rsplit("/", 1)[-1]
            assert out.ok.column("query_id").to_pylist() == [f"{name}:{i}"
                                                            for i in range(len(queries))]


@SETTINGS
@given(data=query_sets(), seed=st.integers(0, 2 ** 16))
def test_shuffled_rows_grouped_read_the_same_queries(tmp_path_factory, data, seed):
    width, queries = data
    folder = tmp_path_factory.mktemp("shuffled")
    lines = _svm_lines(queries, with_qid=True)
    random.Random(seed).shuffle(lines)
    path = folder / "data.txt"
    path.write_text("\n".join(lines) + "\n")
    space = FeatureSpace(base=1, width=width)
    out = read_and_validate(str(path), group_rows=True, space=space)
    assert out.quarantine.num_rows == 0

    def by_qid(rows):  # a query's documents, whatever order its rows came in
        return {q: sorted(zip(d, lab, f)) for q, d, lab, f in rows}

    want = by_qid([(q, d, lab, [[float(np.float32(v)) for v in r] for r in f])
                   for q, d, lab, f in queries])
    assert by_qid(canonical(out.ok, True)) == want
    # the same rows as a table, shuffled and grouped
    rows_path = _write(folder, "rows.jsonl", width, queries)
    rows = open(rows_path, encoding="utf-8").read().splitlines()
    random.Random(seed).shuffle(rows)
    with open(rows_path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n")
    out = read_and_validate(rows_path, group_rows=True)
    assert by_qid(canonical(out.ok, True)) == want


# --- byte-range splits -------------------------------------------------------------------------

@st.composite
def split_files(draw):
    """(lines of an SVMlight file with qid, comments, blanks, bad and qid-less lines; cuts)."""
    lines = []
    for q in range(draw(st.integers(1, 6))):
        for j in range(draw(st.integers(1, 4))):
            kind = draw(st.sampled_from(["ok"] * 6 + ["comment", "blank", "bad", "noqid"]))
            if kind == "comment":
                lines.append("# a comment")
            elif kind == "blank":
                lines.append("")
            elif kind == "noqid":
                lines.append("1 1:0.5")
            lines.append(f"{'x' if kind == 'bad' else j % 5} qid:{q} 1:{j}.5 "
                         f"{draw(st.integers(1, 3))}:1 #docid = d{j}")
    text = "\n".join(lines) + "\n"
    n = len(text.encode())
    cuts = sorted(set(draw(st.lists(st.integers(1, n - 1), max_size=6)))) if n > 1 else []
    return lines, cuts


def _everything(path: str, **kwargs):
    batches = list(read_queries(path, "svmlight", batch_size=2,
                                space=FeatureSpace(base=1, width=3), **kwargs))
    queries = [(q, d, lab, f) for b in batches for q, d, lab, f in zip(
        *(b.queries.column(c).to_pylist() for c in ("query_id", "doc_ids", "labels",
                                                     "features")))]
    bad = [(r["reason"], r["query_id"]) for b in batches for r in b.quarantine.to_pylist()]
    return queries, bad, sum(b.skipped_lines for b in batches)


@settings(SETTINGS, max_examples=80)
@given(spec=split_files())
def test_byte_range_splits_together_read_the_whole_file(tmp_path_factory, spec):
    lines, cuts = spec
    path = tmp_path_factory.mktemp("splits") / "data.txt"
    path.write_text("\n".join(lines) + "\n")
    whole = _everything(str(path))
    size = path.stat().st_size
    bounds = [0] + cuts + [size]
    parts = [_everything(str(path), byte_range=(a, b)) for a, b in zip(bounds, bounds[1:])]
    assert [q for p in parts for q in p[0]] == whole[0]
    assert sorted(map(str, (b for p in parts for b in p[1]))) == sorted(map(str, whole[1]))
    assert sum(p[2] for p in parts) == whole[2]
    # plan_splits covers the file with contiguous ranges, each read the same way
    plans = plan_splits(str(path), "svmlight", target_bytes=max(1, size // 3))
    ranges = [p["byte_range"] for p in plans]
    assert ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    planned = [_everything(str(path), **p) for p in plans]
    assert [q for p in planned for q in p[0]] == whole[0]


def test_a_split_refuses_a_qid_that_comes_back_within_its_range(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("1 qid:1 1:1\n1 qid:2 1:1\n1 qid:1 1:1\n")
    with pytest.raises(InputError, match="not adjacent"):
        list(read_queries(str(path), byte_range=(0, path.stat().st_size)))
    with pytest.raises(InputError, match="byte 24"):
        list(read_queries(str(path), byte_range=(1, path.stat().st_size)))


def test_splits_of_layouts_that_cannot_be_split(tmp_path):
    """Compressed and group-file inputs are read whole; asking for a range is refused."""
    gz = tmp_path / "data.txt.gz"
    gz.write_bytes(gzip.compress(b"1 qid:1 1:1\n"))
    assert plan_splits(str(gz)) == [{}]
    with pytest.raises(InputError, match="byte ranges"):
        read_queries(str(gz), byte_range=(0, 5))
    plain = tmp_path / "rank.txt"
    plain.write_text("1 1:1\n0 1:2\n")
    (tmp_path / "rank.txt.group").write_text("2\n")
    assert detect_format(str(plain)) == "xgboost"
    assert plan_splits(str(plain)) == [{}]
    nested = tmp_path / "q.parquet"
    pq.write_table(pa.Table.from_pylist([{"query_id": f"q{i}", "doc_ids": ["a"],
                                          "features": [[1.0]]} for i in range(5)]),
                   str(nested), row_group_size=2)
    plans = plan_splits(str(nested), target_bytes=1)
    assert [p["row_groups"] for p in plans] == [[0], [1], [2]]
    got = [q for p in plans for b in read_queries(str(nested), **p)
           for q in b.queries.column("query_id").to_pylist()]
    assert got == [f"q{i}" for i in range(5)]
    rows = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"qid": ["a", "a", "b"], "f1": [1.0, 2.0, 3.0]}), str(rows),
                   row_group_size=1)
    assert plan_splits(str(rows)) == [{}]  # a query may span row groups


def test_row_group_splits_keep_exact_locations(tmp_path):
    path = tmp_path / "q.parquet"
    rows = [{"query_id": f"q{i}", "doc_ids": ["a"], "features": [[1.0]],
             "labels": [9.0 if i in (1, 4) else 1.0]} for i in range(6)]
    pq.write_table(pa.Table.from_pylist(rows), str(path), row_group_size=2)
    out = read_and_validate(str(path), row_groups=[0, 2])  # rows 0, 1 and 4, 5
    assert ids_of(out) == ["q0", "q5"]
    assert out.quarantine.column("location").to_pylist() == [f"{path}#1", f"{path}#4"]


def ids_of(out) -> list:
    return out.ok.column("query_id").to_pylist()
