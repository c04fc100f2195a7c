"""Reader for an outside policy's rollout log (Parquet or JSONL in ROLLOUT_SCHEMA's columns)."""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.quarantine import quarantine_row, quarantine_table
from data_contracts.readers.batch_results import sniff_batch_output
from data_contracts.readers.detect import is_parquet_file
from data_contracts.readers.records import read_jsonl_blocks, read_parquet_rows
from data_contracts.reasons import Reason
from data_contracts.schema import QUARANTINE_SCHEMA, ROLLOUT_REQUIRED, ROLLOUT_SCHEMA

OUTCOME_COLUMNS = ("ranking", "reward", "passed", "generation")


def read_rollouts(path: str, *, batch_size: int = 4096, fmt: str = "auto"
                  ) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Streams a rollout log as (rollouts in ROLLOUT_SCHEMA, quarantine) batches.

    A rollout needs `query_id`, `rollout_id` and at least one of `ranking` (document ids, best
    first), `reward`, `passed` or `generation` (an LLM's raw text, parsed when scored); a row with all of them null is quarantined, and a log in which
    no row has any of them is unusable (InputError, raised once the whole log has been read).
    """
    if fmt not in ("auto", "parquet", "jsonl"):
        raise InputError(path, f"unknown rollout format {fmt!r} (expected parquet or jsonl)")
    if not fs.exists(path):
        raise InputError(path, "file not found")
    if fmt == "auto":  # by content: Parquet magic, else JSON lines
        fmt = "parquet" if fs.isdir(path) or is_parquet_file(path) else "jsonl"
    if fmt == "jsonl" and sniff_batch_output(path):
        raise InputError(path, "OpenAI batch output lines (custom_id, response): read them with "
                               "data_contracts.readers.batch_results.read_batch_results and the "
                               "requests.json they answer")
    reader = read_parquet_rows if fmt == "parquet" else read_jsonl_blocks
    saw_rows = saw_outcome = False  # decided over the whole log, not its first batch
    for table, locations, bad in reader(path, batch_size, ROLLOUT_SCHEMA, ROLLOUT_REQUIRED,
                                        "rollout"):
        if table.num_rows:
            saw_rows = True
            saw_outcome = saw_outcome or any(
                table.column(c).null_count < table.num_rows for c in OUTCOME_COLUMNS)
        has = pa.array([], pa.bool_())
        if table.num_rows:  # any outcome column given (a `generation` is parsed when scored)
            has = pc.is_valid(table.column(OUTCOME_COLUMNS[0]))
            for name in OUTCOME_COLUMNS[1:]:
                has = pc.or_(has, pc.is_valid(table.column(name)))
        problems = _row_problems(table, has)
        rows = [quarantine_row(reason, step="read", location=locations[i],
                               query_id=table.column("query_id")[i].as_py(),
                               record_kind="rollout", detail=detail,
                               raw=table.slice(i, 1).to_pylist()[0])
                for i, (reason, detail) in sorted(problems.items())]
        if problems:
            keep = np.ones(table.num_rows, bool)
            keep[list(problems)] = False
            table = table.filter(pa.array(keep))
        yield table, pa.concat_tables([bad, quarantine_table(rows)]) if rows else bad
    if saw_rows and not saw_outcome:
        raise InputError(path, "no outcome: expected a ranking, reward or passed value",
                         column="ranking|reward|passed")


def _row_problems(table: pa.Table, has_outcome: pa.Array) -> dict[int, tuple[str, str]]:
    """Row index -> (reason, detail) for the rows of a rollout batch that cannot be used: no
    query or rollout id, no outcome, an empty ranking, a reward that is not a finite number.

    A reward's range against the run's reward is checked where the reward is known
    (`validate_rollouts`). `has_outcome` [N] bool: the row gives an outcome column.
    """
    if not table.num_rows:
        return {}
    # the rows that may have a problem, with Arrow kernels (a superset: an id with an ASCII
    # letter or digit is not blank); the exact checks below run on those rows only
    maybe = pc.invert(has_outcome)
    for name in ("query_id", "rollout_id"):
        ids = table.column(name)
        maybe = pc.or_(maybe, pc.fill_null(pc.invert(
            pc.match_substring_regex(ids, "[0-9A-Za-z]")), True))
    maybe = pc.or_(maybe, pc.fill_null(pc.equal(pc.list_value_length(table.column("ranking")),
                                                0), False))
    rewards = table.column("reward")
    maybe = pc.or_(maybe, pc.fill_null(pc.invert(pc.is_finite(rewards)), False))
    rows = np.flatnonzero(maybe.to_numpy(zero_copy_only=False))
    if not rows.size:
        return {}
    picked = table.take(pa.array(rows))
    qids = dict(zip(rows.tolist(), picked.column("query_id").to_pylist()))
    rids = dict(zip(rows.tolist(), picked.column("rollout_id").to_pylist()))
    rankings = dict(zip(rows.tolist(), picked.column("ranking").to_pylist()))
    rewards = dict(zip(rows.tolist(), picked.column("reward").to_pylist()))
    has_outcome = dict(zip(rows.tolist(), pc.take(has_outcome, pa.array(rows)).to_pylist()))
    out = {}
    for i in rows.tolist():
        if qids[i] is None or not str(qids[i]).strip():
            out[i] = (Reason.EMPTY_QUERY_ID, "query_id is missing or empty")
        elif rids[i] is None or not str(rids[i]).strip():
            out[i] = (Reason.UNPARSEABLE_RECORD, "rollout_id is missing or empty")
        elif not has_outcome[i]:
            out[i] = (Reason.ROLLOUT_WITHOUT_OUTCOME, "none of ranking, reward, passed is given")
        elif rankings[i] is not None and len(rankings[i]) == 0:
            out[i] = (Reason.EMPTY_RANKING, "ranking is an empty list")
        elif rewards[i] is not None and not math.isfinite(rewards[i]):
            out[i] = (Reason.REWARD_OUT_OF_RANGE, f"reward {rewards[i]!r} is not a finite number")
    return out


__all__ = ["read_rollouts", "QUARANTINE_SCHEMA"]
