"""Arrow schemas for every record the pipeline reads or writes.

Each column is defined once here; readers, validators, writers and the trainer import these
definitions instead of spelling column names or types again.
"""
from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1.0"

# --- columns, each defined once -------------------------------------------------------------
QUERY_ID = pa.field("query_id", pa.string(), nullable=False)
DOC_IDS = pa.field("doc_ids", pa.list_(pa.string()), nullable=False)
FEATURES = pa.field("features", pa.list_(pa.list_(pa.float32())), nullable=False)
LABELS = pa.field("labels", pa.list_(pa.float32()))
TEACHER_SCORES = pa.field("teacher_scores", pa.list_(pa.float32()))
TEACHER_ORDER = pa.field("teacher_order", pa.list_(pa.int32()))
SOURCE = pa.field("source", pa.string())
SPLIT = pa.field("split", pa.string())
# Text rerankers (optional): the query and passage texts, stored once per query, and the
# first-stage retriever's ranks (1-based) and scores of the candidates, in `doc_ids` order.
QUERY_TEXT = pa.field("query_text", pa.string())
DOC_TEXTS = pa.field("doc_texts", pa.list_(pa.string()))
FIRST_STAGE_RANKS = pa.field("first_stage_ranks", pa.list_(pa.int32()))
FIRST_STAGE_SCORES = pa.field("first_stage_scores", pa.list_(pa.float32()))
TEACHER_REASONING = pa.field("teacher_reasoning", pa.string())
# The labels of every judged relevant document of the query (grade > 0, sorted descending),
# candidates outside the window included: the ideal of `--reward ...,ideal=qrels`
# (difficulty/rewards.py). Filled by the text readers from the qrels; null where the query's
# documents are all its judged documents (feature inputs) or it has no judgment.
JUDGED_LABELS = pa.field("judged_labels", pa.list_(pa.float32()))

ROLLOUT_ID = pa.field("rollout_id", pa.string(), nullable=False)
RANKING = pa.field("ranking", pa.list_(pa.string()))
REWARD = pa.field("reward", pa.float64())
PASSED = pa.field("passed", pa.bool_())
POLICY_ID = pa.field("policy_id", pa.string())
GENERATION = pa.field("generation", pa.string())  # an LLM's raw output, parsed when scored

TRIALS = pa.field("trials", pa.int32(), nullable=False)
SUCCESSES = pa.field("successes", pa.int32(), nullable=False)
PASS_RATE = pa.field("pass_rate", pa.float64(), nullable=False)
INTERVAL_LOW = pa.field("interval_low", pa.float64(), nullable=False)
INTERVAL_HIGH = pa.field("interval_high", pa.float64(), nullable=False)
PASS_AT_K = pa.field("pass_at_k", pa.float64(), nullable=False)
REWARD_MEAN = pa.field("reward_mean", pa.float64(), nullable=False)
REWARD_STD = pa.field("reward_std", pa.float64(), nullable=False)
ZERO_VARIANCE = pa.field("zero_variance", pa.bool_(), nullable=False)
BAND = pa.field("band", pa.string(), nullable=False)
BAND_CONFIDENCE = pa.field("band_confidence", pa.float64(), nullable=False)
DECIDED = pa.field("decided", pa.bool_(), nullable=False)
RULE = pa.field("rule", pa.string(), nullable=False)
# Rollouts from generations: how many were malformed (failed or repaired), and why, as a JSON
# object {reason: count}; null where rollouts were not parsed from text.
MALFORMED_ROLLOUTS = pa.field("malformed_rollouts", pa.int32())
MALFORMED_REASONS = pa.field("malformed_reasons", pa.string())

DIVERSITY_CLUSTER = pa.field("diversity_cluster", pa.int32(), nullable=False)
SIGNATURE = pa.field("signature", pa.string(), nullable=False)
WEIGHT = pa.field("weight", pa.float32(), nullable=False)
STAGE = pa.field("stage", pa.int32(), nullable=False)
ORDER_KEY = pa.field("order_key", pa.float64(), nullable=False)
REPLAY = pa.field("replay", pa.bool_(), nullable=False)
FATE = pa.field("fate", pa.string(), nullable=False)
REASON = pa.field("reason", pa.string(), nullable=False)

RECORD_KIND = pa.field("record_kind", pa.string(), nullable=False)
STEP = pa.field("step", pa.string(), nullable=False)
LOCATION = pa.field("location", pa.string(), nullable=False)
DETAIL = pa.field("detail", pa.string(), nullable=False)
RAW = pa.field("raw", pa.string(), nullable=False)
NULLABLE_QUERY_ID = pa.field("query_id", pa.string())

# --- records --------------------------------------------------------------------------------
QUERY_SCHEMA = pa.schema(
    [QUERY_ID, DOC_IDS, FEATURES, LABELS, TEACHER_SCORES, TEACHER_ORDER, SOURCE, SPLIT,
     QUERY_TEXT, DOC_TEXTS, FIRST_STAGE_RANKS, FIRST_STAGE_SCORES, TEACHER_REASONING,
     JUDGED_LABELS]
)
QUERY_REQUIRED = ("query_id", "doc_ids", "features")

ROLLOUT_SCHEMA = pa.schema([QUERY_ID, ROLLOUT_ID, RANKING, REWARD, PASSED, POLICY_ID,
                            GENERATION])
ROLLOUT_REQUIRED = ("query_id", "rollout_id")

DIFFICULTY_FIELDS = [
    TRIALS, SUCCESSES, PASS_RATE, INTERVAL_LOW, INTERVAL_HIGH, PASS_AT_K, REWARD_MEAN,
    REWARD_STD, ZERO_VARIANCE, BAND, BAND_CONFIDENCE, DECIDED, RULE, MALFORMED_ROLLOUTS,
    MALFORMED_REASONS,
]
DIFFICULTY_SCHEMA = pa.schema([QUERY_ID, POLICY_ID] + DIFFICULTY_FIELDS)

# Queries travel through scoring and routing together with their difficulty columns.
SCORED_QUERY_SCHEMA = pa.schema(list(QUERY_SCHEMA) + [POLICY_ID] + DIFFICULTY_FIELDS)

IMITATION_SCHEMA = pa.schema(
    list(QUERY_SCHEMA) + [PASS_RATE, BAND, DIVERSITY_CLUSTER, SIGNATURE, WEIGHT]
)
RL_SCHEMA = pa.schema(list(QUERY_SCHEMA) + [PASS_RATE, BAND, STAGE, ORDER_KEY, REPLAY])
# Queries kept with their texts for a later round of an LLM policy's requests: every valid query
# under `--policy none` (no pass rate yet: nulls), and the undecided queries of a run built from
# results that no imitation or RL shard holds.
PENDING_SCHEMA = pa.schema(list(QUERY_SCHEMA) + [
    PASS_RATE.with_nullable(True), BAND.with_nullable(True), TRIALS.with_nullable(True),
    DECIDED.with_nullable(True)])
DROPPED_SCHEMA = pa.schema(
    [QUERY_ID, SOURCE, PASS_RATE, INTERVAL_LOW, INTERVAL_HIGH, TRIALS, BAND, REASON]
)
QUARANTINE_SCHEMA = pa.schema(
    [NULLABLE_QUERY_ID, RECORD_KIND, STEP, REASON, LOCATION, DETAIL, RAW]
)

BANDS = ("too_hard", "learnable", "too_easy")


def judged_labels_of(judgments: dict | None) -> list[float] | None:
    """The JUDGED_LABELS value of one query from its qrels ({document id: grade}): the grades of
    its relevant judged documents (grade > 0; the others add no gain), sorted descending so the
    value does not depend on the qrels' line order; None when the query has no judgment."""
    if judgments is None:
        return None
    return sorted((float(v) for v in judgments.values() if v > 0), reverse=True)


def empty(schema: pa.Schema) -> pa.Table:
    """An empty table of `schema`."""
    return schema.empty_table()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Selects, orders and casts `table`'s columns to `schema`, adding missing nullable columns.

    Args:
      table: any table holding at least the schema's non-nullable columns.
      schema: the target schema.

    Raises:
      KeyError: a non-nullable column of `schema` is missing.
    """
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            if column.type != field.type:
                column = column.cast(field.type)
            columns.append(column)
        elif field.nullable:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            raise KeyError(f"column {field.name!r} ({field.type}) is required")
    return pa.Table.from_arrays(columns, schema=schema)
