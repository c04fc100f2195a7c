"""Reader for an outside policy's rollout log (Parquet or JSONL in ROLLOUT_SCHEMA's columns)."""
from __future__ import annotations

from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.quarantine import quarantine_row, quarantine_table
from data_contracts.readers.tabular import read_jsonl_rows, read_parquet_rows
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
        fmt = "parquet" if fs.isdir(path) or fs.sniff(path, 4)[0] == b"PAR1" else "jsonl"
    reader = read_parquet_rows if fmt == "parquet" else read_jsonl_rows
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
        missing = [i for i, ok in enumerate(has.to_pylist()) if not ok]
        rows = [quarantine_row(Reason.ROLLOUT_WITHOUT_OUTCOME, step="read", location=locations[i],
                               query_id=table.column("query_id")[i].as_py(),
                               record_kind="rollout",
                               detail="none of ranking, reward, passed is given",
                               raw=table.slice(i, 1).to_pylist()[0]) for i in missing]
        if missing:
            table = table.filter(has)
        yield table, pa.concat_tables([bad, quarantine_table(rows)]) if rows else bad
    if saw_rows and not saw_outcome:
        raise InputError(path, "no outcome: expected a ranking, reward or passed value",
                         column="ranking|reward|passed")


__all__ = ["read_rollouts", "QUARANTINE_SCHEMA"]
