"""Readers for text reranking data: TREC qrels and runs, BEIR folders, MS MARCO TSVs, rank_llm
requests and Hugging Face datasets with text columns, into canonical query batches.

Every layout ends in the same record (QUERY_SCHEMA): per query its candidates (`doc_ids`, in the
candidate run's order: the order a listwise prompt numbers them [1]..[n]), the query and passage
texts (stored once per query), the first-stage ranks (1-based positions in that order) and scores,
the labels from the qrels (0 for an unjudged candidate; no labels for a query without any
judgment), the teacher's order from `--teacher-run` (joined by query and document id), and
features computed from all of that (data_contracts/text_features.py), so the in-pipeline policy,
scoring, curriculum and trainer run unchanged.

Layouts (`--input-format`):
- `trec`: `--input` is a TREC run (the candidates); no texts, features from the first stage.
- `beir`: `--input` is a BEIR folder (`corpus.jsonl`, `queries.jsonl`, qrels under
  `qrels/<split>.tsv`, split default `test`, or another common name: `find_layout_qrels`);
  `--candidates RUN` names each query's candidates.
- `msmarco`: `--input` is a folder with `collection.tsv` (`pid\\tpassage`) and `queries.tsv` or
  `queries.<split>.tsv` (`qid\\tquery`), qrels from `--qrels` or `qrels[.<split>].tsv|txt`
  there, and `--candidates RUN`.
- `rankllm`: `--input` is rank_llm request JSONL, one `{query: {text, qid}, candidates: [{docid,
  score, doc: {...}}]}` per line, or RankGPT's JSON array `[{query, hits}]`
  (readers/text_jsonl.py).
- `hf` with text columns: a Hugging Face dataset whose `--column-map` maps `query_text` and
  `doc_texts` (and `query_id`, `doc_ids`, optionally `labels`, `first_stage_scores`).

Qrels and runs are read as trec_eval reads them (readers/text_trec.py: negative judgments are
gain 0, fields after a run's tag ignored, strict number rules, Parquet and JSON dictionaries,
binary files named, qrels and runs told apart by shape); passages and queries by
readers/text_jsonl.py (id and text keys, `--column-map` keys, types checked per record).

Judged queries: with qrels, a query they do not judge is skipped and counted (`unjudged`), as
trec_eval ignores it; none judged at all is an InputError.

Large corpora are streamed once and joined: the candidate run is read first (it is small), and
only the passages and queries of its judged queries are kept, so memory holds the candidates'
texts, never the corpus. A candidate whose passage is not in the corpus makes its query a
quarantine row (`unknown_document`), a candidate query without text one with `unknown_query`, a
record of a wrong type one with `wrong_type`: never dropped silently. Files may be
gzip/bz2/xz/zstd compressed.

Counts (QueryBatch.skipped_lines and QueryBatch.counts, per batch since the previous one):
`skipped_lines`, `unjudged`, `empty_queries`, `empty_passages`, `negative_judgments`,
`run_extra_fields`, `non_utf8_lines`, `duplicate_ids`, `id_collisions`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.readers.base import QueryBatch, rows_to_batch
from data_contracts.readers.text_jsonl import (WrongType, rankllm_records, rankllm_request,
                                               read_texts)
from data_contracts.readers.text_trec import TextCounts, read_qrels, read_run
from data_contracts.reasons import Reason
from data_contracts.schema import judged_labels_of
from data_contracts.text_features import featurize_rows

TEXT_FORMATS = ("trec", "beir", "msmarco", "rankllm")
# The keys `--column-map` takes for text inputs (beside the hf text columns, QUERY_SCHEMA's).
TEXT_COLUMN_MAP_NAMES = ("query_id", "query_text", "doc_id", "doc_text", "doc_title")


@dataclass(frozen=True)
class TextOptions:
    """Side files of a text input.

    Attributes:
      candidates: a TREC run naming each query's candidates, in order.
      qrels: TREC qrels (where the layout does not hold them).
      teacher_run: a TREC run giving the teacher's demonstration order.
      depth: keep each query's first `depth` candidates of a run or rank_llm request (None:
        all), as listwise rerankers rerank a first stage's top 20 or 100.
      column_map: JSON keys of corpora and queries files (`doc_id`, `doc_text`, `doc_title`,
        `query_id`, `query_text` -> key; see readers/text_jsonl.py); `read_queries`' own
        `column_map` is used when this is None.
      require_qrels: whether a BEIR/MS MARCO folder without qrels (and no `qrels`) is an error
        naming the files looked for. None (default): yes; False where labels are not needed
        (rewards logged with the rollouts).
    """

    candidates: str | None = None
    qrels: str | None = None
    teacher_run: str | None = None
    depth: int | None = None
    column_map: Mapping[str, str] | None = None
    require_qrels: bool | None = None


def teacher_order_of(doc_ids: list[str], teacher: list[tuple[str, float | None]] | None
                     ) -> list[int] | None:
    """The teacher's order over `doc_ids` (indices, best first): the documents the teacher run
    ranks, in its order, then the others in candidate order; None without a teacher list."""
    if teacher is None:
        return None
    index = {d: j for j, d in enumerate(doc_ids)}
    ranked = list(dict.fromkeys(index[d] for d, _ in teacher if d in index))
    seen = set(ranked)
    return ranked + [j for j in range(len(doc_ids)) if j not in seen]


def _labels(qid: str, doc_ids: list[str], qrels: Mapping | None) -> list[float] | None:
    if qrels is None or qid not in qrels:
        return None
    judged = qrels[qid]
    return [float(judged.get(d, 0.0)) for d in doc_ids]


# --- judged_labels (reward ideal=qrels) -------------------------------------------------------
def _judged_rows(rows: Iterable[dict], qrels: Mapping | None) -> Iterator[dict]:
    """Rows with `judged_labels`: the grades of every judged relevant document of the query,
    outside the candidate window too (the ideal of `--reward ...,ideal=qrels`)."""
    for row in rows:
        if "_error" not in row and qrels is not None:
            row["judged_labels"] = judged_labels_of(qrels.get(row.get("query_id")))
        yield row
# --- end judged_labels ----------------------------------------------------------------------


def count_empty_texts(row: dict, counts: TextCounts) -> None:
    """Counts a reader row's empty query (`empty_queries`) and empty candidate passages
    (`empty_passages`, per candidate); texts that are absent (a TREC run alone) are not
    counted."""
    if row.get("query_text") is not None and not row["query_text"].strip():
        counts.add("empty_queries")
    texts = row.get("doc_texts")
    if texts is not None:
        counts.add("empty_passages", sum(1 for t in texts if not (t or "").strip()))


def featurized_batches(rows: Iterable[dict], batch_size: int,
                       counts: TextCounts | None = None) -> Iterator[QueryBatch]:
    """Reader rows as featurized QueryBatches of `batch_size` queries.

    Each batch carries what `counts` gathered since the previous batch (`skipped_lines` in
    `QueryBatch.skipped_lines`, the rest in `QueryBatch.counts`); counts left at the end come
    in a last batch without queries.
    """
    counts = counts if counts is not None else TextCounts()
    chunk: list[dict] = []

    def batch() -> QueryBatch:
        featurize_rows(chunk)
        out = rows_to_batch(chunk, [], step="read")
        taken = counts.take()
        out.skipped_lines = taken.pop("skipped_lines", 0)
        out.counts = taken
        return out

    for row in rows:
        if "_error" not in row:
            count_empty_texts(row, counts)
        chunk.append(row)
        if len(chunk) >= batch_size:
            yield batch()
            chunk = []
    if chunk or counts.pending:
        yield batch()


def _error(qid: str | None, reason: str, location: str, detail: str, raw) -> dict:
    return {"query_id": qid, "_error": (reason, location, detail, raw)}


def _first_existing(folder: str, names: Iterable[str]) -> str | None:
    for name in names:
        for suffix in ("", ".gz"):
            path = fs.join(folder, name + suffix)
            if fs.exists(path):
                return path
    return None


class Judged:
    """Which queries the qrels judge: an unjudged query is skipped and counted (`unjudged`), as
    trec_eval ignores queries without relevance information; a read in which no query is
    judged is refused (`finish`)."""

    def __init__(self, qrels: Mapping | None, qrels_path: str | None, counts: TextCounts):
        self.qrels, self.qrels_path, self.counts = qrels, qrels_path, counts
        self.judged = self.unjudged = 0
        self.examples: list[str] = []

    def __call__(self, qid: str) -> bool:
        """Whether to keep query `qid` (always, without qrels)."""
        if self.qrels is None or qid in self.qrels:
            self.judged += 1
            return True
        self.unjudged += 1
        self.counts.add("unjudged")
        if len(self.examples) < 3:
            self.examples.append(qid)
        return False

    def finish(self, source: str) -> None:
        """Raises InputError when qrels were given and none of the queries read is judged."""
        if self.qrels is not None and self.judged == 0 and self.unjudged:
            refuse_unjudged(source, self.qrels_path, self.unjudged, self.examples, self.qrels)


def refuse_unjudged(source: str, qrels_path: str | None, n: int, examples: list,
                    qrels: Mapping) -> None:
    """The one-line refusal of a read whose queries are all unjudged.

    Raises:
      InputError: always.
    """
    judged = list(qrels)[:3]
    raise InputError(source, f"none of its {n} queries is judged in the qrels "
                             f"{qrels_path or ''} (no query id in common: it has "
                             f"{', '.join(map(repr, examples))}, the qrels judge "
                             f"{', '.join(map(repr, judged)) or 'nothing'}); are they of the "
                             "same collection and split?")


def candidate_rows(run: dict, run_path: str, query_texts: dict | None,
                   doc_texts: dict | None, qrels: dict | None, teacher: dict | None,
                   source: str, split: str | None, *, counts: TextCounts | None = None,
                   query_problems: list | None = None, doc_problems: list | None = None
                   ) -> Iterator[dict]:
    """Reader rows of a candidate run joined with its texts, labels and teacher order.

    Args:
      query_problems, doc_problems: `(id, reason, location, detail)` of queries-file / corpus
        records of a wrong type (text_jsonl.read_texts): a query that needs one is quarantined
        with its reason and line; one whose id is unusable (None) is a quarantine row of its
        own.
      counts: gets `unjudged` (queries the qrels do not judge: skipped).
    """
    counts = counts if counts is not None else TextCounts()
    bad_query: dict = {}
    bad_doc: dict = {}
    for problems, bad in ((query_problems, bad_query), (doc_problems, bad_doc)):
        for rid, reason, location, detail in problems or ():
            if rid is None:
                yield _error(None, reason, location, detail, None)
            else:
                bad.setdefault(rid, (reason, location, detail))
    judged = Judged(qrels, None, counts)
    for qid, ranked in run.items():
        if not judged(qid):
            continue
        doc_ids = [d for d, _ in ranked]
        location = f"{run_path}#query={qid}"
        row = {"query_id": qid, "doc_ids": doc_ids, "source": source, "split": split,
               "_location": location,
               "first_stage_ranks": list(range(1, len(doc_ids) + 1)),
               "first_stage_scores": ([s for _, s in ranked]
                                      if all(s is not None for _, s in ranked) else None),
               "labels": _labels(qid, doc_ids, qrels),
               "teacher_order": teacher_order_of(doc_ids, teacher.get(qid) if teacher else None)}
        if query_texts is not None:
            if qid not in query_texts:
                if qid in bad_query:
                    reason, where, detail = bad_query[qid]
                    yield _error(qid, reason, where, detail, {"query_id": qid})
                    continue
                yield _error(qid, Reason.UNKNOWN_QUERY, location,
                             "the candidate run names a query the queries file does not hold",
                             {"query_id": qid})
                continue
            row["query_text"] = query_texts[qid]
        if doc_texts is not None:
            wrong = [d for d in doc_ids if d not in doc_texts and d in bad_doc]
            if wrong:
                reason, where, detail = bad_doc[wrong[0]]
                yield _error(qid, reason, where, f"candidate {wrong[0]!r}: {detail}",
                             {"query_id": qid, "doc_ids": doc_ids[:20]})
                continue
            missing = [d for d in doc_ids if d not in doc_texts]
            if missing:
                yield _error(qid, Reason.UNKNOWN_DOCUMENT, location,
                             f"{len(missing)} candidates not in the corpus: {missing[:5]}",
                             {"query_id": qid, "doc_ids": doc_ids[:20]})
                continue
            row["doc_texts"] = [doc_texts[d] for d in doc_ids]
        yield row


def _need(value: str | None, what: str, fmt: str, path: str) -> str:
    if not value:
        raise InputError(path, f"the {fmt} layout needs {what}")
    return value


def _qrels_names(fmt: str, split: str | None) -> list[str]:
    """The qrels files a BEIR or MS MARCO folder is searched for, in order."""
    if fmt == "beir":
        s = split or "test"
        return [f"qrels/{s}.tsv", f"qrels/{s}.txt", f"qrels/{s}.trec", "qrels.tsv", "qrels.txt",
                f"qrels.{s}.tsv"]
    names = []
    if split:
        names += [f"qrels.{split}.tsv", f"qrels.{split}.txt", f"qrels.{split}.small.tsv",
                  f"qrels/{split}.tsv"]
    return names + ["qrels.tsv", "qrels.txt", "qrels.trec", "qrels"]


def find_layout_qrels(path: str, fmt: str, split: str | None, required: bool) -> str | None:
    """The qrels file of a BEIR or MS MARCO folder: the first of `_qrels_names` there (also
    gzipped), else, without `split`, the only file under `qrels/`.

    Raises:
      InputError: none found and `required`, naming the files looked for.
    """
    names = _qrels_names(fmt, split)
    found = _first_existing(path, names)
    if found is None and split is None and fs.isdir(fs.join(path, "qrels")):
        files = fs.list_files(fs.join(path, "qrels"))
        if len(files) == 1:
            found = files[0]
        elif files and required:
            raise InputError(path, f"qrels/ holds {len(files)} files "
                                   f"({', '.join(sorted(fs.basename(f) for f in files))}); "
                                   "pick one with --split NAME or --qrels FILE")
    if found is None and required:
        raise InputError(path, f"no qrels found in the {fmt} folder (looked for "
                               f"{', '.join(names)}); give the judgments with --qrels FILE")
    return found


def read_text_queries(path: str, fmt: str, options: TextOptions | None = None, *,
                      batch_size: int = 256, source: str | None = None,
                      split: str | None = None, column_map: Mapping[str, str] | None = None
                      ) -> Iterator[QueryBatch]:
    """Streams a text input (one of TEXT_FORMATS) as canonical query batches with features.

    Args:
      path: the input (see the module docstring per layout).
      fmt: `trec`, `beir`, `msmarco` or `rankllm`.
      options: candidates, qrels, teacher run, depth, JSON keys.
      batch_size: queries per batch.
      source: the `source` column (default: the input's name).
      split: the `split` column, and which BEIR/MS MARCO split's files to read.
      column_map: JSON keys (TEXT_COLUMN_MAP_NAMES) when `options.column_map` is None.

    The batches carry the read's counts (`QueryBatch.skipped_lines`, `QueryBatch.counts`:
    `unjudged`, `empty_queries`, `empty_passages`, `negative_judgments`, `run_extra_fields`,
    `non_utf8_lines`, `duplicate_ids`, `id_collisions`).

    Raises:
      InputError: a file is missing, binary or unreadable, the layout lacks what it needs (a
        folder without qrels names the files looked for), or no query is judged.
    """
    options = options or TextOptions()
    keys = dict(options.column_map if options.column_map is not None else column_map or {})
    if fmt not in TEXT_FORMATS:
        raise InputError(path, f"unknown text format {fmt!r} (expected one of {TEXT_FORMATS})")
    if not fs.exists(path):
        raise InputError(path, "file not found")
    counts = TextCounts()
    source = source or os.path.basename(os.path.normpath(path))
    teacher = (read_run(options.teacher_run, counts=counts, role="--teacher-run")
               if options.teacher_run else None)
    qrels_path = options.qrels
    qrels = read_qrels(options.qrels, counts) if options.qrels else None
    if fmt == "rankllm":
        judged = Judged(qrels, qrels_path, counts)
        return featurized_batches(_judged_rows(_rankllm_rows(
            path, qrels, teacher, source, split, options.depth, counts, judged, keys), qrels),
            batch_size, counts)
    if fmt == "trec":
        run = read_run(path, options.depth, counts, role="--input")
        _check_judged(path, run, qrels, qrels_path)
        return featurized_batches(_judged_rows(candidate_rows(
            run, path, None, None, qrels, teacher, source, split, counts=counts), qrels),
            batch_size, counts)
    if not fs.isdir(path):
        raise InputError(path, f"the {fmt} layout is a folder")
    run_path = _need(options.candidates, "--candidates RUN (each query's candidates)", fmt,
                     path)
    if fmt == "beir":
        corpus = _first_existing(path, ["corpus.jsonl"])
        queries = _first_existing(path, ["queries.jsonl"])
    else:
        corpus = _first_existing(path, ["collection.tsv", "corpus.tsv", "collection.jsonl",
                                        "corpus.jsonl"])
        queries = _first_existing(path, ([f"queries.{split}.tsv"] if split else [])
                                  + ["queries.tsv", "queries.jsonl"])
    if corpus is None or queries is None:
        raise InputError(path, f"a {fmt} folder needs "
                               + ("corpus.jsonl and queries.jsonl" if fmt == "beir" else
                                  "collection.tsv and queries[.<split>].tsv"))
    if qrels is None:
        qrels_path = find_layout_qrels(path, fmt, split, options.require_qrels is not False)
        qrels = read_qrels(qrels_path, counts) if qrels_path else None
    run = read_run(run_path, options.depth, counts)
    _check_judged(run_path, run, qrels, qrels_path)
    wanted = [q for q in run if qrels is None or q in qrels]
    needed_docs = {d for q in wanted for d, _ in run[q]}
    query_problems: list = []
    doc_problems: list = []
    query_texts = read_texts(queries, set(wanted), counts=counts, problems=query_problems,
                             column_map=keys, kind="query")
    doc_texts = read_texts(corpus, needed_docs, counts=counts, problems=doc_problems,
                           column_map=keys, kind="doc")
    return featurized_batches(_judged_rows(candidate_rows(
        run, run_path, query_texts, doc_texts, qrels, teacher, source, split, counts=counts,
        query_problems=query_problems, doc_problems=doc_problems), qrels), batch_size, counts)


def _check_judged(run_path: str, run: dict, qrels: dict | None, qrels_path: str | None
                  ) -> None:
    """Refuses a run none of whose queries the qrels judge (InputError)."""
    if qrels is not None and run and not any(q in qrels for q in run):
        refuse_unjudged(run_path, qrels_path, len(run), list(run)[:3], qrels)


def _rankllm_rows(path: str, qrels: dict | None, teacher: dict | None, source: str,
                  split: str | None, depth: int | None, counts: TextCounts, judged: Judged,
                  column_map: Mapping[str, str]) -> Iterator[dict]:
    for location, record in rankllm_records(path, counts):
        if isinstance(record, InputError):
            yield _error(None, Reason.UNPARSEABLE_RECORD, location,
                         f"not a rank_llm request ({record.problem})", None)
            continue
        try:
            qid, text, doc_ids, texts, scores = rankllm_request(record, column_map)
        except KeyError as exc:
            yield _error(None, Reason.UNPARSEABLE_RECORD, location,
                         f"not a rank_llm request (no key {exc})", None)
            continue
        except WrongType as exc:
            qid = _qid_of(record)
            yield _error(qid, Reason.WRONG_TYPE, location, str(exc), None)
            continue
        if not judged(qid):
            continue
        doc_ids, texts, scores = doc_ids[:depth], texts[:depth], scores[:depth]
        yield {"query_id": qid, "doc_ids": doc_ids, "query_text": text, "doc_texts": texts,
               "first_stage_ranks": list(range(1, len(doc_ids) + 1)),
               "first_stage_scores": (scores if all(s is not None for s in scores) else None),
               "labels": _labels(qid, doc_ids, qrels),
               "teacher_order": teacher_order_of(doc_ids, teacher.get(qid) if teacher
                                                 else None),
               "source": source, "split": split, "_location": location}
    judged.finish(path)


def _qid_of(record) -> str | None:
    """The query id of a request whose types are wrong, where it can be told."""
    try:
        qid = record["query"]["qid"]
    except (KeyError, TypeError, IndexError):
        return None
    return str(qid) if isinstance(qid, (str, int)) and not isinstance(qid, bool) else None


def is_text_column_map(column_map: Mapping[str, str] | None) -> bool:
    """Whether an `hf` input's column map names text columns (then `read_hf_text` reads it)."""
    return bool(column_map) and ("query_text" in column_map or "doc_texts" in column_map)


def read_hf_text(path: str, *, column_map: Mapping[str, str], options: TextOptions | None = None,
                 batch_size: int = 256, source: str | None = None, split: str | None = None
                 ) -> Iterator[QueryBatch]:
    """A Hugging Face dataset with text columns, one row per query, as query batches.

    Args:
      column_map: contract column -> dataset column; `query_id`, `doc_ids`, `query_text` and
        `doc_texts` are needed (by these names when unmapped); `labels`, `first_stage_scores`,
        `teacher_reasoning` are taken when present. Labels come from `--qrels` when given.

    Raises:
      InputError: a needed column is missing.
    """
    from data_contracts.readers.hf import load_hf_dataset

    options = options or TextOptions()
    dataset = load_hf_dataset(path, split)
    names = {c: column_map.get(c, c) for c in ("query_id", "doc_ids", "query_text", "doc_texts",
                                               "labels", "first_stage_scores",
                                               "teacher_reasoning")}
    for need in ("query_id", "doc_ids", "query_text", "doc_texts"):
        if names[need] not in dataset.column_names:
            raise InputError(path, f"required column missing (map it with --column-map "
                                   f"{need}=NAME)", column=names[need])
    counts = TextCounts()
    qrels = read_qrels(options.qrels, counts) if options.qrels else None
    teacher = (read_run(options.teacher_run, counts=counts, role="--teacher-run")
               if options.teacher_run else None)
    source = source or os.path.basename(os.path.normpath(path))
    judged = Judged(qrels, options.qrels, counts)

    def rows() -> Iterator[dict]:
        for i, record in enumerate(dataset):
            qid = str(record[names["query_id"]])
            if not judged(qid):
                continue
            doc_ids = [str(d) for d in record[names["doc_ids"]]]
            row = {c: record[n] for c, n in names.items() if n in record}
            row.update(query_id=qid, doc_ids=doc_ids, source=source, split=split,
                       _location=f"{path}#{i}",
                       first_stage_ranks=list(range(1, len(doc_ids) + 1)),
                       teacher_order=teacher_order_of(doc_ids, teacher.get(qid) if teacher
                                                      else None))
            if qrels is not None:
                row["labels"] = _labels(qid, doc_ids, qrels)
            yield row
        judged.finish(path)

    return featurized_batches(_judged_rows(rows(), qrels), batch_size, counts)


def apply_teacher_run(batches: Iterable[QueryBatch], teacher_run: str) -> Iterator[QueryBatch]:
    """Sets `teacher_order` from a TREC run on batches of any format (feature inputs too),
    joined by query and document id. A query the run names gets the run's order (its
    `teacher_scores` are cleared, so the order is its demonstration); one it does not name keeps
    what it had.

    Raises:
      InputError: the run is missing or malformed.
    """
    import dataclasses

    import pyarrow as pa

    counts = TextCounts()
    teacher = read_run(teacher_run, counts=counts, role="--teacher-run")
    for batch in batches:
        taken = counts.take()  # the teacher run's own counts ride on the first batch
        if taken:
            batch = dataclasses.replace(
                batch, skipped_lines=batch.skipped_lines + taken.pop("skipped_lines", 0),
                counts={k: batch.counts.get(k, 0) + taken.get(k, 0)
                        for k in set(batch.counts) | set(taken)})
        table = batch.queries
        if table.num_rows:
            ids = table.column("query_id").to_pylist()
            named = [qid in teacher for qid in ids]
            orders = [teacher_order_of(docs, teacher[qid]) if hit else old
                      for qid, hit, docs, old in zip(ids, named,
                                                     table.column("doc_ids").to_pylist(),
                                                     table.column("teacher_order").to_pylist())]
            scores = [None if hit else old for hit, old in
                      zip(named, table.column("teacher_scores").to_pylist())]
            for name, values in (("teacher_order", orders), ("teacher_scores", scores)):
                index = table.schema.get_field_index(name)
                field = table.schema.field(index)
                table = table.set_column(index, field, pa.array(values, field.type))
        yield dataclasses.replace(batch, queries=table)
