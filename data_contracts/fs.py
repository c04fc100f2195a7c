"""The one file-system layer of the product: every read and write of inputs, logs, checkpoints,
shards, manifests and reports goes through these functions.

Local paths (no scheme, or `file://`) use the operating system directly, so renames stay atomic
and nothing is copied; paths with a scheme (`gs://`, `s3://`, ...) go through Beam's
`FileSystems`, which is what Dataflow workers use (gs:// needs the `gcp` extra:
`pip install 'rerank-curriculum[gcp]'`; the google-cloud-storage client honours
`STORAGE_EMULATOR_HOST`, so a local emulator stands in for GCS in tests).

Compression is told by magic bytes, never by file name: `open_input` streams gzip, bz2, xz and
zstd transparently.
"""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
import zlib
from typing import BinaryIO, Iterable

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")

MAGIC = (  # (prefix, name), longest first where prefixes could overlap
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
)


def is_remote(path: str) -> bool:
    """Whether `path` names an object store location (has a scheme other than file://)."""
    return bool(_SCHEME.match(path)) and not path[:7].lower() == "file://"


def _local(path: str) -> str:
    return path[len("file://"):] if path[:7].lower() == "file://" else path


def normalize(path: str) -> str:
    """A `file://` URL as the plain local path it names; any other path or URL as given.

    Commands normalize their output locations first, so that staging folders, renames and
    messages all name the same place (a `file://` prefix joined to a local folder would make a
    folder called `file:`)."""
    return _local(path)


def _beam():
    from apache_beam.io.filesystems import FileSystems

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        _anonymous_gcs()
    return FileSystems


def _anonymous_gcs() -> None:
    """With a storage emulator configured, Beam's GCS client connects anonymously at once.

    Beam otherwise looks for Google default credentials first, with four retries and backoff
    (about 20 s in every process, Beam's workers included) before it falls back to anonymous.
    """
    try:
        from apache_beam.internal.gcp import auth
    except ImportError:  # no gcp extra: gs:// is unavailable anyway
        return
    credentials = auth._Credentials
    with credentials._credentials_lock:
        if not credentials._credentials_init:
            credentials._credentials, credentials._credentials_init = None, True


def join(base: str, *parts: str) -> str:
    """`base/part/...` with the separator of `base`'s file system."""
    if not is_remote(base):
        return os.path.join(_local(base), *parts)
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def dirname(path: str) -> str:
    if not is_remote(path):
        return os.path.dirname(_local(path))
    return path.rstrip("/").rsplit("/", 1)[0]


def basename(path: str) -> str:
    if not is_remote(path):
        return os.path.basename(_local(path))
    return path.rstrip("/").rsplit("/", 1)[-1]


def abspath(path: str) -> str:
    """An absolute local path; remote paths are returned as they are."""
    return path if is_remote(path) else os.path.abspath(_local(path))


def exists(path: str) -> bool:
    """Whether a file (or, locally, a folder; remotely, a non-empty prefix) exists."""
    if not is_remote(path):
        return os.path.exists(_local(path))
    return _beam().exists(path) or isdir(path)


def isfile(path: str) -> bool:
    if not is_remote(path):
        return os.path.isfile(_local(path))
    return _beam().exists(path) and not path.endswith("/")


def isdir(path: str) -> bool:
    """Locally a folder; remotely a prefix `path/` under which at least one object exists."""
    if not is_remote(path):
        return os.path.isdir(_local(path))
    return bool(list_files(path, limit=1))


def list_files(folder: str, limit: int | None = None) -> list[str]:
    """Every file under `folder` (recursively), sorted by path."""
    if not is_remote(folder):
        root = _local(folder)
        out = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
        return sorted(out)[:limit] if limit else sorted(out)
    pattern = folder.rstrip("/") + "/**"
    result = _beam().match([pattern], [limit] if limit else None)[0]
    return sorted(m.path for m in result.metadata_list)


def size(path: str) -> int:
    """Size in bytes."""
    if not is_remote(path):
        return os.path.getsize(_local(path))
    return _beam().match([path])[0].metadata_list[0].size_in_bytes


def open_read(path: str) -> BinaryIO:
    """The raw bytes of a file, as a seekable binary stream (no decompression)."""
    if not is_remote(path):
        return open(_local(path), "rb")
    from apache_beam.io.filesystem import CompressionTypes

    return _beam().open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def compression_of(head: bytes) -> str | None:
    """The compression named by a file's first bytes (`gzip`, `bz2`, `xz`, `zstd`), or None."""
    for prefix, name in MAGIC:
        if head.startswith(prefix):
            return name
    return None


def sniff(path: str, n: int = 8192) -> tuple[bytes, str | None]:
    """(the first `n` bytes after decompression, the compression or None)."""
    with open_read(path) as raw:
        head = raw.read(8)
    kind = compression_of(head)
    with open_input(path) as stream:
        return stream.read(n), kind


def open_input(path: str) -> BinaryIO:
    """A binary stream of a file's content, decompressed (by magic bytes) when compressed."""
    raw = open_read(path)
    head = raw.read(8)
    raw.seek(0)
    kind = compression_of(head)
    if kind is None:
        return raw
    if kind == "gzip":
        inner = gzip.GzipFile(fileobj=raw, mode="rb")
    else:
        inner = _Streams(raw, kind)
    return io.BufferedReader(_Decompressed(inner, path, kind), buffer_size=1 << 16)


def check_decompresses(path: str) -> None:
    """Reads a compressed file to its end (streamed) so that damage anywhere in it is found.

    A damaged block can decompress to garbage before its checksum fails at the block's end, so
    a reader that sniffed only the head may call the file an unknown format: this names the
    damage instead. Uncompressed files return at once.

    Raises:
      InputError: the file's compressed data is corrupt or truncated.
    """
    with open_read(path) as raw:
        if compression_of(raw.read(8)) is None:
            return
    with open_input(path) as stream:
        while stream.read(1 << 20):
            pass


class _Streams(io.RawIOBase):
    """One or more concatenated bz2, xz or zstd streams, decompressed, that never end quietly.

    Python's BZ2File and LZMAFile stop without a word at a second stream that does not decode
    (half of a damaged pbzip2 file lost silently), and zstandard's `stream_reader` ends where a
    truncated frame ends. Here each stream is a fresh decompression object: a stream cut short
    is an EOFError and bytes after a stream that do not start another one (zero padding aside)
    are the decompressor's error, both turned into one InputError by `_Decompressed`. bz2 and
    xz output comes at most 1 MiB per call (memory bounded by that, not the compression ratio).
    """

    _PIECE = 1 << 20

    def __init__(self, raw, kind: str):
        super().__init__()
        self._raw, self._kind = raw, kind
        self._obj = None
        self._input = b""
        self._pending, self._at = b"", 0

    def _new(self):
        if self._kind == "bz2":
            return bz2.BZ2Decompressor()
        if self._kind == "xz":
            return lzma.LZMADecompressor()
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj()

    def _read_raw(self) -> bytes:
        return self._raw.read(1 << 16)

    def _next_piece(self) -> bytes | None:
        """The next decompressed bytes (non-empty), or None at the clean end of the last stream."""
        while True:
            if self._obj is not None and self._obj.eof:
                self._input = self._obj.unused_data + self._input
                self._obj = None
            if self._obj is None:  # between streams: zero padding, another stream, or the end
                self._input = self._input.lstrip(b"\0")
                if not self._input:
                    self._input = self._read_raw()
                    if not self._input:
                        return None
                    continue
                self._obj = self._new()
            bounded = self._kind != "zstd"
            if not bounded or self._obj.needs_input:
                if not self._input:
                    self._input = self._read_raw()
                    if not self._input:
                        raise EOFError(f"{self._kind} data ended before the end of its stream")
                data, self._input = self._input, b""
            else:
                data = b""
            piece = (self._obj.decompress(data, max_length=self._PIECE) if bounded
                     else self._obj.decompress(data))
            if piece:
                return piece

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._at >= len(self._pending):
            piece = self._next_piece()
            if piece is None:
                return 0
            self._pending, self._at = piece, 0
        n = min(len(buffer), len(self._pending) - self._at)
        buffer[:n] = memoryview(self._pending)[self._at:self._at + n]
        self._at += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


_ERRORS: tuple = ()  # the decompressors' error types, found once (zstandard is optional)


def _decompression_errors() -> tuple:
    global _ERRORS
    if not _ERRORS:
        errors = [EOFError, OSError, lzma.LZMAError, zlib.error]
        try:
            import zstandard

            errors.append(zstandard.ZstdError)
        except ImportError:
            pass
        _ERRORS = tuple(errors)
    return _ERRORS


class _Decompressed(io.RawIOBase):
    """A decompressing stream whose corrupt or truncated data is an InputError naming the file
    (one line), not the decompressor's EOFError / BadGzipFile deep inside a reader."""

    def __init__(self, inner, path: str, kind: str):
        super().__init__()
        self._inner, self._path, self._kind = inner, path, kind

    def _fail(self, exc: BaseException):
        from data_contracts.errors import InputError

        return InputError(self._path, f"corrupt or truncated {self._kind} data "
                                      f"({type(exc).__name__}: {exc})")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            return self._inner.readinto(buffer)
        except _decompression_errors() as exc:
            raise self._fail(exc) from None

    def seekable(self) -> bool:
        return self._inner.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return self._inner.seek(offset, whence)
        except _decompression_errors() as exc:
            raise self._fail(exc) from None

    def tell(self) -> int:
        return self._inner.tell()

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


def open_text(path: str, encoding: str = "utf-8", errors: str = "replace") -> io.TextIOBase:
    """A text stream of a (possibly compressed) file."""
    return io.TextIOWrapper(open_input(path), encoding=encoding, errors=errors, newline=None)


def open_write(path: str) -> BinaryIO:
    """A binary stream writing a new file (local folders are created as needed)."""
    if not is_remote(path):
        local = _local(path)
        parent = os.path.dirname(local)
        if parent:
            os.makedirs(parent, exist_ok=True)
        return open(local, "wb")
    from apache_beam.io.filesystem import CompressionTypes

    return _beam().create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_bytes(path: str) -> bytes:
    with open_read(path) as handle:
        return handle.read()


def write_bytes(path: str, data: bytes, durable: bool = False) -> None:
    """Writes a whole file. Locally, `durable` writes a temporary file, fsyncs it and renames it
    into place (atomic); an object store makes a single upload visible at once anyway."""
    if is_remote(path) or not durable:
        with open_write(path) as handle:
            handle.write(data)
        return
    local = _local(path)
    tmp = f"{local}.tmp-{os.getpid()}"
    with open_write(tmp) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, local)


def sha256(path: str) -> str:
    """Hex sha256 of a file's bytes (streamed)."""
    digest = hashlib.sha256()
    with open_read(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def delete(paths: Iterable[str]) -> None:
    """Deletes files; missing ones are ignored."""
    local = [p for p in paths if not is_remote(p)]
    remote = [p for p in paths if is_remote(p)]
    for p in local:
        try:
            os.remove(_local(p))
        except FileNotFoundError:
            pass
    if remote:
        existing = [p for p in remote if _beam().exists(p)]
        if existing:
            _beam().delete(existing)


def delete_tree(folder: str) -> None:
    """Deletes a folder (or every object under a prefix) and what it holds."""
    if not is_remote(folder):
        shutil.rmtree(_local(folder), ignore_errors=True)
        return
    files = list_files(folder)
    if files:
        _beam().delete(files)


def makedirs(folder: str) -> None:
    """Creates a local folder (object stores have no folders: a no-op there)."""
    if not is_remote(folder):
        os.makedirs(_local(folder), exist_ok=True)


def copy(src: str, dst: str) -> None:
    """Copies one file (across file systems too)."""
    with open_read(src) as source, open_write(dst) as target:
        shutil.copyfileobj(source, target, 1 << 20)


def check_replaceable_location(path: str, option: str = "--out") -> None:
    """Refuses an output location that a run replacing it whole must never delete.

    A run writes its output elsewhere and then replaces `path` with it, deleting what was there,
    so `path` may not be empty (Python reads "" as the current folder), the file-system root, a
    bucket's root, or the current folder or one of its ancestors (the run would delete the folder
    it was started from, its inputs likely included). Whether an existing folder holds only an
    earlier run's files is each command's own check.

    Args:
      path: the output location as given (local path, `file://` or a store URL).
      option: the option's name for the message.

    Raises:
      InputError: one line naming the location and why it is refused.
    """
    from data_contracts.errors import InputError

    if not path.strip():
        raise InputError(repr(path), f"{option} is empty; name the folder to write")
    if is_remote(path):
        rest = _SCHEME.sub("", path).strip("/")
        if "/" not in rest:
            raise InputError(path, f"{option} is a bucket's root; name a prefix inside it "
                                   "(gs://BUCKET/run)")
        if any(part in ("", ".", "..") or part != part.strip() for part in rest.split("/")):
            raise InputError(path, f"{option} has an empty, '.', '..' or space-padded part; "
                                   "a store does not resolve them (name the prefix plainly)")
        return
    target = os.path.realpath(os.path.abspath(_local(path)))
    here = os.path.realpath(os.getcwd())
    if target == os.path.dirname(target):
        raise InputError(path, f"{option} is the file-system root")
    if here == target or here.startswith(target.rstrip(os.sep) + os.sep):
        raise InputError(path, f"{option} is the current folder or one above it, which "
                               "replacing it would delete; name a folder inside it")


def foreign_entries(folder: str, own: Iterable[str]) -> list[str]:
    """The top-level names in `folder` (a local folder or a store prefix) that are not `own`.

    A command that replaces its output folder whole may do so only when everything in it is
    what the command itself writes: one marker file among a user's files is not enough.

    Args:
      folder: the output folder; a missing one has no entries.
      own: the names the command writes at the top level (files and folders).

    Returns:
      Sorted names (at most what is there); [] when the folder is missing, empty or all own.
    """
    own = set(own)
    if is_remote(folder):
        base = folder.rstrip("/") + "/"
        names = {p[len(base):].split("/", 1)[0] for p in list_files(folder) if p.startswith(base)}
    else:
        local = _local(folder)
        names = set(os.listdir(local)) if os.path.isdir(local) else set()
    return sorted(names - own)
