"""Reading a run's shards for exports: phases, the queries with texts, the run's identity."""
from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.manifest import MANIFEST_NAME, files_of

# the phases whose shards keep query and passage texts (`pending`: the queries a later round of
# requests may ask about that the others do not hold)
TEXT_PHASES = ("imitation", "rl", "pending")


def read_phase(manifest: dict, phase: str, stage: int | None = None) -> pa.Table | None:
    """A phase's (or one RL stage's) rows without the feature column; None when it has none."""
    tables = []
    for path in files_of(manifest, phase, stage):
        with fs.open_input(path) as handle:
            table = pq.read_table(handle)
        tables.append(table.drop_columns([c for c in ("features",) if c in table.column_names]))
    return pa.concat_tables(tables, promote_options="default") if tables else None


def check_texts(table: pa.Table, run: str) -> None:
    """Raises InputError when the rows carry no query text (a feature run)."""
    if table.num_rows and table.column("query_text").null_count:
        raise InputError(run, "the run holds no query and passage texts (a feature input): "
                              "LLM exports and requests need a text input (beir, msmarco, trec "
                              "with texts, rankllm, hf with text columns, --synthetic text)")


def text_queries(manifest: dict, run: str, extra: tuple[str, ...] = ()) -> pa.Table:
    """Every query of the run whose shards keep its texts, once each, in query id order.

    `extra` names more columns to keep where the shards have them (e.g. `first_stage_scores`,
    `teacher_order`, for the planner's query summaries); a column no shard has is left out.

    The imitation, RL and pending shards keep texts (an RL query replayed in a later stage is
    read once); the dropped rows do not, but an undecided dropped query of an LLM policy's loop
    is in the pending shards, so every query a later round may ask about has its texts.

    Raises:
      InputError: the run holds no texts.
    """
    tables = [t for t in (read_phase(manifest, p) for p in TEXT_PHASES) if t is not None]
    keep = ["query_id", "doc_ids", "doc_texts", "query_text", "labels", "source"]
    if not tables:
        return pa.table({c: pa.array([], pa.string()) for c in keep})
    present = set.intersection(*(set(t.column_names) for t in tables))
    keep += [c for c in extra if c in present and c not in keep]
    table = pa.concat_tables([t.select(keep) for t in tables], promote_options="default")
    check_texts(table, run)
    table = table.take(pc.sort_indices(table, [("query_id", "ascending")]))
    ids = table.column("query_id").to_pylist()
    first = [i for i, q in enumerate(ids) if i == 0 or ids[i - 1] != q]
    return table.take(pa.array(first, pa.int64()))


def run_identity(manifest: dict) -> dict:
    """The run an export or a request file came from: manifest sha256, config hash and the tag
    (the sha256's first 8 hex digits) that request ids carry."""
    digest = hashlib.sha256(fs.read_bytes(fs.join(manifest["_root"], MANIFEST_NAME))).hexdigest()
    return {"manifest_sha256": digest, "config_hash": manifest.get("config_hash"),
            "tag": digest[:8]}
