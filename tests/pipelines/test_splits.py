"""Parallel reading: a Parquet input split by row groups builds the bytes of one whole read."""
from __future__ import annotations

from dataclasses import replace

import pyarrow.parquet as pq
import pytest

from data_contracts.errors import InputError
from data_contracts.synthetic import SyntheticConfig, generate_table
from pipelines import splits as S
from pipelines.build_curriculum import run
from pipelines.config import CurriculumConfig
from tests.pipelines.helpers import manifest_bytes, tree_digest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parquet_input(tmp_path_factory):
    path = tmp_path_factory.mktemp("input") / "queries.parquet"
    table = generate_table(replace(SyntheticConfig(), n_queries=240))
    pq.write_table(table, path, row_group_size=40)  # six row groups
    return str(path)


def test_row_group_splits_cover_the_file_in_order(parquet_input, monkeypatch):
    meta = pq.ParquetFile(parquet_input).metadata
    monkeypatch.setattr(S, "SPLIT_BYTES", meta.row_group(0).total_byte_size + 1)  # 2 a split
    splits = S.plan_splits(CurriculumConfig(inputs=[parquet_input]))
    assert len(splits) >= 3
    assert [g for s in splits for g in s.row_groups] == list(range(6))
    assert [s.position for s in splits] == sorted(s.position for s in splits)
    batches = [b for s in splits for b in S.read_split(s, CurriculumConfig(batch_size=16))]
    whole = list(S.read_split(S.Split(0, parquet_input, "parquet"), CurriculumConfig(
        batch_size=16)))
    assert [x for b in batches for x in b.locations] == [x for b in whole for x in b.locations]


def test_split_reads_on_two_workers_give_the_bytes_of_one_whole_read(parquet_input, tmp_path,
                                                                     monkeypatch):
    config = CurriculumConfig(inputs=[parquet_input], k=8, k_max=16, batch_size=16)
    whole = run(replace(config, out=str(tmp_path / "whole")))
    monkeypatch.setattr(S, "SPLIT_BYTES", 1)
    split = run(replace(config, out=str(tmp_path / "split")),
                ["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert manifest_bytes(whole.out) == manifest_bytes(split.out)
    assert tree_digest(whole.out) == tree_digest(split.out)


def _svmlight_with_qid(path, n_queries: int = 150) -> None:
    table = generate_table(replace(SyntheticConfig(), n_queries=n_queries))
    lines = []
    for row in table.to_pylist():
        for label, features in zip(row["labels"], row["features"]):
            values = " ".join(f"{j + 1}:{v:.4f}" for j, v in enumerate(features))
            lines.append(f"{label:g} qid:{row['query_id']} {values}")
    path.write_text("\n".join(lines) + "\n")


def test_svmlight_byte_range_splits_give_the_bytes_of_one_whole_read(tmp_path, monkeypatch):
    path = tmp_path / "rank.txt"
    _svmlight_with_qid(path)
    config = CurriculumConfig(inputs=[str(path)], k=8, k_max=16)
    whole = run(replace(config, out=str(tmp_path / "whole")))
    monkeypatch.setattr(S, "SPLIT_BYTES", path.stat().st_size // 5)
    splits = S.plan_splits(config)
    assert len(splits) > 3 and all(s.byte_range for s in splits)
    split = run(replace(config, out=str(tmp_path / "split")),
                ["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert manifest_bytes(whole.out) == manifest_bytes(split.out)
    assert tree_digest(whole.out) == tree_digest(split.out)


def test_a_query_id_in_two_byte_range_splits_of_one_file_fails_the_run(tmp_path, monkeypatch):
    lines = []
    for q in ("a", "b", "c", "a"):  # "a" again at the end: not adjacent to its first rows
        lines += [f"{label} qid:{q} 1:{label}.5 2:0.{label}" for label in (2, 0, 1)]
    path = tmp_path / "rank.train"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(S, "SPLIT_BYTES", 40)
    config = CurriculumConfig(inputs=[str(path)], out=str(tmp_path / "run"), k=4, k_max=4)
    assert len(S.plan_splits(config)) > 1
    with pytest.raises(InputError, match="query id 'a' has rows that are not adjacent"):
        run(config)
    assert not (tmp_path / "run").exists()
