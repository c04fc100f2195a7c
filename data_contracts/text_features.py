"""Standard IR features of (query, passage) pairs, so the in-pipeline policy can rank text.

Each query's candidates are featurized against that query's own candidate set (the collection
statistics BM25's IDF and TF-IDF's IDF need come from the query's candidates, as in local
reranking), so a query's features depend only on that query: not on the batch it travels in, the
batch size or the other queries. Same text in, same features out (no randomness, no fitted state
shared across queries).

Tokens: lowercased runs of two or more word characters (scikit-learn's default token pattern,
`(?u)\\b\\w\\w+\\b`), no stemming and no stop words, shared by every feature.

Features, in `TEXT_FEATURE_NAMES` order (one row per candidate):

- `bm25`: Okapi BM25 of the query against the passage (bm25s, k1 = 1.5, b = 0.75, its default
  `lucene` IDF), collection = the query's candidates.
- `tfidf_cosine`: cosine of the query's and the passage's TF-IDF vectors (scikit-learn
  `TfidfVectorizer`, smooth IDF, sublinear TF, l2 norm) fitted on the query's candidates.
- `query_term_coverage`: the fraction of the query's distinct terms that occur in the passage.
- `log_passage_length`: log(1 + passage tokens).
- `log_query_length`: log(1 + query tokens) (the same for every candidate of a query).
- `first_stage_reciprocal_rank`: 1 / the first-stage rank (1-based; 0 where unknown).
- `first_stage_score`: the first-stage retriever's score (0 where unknown).
- `first_stage_score_z`: that score standardized within the query (0 where unknown or constant).

A query without texts (a TREC run alone) gets zeros for the text features and keeps the
first-stage ones, so every query has the same feature width.
"""
from __future__ import annotations

import logging
import math
import re
from typing import Sequence

import numpy as np

TEXT_FEATURE_NAMES = (
    "bm25", "tfidf_cosine", "query_term_coverage", "log_passage_length", "log_query_length",
    "first_stage_reciprocal_rank", "first_stage_score", "first_stage_score_z",
)
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_TOKEN = re.compile(TOKEN_PATTERN)


def tokenize(text: str | None) -> list[str]:
    """Lowercased tokens of `text` (see the module docstring); [] for None."""
    return _TOKEN.findall(text.lower()) if text else []


def _bm25(query: list[str], passages: list[list[str]]) -> np.ndarray:
    if not query or not any(passages):
        return np.zeros(len(passages))
    import bm25s  # here, so feature inputs never need it

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # its import sets DEBUG; one index a query

    # bm25s cannot index an empty document: give empty passages a token no query has
    retriever = bm25s.BM25(k1=1.5, b=0.75)
    retriever.index([p if p else ["\x00"] for p in passages], show_progress=False)
    return np.asarray(retriever.get_scores(query), dtype=np.float64)


def _tfidf_cosine(query: str, passages: Sequence[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer  # ~1 s: only text inputs pay

    vectorizer = TfidfVectorizer(token_pattern=TOKEN_PATTERN, lowercase=True, sublinear_tf=True)
    try:
        docs = vectorizer.fit_transform([p or "" for p in passages])
    except ValueError:  # no passage holds a single token
        return np.zeros(len(passages))
    q = vectorizer.transform([query or ""])
    return np.asarray((docs @ q.T).todense()).ravel()  # both rows are l2-normalized


def query_features(query_text: str | None, doc_texts: Sequence[str | None] | None,
                   ranks: Sequence[int | None] | None = None,
                   scores: Sequence[float | None] | None = None, n_docs: int | None = None
                   ) -> np.ndarray:
    """[D, len(TEXT_FEATURE_NAMES)] float32 features of one query's D candidates.

    Args:
      query_text: the query (None: no text features).
      doc_texts: the D passages, in candidate order (None: no text features).
      ranks: the first-stage ranks (1-based), or None.
      scores: the first-stage scores, or None.
      n_docs: D, needed when neither texts, ranks nor scores are given.

    Returns:
      The feature matrix; finite everywhere.
    """
    d = len(doc_texts) if doc_texts is not None else len(ranks) if ranks is not None else \
        len(scores) if scores is not None else int(n_docs or 0)
    out = np.zeros((d, len(TEXT_FEATURE_NAMES)), dtype=np.float64)
    if d == 0:
        return out.astype(np.float32)
    if doc_texts is not None and query_text is not None:
        q_tokens = tokenize(query_text)
        p_tokens = [tokenize(t) for t in doc_texts]
        out[:, 0] = _bm25(q_tokens, p_tokens)
        out[:, 1] = _tfidf_cosine(query_text, [t or "" for t in doc_texts])
        distinct = set(q_tokens)
        if distinct:
            out[:, 2] = [len(distinct.intersection(p)) / len(distinct) for p in p_tokens]
        out[:, 3] = np.log1p([len(p) for p in p_tokens])
        out[:, 4] = np.log1p(len(q_tokens))
    if ranks is not None:
        r = np.array([np.nan if x is None else x for x in ranks], dtype=np.float64)
        out[:, 5] = np.where(r >= 1, 1.0 / np.where(r >= 1, r, 1.0), 0.0)
    if scores is not None:
        s = np.array([np.nan if x is None else x for x in scores], dtype=np.float64)
        known = np.isfinite(s)
        out[:, 6] = np.where(known, s, 0.0)
        if known.sum() > 1 and np.std(s[known]) > 0:
            z = (s - s[known].mean()) / s[known].std()
            out[:, 7] = np.where(known, z, 0.0)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def is_float32_number(value) -> bool:
    """Whether `value` is a number (not a boolean) that is finite and within float32's range:
    what a first-stage score must be to become a feature unchanged."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and abs(value) <= FLOAT32_MAX)


def _bad_score(scores) -> str | None:
    """Why a row's first-stage scores cannot become features (None when they can): a value
    that is not finite or beyond float32's range would be a silent 0 or inf."""
    for j, s in enumerate(scores or ()):
        if s is not None and not is_float32_number(s):
            return f"first_stage_scores[{j}] = {s!r} is not a finite float32 number"
    return None


def featurize_rows(rows: list[dict]) -> None:
    """Sets each row's `features` from its `query_text`, `doc_texts`, `first_stage_ranks` and
    `first_stage_scores` (rows as readers build them, QUERY_SCHEMA keys); in place.

    A row whose first-stage scores hold a value that is not a finite float32 number (a Hugging
    Face column of `inf`, say; the file readers refuse such values earlier) becomes a
    quarantine row (`non_finite_features`), never a silent 0.
    """
    from data_contracts.reasons import Reason

    for row in rows:
        if "_error" in row:
            continue
        problem = _bad_score(row.get("first_stage_scores"))
        if problem is not None:
            location = row.get("_location", "")
            qid = row.get("query_id")
            row.clear()
            row.update(query_id=qid, _error=(Reason.NON_FINITE_FEATURES, location, problem,
                                             {"query_id": qid}))
            continue
        row["features"] = query_features(row.get("query_text"), row.get("doc_texts"),
                                         row.get("first_stage_ranks"),
                                         row.get("first_stage_scores"),
                                         n_docs=len(row.get("doc_ids") or []))
