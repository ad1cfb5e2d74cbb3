"""Archived bundle copies, read back through the same loader that ingestion uses.

Every handling of a bundle leaves a complete copy under ``_archive/<run_id>/<time>-<hash>``.
Re-deriving a partition reloads those copies; going through ``LandingZone`` and
``load_bundles`` means an archived bundle is parsed, normalized and validated by exactly the
code that accepted it the first time, so the rows come out as they were written.
"""

from __future__ import annotations

from typing import BinaryIO

from btlake_pipelines.errors import BtlakeError
from btlake_pipelines.landing.zone import MANIFEST, Entry, LandingZone
from btlake_pipelines.storage import lake_files


class ArchiveZone(LandingZone):
    """A read-only zone whose bundles are archive folders, each shown under its run id (the
    loader insists that a folder is named after the manifest's run id; archive folders are
    named after the handling instead)."""

    def __init__(self, folders: dict[str, str]) -> None:
        self.folders = dict(folders)  # run id -> archive folder URI
        self.uri = "archive"

    def bundle_names(self) -> list[str]:
        return sorted(self.folders)

    def has_manifest(self, name: str) -> bool:
        return lake_files.exists(lake_files.join(self.folders[name], MANIFEST))

    def entries(self, name: str) -> dict[str, Entry]:
        from pyarrow import fs

        filesystem, path = lake_files.filesystem(self.folders[name])
        infos = filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True))
        kinds = {fs.FileType.File: "file", fs.FileType.Directory: "dir"}
        return {i.base_name: Entry(i.base_name, kinds.get(i.type, "other"), int(i.size or 0),
                                   int(i.mtime_ns or 0)) for i in infos}

    def read_bytes(self, name: str, file_name: str) -> bytes:
        return lake_files.read_bytes(lake_files.join(self.folders[name], file_name))

    def write_file(self, name: str, file_name: str, source: BinaryIO) -> None:
        raise BtlakeError("archived bundles are read-only")

    def move_to(self, name: str, target_uri: str) -> None:
        raise BtlakeError("archived bundles are read-only")

    def location(self, name: str) -> str:
        return self.folders[name]


def load_archived(run_id: str, uri: str, *, content_hash: str | None = None):
    """Load and re-validate one archived copy; raise a :class:`BtlakeError` naming the copy when
    it is gone, no longer passes the contract or differs from the hash recorded for it."""
    from btlake_pipelines.bundles.loader import load_bundles

    zone = ArchiveZone({run_id: uri})
    if not zone.has_manifest(run_id):
        raise BtlakeError(f"archived copy of {run_id} is missing: {uri}")
    good, refused = load_bundles(zone, [run_id])
    if refused:
        raise BtlakeError(f"archived copy of {run_id} no longer passes validation ({uri}): "
                          f"{refused[0]}")
    bundle = good[0]
    if content_hash and bundle.content_hash != content_hash:
        raise BtlakeError(f"archived copy of {run_id} does not match the content hash the lake "
                          f"recorded for it ({uri})")
    return bundle
