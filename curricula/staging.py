"""Deterministic Parquet shards and the commit protocol that makes a run visible in one step.

Same rows in, same bytes out: rows are sorted within a shard by a total key, every shard is
written as fixed-size row groups with fixed writer settings (`write_rows`), and file names come
from (phase, stage, shard) alone. A worker never holds a whole shard: it spills sorted pieces
(`write_piece`), and one finalize step per shard k-way merges them (`merge_pieces`), streaming.

Commit (see `begin`, `commit`, `abort`):
- Local `OUT`: the run is built in a hidden staging folder beside `OUT` (same file system) and
  swapped in with one `renameat2(RENAME_EXCHANGE)` (Linux >= 3.15), so `OUT` holds the complete
  earlier run or the complete new one at every instant, SIGKILL included; the earlier run, now at
  the staging path, is deleted after. Where the exchange is unsupported the old two-rename swap is
  used and `clean_stale` (what every build does first) puts a run renamed aside back.
- Object store `OUT` (gs://, s3://): there is no atomic folder rename. Shards go under a
  run-unique prefix `OUT/run-<id>/`, and `OUT/manifest.json` (paths relative to `OUT`) is written
  last: one object upload, visible at once, is the commit. Earlier `run-*/` prefixes are deleted
  only after the new manifest is in place.
- A rebuild never deletes what is not its own: when `OUT` holds files its manifest does not list
  (e.g. a trainer's `OUT/training/`), the build is refused with one line naming them.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import heapq
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from typing import Iterable, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data_contracts import fs
from data_contracts.errors import InputError
from data_contracts.manifest import MANIFEST_NAME, write_manifest

SORT_KEYS = {
    "difficulty": [("query_id", "ascending")],
    "imitation": [("query_id", "ascending")],
    "rl": [("order_key", "ascending"), ("query_id", "ascending"), ("replay", "ascending")],
    "dropped": [("query_id", "ascending")],
    "pending": [("query_id", "ascending")],
    "quarantine": [("step", "ascending"), ("location", "ascending"), ("reason", "ascending"),
                   ("query_id", "ascending"), ("raw", "ascending"), ("record_kind", "ascending"),
                   ("detail", "ascending")],
}
ROW_GROUP_ROWS = 512  # rows (queries) per row group: the writer buffers at most one group
WRITER_SETTINGS = dict(compression="zstd", compression_level=3, write_statistics=True,
                       use_dictionary=True, data_page_size=1 << 20)
MERGE_READ_ROWS = 64  # rows read at a time from each piece during a merge
MERGE_FAN_IN = 16  # pieces open at once in a merge (more are merged in levels)
RUN_PREFIX = "run-"  # object stores: every run's shards live under OUT/run-<id>/
TMP_FOLDER = "_tmp"  # spilled pieces, inside the run's location; removed before commit


def shard_path(phase: str, stage: int | None, shard: int) -> str:
    """Relative path of a shard: `rl/stage-01/part-00003.parquet`, `imitation/part-00000.parquet`."""
    folder = phase if stage is None else f"{phase}/stage-{stage:02d}"
    return f"{folder}/part-{shard:05d}.parquet"


# --- deterministic writing ------------------------------------------------------------------

class _HashingSink:
    """A write-only binary stream that hashes what passes through (sha256 without a re-read)."""

    def __init__(self, raw):
        self.raw, self.digest, self.offset, self.closed = raw, hashlib.sha256(), 0, False

    def write(self, data) -> int:
        data = bytes(data)
        self.raw.write(data)
        self.digest.update(data)
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        self.raw.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.raw.close()


def write_rows(path: str, tables: Iterable[pa.Table], schema: pa.Schema) -> tuple[int, str]:
    """Writes already-sorted rows as one Parquet file in fixed-size row groups.

    The bytes depend only on the row sequence: every row group holds exactly `ROW_GROUP_ROWS`
    rows (the last fewer) in one contiguous chunk, whatever the sizes of the tables fed in.

    Args:
      path: destination (local or object store), through `data_contracts.fs`.
      tables: tables in `schema`'s columns, in output order.
      schema: the file's schema.

    Returns:
      (rows written, hex sha256 of the file's bytes).
    """
    sink = _HashingSink(fs.open_write(path))
    rows = 0
    try:
        writer = pq.ParquetWriter(sink, schema, **WRITER_SETTINGS)
        buffered: list[pa.Table] = []
        held = 0

        def flush(table: pa.Table) -> None:
            writer.write_table(table.combine_chunks(), row_group_size=ROW_GROUP_ROWS)

        for table in tables:
            if table.num_rows == 0:
                continue
            buffered.append(table.cast(schema) if not table.schema.equals(schema) else table)
            held += table.num_rows
            while held >= ROW_GROUP_ROWS:
                whole = pa.concat_tables(buffered)
                flush(whole.slice(0, ROW_GROUP_ROWS))
                rest = whole.slice(ROW_GROUP_ROWS)
                buffered, held = ([rest] if rest.num_rows else []), rest.num_rows
                rows += ROW_GROUP_ROWS
        if held:
            flush(pa.concat_tables(buffered))
            rows += held
        writer.close()
    finally:
        sink.close()
    return rows, sink.digest.hexdigest()


def sort_table(table: pa.Table, phase: str) -> pa.Table:
    """`table` in its phase's shard order (nulls last)."""
    if table.num_rows <= 1:
        return table
    return table.take(pc.sort_indices(table, sort_keys=SORT_KEYS[phase]))


def _entry(relative: str, rows: int, digest: str, phase: str, stage: int | None,
           shard: int) -> dict:
    return {"path": relative, "rows": rows, "sha256": digest, "phase": phase, "stage": stage,
            "shard": shard}


def write_shard(tables: list[pa.Table], phase: str, stage: int | None, shard: int, root: str,
                schema: pa.Schema) -> dict:
    """Concatenates, sorts and writes one shard held in memory; returns its manifest entry."""
    table = pa.concat_tables([t.cast(schema) for t in tables]) if tables else schema.empty_table()
    relative = shard_path(phase, stage, shard)
    rows, digest = write_rows(fs.join(root, relative), [sort_table(table, phase)], schema)
    return _entry(relative, rows, digest, phase, stage, shard)


def spill_table(table: pa.Table, root: str, name: str, batch_rows: int | None = None) -> str:
    """Writes `table` as one Arrow IPC stream at `root/_tmp/NAME`; returns its path.

    What is under `root/_tmp/` is never published: `commit` deletes the folder before the
    manifest is written, and `abort` removes the whole run location.

    Args:
      table: any table.
      root: the run's location (`Publication.root`: local staging folder or `OUT/run-<id>`).
      name: a path relative to `root/_tmp/` (`/`-separated).
      batch_rows: at most this many rows per record batch (None: the table's own chunks).

    Returns:
      The file's path, through `data_contracts.fs` (local or object store).
    """
    path = fs.join(root, TMP_FOLDER, name)
    with fs.open_write(path) as handle:
        with pa.ipc.new_stream(handle, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=batch_rows):
                writer.write_batch(batch)
    return path


def read_spilled(path: str) -> pa.Table:
    """The table `spill_table` wrote at `path` (read whole)."""
    with fs.open_read(path) as handle:
        return pa.ipc.open_stream(handle).read_all()


def write_piece(table: pa.Table, phase: str, stage: int | None, shard: int, root: str) -> str:
    """Spills one sorted piece of a shard under `root/_tmp/`; returns its path.

    Pieces are Arrow IPC streams in batches of `MERGE_READ_ROWS` rows: no encoding to pay for,
    and a merge reads them one batch at a time.
    """
    name = f"{phase}-{-1 if stage is None else stage}-{shard}/piece-{uuid.uuid4().hex}.arrow"
    return spill_table(sort_table(table, phase), root, name, MERGE_READ_ROWS)


def _sort_key_rows(batch: pa.RecordBatch, phase: str) -> list[tuple]:
    """Python keys ordering rows exactly as `sort_table` does (nulls last, per column)."""
    columns = [batch.column(name).to_pylist() for name, _ in SORT_KEYS[phase]]
    return [tuple(x for v in values for x in ((v is None), v if v is not None else 0))
            for values in zip(*columns)]


def _piece_rows(path: str, phase: str) -> Iterator[tuple[tuple, int, pa.RecordBatch]]:
    with fs.open_read(path) as handle:
        for batch in pa.ipc.open_stream(handle):
            for i, key in enumerate(_sort_key_rows(batch, phase)):
                yield key, i, batch


def _merged(pieces: list[str], phase: str) -> Iterator[pa.Table]:
    """The rows of sorted pieces in merged order, as tables of `MERGE_READ_ROWS` rows."""
    streams = [_piece_rows(p, phase) for p in sorted(pieces)]
    run: list[pa.Table] = []
    for _, i, batch in heapq.merge(*streams, key=lambda item: item[0]):
        run.append(pa.Table.from_batches([batch.slice(i, 1)]))
        if len(run) >= MERGE_READ_ROWS:
            yield pa.concat_tables(run)
            run = []
    if run:
        yield pa.concat_tables(run)


def merge_pieces(pieces: list[str], phase: str, stage: int | None, shard: int, root: str,
                 schema: pa.Schema) -> dict:
    """K-way merges a shard's sorted pieces into its final file (streaming); returns its entry.

    Memory: one read batch per open piece (at most `MERGE_FAN_IN` are open: more pieces are
    first merged in groups into larger pieces) plus one output row group. Rows with equal sort
    keys are equal in every column the keys do not cover only by construction (keys are total
    per phase), so the piece order never shows in the bytes.
    """
    pieces = sorted(pieces)
    while len(pieces) > MERGE_FAN_IN:
        merged = []
        for start in range(0, len(pieces), MERGE_FAN_IN):
            group = pieces[start:start + MERGE_FAN_IN]
            merged.append(_write_merged(group, phase, stage, shard, root))
            fs.delete(group)
        pieces = sorted(merged)
    relative = shard_path(phase, stage, shard)
    rows, digest = write_rows(fs.join(root, relative), _merged(pieces, phase), schema)
    fs.delete(pieces)
    return _entry(relative, rows, digest, phase, stage, shard)


def _write_merged(group: list[str], phase: str, stage: int | None, shard: int,
                  root: str) -> str:
    """One larger sorted piece from a group of pieces (a merge level)."""
    name = f"{phase}-{-1 if stage is None else stage}-{shard}/piece-{uuid.uuid4().hex}.arrow"
    path = fs.join(root, TMP_FOLDER, name)
    writer = None
    with fs.open_write(path) as handle:
        for table in _merged(group, phase):
            if writer is None:
                writer = pa.ipc.new_stream(handle, table.schema)
            for batch in table.to_batches(max_chunksize=MERGE_READ_ROWS):
                writer.write_batch(batch)
        if writer is not None:
            writer.close()
    return path


# --- where a run may be written --------------------------------------------------------------

def _listed_files(out: str) -> tuple[set[str] | None, str | None]:
    """(paths the run's manifest lists, or None when unreadable; why not)."""
    try:
        manifest = json.loads(fs.read_bytes(fs.join(out, MANIFEST_NAME)).decode("utf-8"))
        return {str(f["path"]) for f in manifest.get("files", [])}, None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return None, f"its {MANIFEST_NAME} is not a readable manifest ({exc})"


def _relative(out: str, path: str) -> str:
    base = fs.abspath(out).rstrip("/") + "/"
    path = fs.abspath(path)
    return path[len(base):] if path.startswith(base) else path


def unlisted_files(out: str) -> list[str]:
    """Files under an existing run `out` that its manifest does not list (relative paths).

    On an object store, unlisted files under `run-*/` prefixes are leftovers of earlier or killed
    runs of this command and do not count.
    """
    listed, problem = _listed_files(out)
    if listed is None:
        raise InputError(out, f"{problem}; a rebuild would replace the folder whole, so it is "
                              "refused (remove the folder or name another --out)")
    extra = []
    for path in fs.list_files(out):
        rel = _relative(out, path)
        if rel == MANIFEST_NAME or rel in listed:
            continue
        if fs.is_remote(out) and rel.startswith(RUN_PREFIX):
            continue
        extra.append(rel)
    return extra


def check_output_path(out: str) -> None:
    """Fails with one line when the output path cannot be (re)written as a run folder.

    An existing folder must be an earlier run (it holds a manifest.json) or empty, and may hold
    nothing its manifest does not list: a rebuild never deletes files that are not its own. An
    empty path, a root, or the current folder or one above it is refused outright
    (`fs.check_replaceable_location`).
    """
    fs.check_replaceable_location(out)
    if fs.is_remote(out):
        if fs.isdir(out):
            _check_existing(out)
        return
    if os.path.islink(out.rstrip(os.sep) or out):
        raise InputError(out, f"output path is a symbolic link (to {os.readlink(out.rstrip(os.sep))})"
                              "; a run replaces its folder, which would replace the link: name "
                              "the folder itself")
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(out, "output path is a file (expected a folder, or a path to create)")
    if os.path.isdir(out) and os.listdir(out):
        _check_existing(out)
    parent = os.path.dirname(os.path.abspath(out))
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise InputError(parent, "parent of the output path is a file")


def _check_existing(out: str) -> None:
    if not fs.isfile(fs.join(out, MANIFEST_NAME)):
        raise InputError(out, f"output folder exists and is not a run folder (no {MANIFEST_NAME})"
                              "; a run replaces its folder whole, so name a new or empty folder")
    extra = unlisted_files(out)
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise InputError(out, f"holds files its manifest does not list ({shown}); a rebuild would "
                              "delete them, so it is refused (move them out of the run folder)")


# --- local staging, locks and the atomic swap ------------------------------------------------

_HELD: dict[str, int] = {}  # staging folder -> open descriptor holding its lock


def _try_lock(path: str) -> int | None:
    """An exclusive advisory lock on a folder (None: another live process holds it).

    The kernel drops the lock when its holder dies, SIGKILL included, so a locked staging folder
    belongs to a run still in progress and an unlocked one to a run that was killed.
    """
    if fcntl is None:  # no flock (Windows): every staging folder counts as left behind
        return -1
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _release(staging: str) -> None:
    fd = _HELD.pop(os.path.abspath(staging), None)
    if fd is not None and fd >= 0:
        os.close(fd)


def new_staging(out: str) -> str:
    """A fresh hidden staging folder beside `out` (same filesystem, so the swap is atomic).

    The folder stays locked by this process until `publish` or `discard`, so `clean_stale` of
    another run of the same `out` never removes it while this run writes into it.
    """
    check_output_path(out)
    parent, name = os.path.split(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{name}.staging-{uuid.uuid4().hex[:12]}")
    os.makedirs(staging)
    _HELD[staging] = _try_lock(staging)
    return staging


def discard(staging: str) -> None:
    """Removes a staging folder that will not be published (a failed run) and drops its lock."""
    shutil.rmtree(staging, ignore_errors=True)
    _release(staging)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2 = None


def exchange(a: str, b: str) -> bool:
    """Atomically swaps two existing paths (Linux renameat2 RENAME_EXCHANGE).

    Returns:
      True when swapped; False when this system has no exchange (then nothing changed).

    Raises:
      OSError: the exchange exists but failed (e.g. a path is missing).
    """
    global _renameat2
    if _renameat2 is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            function = libc.renameat2
            function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                 ctypes.c_uint]
            function.restype = ctypes.c_int
            _renameat2 = function
        except (OSError, AttributeError):
            _renameat2 = False
    if _renameat2 is False:
        return False
    result = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), a)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(staging: str, out: str) -> None:
    """Puts a complete staging folder in place of `out` in one atomic step.

    With an earlier run at `out` the two are exchanged (renameat2), then the earlier one, now at
    the staging path, is removed; without one the staging folder is renamed to `out`. Where the
    exchange is unsupported, the earlier run is renamed aside first (`clean_stale` restores it
    should the process die between the two renames).
    """
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    if not os.path.exists(out):
        os.rename(staging, out)
        _release(staging)
        _fsync_dir(parent)
        return
    if exchange(staging, out):
        _release(staging)
        _fsync_dir(parent)
        shutil.rmtree(staging, ignore_errors=True)  # the earlier run
        return
    old = os.path.join(parent, f".{os.path.basename(out)}.old-{uuid.uuid4().hex[:12]}")
    os.rename(out, old)
    os.rename(staging, out)
    _release(staging)
    shutil.rmtree(old, ignore_errors=True)


def clean_stale(out: str) -> None:
    """Tidies what killed runs of `out` left: staging folders are removed; a run renamed aside by
    a fallback publish killed before renaming the new one in is put back when `out` is missing.
    A staging folder still locked by a live run (see `new_staging`) is left alone.
    """
    if fs.is_remote(out):
        return  # object stores: leftovers are deleted after the next commit (see `commit`)
    parent, name = os.path.split(os.path.abspath(out))
    if not os.path.isdir(parent):
        return
    for entry in sorted(os.listdir(parent)):
        path = os.path.join(parent, entry)
        if entry.startswith(f".{name}.old-") and not os.path.exists(out):
            os.rename(path, out)
        elif entry.startswith(f".{name}.staging-"):
            fd = _try_lock(path)
            if fd is None:
                continue  # a run in progress
            shutil.rmtree(path, ignore_errors=True)
            if fd >= 0:
                os.close(fd)
        elif entry.startswith(f".{name}.old-"):
            shutil.rmtree(path, ignore_errors=True)


# --- one protocol for both kinds of store ----------------------------------------------------

@dataclass
class Publication:
    """Where a run in progress writes, and how it will be made visible.

    Attributes:
      out: the run's final location.
      root: where shards, pieces and the summary are written (a local staging folder, or
        `OUT/run-<id>` on an object store).
      prefix: prefix of manifest paths (`""` locally, `run-<id>/` on an object store).
      remote: whether `out` is on an object store.
    """

    out: str
    root: str
    prefix: str = ""
    remote: bool = False


def begin(out: str, dry_run: bool = False) -> Publication:
    """Checks `out`, tidies leftovers of killed runs, and opens a fresh location for a run.

    Args:
      dry_run: a Dataflow dry run, which builds the job graph and writes nothing: a store
        `out` is then not contacted (offline, no credentials), only checked as a location.
    """
    if fs.is_remote(out) and dry_run:
        fs.check_replaceable_location(out)
        prefix = f"{RUN_PREFIX}dry-run/"
        return Publication(out=out.rstrip("/"), root=fs.join(out, prefix.rstrip("/")),
                           prefix=prefix, remote=True)
    if fs.is_remote(out):
        check_output_path(out)
        run_id = uuid.uuid4().hex[:12]
        prefix = f"{RUN_PREFIX}{run_id}/"
        return Publication(out=out.rstrip("/"), root=fs.join(out, prefix.rstrip("/")),
                           prefix=prefix, remote=True)
    clean_stale(out)
    return Publication(out=os.path.abspath(out), root=new_staging(out))


def commit(pub: Publication, manifest: dict) -> None:
    """Writes the manifest last and makes the run visible in one step; then removes the old run.

    Args:
      pub: from `begin`.
      manifest: the manifest, its file paths already relative to `pub.out` (`pub.prefix` included).
    """
    fs.delete_tree(fs.join(pub.root, TMP_FOLDER))
    if not pub.remote:
        write_manifest(pub.root, manifest)
        publish(pub.root, pub.out)
        return
    write_manifest(pub.out, manifest)  # one upload: the commit
    listed = {f["path"] for f in manifest["files"]}
    stale = [p for p in fs.list_files(pub.out)
             if _relative(pub.out, p).startswith(RUN_PREFIX)
             and _relative(pub.out, p) not in listed]
    fs.delete(stale)


def abort(pub: Publication) -> None:
    """Removes what a failed run wrote; the earlier run stays as it was."""
    if pub.remote:
        fs.delete_tree(pub.root)
    else:
        discard(pub.root)
