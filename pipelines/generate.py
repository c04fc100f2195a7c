"""Live generation: the `--to requests` requests sent to an OpenAI-compatible server from the
pass-1 workers (`build_curriculum --generate-with URL --model NAME`), their answers read as
OpenAI batch output lines by the same reader as a results file.

Per batch of valid queries the worker renders the same requests the export writes
(`exports.requests.request_lines`: same template, candidate order and custom_ids, one request
per sample with its own seed, so a server that ignores `n` still gives k samples), posts each body
to `URL/v1/chat/completions` from a thread pool of `concurrency` threads, and turns every answer
into one batch output line. Each request is tried `retries + 1` times: a 5xx answer, a timeout
(`timeout` seconds per request) or a connection error waits `backoff * 2**try` seconds and
tries again; a 4xx answer, or the last failure, is a failed request (a line with `error`,
counted by the reader as `requests_failed`). A 200 answer is cached as
`CACHE/<sha256[:2]>/<sha256>.json`, the sha256 of the request's canonical JSON (url path and
body, which holds the model, messages, temperature, max tokens and seed), so a rerun or a
resumed run never asks the server twice for the same request. The cache folder is
`--generation-cache DIR`, default `~/.cache/rerank-curriculum/generations` (the user's cache
folder, `XDG_CACHE_HOME` honoured): a run folder is replaced whole by each build, so a cache
inside it would not survive the rerun it is for.

The run tag in the custom_ids is `live-<crc32 of server-independent settings>`: a run made by
live generation has no requests.json beforehand; its requests are recorded in memory
(`index_requests`) and read back with `read_batch_results`, so counts, truncation and
failures are the batch file's.

Only the standard library is used (urllib, concurrent.futures).
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import pyarrow as pa

from curricula.hashing import stable_hash
from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.readers.batch_results import (REQUESTS_KIND, REQUESTS_VERSION,
                                                  BatchResults, index_requests,
                                                  read_batch_results)

CHAT_PATH = "/v1/chat/completions"
MAX_CONCURRENCY = 256
RETRY_STATUS = range(500, 600)


def default_cache() -> str:
    """The user's cache folder for generations (`$XDG_CACHE_HOME` or `~/.cache`)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rerank-curriculum", "generations")


@dataclass(frozen=True)
class GenerationOptions:
    """How live generation asks the server (see the command line's --help).

    Attributes:
      url: the server's base URL (`http://127.0.0.1:8000`; a trailing `/v1` is fine).
      model: the model name the server serves (the body's `model`).
      k: samples per query (one request each, distinct seeds).
      concurrency: requests in flight per worker.
      max_tokens, temperature, seed: the sampling settings (as `--to requests`).
      timeout: seconds per request before it is abandoned (and retried).
      retries: further tries after a 5xx, a timeout or a connection error.
      backoff: seconds before the first retry; doubled each time.
      cache: the response cache folder (None: `default_cache()`).
    """

    url: str
    model: str
    k: int = 8
    concurrency: int = 8
    max_tokens: int = 2048
    temperature: float = 1.0
    seed: int = 0
    timeout: float = 120.0
    retries: int = 3
    backoff: float = 1.0
    cache: str | None = None

    def request(self):
        """The same sampling settings as one round of `--to requests` (exports.requests)."""
        from exports.requests import RequestOptions

        return RequestOptions(model=self.model, k=self.k, temperature=self.temperature,
                              max_tokens=self.max_tokens, seed=self.seed)

    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        if base.endswith("/v1"):
            base = base[:-3]
        return base + CHAT_PATH

    def cache_dir(self) -> str:
        return self.cache or default_cache()

    def run_tag(self, config_hash: str) -> str:
        """The tag of live custom_ids: crc32 of the model, settings and the run's config."""
        settings = f"{self.model}:{self.temperature}:{self.max_tokens}:{self.seed}"
        return f"live{stable_hash(config_hash, settings):08x}"


def check_llm_policy(config) -> None:
    """Refuses combinations of --policy none, --rollouts and --generate-with that cannot run,
    and live generation settings out of range (InputError, one line)."""
    paths = config.rollout_paths()
    if config.pending_only and (paths or config.generate_with):
        raise InputError("--policy none", "reads and validates only; it takes no --rollouts or "
                                          "--generate-with")
    if config.generate_with and paths:
        raise InputError("--generate-with", "rollouts come from the server or from --rollouts "
                                            "files, not both")
    if config.requests and not paths:
        raise InputError("--requests", "names the requests.json that --rollouts results answer")
    if isinstance(config.requests, list) and len(config.requests) not in (1, len(paths)):
        raise InputError("--requests", f"give one, or one per --rollouts file ({len(paths)}), "
                                       f"got {len(config.requests)}")
    if not config.generate_with:
        return
    options = generation_options(config)
    if not options.url.startswith(("http://", "https://")):
        raise InputError("--generate-with", f"{options.url!r} is not an http(s) URL")
    if not options.model.strip():
        raise InputError("--model", "name the model the server serves (--generate-with)")
    if not 1 <= options.concurrency <= MAX_CONCURRENCY:
        raise InputError("--concurrency", f"{options.concurrency} is outside "
                                          f"[1, {MAX_CONCURRENCY}]")
    if not options.timeout > 0 or options.retries < 0:
        raise InputError("--request-timeout", "a timeout > 0 and retries >= 0")
    options.request().check()


def generation_options(config) -> GenerationOptions:
    """The config's live generation settings (`config.generation`, with k from `config.k`)."""
    extra = dict(config.generation or {})
    extra.setdefault("k", config.k)
    extra.setdefault("seed", config.seed)
    return GenerationOptions(url=config.generate_with, **extra)


def request_key(line: dict) -> str:
    """The cache key of one request: sha256 of its url path and body as canonical JSON."""
    text = json.dumps({"url": line["url"], "body": line["body"]}, sort_keys=True,
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    """200 answers on disk, one JSON file per request key (written atomically)."""

    def __init__(self, folder: str):
        self.folder = folder

    def _path(self, key: str) -> str:
        return os.path.join(self.folder, key[:2], key + ".json")

    def get(self, key: str) -> dict | None:
        try:
            with open(self._path(key), "rb") as handle:
                return json.loads(handle.read().decode("utf-8"))
        except (OSError, ValueError):
            return None  # absent, or a torn file from a killed run: asked again

    def put(self, key: str, body: dict) -> None:
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(json.dumps(body, sort_keys=True).encode("utf-8"))
        os.replace(tmp, path)


@dataclass
class SendStats:
    """What the sending cost: server calls made (tries), cache hits, retries."""

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0


def _post(endpoint: str, body: dict, timeout: float) -> tuple[int, dict | None, str | None]:
    """(status, parsed body or None, error text) of one POST; status 0 for no answer."""
    data = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(endpoint, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        return exc.code, None, f"HTTP {exc.code}: {exc.read()[:200]!r}"
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        return 0, None, f"{type(exc).__name__}: {exc}"
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return status, None, f"answer is not JSON ({exc})"
    if not isinstance(parsed, dict) or not isinstance(parsed.get("choices"), list):
        return status, None, "answer has no choices"
    return status, parsed, None


def send_one(line: dict, options: GenerationOptions, cache: ResponseCache,
             stats: SendStats, sleep=time.sleep) -> dict:
    """One request line -> one OpenAI batch output line (from the cache, or the server with
    retries); never raises for a server's failure (it becomes an `error` line)."""
    key = request_key(line)
    cached = cache.get(key)
    if cached is not None:
        stats.cache_hits += 1
        return {"custom_id": line["custom_id"],
                "response": {"status_code": 200, "body": cached}, "error": None}
    body = dict(line["body"], n=1)
    status, error = 0, None
    for attempt in range(options.retries + 1):
        if attempt:
            stats.retries += 1
            sleep(options.backoff * 2 ** (attempt - 1))
        stats.calls += 1
        status, answer, error = _post(options.endpoint(), body, options.timeout)
        if answer is not None and status == 200:
            cache.put(key, answer)
            return {"custom_id": line["custom_id"],
                    "response": {"status_code": 200, "body": answer}, "error": None}
        if status and status not in RETRY_STATUS and status != 200:
            break  # a 4xx: the request itself is refused, trying again will not help
    return {"custom_id": line["custom_id"],
            "response": {"status_code": status or None, "body": None},
            "error": {"message": error or f"status {status}", "tries": attempt + 1}}


def send_requests(lines: list[dict], options: GenerationOptions,
                  stats: SendStats | None = None) -> list[dict]:
    """Every request line sent (bounded concurrency); batch output lines, in request order."""
    cache = ResponseCache(options.cache_dir())
    stats = stats if stats is not None else SendStats()
    if not lines:
        return []
    with ThreadPoolExecutor(max_workers=min(options.concurrency, len(lines))) as pool:
        return list(pool.map(lambda line: send_one(line, options, cache, stats), lines))


def generate_rollouts(ok: pa.Table, config, template) -> tuple[BatchResults, SendStats]:
    """Live generation for one batch of valid queries: requests made as `--to requests` makes
    them, sent, and read as a results file.

    Args:
      ok: validated queries with texts (QUERY_SCHEMA).
      config: the run's CurriculumConfig (generate_with, generation, k, seed).
      template: the prompt template (exports.prompts).

    Returns:
      (the reader's BatchResults for this batch, what sending cost).

    Raises:
      InputError: the queries hold no texts.
    """
    from data_contracts.manifest import config_hash
    from exports.requests import request_lines

    options = generation_options(config)
    rows = ok.select(["query_id", "query_text", "doc_ids", "doc_texts"]).to_pylist()
    if any(r["query_text"] is None or r["doc_texts"] is None for r in rows):
        raise InputError(config.generate_with, "live generation needs a text input (query "
                                               "and passage texts)")
    tag = options.run_tag(config_hash(config.to_dict()))
    request = options.request()
    plan = {r["query_id"]: list(range(options.k)) for r in rows}
    raw, entries = request_lines(rows, template, request, tag, plan)
    record = {"kind": REQUESTS_KIND, "version": REQUESTS_VERSION, "run": {"tag": tag},
              "round": 0, "requests": len(raw), "queries": entries,
              "generation": {k: v for k, v in asdict(options).items() if k != "cache"}}
    index = index_requests(record, f"{options.endpoint()}#live")
    stats = SendStats()
    answers = send_requests([json.loads(line) for line in raw], options, stats)
    fd, tmp = tempfile.mkstemp(suffix=".jsonl", prefix="live-results-")
    try:
        with os.fdopen(fd, "wb") as handle:
            for answer in answers:
                handle.write((json.dumps(answer, sort_keys=True) + "\n").encode("utf-8"))
        results = read_batch_results(tmp, index)
    finally:
        fs.delete([tmp])
    return results, stats
