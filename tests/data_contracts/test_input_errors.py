"""Fatal input problems raise InputError with one line naming the file (and column)."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.readers import read_queries, read_rollouts
from tests.data_contracts.util import write_jsonl

GOOD = {"query_id": "q", "doc_ids": ["a"], "features": [[1.0]], "labels": [1.0]}


def _raise_input_error(call) -> InputError:
    """Runs `call` (consuming any generator) and returns the InputError it must raise."""
    with pytest.raises(InputError) as info:
        result = call()
        if result is not None:
            list(result)
    return info.value


def _assert_one_line(error: InputError, path, column: str | None = None) -> None:
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert error.path == str(path)
    if column is not None:
        assert error.column == column
        assert repr(column) in message


@pytest.mark.parametrize("name, fmt", [
    ("absent.jsonl", "auto"), ("absent.parquet", "parquet"), ("absent.jsonl", "jsonl"),
    ("absent.txt", "svmlight"), ("absent_hf", "hf"),
])
def test_missing_file(tmp_path, name, fmt):
    """A path that does not exist names itself, whatever the format."""
    path = tmp_path / name
    error = _raise_input_error(lambda: read_queries(str(path), fmt))
    _assert_one_line(error, path)
    assert "not found" in str(error)


def test_missing_rollout_log(tmp_path):
    """A rollout log that does not exist names itself."""
    path = tmp_path / "absent.parquet"
    _assert_one_line(_raise_input_error(lambda: read_rollouts(str(path))), path)


def test_unknown_format_by_content(tmp_path):
    """A file whose content is no supported layout is refused, suggesting --input-format."""
    path = tmp_path / "queries.txt"
    path.write_text("this is not a ranking file\njust prose, really\n")
    error = _raise_input_error(lambda: read_queries(str(path)))
    _assert_one_line(error, path)
    assert "unknown format" in str(error)


def test_unknown_format_named(tmp_path):
    """An explicit format outside FORMATS is refused."""
    path = tmp_path / "queries.jsonl"
    write_jsonl(path, [GOOD])
    error = _raise_input_error(lambda: read_queries(str(path), "xml"))
    _assert_one_line(error, path)
    assert "'xml'" in str(error)


def test_unknown_format_folder(tmp_path):
    """A folder that is neither a saved dataset nor holds Parquet is refused."""
    (tmp_path / "notes.txt").write_text("hello")
    _assert_one_line(_raise_input_error(lambda: read_queries(str(tmp_path))), tmp_path)


def test_unknown_rollout_format(tmp_path):
    """A rollout log format other than parquet/jsonl is refused."""
    path = tmp_path / "log.parquet"
    _assert_one_line(_raise_input_error(lambda: read_rollouts(str(path), fmt="csv")), path)


@pytest.mark.parametrize("column", ["query_id", "doc_ids", "features"])
@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_missing_required_query_column(tmp_path, fmt, column):
    """Parquet/JSONL queries lacking a required column name the file and the column."""
    row = {k: v for k, v in GOOD.items() if k != column}
    path = tmp_path / f"queries.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist([row]), str(path))
    else:
        write_jsonl(path, [row])
    error = _raise_input_error(lambda: read_queries(str(path)))
    _assert_one_line(error, path, column)
    assert "required column missing" in str(error)


@pytest.mark.parametrize("column", ["query_id", "rollout_id"])
@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_missing_required_rollout_column(tmp_path, fmt, column):
    """Rollout logs lacking a required column name the file and the column."""
    row = {k: v for k, v in {"query_id": "q", "rollout_id": "r", "reward": 1.0}.items()
           if k != column}
    path = tmp_path / f"rollouts.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist([row]), str(path))
    else:
        write_jsonl(path, [row])
    _assert_one_line(_raise_input_error(lambda: read_rollouts(str(path))), path, column)


def test_rollout_log_without_outcomes(tmp_path):
    """A rollout log in which no row has a ranking, reward or passed value is unusable."""
    path = tmp_path / "rollouts.jsonl"
    write_jsonl(path, [{"query_id": "q", "rollout_id": f"r{i}"} for i in range(3)])
    error = _raise_input_error(lambda: read_rollouts(str(path)))
    _assert_one_line(error, path, "ranking|reward|passed")


def test_hf_mapped_column_absent(tmp_path):
    """A column map naming a column the dataset lacks names the folder and that column."""
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "ds"
    datasets.Dataset.from_dict({"qid": ["q"], "doc_ids": [["a"]],
                                "features": [[[1.0]]]}).save_to_disk(str(folder))
    error = _raise_input_error(lambda: read_queries(str(folder), column_map={"query_id": "id"}))
    _assert_one_line(error, folder, "id")
    error = _raise_input_error(lambda: read_queries(str(folder)))  # query_id left unmapped
    _assert_one_line(error, folder, "query_id")


LINES = "1 1:1\n0 1:2\n2 1:3\n"


@pytest.mark.parametrize("sizes, problem", [
    ("1\n1\n", "fewer rows"),      # 2 promised, 3 lines
    ("2\n", "fewer rows"),
    ("2\n2\n", "more rows"),       # 4 promised, 3 lines
    ("3\n0\n1\n", "more rows"),
    ("", "fewer rows"),
    ("2\nx\n", "line 2"),          # not a size at all
    ("-1\n4\n", "line 1"),
])
def test_query_file_mismatch(tmp_path, sizes, problem):
    """A `.query` file whose group sizes do not match the data names the `.query` file."""
    path = tmp_path / "rank.train"
    path.write_text(LINES)
    query_file = tmp_path / "rank.train.query"
    query_file.write_text(sizes)
    error = _raise_input_error(lambda: read_queries(str(path)))
    _assert_one_line(error, query_file)
    assert problem in str(error)


def test_query_file_trailing_empty_groups_are_fine(tmp_path):
    """Trailing zero-size groups promise no rows, so they are not a mismatch."""
    path = tmp_path / "rank.train"
    path.write_text(LINES)
    (tmp_path / "rank.train.query").write_text("1\n2\n0\n0\n")
    batches = list(read_queries(str(path)))
    assert sum(b.queries.num_rows for b in batches) == 2


def test_lightgbm_without_query_file(tmp_path):
    """The lightgbm format named explicitly without a `.query` file names the missing file."""
    path = tmp_path / "rank.train"
    path.write_text(LINES)
    error = _raise_input_error(lambda: read_queries(str(path), "lightgbm"))
    _assert_one_line(error, f"{path}.query")


def test_unreadable_parquet(tmp_path):
    """A `.parquet` file that is not Parquet names the file."""
    path = tmp_path / "queries.parquet"
    path.write_text("not parquet at all")
    error = _raise_input_error(lambda: read_queries(str(path)))
    _assert_one_line(error, path)
    assert "Parquet" in str(error)


def test_message_is_one_line():
    """A multi-line problem (as some library errors are) still gives a one-line message."""
    error = InputError("data.parquet", "bad footer\nsecond line", column="features")
    assert str(error) == "data.parquet: column 'features': bad footer second line"


def _damaged(kind: str, how: str, data: bytes) -> bytes:
    import bz2
    import gzip
    import lzma

    import zstandard

    packed = bytearray({"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress,
                        "zstd": zstandard.ZstdCompressor().compress}[kind](data))
    if how == "truncated":
        return bytes(packed[:len(packed) * 2 // 3])
    packed[len(packed) // 2] ^= 0xFF
    packed[len(packed) // 2 + 1] ^= 0xFF
    return bytes(packed)


@pytest.mark.parametrize("kind", ["gzip", "bz2", "xz", "zstd"])
@pytest.mark.parametrize("how", ["truncated", "corrupt"])
@pytest.mark.parametrize("layout", ["svmlight", "jsonl", "csv"])
def test_a_damaged_compressed_input_is_one_line_naming_it(tmp_path, kind, how, layout):
    """A truncated or corrupted gzip/bz2/xz/zstd file is an InputError naming the file and the
    compression, not the decompressor's EOFError from deep inside a reader."""
    import json

    rows = [(q, d) for q in range(400) for d in range(5)]
    if layout == "svmlight":
        text = "".join(f"{d % 3} qid:{q} 1:{q * 0.01:.3f} 2:{d * 0.1:.3f}\n" for q, d in rows)
    elif layout == "jsonl":
        text = "".join(json.dumps({**GOOD, "query_id": f"q{q}-{d}"}) + "\n" for q, d in rows)
    else:
        text = "qid,label,f1,f2\n" + "".join(f"{q},{d % 3},{q * 0.01},{d}\n" for q, d in rows)
    path = tmp_path / f"queries.{layout}"
    path.write_bytes(_damaged(kind, how, text.encode()))
    error = _raise_input_error(lambda: read_queries(str(path)))
    _assert_one_line(error, path)
    assert kind in str(error) and ("corrupt" in str(error) or "truncated" in str(error))


@pytest.mark.parametrize("kind", ["gzip", "bz2", "xz", "zstd"])
@pytest.mark.parametrize("tail", ["intact", "padding", "damaged second stream", "garbage"])
def test_every_stream_of_a_multi_stream_file_is_read_or_its_damage_named(tmp_path, kind, tail):
    """pbzip2-style files hold several streams: all are read (zero padding between or after
    them is fine); a damaged later stream or trailing garbage is an error, never the rest of
    the file dropped without a word (Python's BZ2File and LZMAFile stop quietly there)."""
    import bz2
    import gzip
    import lzma

    import zstandard

    pack = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress,
            "zstd": zstandard.ZstdCompressor(write_checksum=True).compress}[kind]
    lines = [f"{d % 3} qid:{q} 1:{q * 0.01:.3f} 2:{d * 0.1:.3f}\n" for q in range(300)
             for d in range(4)]
    first, second = "".join(lines[:600]).encode(), "".join(lines[600:]).encode()
    later = bytearray(pack(second))
    if tail == "damaged second stream":
        later[len(later) // 2] ^= 0xFF
    data = pack(first) + bytes(later) + {"padding": b"\0" * 8, "garbage": b"GARBAGE"}.get(tail, b"")
    path = tmp_path / "train.txt"
    path.write_bytes(data)
    if tail in ("intact", "padding"):
        with fs.open_input(str(path)) as stream:
            assert stream.read() == first + second
        return
    with pytest.raises(InputError, match=f"corrupt or truncated {kind}"):
        with fs.open_input(str(path)) as stream:
            stream.read()


@pytest.mark.parametrize("reader", ["queries", "rollouts"])
def test_a_compressed_parquet_file_is_named_as_such(tmp_path, reader):
    """Parquet is read from its footer (seeking), so a gzipped .parquet cannot be streamed: one
    line says so, not "magic bytes not found"."""
    import gzip

    plain = tmp_path / "plain.parquet"
    rows = ([{"query_id": "q", "rollout_id": "r", "reward": 0.5}] if reader == "rollouts"
            else [GOOD])
    pq.write_table(pa.Table.from_pylist(rows), plain)
    path = tmp_path / "table.parquet.gz"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    call = read_rollouts if reader == "rollouts" else read_queries
    error = _raise_input_error(lambda: call(str(path)))
    _assert_one_line(error, path)
    assert "gzip file holding Parquet" in str(error)


@pytest.mark.parametrize("suffix", [".query", ".group"])
def test_a_group_size_file_given_as_the_input_names_its_data_file(tmp_path, suffix):
    """A LightGBM `.query` / XGBoost `.group` file given as the input is told by its content
    (one count per line) and the error names the data file it belongs beside."""
    data = tmp_path / "train.txt"
    data.write_text("1 1:0.5 2:0.1\n0 1:0.2 2:0.3\n1 1:0.1 2:0.9\n")
    groups = tmp_path / f"train.txt{suffix}"
    groups.write_text("2\n1\n")
    with pytest.raises(InputError) as info:
        list(read_queries(str(groups)))
    message = str(info.value)
    assert message.startswith(f"{groups}: is a group-size file")
    assert f"--input {data}" in message and "\n" not in message
    # the data file beside it still reads with its group sizes
    assert sum(b.queries.num_rows for b in read_queries(str(data))) == 2


def test_a_group_size_file_without_its_data_file_says_where_it_belongs(tmp_path):
    groups = tmp_path / "sizes.txt"
    groups.write_text("# sizes\n3\n0\n12\n")
    with pytest.raises(InputError, match=r"group-size file .* DATA\.query \(LightGBM\) or "
                                         r"DATA\.group \(XGBoost\): give --input DATA"):
        list(read_queries(str(groups)))
