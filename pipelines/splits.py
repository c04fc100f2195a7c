"""Input splits: what one unit of parallel reading is (`Split`), how a run's inputs are cut into
splits (`plan_splits`), and how one split is read (`read_split`) and validated
(`validated_batches`), the same way in both passes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.readers import LOOKS_LIKE, detect_format, not_queries_message, read_queries
from data_contracts.readers import plan_splits as plan_file_splits
from data_contracts.readers.base import rows_to_batch
from data_contracts.readers.prefetch import prefetch
from data_contracts.synthetic import _query as synthetic_query
from data_contracts.synthetic_text import generate_text
from data_contracts.validate import ValidationState, validate_queries
from difficulty.rewards import parse_reward
from pipelines.config import CurriculumConfig

SPLIT_ROWS = 2048  # queries per split of the embedded synthetic input
SPLIT_BYTES = 64 << 20  # target input bytes per split (readers' planner)


@dataclass(frozen=True)
class Split:
    """One unit of parallel reading.

    Attributes:
      input_index: which `--input` (0-based); -1 for the embedded synthetic input.
      path: the file to read (a file of the input; the input itself when it is one file).
      fmt: its resolved format.
      file_index: the file's index within its input (sorted by path).
      source: the `source` column's value (the input's name, whatever the split).
      start: first synthetic query, byte offset (SVMlight byte ranges) or first row group.
      end: one past the last of the same, or None for "to the end".
      row_groups: Parquet row groups to read, or None for all.
      byte_range: read bytes [start, end) of an SVMlight file with qid (the readers finish the
        last query past `end` and skip a partial first one).
    """

    input_index: int
    path: str
    fmt: str
    file_index: int = 0
    source: str | None = None
    start: int = 0
    end: int | None = None
    row_groups: tuple | None = None
    byte_range: bool = False

    @property
    def position(self) -> tuple[int, int, int]:
        """(input, file, start): splits in input order sort by this."""
        return (self.input_index, self.file_index, self.start)

    @property
    def name(self) -> str:
        return f"{self.input_index}-{self.file_index}-{self.start}"


def resolve_format(path: str, fmt: str) -> str:
    """The format of an input (`auto`: detected by content, local or remote).

    Raises:
      InputError: a known layout that holds no queries (`looks like TREC qrels: ...`).
    """
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt in LOOKS_LIKE and fmt != "empty":  # a known layout that holds no queries: say what it looks like
        raise InputError(path, not_queries_message(path, fmt))
    return fmt


def plan_splits(config: CurriculumConfig) -> list[Split]:
    """The splits of every input, in input order (the launcher plans; workers read).

    Every file (each Parquet file of a folder input too) is split by the readers' planner: byte
    ranges of SVMlight files with qid, row groups of canonical Parquet, whole otherwise; the
    embedded synthetic input by ranges of `SPLIT_ROWS` queries.
    """
    if not config.inputs and config.synthetic_kind == "text":  # built whole: one split
        return [Split(-1, "embedded:synthetic-text", "synthetic-text", 0, "synthetic-text")]
    if not config.inputs:
        n, step = config.synthetic.n_queries, SPLIT_ROWS
        return [Split(-1, "embedded:synthetic", "synthetic", 0, "synthetic", a,
                      min(n, a + step)) for a in range(0, n, step)]
    out = []
    for index, path in enumerate(config.inputs):
        fmt = resolve_format(path, config.input_format)
        if fmt == "parquet" and fs.isdir(path):
            files = [f for f in fs.list_files(path) if f.endswith(".parquet")
                     and fs.dirname(f).rstrip("/") == path.rstrip("/")]
            source = fs.basename(path.rstrip("/"))
            for i, f in enumerate(sorted(files)):
                out += _planned(Split(index, f, fmt, i, source), config)
        else:
            out += _planned(Split(index, path, fmt, 0, None), config)
    return out


def _planned(whole: Split, config: CurriculumConfig) -> list[Split]:
    plans = plan_file_splits(whole.path, whole.fmt, SPLIT_BYTES, group_rows=config.group_rows)
    out = []
    for plan in plans:
        if "byte_range" in plan:
            a, b = plan["byte_range"]
            out.append(dataclasses.replace(whole, start=int(a), end=int(b), byte_range=True))
        elif "row_groups" in plan:
            groups = tuple(int(g) for g in plan["row_groups"])
            out.append(dataclasses.replace(whole, start=groups[0], end=groups[-1] + 1,
                                           row_groups=groups))
        else:
            out.append(whole)
    return out or [whole]


def read_split(split: Split, config: CurriculumConfig, space=None) -> Iterator:
    """The QueryBatches of one split (not yet validated).

    Args:
      split: what to read.
      config: the run's configuration.
      space: the dataset's FeatureSpace (`dataset_space_of`), or None (each file decides).
    """
    if split.fmt == "synthetic":
        for a in range(split.start, split.end, config.batch_size):
            rows = [synthetic_query(config.synthetic, i)
                    for i in range(a, min(split.end, a + config.batch_size))]
            yield rows_to_batch(rows, [], step="read")
        return
    if split.fmt == "synthetic-text":
        yield from generate_text(config.synthetic_text(), config.batch_size)
        return
    kwargs = dict(batch_size=config.batch_size, column_map=config.column_map,
                  split=config.split, source=split.source, text=config.text_options())
    if split.row_groups is not None:
        kwargs["row_groups"] = list(split.row_groups)
    if split.byte_range:
        kwargs["byte_range"] = (split.start, split.end)
    if space is not None:
        kwargs["space"] = space
    kwargs.update(group_rows=config.group_rows, max_feature_id=config.max_feature_id,
                  repeated_features=config.repeated_features)
    yield from read_queries(split.path, split.fmt, **kwargs)


def validated_batches(split: Split, config: CurriculumConfig, space=None) -> Iterator:
    """(ok table, quarantine table, records read, skipped lines, ok locations, reader counts)
    per batch of a split; the reader counts are `QueryBatch.counts` (text inputs: `unjudged`,
    `empty_passages`, ...), what the reader counted since the previous batch.

    Validation state is per split (duplicates within a split are quarantined here, across splits
    by `Dedupe`), so pass 1 and pass 2 see exactly the same ok rows.
    """
    needs_labels = parse_reward(config.reward).kind != "log"
    state = ValidationState(label_min=config.label_min, label_max=config.label_max,
                            require_labels=needs_labels)
    for batch in prefetch(read_split(split, config, space)):
        read_bad = batch.quarantine.num_rows
        ok, bad = validate_queries(batch, state)
        rejected = set(bad.column("location").to_pylist()[read_bad:])
        ok_locations = [x for x in batch.locations if x not in rejected]
        yield (ok, bad, batch.records, int(getattr(batch, "skipped_lines", 0)), ok_locations,
               dict(getattr(batch, "counts", None) or {}))
