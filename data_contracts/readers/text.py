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
- `beir`: `--input` is a BEIR folder (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`,
  split default `test`); `--candidates RUN` names each query's candidates.
- `msmarco`: `--input` is a folder with `collection.tsv` (`pid\\tpassage`) and `queries.tsv` or
  `queries.<split>.tsv` (`qid\\tquery`), qrels from `--qrels` or `qrels[.<split>].tsv` there, and
  `--candidates RUN`.
- `rankllm`: `--input` is rank_llm request JSONL, one `{query: {text, qid}, candidates: [{docid,
  score, doc: {...}}]}` per line; the passage is the doc's `contents`, `text` or `segment`, with
  its `title` first when it has one.
- `hf` with text columns: a Hugging Face dataset whose `--column-map` maps `query_text` and
  `doc_texts` (and `query_id`, `doc_ids`, optionally `labels`, `first_stage_scores`).

Large corpora are streamed once and joined: the candidate run is read first (it is small), and
only the passages and queries it names are kept, so memory holds the candidates' texts, never the
corpus. A candidate whose passage is not in the corpus makes its query a quarantine row
(`unknown_document`), a candidate query without text one with `unknown_query`: never dropped
silently. Files may be gzip/bz2/xz/zstd compressed (data_contracts/fs.open_text).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.readers.base import QueryBatch, rows_to_batch
from data_contracts.reasons import Reason
from data_contracts.schema import judged_labels_of
from data_contracts.text_features import featurize_rows

TEXT_FORMATS = ("trec", "beir", "msmarco", "rankllm")
_JSON_ID = re.compile(r'"_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class TextOptions:
    """Side files of a text input.

    Attributes:
      candidates: a TREC run naming each query's candidates, in order.
      qrels: TREC qrels (where the layout does not hold them).
      teacher_run: a TREC run giving the teacher's demonstration order.
      depth: keep each query's first `depth` candidates of a run or rank_llm request (None:
        all), as listwise rerankers rerank a first stage's top 20 or 100.
    """

    candidates: str | None = None
    qrels: str | None = None
    teacher_run: str | None = None
    depth: int | None = None


def _lines(path: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, whitespace-split fields) of a TREC-style file, skipping blanks and `#`."""
    with fs.open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if text and not text.startswith("#"):
                yield number, text.split()


def _number(path: str, number: int, value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise InputError(f"{path}:{number}", f"{what} {value!r} is not a number") from None


def read_qrels(path: str) -> dict[str, dict[str, float]]:
    """TREC qrels: `qid iter docid rel` (4 columns) or `qid docid rel` (3, BEIR's TSV, whose
    `query-id corpus-id score` header is skipped).

    Returns:
      query id -> {document id: graded relevance}; a later line for the same pair wins.

    Raises:
      InputError: the file is missing, or a line has another column count or a non-numeric
        relevance (with its line number).
    """
    if not fs.exists(path):
        raise InputError(path, "qrels file not found")
    qrels: dict[str, dict[str, float]] = {}
    for number, cols in _lines(path):
        if len(cols) == 4:
            qid, _, doc, rel = cols
        elif len(cols) == 3:
            qid, doc, rel = cols
            if number == 1 and not re.match(r"^-?[0-9.]+$", rel):
                continue  # a header
        else:
            raise InputError(f"{path}:{number}", f"qrels line has {len(cols)} columns "
                                                 "(expected qid iter docid rel or qid docid rel)")
        qrels.setdefault(qid, {})[doc] = _number(path, number, rel, "relevance")
    return qrels


def read_run(path: str, depth: int | None = None) -> dict[str, list[tuple[str, float | None]]]:
    """A TREC run as each query's ranked (document id, score) list.

    Accepted lines: `qid Q0 docid rank score tag` (6 columns; also 5 without the tag),
    `qid Q0 docid rank` (4), `qid docid rank` (3, MS MARCO's run TSV) and `qid docid` (2, in
    file order). A query's list is ordered by the rank column where there is one (ties and 2-column
    runs in file order) and cut to its first `depth` entries; a score is None where the line gives
    none. Query order: first appearance.

    Raises:
      InputError: the file is missing or a line has an unknown shape (with its line number).
    """
    if not fs.exists(path):
        raise InputError(path, "run file not found")
    entries: dict[str, list] = {}
    for number, cols in _lines(path):
        score = None
        if len(cols) in (5, 6):
            qid, doc, rank = cols[0], cols[2], _number(path, number, cols[3], "rank")
            score = _number(path, number, cols[4], "score")
        elif len(cols) == 4:
            qid, doc, rank = cols[0], cols[2], _number(path, number, cols[3], "rank")
        elif len(cols) == 3:
            qid, doc, rank = cols[0], cols[1], _number(path, number, cols[2], "rank")
        elif len(cols) == 2:
            qid, doc, rank = cols[0], cols[1], float(number)
        else:
            raise InputError(f"{path}:{number}", f"run line has {len(cols)} columns (expected "
                                                 "qid Q0 docid rank score tag, qid docid rank or "
                                                 "qid docid)")
        entries.setdefault(qid, []).append((rank, number, doc, score))
    return {qid: [(doc, score) for _, _, doc, score in sorted(rows)][:depth]
            for qid, rows in entries.items()}


def _json_text(record: dict) -> str:
    body = next((record[k] for k in ("contents", "text", "segment", "passage", "body")
                 if isinstance(record.get(k), str)), "")
    title = record.get("title")
    return f"{title}\n{body}" if isinstance(title, str) and title.strip() else body


def read_texts(path: str, needed: set | None = None) -> dict[str, str]:
    """Id -> text from a JSONL (`_id`/`id`/`docid` with `title`/`text`/`contents`) or a TSV
    (`id\\ttext`, further columns joined as a title first: MS MARCO's `pid\\ttitle\\tpassage`).

    The file is streamed once; with `needed`, only those ids are kept (a JSONL line whose `_id`
    is not needed is not even parsed).

    Raises:
      InputError: the file is missing or a JSONL line does not parse.
    """
    if not fs.exists(path):
        raise InputError(path, "file not found")
    out: dict[str, str] = {}
    is_json = re.sub(r"\.(gz|bz2|xz|zst)$", "", path.lower()).endswith((".jsonl", ".json"))
    with fs.open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if is_json:
                fast = _JSON_ID.search(line)
                if fast and needed is not None and json.loads(f'"{fast.group(1)}"') not in needed:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{number}", f"not JSON ({exc.msg})") from None
                key = str(next((record[k] for k in ("_id", "id", "docid", "qid") if k in record),
                               ""))
                if needed is None or key in needed:
                    out[key] = _json_text(record)
            else:
                key, _, rest = line.rstrip("\n").partition("\t")
                if needed is None or key in needed:
                    parts = rest.split("\t")
                    out[key] = "\n".join(p for p in parts if p) if len(parts) > 1 else rest
    return out


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


def featurized_batches(rows: Iterable[dict], batch_size: int) -> Iterator[QueryBatch]:
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= batch_size:
            featurize_rows(chunk)
            yield rows_to_batch(chunk, [], step="read")
            chunk = []
    if chunk:
        featurize_rows(chunk)
        yield rows_to_batch(chunk, [], step="read")


def _error(qid: str, reason: str, location: str, detail: str, raw) -> dict:
    return {"query_id": qid, "_error": (reason, location, detail, raw)}


def _first_existing(folder: str, names: Iterable[str]) -> str | None:
    for name in names:
        for suffix in ("", ".gz"):
            path = fs.join(folder, name + suffix)
            if fs.exists(path):
                return path
    return None


def candidate_rows(run: dict, run_path: str, query_texts: dict | None,
                    doc_texts: dict | None, qrels: dict | None, teacher: dict | None,
                    source: str, split: str | None) -> Iterator[dict]:
    for qid, ranked in run.items():
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
                yield _error(qid, Reason.UNKNOWN_QUERY, location,
                             "the candidate run names a query the queries file does not hold",
                             {"query_id": qid})
                continue
            row["query_text"] = query_texts[qid]
        if doc_texts is not None:
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


def read_text_queries(path: str, fmt: str, options: TextOptions | None = None, *,
                      batch_size: int = 256, source: str | None = None,
                      split: str | None = None) -> Iterator[QueryBatch]:
    """Streams a text input (one of TEXT_FORMATS) as canonical query batches with features.

    Args:
      path: the input (see the module docstring per layout).
      fmt: `trec`, `beir`, `msmarco` or `rankllm`.
      options: candidates, qrels and teacher run.
      batch_size: queries per batch.
      source: the `source` column (default: the input's name).
      split: the `split` column, and which BEIR/MS MARCO split's files to read.

    Raises:
      InputError: a file is missing or unreadable, or the layout lacks what it needs.
    """
    options = options or TextOptions()
    if fmt not in TEXT_FORMATS:
        raise InputError(path, f"unknown text format {fmt!r} (expected one of {TEXT_FORMATS})")
    if not fs.exists(path):
        raise InputError(path, "file not found")
    source = source or os.path.basename(os.path.normpath(path))
    teacher = read_run(options.teacher_run) if options.teacher_run else None
    qrels = read_qrels(options.qrels) if options.qrels else None
    if fmt == "rankllm":
        return featurized_batches(_judged_rows(_rankllm_rows(path, qrels, teacher, source, split,
                                                             options.depth), qrels), batch_size)
    if fmt == "trec":
        run_path = path
        run = read_run(run_path, options.depth)
        return featurized_batches(_judged_rows(candidate_rows(run, run_path, None, None, qrels,
                                                              teacher, source, split), qrels),
                                  batch_size)
    if not fs.isdir(path):
        raise InputError(path, f"the {fmt} layout is a folder")
    run_path = _need(options.candidates, "--candidates RUN (each query's candidates)", fmt,
                     path)
    run = read_run(run_path, options.depth)
    needed_docs = {d for ranked in run.values() for d, _ in ranked}
    if fmt == "beir":
        corpus = _first_existing(path, ["corpus.jsonl"])
        queries = _first_existing(path, ["queries.jsonl"])
        if qrels is None:
            qrels_path = _first_existing(path, [f"qrels/{split or 'test'}.tsv"])
            qrels = read_qrels(qrels_path) if qrels_path else None
    else:
        corpus = _first_existing(path, ["collection.tsv", "corpus.tsv"])
        queries = _first_existing(path, ([f"queries.{split}.tsv"] if split else [])
                                   + ["queries.tsv"])
        if qrels is None:
            qrels_path = _first_existing(path, ([f"qrels.{split}.tsv"] if split else [])
                                         + ["qrels.tsv"])
            qrels = read_qrels(qrels_path) if qrels_path else None
    if corpus is None or queries is None:
        raise InputError(path, f"a {fmt} folder needs "
                               + ("corpus.jsonl and queries.jsonl" if fmt == "beir" else
                                  "collection.tsv and queries[.<split>].tsv"))
    query_texts = read_texts(queries, set(run))
    doc_texts = read_texts(corpus, needed_docs)
    return featurized_batches(_judged_rows(candidate_rows(run, run_path, query_texts, doc_texts,
                                                          qrels, teacher, source, split), qrels),
                              batch_size)


def _rankllm_rows(path: str, qrels: dict | None, teacher: dict | None, source: str,
                  split: str | None, depth: int | None = None) -> Iterator[dict]:
    with fs.open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            location = f"{path}:{number}"
            try:
                record = json.loads(line)
                query, candidates = record["query"], record["candidates"][:depth]
                qid = str(query["qid"])
                doc_ids = [str(c["docid"]) for c in candidates]
                texts = [_json_text(c.get("doc") or {}) for c in candidates]
                scores = [c.get("score") for c in candidates]
                text = query["text"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                yield _error(None, Reason.UNPARSEABLE_RECORD, location,
                             f"not a rank_llm request ({type(exc).__name__}: {exc})",
                             line[:2000])
                continue
            yield {"query_id": qid, "doc_ids": doc_ids, "query_text": text, "doc_texts": texts,
                   "first_stage_ranks": list(range(1, len(doc_ids) + 1)),
                   "first_stage_scores": (scores if all(isinstance(s, (int, float))
                                                        for s in scores) else None),
                   "labels": _labels(qid, doc_ids, qrels),
                   "teacher_order": teacher_order_of(doc_ids, teacher.get(qid) if teacher
                                                     else None),
                   "source": source, "split": split, "_location": location}


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
    qrels = read_qrels(options.qrels) if options.qrels else None
    teacher = read_run(options.teacher_run) if options.teacher_run else None
    source = source or os.path.basename(os.path.normpath(path))

    def rows() -> Iterator[dict]:
        for i, record in enumerate(dataset):
            qid = str(record[names["query_id"]])
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

    return featurized_batches(_judged_rows(rows(), qrels), batch_size)


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

    teacher = read_run(teacher_run)
    for batch in batches:
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
