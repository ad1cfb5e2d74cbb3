"""The landing zone as a local folder."""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from btlake_pipelines.landing.zone import MANIFEST, Entry, LandingZone
from btlake_pipelines.storage import lake_files
from btlake_pipelines.storage.lake_files import copy_tree_to_uri


class LocalLandingZone(LandingZone):
    def __init__(self, path: str) -> None:
        self.uri = str(Path(path))
        self.root = Path(path)

    def bundle_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        with os.scandir(self.root) as it:
            return sorted(e.name for e in it if e.is_dir())

    def is_link(self, name: str) -> bool:
        return (self.root / name).is_symlink()

    def has_manifest(self, name: str) -> bool:
        # Anything but a folder counts: a symlinked manifest is refused, not waited for forever.
        try:
            return not stat.S_ISDIR(os.lstat(self.root / name / MANIFEST).st_mode)
        except OSError:
            return False

    @contextmanager
    def claim(self, names: list[str]) -> Iterator[list[str]]:
        """An exclusive, non-blocking ``flock`` on each bundle folder (opened without following
        links) for the whole batch; the kernel drops it when the process ends, even by SIGKILL,
        so a crashed ingester never strands a bundle. A symlinked bundle is never opened: its
        claim is a lock on the landing folder itself, shared by the batch's links."""
        held: list[int] = []
        root_fd: list[int] = []
        claimed: list[str] = []
        try:
            for name in names:
                path = self.root / name
                if path.is_symlink():
                    if not root_fd:
                        fd = self._lock(self.root, None)
                        if fd is None:
                            continue
                        root_fd.append(fd)
                        held.append(fd)
                    if path.is_symlink() and self.has_manifest(name):
                        claimed.append(name)
                    continue
                fd = self._lock(path, name)
                if fd is not None:
                    held.append(fd)
                    claimed.append(name)
            yield claimed
        finally:
            for fd in held:
                os.close(fd)

    def _lock(self, path: Path, name: str | None) -> int | None:
        """A locked fd on folder ``path``, or None when another process holds it, or (for a
        bundle) when the folder at ``path`` is no longer the one locked or lost its manifest:
        it was handled meanwhile."""
        try:
            nofollow = os.O_NOFOLLOW if name is not None else 0
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | nofollow)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if name is None:
                return fd
            now, held = os.stat(path, follow_symlinks=False), os.fstat(fd)
            if (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev) and \
                    self.has_manifest(name):
                return fd
        except OSError:
            pass
        os.close(fd)
        return None

    def entries(self, name: str) -> dict[str, Entry]:
        result: dict[str, Entry] = {}
        with os.scandir(self.root / name) as it:
            for e in it:
                st = e.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    kind = "symlink"
                elif stat.S_ISREG(st.st_mode):
                    kind = "file"
                elif stat.S_ISDIR(st.st_mode):
                    kind = "dir"
                else:
                    kind = "other"
                result[e.name] = Entry(e.name, kind, st.st_size, st.st_mtime_ns)
        return result

    def read_bytes(self, name: str, file_name: str) -> bytes:
        # O_NOFOLLOW: a file swapped for a symlink after the listing is still never followed.
        fd = os.open(self.root / name / file_name, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            return f.read()

    @contextmanager
    def open_file(self, name: str, file_name: str) -> Iterator[BinaryIO]:
        fd = os.open(self.root / name / file_name, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            yield f

    def write_file(self, name: str, file_name: str, source: BinaryIO) -> None:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{file_name}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, folder / file_name)

    def move_to(self, name: str, target_uri: str) -> None:
        source = self.root / name
        if source.is_symlink():
            self._move_link(source, target_uri)
            return
        if "://" not in target_uri:
            target = Path(target_uri)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(source, target)  # atomic on one file system
                return
            except OSError:
                pass
        copy_tree_to_uri(source, target_uri)
        shutil.rmtree(source)

    @staticmethod
    def _move_link(source: Path, target_uri: str) -> None:
        """A symlinked bundle folder is never followed: its target folder holds the link itself
        (or, on another file system or an object store, a note of where it pointed)."""
        if "://" not in target_uri:
            target = Path(target_uri)
            target.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(source, target / "symlink")
                return
            except OSError:
                pass
        lake_files.write_bytes(lake_files.join(target_uri, "symlink.txt"),
                               os.fsencode(os.readlink(source)))
        source.unlink()
