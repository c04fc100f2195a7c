"""Machine-readable reasons a record is quarantined or a query leaves the RL set."""
from __future__ import annotations


class Reason:
    """Quarantine reason codes (the `reason` column). Plain strings so SQL can filter on them."""

    UNPARSEABLE_LINE = "unparseable_line"
    UNPARSEABLE_RECORD = "unparseable_record"
    EMPTY_QUERY_ID = "empty_query_id"
    DUPLICATE_QUERY_ID = "duplicate_query_id"
    NO_DOCUMENTS = "no_documents"
    LENGTH_MISMATCH = "length_mismatch"
    RAGGED_FEATURES = "ragged_features"
    NO_FEATURES = "no_features"
    FEATURE_ID_OUT_OF_RANGE = "feature_id_out_of_range"
    NON_FINITE_FEATURES = "non_finite_features"
    LABEL_OUT_OF_RANGE = "label_out_of_range"
    MISSING_LABELS = "missing_labels"
    DUPLICATE_DOC_ID = "duplicate_doc_id"
    BAD_TEACHER = "bad_teacher"
    UNKNOWN_QUERY = "unknown_query"
    UNKNOWN_DOCUMENT = "unknown_document"
    REPEATED_DOCUMENT = "repeated_document"
    ROLLOUT_WITHOUT_OUTCOME = "rollout_without_outcome"
    DUPLICATE_ROLLOUT_ID = "duplicate_rollout_id"
    NO_ROLLOUTS = "no_rollouts"
    EMPTY_RANKING = "empty_ranking"
    REWARD_OUT_OF_RANGE = "reward_out_of_range"
    WRONG_TYPE = "wrong_type"  # a JSON field of another type than the contract's (text inputs)
    # a batch result whose request listed candidates that are not its query's
    CANDIDATE_ORDER_MISMATCH = "candidate_order_mismatch"

    QUERY_REASONS = (
        UNPARSEABLE_LINE, UNPARSEABLE_RECORD, FEATURE_ID_OUT_OF_RANGE, EMPTY_QUERY_ID,
        DUPLICATE_QUERY_ID, NO_DOCUMENTS, LENGTH_MISMATCH, RAGGED_FEATURES, NO_FEATURES,
        NON_FINITE_FEATURES, LABEL_OUT_OF_RANGE,
        MISSING_LABELS, DUPLICATE_DOC_ID, BAD_TEACHER,
    )
    # Decided by the text readers (readers/text.py), before validation.
    TEXT_READ_REASONS = (UNKNOWN_QUERY, UNKNOWN_DOCUMENT, WRONG_TYPE, UNPARSEABLE_RECORD)
    ROLLOUT_REASONS = (
        UNKNOWN_QUERY, UNKNOWN_DOCUMENT, REPEATED_DOCUMENT, ROLLOUT_WITHOUT_OUTCOME,
        DUPLICATE_ROLLOUT_ID, UNPARSEABLE_RECORD, NO_ROLLOUTS, EMPTY_RANKING,
        REWARD_OUT_OF_RANGE, EMPTY_QUERY_ID, CANDIDATE_ORDER_MISMATCH,
    )
