"""Hugging Face `datasets` reader: a dataset saved to disk, or local files, mapped onto the contract."""
from __future__ import annotations

from typing import Iterator, Mapping

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.quarantine import quarantine_table
from data_contracts.readers.base import QueryBatch
from data_contracts.readers.records import conform_rows, fill_nulls
from data_contracts.schema import QUERY_REQUIRED, QUERY_SCHEMA

_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


def load_hf_dataset(path: str, split: str | None = None):
    """Loads a dataset saved with `save_to_disk`, or local data files through a builder.

    Args:
      path: a `save_to_disk` folder (a Dataset or a DatasetDict), or a local data file.
      split: which split of a DatasetDict (default: `train`, else the only one).
    """
    import datasets

    if not fs.exists(path):
        raise InputError(path, "file not found")
    if fs.isdir(path) and any(fs.exists(fs.join(path, marker)) for marker in
                              ("dataset_info.json", "dataset_dict.json")):
        loaded = datasets.load_from_disk(path)
    else:
        name = fs.basename(path)
        builder = _BUILDERS.get(name[name.rfind("."):].lower() if "." in name else "")
        if builder is None:
            raise InputError(path, "not a saved Hugging Face dataset nor a .parquet/.jsonl/.csv file")
        loaded = datasets.load_dataset(builder, data_files=path)
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        chosen = split if split in loaded else ("train" if "train" in loaded else names[0])
        loaded = loaded[chosen]
    return loaded


def read_hf(path: str, *, batch_size: int = 256, column_map: Mapping[str, str] | None = None,
            source: str | None = None, split: str | None = None) -> Iterator[QueryBatch]:
    """Streams a Hugging Face dataset as canonical query batches.

    Args:
      path: see `load_hf_dataset`.
      batch_size: queries per batch.
      column_map: contract column -> dataset column (e.g. `{"query_id": "qid"}`); unmapped contract
        columns are taken by their own name when present.
      source: value of the `source` column (defaults to the folder or file name).
      split: which split to read, and the value of the `split` column.
    """
    dataset = load_hf_dataset(path, split)
    column_map = dict(column_map or {})
    rename = {}
    for fld in QUERY_SCHEMA:
        name = column_map.get(fld.name, fld.name)
        if name in dataset.column_names:
            rename[name] = fld.name
        elif fld.name in column_map:
            raise InputError(path, f"mapped column not in dataset (has {dataset.column_names})",
                             column=name)
    for column in QUERY_REQUIRED:
        if column not in rename.values():
            raise InputError(path, f"required column missing (map it with --column-map "
                                   f"{column}=NAME)", column=column)
    start = 0
    for table in dataset.with_format("arrow").iter(batch_size=batch_size):
        table = table.select(list(rename)).rename_columns([rename[c] for c in rename])
        locations = [f"{path}#{start + i}" for i in range(table.num_rows)]
        start += table.num_rows
        rows, locs, bad = conform_rows(table.to_pylist(), locations, QUERY_SCHEMA, "query", "read")
        rows = fill_nulls(rows, "source", source or fs.basename(path.rstrip("/")))
        if split is not None:
            rows = fill_nulls(rows, "split", split)
        yield QueryBatch(rows, locs, quarantine_table(bad))

