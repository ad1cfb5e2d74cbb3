"""Plain files under the lake root (archive, quarantine), local or on an object store.

pyarrow's file systems give one API for both; on S3 it is configured from the same
:class:`~btlake_pipelines.settings.ObjectStore` as the Delta tables and the landing zone
(:mod:`btlake_pipelines.storage.object_store`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from btlake_pipelines.settings import is_object_store
from btlake_pipelines.storage.object_store import s3_filesystem

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem


def filesystem(uri: str) -> tuple[FileSystem, str]:
    """(pyarrow FileSystem, path inside it) for a local path or an ``s3://`` URI."""
    from pyarrow import fs

    if not is_object_store(uri):
        return fs.LocalFileSystem(), os.path.abspath(uri)
    parsed = urlparse(uri)
    if parsed.scheme not in ("s3", "s3a"):
        raise ValueError(f"unsupported object store scheme '{parsed.scheme}' (use s3://)")
    return s3_filesystem(), f"{parsed.netloc}{parsed.path}".rstrip("/")


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts])


def write_bytes(uri: str, data: bytes) -> None:
    fs_, path = filesystem(uri)
    if not is_object_store(uri):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return
    with fs_.open_output_stream(path) as out:
        out.write(data)


def read_bytes(uri: str) -> bytes:
    fs_, path = filesystem(uri)
    with fs_.open_input_stream(path) as f:
        return f.read()


def exists(uri: str) -> bool:
    from pyarrow import fs

    fs_, path = filesystem(uri)
    return fs_.get_file_info(path).type != fs.FileType.NotFound


def copy_tree_to_uri(source: Path, target_uri: str) -> None:
    """Copy a local folder to ``target_uri``; the copy is complete when this returns."""
    if not is_object_store(target_uri):
        tmp = f"{target_uri}.partial"
        shutil.copytree(source, tmp, symlinks=True, dirs_exist_ok=True)
        os.replace(tmp, target_uri)
        return
    fs_, path = filesystem(target_uri)
    for item in sorted(source.rglob("*")):
        if item.is_file() and not item.is_symlink():
            rel = item.relative_to(source).as_posix()
            with open(item, "rb") as f, fs_.open_output_stream(f"{path}/{rel}") as out:
                shutil.copyfileobj(f, out, 1 << 20)


def list_dir(uri: str) -> list[str]:
    """Names directly under ``uri`` (empty when it does not exist)."""
    from pyarrow import fs

    fs_, path = filesystem(uri)
    info = fs_.get_file_info(fs.FileSelector(path, allow_not_found=True))
    return sorted(os.path.basename(i.path) for i in info)
