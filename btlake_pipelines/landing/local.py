"""The landing zone as a local folder."""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import BinaryIO

from btlake_pipelines.landing.zone import MANIFEST, Entry, LandingZone
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
        try:
            return stat.S_ISREG(os.lstat(self.root / name / MANIFEST).st_mode)
        except OSError:
            return False

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
