"""Objects under two lake roots (the primary and the replica), copied verified and streamed.

Both roots are reached through :func:`btlake_pipelines.storage.lake_files.filesystem` (pyarrow's
local or S3 file system, configured from the settings' one ``ObjectStore``), so local -> local,
local -> S3 and S3 -> S3 are the same code. A copy never holds a whole file: it reads and writes
pieces of :data:`CHUNK` bytes, hashing them on the way; the copy is then read back and its size
and BLAKE2b digest compared with the source's.

A copy is never visible half-written: on a local replica it is written under
``_replication/tmp/`` and renamed into place once verified; on S3 an object appears only when
its (multipart) upload completes, which a killed process never does. So an object present at
its final name is whole, whatever moment a previous run was killed at.
"""

from __future__ import annotations

import functools
import hashlib
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from btlake_pipelines.errors import BtlakeError
from btlake_pipelines.settings import is_object_store
from btlake_pipelines.storage import lake_files

if TYPE_CHECKING:
    from pyarrow.fs import FileInfo, FileSystem

#: Bytes read and written at a time: a copy holds at most this much of a file.
CHUNK = 8 << 20
#: The replicator's own folder in the replica (temporary files, the replica marker).
STATE_DIR = "_replication"
#: Objects copied at once (pyarrow releases the GIL while reading and writing, hashlib while
#: hashing large pieces).
COPY_THREADS = 8


@functools.cache
def pool() -> ThreadPoolExecutor:
    """The copying threads, started once per process (a pool per table version cost more
    than the copies of a small version)."""
    return ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="btlake-replicate")


class ReplicationError(BtlakeError):
    """Replication cannot go on (the replica diverged, the primary lost a file it needs)."""


@dataclass(frozen=True)
class Root:
    """A lake root as a file system and a path inside it."""

    uri: str
    fs: FileSystem
    path: str

    @classmethod
    def of(cls, uri: str) -> Root:
        fs, path = lake_files.filesystem(uri)
        return cls(uri.rstrip("/"), fs, path.rstrip("/"))

    @property
    def local(self) -> bool:
        return not is_object_store(self.uri)

    def full(self, rel: str) -> str:
        return f"{self.path}/{rel}" if rel else self.path

    def info(self, rel: str) -> FileInfo:
        return self.fs.get_file_info(self.full(rel))

    def exists(self, rel: str) -> bool:
        from pyarrow import fs

        return self.info(rel).type == fs.FileType.File

    def is_dir(self, rel: str) -> bool:
        from pyarrow import fs

        return self.info(rel).type == fs.FileType.Directory

    def listing(self, rel: str, recursive: bool = False) -> dict[str, int]:
        """Files under ``rel`` (relative to ``rel``) and their sizes; empty when absent."""
        from pyarrow import fs

        base = self.full(rel)
        found = self.fs.get_file_info(fs.FileSelector(base, allow_not_found=True,
                                                      recursive=recursive))
        return {i.path[len(base) + 1:]: int(i.size or 0) for i in found
                if i.type == fs.FileType.File}

    def names(self, rel: str) -> list[tuple[str, bool]]:
        """(name, is a folder) of the entries directly under ``rel``."""
        from pyarrow import fs

        found = self.fs.get_file_info(fs.FileSelector(self.full(rel), allow_not_found=True))
        return sorted((os.path.basename(i.path), i.type == fs.FileType.Directory)
                      for i in found)

    def read(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.full(rel)) as f:
            return f.read()

    def digest(self, rel: str) -> str:
        """BLAKE2b of the object, read a piece at a time."""
        h = hashlib.blake2b(digest_size=20)
        with self.fs.open_input_stream(self.full(rel)) as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        return h.hexdigest()


@dataclass
class Counts:
    """What a replication did to objects."""

    files_copied: int = 0
    bytes_copied: int = 0
    files_skipped: int = 0
    log_entries: int = 0

    def add(self, other: Counts) -> None:
        self.files_copied += other.files_copied
        self.bytes_copied += other.bytes_copied
        self.files_skipped += other.files_skipped
        self.log_entries += other.log_entries


def copy_object(src: Root, dst: Root, rel: str, *, size: int | None = None,
                check_existing: bool = True) -> int | None:
    """Copy ``rel`` from ``src`` to ``dst``, verified; the bytes copied, 0 when ``dst``
    already holds the same object (same size and, with ``check_existing``, same digest), None
    when ``src`` has no such object. ``size``: the source's size when already listed."""
    from pyarrow import fs

    if size is None:
        info = src.info(rel)
        if info.type != fs.FileType.File:
            return None
        size = int(info.size or 0)
    there = dst.info(rel)
    if there.type == fs.FileType.File and int(there.size or 0) == size and (
            not check_existing or src.digest(rel) == dst.digest(rel)):
        return 0
    if dst.local:
        return _copy_local(src, dst, rel, size)
    digest = _stream(src, rel, dst.fs, dst.full(rel))
    _verify(dst, rel, dst.full(rel), size, digest)
    return size


def _copy_local(src: Root, dst: Root, rel: str, size: int) -> int:
    tmp = _temporary(dst)
    try:
        digest = _stream(src, rel, dst.fs, tmp)
        _verify(dst, rel, tmp, size, digest)
        final = dst.full(rel)
        _folder(os.path.dirname(final))
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return size


def _stream(src: Root, rel: str, out_fs: FileSystem, out_path: str) -> str:
    h = hashlib.blake2b(digest_size=20)
    with src.fs.open_input_stream(src.full(rel)) as f, \
            out_fs.open_output_stream(out_path) as out:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            out.write(chunk)
    return h.hexdigest()


def _verify(dst: Root, rel: str, path: str, size: int, digest: str) -> None:
    h = hashlib.blake2b(digest_size=20)
    written = 0
    with dst.fs.open_input_stream(path) as f:
        while chunk := f.read(CHUNK):
            written += len(chunk)
            h.update(chunk)
    if written != size or h.hexdigest() != digest:
        dst.fs.delete_file(path)
        raise ReplicationError(f"the copy of '{rel}' in the replica does not match the "
                               f"primary ({written} of {size} bytes, or a different digest); "
                               "run replicate again")


def write_new(dst: Root, rel: str, data: bytes) -> bool:
    """Write a log entry ``rel`` that must not replace another: True when written, False
    when ``dst`` already holds these exact bytes (a previous run's copy); a different entry
    there means the replica has diverged from the primary (a writer committed to it)."""
    if dst.exists(rel):
        if dst.read(rel) == data:
            return False
        raise diverged(rel)
    if not dst.local:
        with dst.fs.open_output_stream(dst.full(rel)) as out:
            out.write(data)
        return True
    final = dst.full(rel)
    _folder(os.path.dirname(final))
    tmp = _temporary(dst)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, final)  # never replaces: a commit another writer made stays
        except FileExistsError:
            if dst.read(rel) != data:
                raise diverged(rel) from None
            return False
    finally:
        os.unlink(tmp)
    return True


def _temporary(dst: Root) -> str:
    """A fresh temporary path on the replica's file system (renames stay on one disk)."""
    folder = os.path.join(dst.path, STATE_DIR, "tmp")
    _folder(folder)
    return os.path.join(folder, uuid.uuid4().hex)


_made: set[str] = set()


def _folder(path: str) -> None:
    """``os.makedirs`` once per folder and process (a copy per file made it a third of the
    time of a small local replication)."""
    if path not in _made:
        os.makedirs(path, exist_ok=True)
        _made.add(path)


def put(dst: Root, rel: str, data: bytes) -> None:
    """Write or replace a small object (``_last_checkpoint``, the replica marker)."""
    lake_files.write_bytes(dst.uri + "/" + rel, data)


def diverged(rel: str) -> ReplicationError:
    return ReplicationError(
        f"the replica holds a different '{rel}' than the primary: something other than "
        "replicate committed to it (was it promoted?); replicate into a new location")
