"""The trainer's data: the curriculum's shards streamed as padded batches, and the query sets.

Rows are read a record batch at a time (never a whole shard), in manifest order, and every batch
carries its position (file index, row offset) so a checkpoint can resume exactly where it stopped.
`cycle` repeats the training rows (validation split removed) from a saved position; `read_rows`,
`training_sample` and `read_validated` build the fixed query sets the diagnostics name.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset

from curricula.hashing import is_validation, stable_hash
from curricula.ordering import shuffled_order
from data_contracts import fs
from data_contracts.arrays import PaddedQueries, pad_queries
from data_contracts.errors import InputError
from data_contracts.manifest import SIDE_FORMATS, input_digest
from data_contracts.readers import read_queries
from data_contracts.schema import QUERY_SCHEMA
from data_contracts.synthetic import config_from_dict as synthetic_config
from data_contracts.synthetic import generate_table
from data_contracts.synthetic_text import SyntheticTextConfig, generate_text_table
from data_contracts.validate import ValidationState, validate_queries
from trainers.config import TrainConfig


@dataclass
class ShardBatch:
    """A batch of curriculum rows, padded, with where it came from."""

    table: pa.Table
    padded: PaddedQueries
    file_index: int
    row_start: int

    @property
    def rows(self) -> int:
        return self.table.num_rows


class ShardStream(IterableDataset):
    """Streams rows of Parquet shards as padded batches, starting at a saved position.

    Args:
      files: shard paths, in curriculum order.
      batch_size: queries per batch.
      start: (file index, row offset) to resume from.
      columns: extra columns to read besides the query columns.
      keep: optional filter, table -> [rows] bool; rows it rejects are skipped before batching,
        and row offsets (positions) count only the rows it keeps.
    """

    def __init__(self, files: list[str], batch_size: int, start: tuple[int, int] = (0, 0),
                 columns: tuple[str, ...] = (),
                 keep: Callable[[pa.Table], np.ndarray] | None = None):
        super().__init__()
        self.files, self.batch_size, self.start = list(files), batch_size, start
        self.columns = [f.name for f in QUERY_SCHEMA] + list(columns)
        self.keep = keep

    def __iter__(self) -> Iterator[ShardBatch]:
        first_file, first_row = self.start
        for index in range(first_file, len(self.files)):
            with fs.open_read(self.files[index]) as handle:  # local, gs://, s3://
                yield from self._file(index, pq.ParquetFile(handle), first_file, first_row)

    def _file(self, index: int, parquet: pq.ParquetFile, first_file: int, first_row: int
              ) -> Iterator[ShardBatch]:
        """The batches of one shard (rows before `first_row` skipped in the first file)."""
        names = [c for c in self.columns if c in parquet.schema_arrow.names]
        offset = 0
        skip = first_row if index == first_file else 0
        pending: list[pa.Table] = []
        pending_rows, pending_start = 0, None
        for record_batch in parquet.iter_batches(batch_size=self.batch_size, columns=names):
            table = pa.Table.from_batches([record_batch])
            if self.keep is not None:
                table = table.filter(pa.array(np.asarray(self.keep(table), dtype=bool)))
            begin = offset
            offset += table.num_rows
            if offset <= skip:
                continue
            if begin < skip:
                table = table.slice(skip - begin)
                begin = skip
            if pending_start is None:
                pending_start = begin
            pending.append(table)
            pending_rows += table.num_rows
            while pending_rows >= self.batch_size:
                whole = pa.concat_tables(pending)
                head, rest = whole.slice(0, self.batch_size), whole.slice(self.batch_size)
                yield ShardBatch(head, pad_queries(head), index, pending_start)
                pending_start += self.batch_size
                pending, pending_rows = ([rest] if rest.num_rows else []), rest.num_rows
        if pending_rows:
            whole = pa.concat_tables(pending)
            yield ShardBatch(whole, pad_queries(whole), index, pending_start)


def to_tensors(padded: PaddedQueries) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features, mask, labels) as torch tensors."""
    return (torch.from_numpy(padded.features), torch.from_numpy(padded.mask),
            torch.from_numpy(padded.labels))


# ---------------------------------------------------------------------------------------------
# Query sets: reading inputs, the validation split, the fixed training sample.

TEXT_RUN_FORMATS = ("synthetic-text",)  # besides the readers' TEXT_FORMATS


def input_kind(fmt: str) -> str:
    """`text` (queries and passages, featurised by the IR features) or `features` (LTR feature
    vectors) for an input format name (a manifest's `inputs[].format` or a detected one)."""
    from data_contracts.readers.text import TEXT_FORMATS

    return "text" if fmt in TEXT_FORMATS + TEXT_RUN_FORMATS else "features"


def describe_space(kind: str, fmt: str, space: dict | None) -> str:
    """`a features run (svmlight, 26 features, one-based ids 1..26)`-style words for errors."""
    width, base = (space or {}).get("width"), (space or {}).get("base")
    words = [fmt] + ([f"{width} features"] if width is not None else [])
    if base is not None and width is not None and kind == "features":
        words.append(f"{('zero', 'one')[base]}-based ids {base}..{base + width - 1}")
    return f"{kind} ({', '.join(words)})"


def eval_space(path: str, fmt: str, run_fmt: str, space: dict | None, run: str):
    """The FeatureSpace an eval input is read in so its columns are the run's, after checking the
    eval input is of the run's kind (text or features), width and id base.

    Args:
      path, fmt: the eval input and its format (`auto` detects).
      run_fmt: the format of the run's (or experiment's) training input.
      space: the run's `feature_space` ({"base", "width", "names"}; base None: no sparse ids).
      run: what to call the run in errors (its manifest, or `--input PATH`).

    Returns:
      A `data_contracts.readers.space.FeatureSpace`, or None for a text input (its IR
      features have a fixed width).

    Raises:
      InputError: one line naming both sides when kinds, widths or id bases differ.
    """
    from data_contracts.readers import FORMATS, dataset_space, detect_format
    from data_contracts.readers.detect import LOOKS_LIKE
    from data_contracts.readers.space import FeatureSpace

    if fmt not in FORMATS:
        raise InputError(path, f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    found = detect_format(path) if fmt == "auto" else fmt
    kind, run_kind = input_kind(found), input_kind(run_fmt)
    if found in LOOKS_LIKE:
        return None  # read_queries says what it looks like
    run_words = f"{run} is a {describe_space(run_kind, run_fmt, space)} run"
    if kind != run_kind:
        raise InputError(path, f"the eval input is {kind} ({found}) but {run_words}; give an "
                               f"eval input of the run's kind (--eval-format names its format)")
    if kind == "text":
        return None
    own = dataset_space([path], found)
    base = own.base if (space or {}).get("base") is None else space["base"]
    width = (space or {}).get("width")
    if own.base == 0 and base == 1:
        raise InputError(path, f"the eval input uses feature id 0 (zero-based ids) but {run_words}")
    if width is not None and own.width is not None:
        eval_width = own.width + own.base - base  # its highest id in the run's base
        if eval_width > width or (found not in ("svmlight", "lightgbm", "xgboost")
                                  and own.width != width):
            raise InputError(path, f"the eval input has {eval_width} features (ids "
                                   f"{own.base}..{own.base + own.width - 1}) but {run_words}")
    return FeatureSpace(base=base, width=width if width is not None else own.width,
                        names=tuple((space or {}).get("names") or ()) or None)


def build_input_space(entry: dict, space: dict | None):
    """The FeatureSpace to re-read one of the build's own inputs (`manifest["inputs"][i]`) in:
    the manifest's when it names a base (no scan), else `eval_space`'s (which decides one)."""
    from data_contracts.readers.space import FeatureSpace

    fmt = entry.get("format", "auto")
    if input_kind(fmt) == "features" and space and space.get("base") is not None:
        return FeatureSpace.from_dict(space)
    return eval_space(entry["path"], fmt, fmt, space, "the build")


def read_validated(path: str, fmt: str, n_features: int | None = None,
                   space=None, text=None) -> pa.Table:
    """Valid, labelled queries of an input (NDCG needs labels), as one table.

    Args:
      path: input file or folder.
      fmt: its format (`auto` detects).
      n_features: the width the policy expects; the input must have it.
      space: the `FeatureSpace` to read it in (`eval_space`), or None (its own).
      text: the `TextOptions` of a text input (candidates run, qrels, depth), or None.

    Raises:
      InputError: unreadable, empty (no valid labelled query), or of another feature width.
    """
    kwargs = {"space": space} if space is not None else {}
    if text is not None:
        kwargs["text"] = text
    state = ValidationState(require_labels=True)
    try:
        tables = [validate_queries(b, state)[0] for b in read_queries(path, fmt, **kwargs)]
    except InputError:
        raise
    except Exception as exc:  # readers raise Arrow, OS, value and decoding errors
        first = (str(exc).splitlines() or [""])[0][:200]
        raise InputError(path, f"unreadable input ({type(exc).__name__}: {first})") from None
    tables = [t for t in tables if t.num_rows]
    if not tables:
        raise InputError(path, "no valid labelled query (empty input, or every query quarantined)")
    table = pa.concat_tables(tables)
    width = pad_queries(table.slice(0, 1)).features.shape[-1]
    if n_features is not None and width != n_features:
        raise InputError(path, f"{width} features per document; the curriculum has {n_features}")
    return table


def build_text_options(config: dict):
    """The `TextOptions` a build read its text inputs with (its manifest's `config`: candidates,
    qrels, teacher run, depth), or None when it named none."""
    from data_contracts.readers.text import TextOptions

    names = ("candidates", "qrels", "teacher_run", "candidate_depth")
    if not any(config.get(n) for n in names):
        return None
    return TextOptions(candidates=config.get("candidates"), qrels=config.get("qrels"),
                       teacher_run=config.get("teacher_run"), depth=config.get("candidate_depth"))


def with_relevant(table: pa.Table | None) -> pa.Table | None:
    """Queries with at least one relevant document (label > 0): NDCG is defined on them."""
    if table is None:
        return None
    padded = pad_queries(table)
    keep = (np.where(padded.mask, padded.labels, 0) > 0).any(-1)
    return table.filter(pa.array(keep)) if keep.any() else None


def smallest_hashes(batches, limit: int, salt: str) -> pa.Table | None:
    """The `limit` distinct queries with the smallest crc32(salt, query id), streaming."""
    kept: pa.Table | None = None
    for table in batches:
        if table.num_rows == 0:
            continue
        kept = table if kept is None else pa.concat_tables([kept, table])
        ids = kept.column("query_id").to_pylist()
        _, first = np.unique(np.array(ids, dtype=object), return_index=True)
        first = sorted(first, key=lambda i: (stable_hash(ids[i], salt), ids[i]))[:limit]
        kept = kept.take(pa.array(np.array(first, dtype=np.int64)))
    if kept is None:
        return None
    ids = kept.column("query_id").to_pylist()
    return kept.take(pa.array(np.argsort(np.array(ids, dtype=object), kind="stable")))


def read_rows(files: list[str], keep_fraction: float, validation: bool) -> pa.Table | None:
    """Distinct queries of some shards in (or out of) the validation split."""
    tables = []
    for batch in ShardStream(files, 256):
        ids = batch.table.column("query_id").to_pylist()
        mask = is_validation(ids, keep_fraction) == validation
        if mask.any():
            tables.append(batch.table.filter(pa.array(mask)))
    if not tables:
        return None
    return smallest_hashes(tables, 1 << 62, "rows")


def training_sample(manifest: dict, cfg: TrainConfig, n_features: int,
                    fallback_files: list[str]) -> tuple[pa.Table | None, str]:
    """The fixed hash sample of training queries, and a description of where it came from.

    The build's own input (every valid labelled query, before any policy chose anything) when it
    can still be read and is the file the build read (its `inputs[].sha256`, recomputed); else
    the curriculum's shards (then labelled as such: the scoring policy decided which queries are
    in them). Side files (rollout logs, qrels, candidates) are not query inputs.
    """
    limit, salt = cfg.train_sample, "train-sample"
    inputs = [i for i in manifest.get("inputs") or [] if i.get("format") not in SIDE_FORMATS]
    config = manifest.get("config", {})
    if inputs and inputs[0].get("format") == "synthetic" and config.get("synthetic"):
        sample = smallest_hashes([generate_table(synthetic_config(config["synthetic"]))], limit,
                                 salt)
        return with_relevant(sample), "synthetic training input, hash sample"
    if inputs and inputs[0].get("format") == "synthetic-text" and config.get("synthetic"):
        sample = smallest_hashes([synthetic_text_table(synthetic_text_config(
            config["synthetic"]))], limit, salt)
        return with_relevant(sample), "synthetic text training input, hash sample"
    why = "unreadable"
    try:
        if inputs and all(fs.exists(i["path"]) for i in inputs):
            if any(input_digest(i["path"], i.get("format", "auto")) != i.get("sha256")
                   for i in inputs):
                raise _Changed()
            text = build_text_options(config)
            tables = (read_validated(i["path"], i.get("format", "auto"), n_features,
                                     build_input_space(i, manifest.get("feature_space")),
                                     text if input_kind(i.get("format", "auto")) == "text"
                                     else None)
                      for i in inputs)
            sample = smallest_hashes(tables, limit, salt)
            name = ", ".join(os.path.basename(i["path"]) for i in inputs)
            return with_relevant(sample), f"{name} (the build's input), hash sample"
    except _Changed:
        why = "changed since the build (its sha256 differs from the manifest's)"
    except InputError:
        pass
    sample = smallest_hashes((b.table for b in ShardStream(fallback_files, 256)), limit, salt)
    return with_relevant(sample), (f"curriculum shards, hash sample (the build's input is {why};"
                                   " these queries were routed by the scoring policy)")


@functools.lru_cache(maxsize=4)
def synthetic_text_table(cfg: SyntheticTextConfig) -> pa.Table:
    """`generate_text_table(cfg)`, kept per process: the experiment's arms each read the same
    generated set (its training sample, its held-out split), which takes seconds to featurise.
    Arrow tables are immutable, so sharing one is safe."""
    return generate_text_table(cfg)


def synthetic_text_config(synthetic: dict, split: str = "train",
                          n_queries: int | None = None) -> SyntheticTextConfig:
    """The text generator's config of a `--synthetic text` build (its manifest's
    `config.synthetic`: `n_queries` and `seed`, as `CurriculumConfig.synthetic_text`), for
    `split` (the held-out split: `heldout`) and `n_queries` (None: the build's)."""
    return SyntheticTextConfig(n_queries=synthetic["n_queries"] if n_queries is None
                               else n_queries, seed=synthetic["seed"], split=split)


class _Changed(Exception):
    """The build's input is there but is not the file the build read."""


# ---------------------------------------------------------------------------------------------
# Training rows: cycled from a saved position; the RL segments' steps; the shuffled control.

def cycle(files: list[str], batch_size: int, start: tuple[int, int, int], val_fraction: float,
          columns: tuple[str, ...] = ()):
    """Batches of training rows (validation queries removed) forever, from (epoch, file, row).

    Yields (epoch, batch); positions count rows after the validation filter, so a resumed stream
    sees the same batches. Ends only if the files hold no training row at all.
    """
    epoch, file_index, row = start

    def keep(table: pa.Table) -> np.ndarray:
        return ~is_validation(table.column("query_id").to_pylist(), val_fraction)

    while True:
        produced = False
        for batch in ShardStream(files, batch_size, (file_index, row), columns, keep=keep):
            produced = True
            yield epoch, batch
        if not produced and (file_index, row) == (0, 0):
            return
        epoch, file_index, row = epoch + 1, 0, 0


def split_steps(total: int, rows: list[int]) -> list[int]:
    """Steps per segment in proportion to its rows (largest remainders; sums to `total`)."""
    weights = np.asarray(rows, float)
    if total <= 0 or weights.sum() == 0:
        return [0] * len(rows)
    exact = total * weights / weights.sum()
    steps = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - steps), kind="stable")[: total - steps.sum()]:
        steps[i] += 1
    return steps.tolist()


def shuffled_rl_file(files: list[str], seed: int, work: str) -> str:
    """Writes every RL row (replays included) in `shuffled` order (crc32 of seed and query id,
    `curricula.ordering.shuffled_order`) to one Parquet file in the work folder; the control
    loads the RL rows in memory once to reorder them."""
    path = os.path.join(work, "rl-shuffled.parquet")
    if os.path.exists(path):
        return path
    tables = [pq.read_table(f) for f in files]
    table = pa.concat_tables(tables) if tables else None
    if table is None:
        raise InputError(work, "the curriculum has no RL shards to shuffle")
    order = shuffled_order(table.column("query_id").to_pylist(), seed)
    pq.write_table(table.take(pa.array(order)), path + ".tmp")
    os.replace(path + ".tmp", path)
    return path
