"""Quarantine rows: every rejected record, with a machine-readable reason and where it came from."""
from __future__ import annotations

import json
from typing import Any, Iterable

import pyarrow as pa

from data_contracts.schema import QUARANTINE_SCHEMA

RAW_LIMIT = 4096  # characters of the raw record kept; the location finds the rest


def _raw(record: Any) -> str:
    if isinstance(record, str):
        text = record
    else:
        text = json.dumps(record, default=_json_default, sort_keys=True)
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + "...(truncated)"


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def quarantine_row(
    reason: str, *, step: str, location: str, query_id: str | None = None,
    record_kind: str = "query", detail: str = "", raw: Any = "",
) -> dict:
    """One quarantine row as a dict in QUARANTINE_SCHEMA's columns.

    Args:
      reason: machine-readable reason code (see `data_contracts.validate.Reason`).
      step: the step that rejected it (read, validate, rollouts, ...).
      location: `file:line` or `file#record` where the record came from.
      query_id: the record's query id when known.
      record_kind: `query`, `line` or `rollout`.
      detail: human-readable specifics.
      raw: the raw record (a line of text or a JSON-able mapping), truncated to RAW_LIMIT.
    """
    return {
        "query_id": query_id, "record_kind": record_kind, "step": step, "reason": reason,
        "location": location, "detail": detail, "raw": _raw(raw),
    }


def quarantine_table(rows: Iterable[dict]) -> pa.Table:
    """Rows from `quarantine_row` as a table in QUARANTINE_SCHEMA."""
    return pa.Table.from_pylist(list(rows), schema=QUARANTINE_SCHEMA)
