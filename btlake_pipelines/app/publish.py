"""Publishing a bundle to landing: table files first, the manifest last, so ingestion never
sees a half-copied bundle as complete. One code path for a folder (``btlake publish``, the
Python API) and for files received over HTTP.

A bundle is *waiting* when its manifest is in landing (:meth:`LandingZone.has_manifest`: on S3
one HEAD of ``<landing>/<run_id>/manifest.json``, never a listing of the prefix). Publishing
over a waiting bundle needs ``replace``; a folder without its manifest is a copy that never
finished and is written over.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from btlake_pipelines.contract.run_ids import RUN_ID_RULE, is_valid_run_id
from btlake_pipelines.errors import BtlakeError
from btlake_pipelines.landing import open_landing
from btlake_pipelines.landing.zone import MANIFEST, LandingZone

MAX_FILE_NAME = 255


class PublishRefused(BtlakeError):
    """What was given is not one whole bundle; ``param`` names the part at fault
    (``folder``, ``manifest``, ``manifest.run_id``, ``manifest.tables``, ``files``)."""


class BundleWaiting(BtlakeError):
    """A bundle of the same run id is still waiting in landing to be ingested."""


def check_file_name(name: str) -> str:
    """A bare file name as the contract allows it in an upload: no ``/``, ``\\``, ``..``, NUL
    or control characters, not hidden, not the manifest, at most 255 characters."""
    problem = None
    if not name:
        problem = "is empty"
    elif len(name) > MAX_FILE_NAME:
        problem = f"is longer than {MAX_FILE_NAME} characters"
    elif "/" in name or "\\" in name:
        problem = "contains a path separator (send the bare file name)"
    elif ".." in name:
        problem = "contains '..'"
    elif name.startswith("."):
        problem = "starts with '.'"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "contains control characters"
    elif name == MANIFEST:
        problem = "is the manifest's name (send the manifest as the 'manifest' field)"
    if problem:
        raise PublishRefused(f"{{param}}: file name {name[:80]!r} {problem}", param="files")
    return name


def bundle_run_id(manifest: bytes, file_names: list[str]) -> str:
    """The run id of a bundle given as its manifest's bytes and its files' names, once they
    make one whole bundle: the manifest is a JSON object with a valid ``run_id`` and a
    ``tables`` object, and the files are exactly those ``tables`` lists, by bare names.
    Everything else about the content is ingestion's to check (and quarantine)."""
    for name in file_names:
        check_file_name(name)
    doc = _manifest(manifest)
    listed = set(doc["tables"].values())
    missing = sorted(listed - set(file_names))
    extra = sorted(set(file_names) - listed)
    if missing:
        raise PublishRefused(f"{{param}}: the manifest lists {', '.join(map(repr, missing[:5]))} "
                             "but no file of that name was sent", param="files")
    if extra:
        raise PublishRefused(f"{{param}}: {', '.join(map(repr, extra[:5]))} not listed in the "
                             "manifest's 'tables'", param="files")
    return doc["run_id"]


def _manifest(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise PublishRefused("{param} is not UTF-8 text", param="manifest") from None
    except ValueError as exc:
        raise PublishRefused(f"{{param}} is not valid JSON: {str(exc)[:120]}",
                             param="manifest") from None
    if not isinstance(doc, dict):
        raise PublishRefused("{param} must be a JSON object", param="manifest")
    if not is_valid_run_id(doc.get("run_id")):
        raise PublishRefused(f"{{param}} must be a run id ({RUN_ID_RULE}); it names the bundle",
                             param="manifest.run_id")
    tables = doc.get("tables")
    if not isinstance(tables, dict) or not all(isinstance(v, str) for v in tables.values()):
        raise PublishRefused("{param} must be an object of table name -> file name",
                             param="manifest.tables")
    return doc


def publish_files(zone: LandingZone, run_id: str, manifest: BinaryIO | Path,
                  files: Mapping[str, BinaryIO | Path], *, replace: bool = False) -> str:
    """Write one bundle into ``zone`` under ``run_id``: ``files`` (file name -> a readable
    binary file, or the path of one, opened only while it is copied) first, ``manifest``
    last; returns the bundle's landing location. Raises :class:`BundleWaiting` when a bundle
    of this run id waits and ``replace`` is false."""
    if not is_valid_run_id(run_id):
        raise PublishRefused(f"{{param}}: {run_id[:80]!r} is not a run id ({RUN_ID_RULE})",
                             param="run_id")
    if not replace and zone.has_manifest(run_id):
        raise BundleWaiting(f"bundle {run_id!r} is already waiting in landing; wait for it to "
                            "be ingested or publish with {param}", param="replace")
    for name, source in [*files.items(), (MANIFEST, manifest)]:
        if isinstance(source, Path):
            with open(source, "rb") as fh:
                zone.write_file(run_id, name, fh)
        else:
            zone.write_file(run_id, name, source)
    return zone.location(run_id)


def publish_upload(zone: LandingZone, manifest: bytes, files: Mapping[str, BinaryIO], *,
                   replace: bool = False) -> str:
    """Publish a bundle received as its manifest's bytes (kept exactly as sent: they are part
    of the content hash) and its files; returns the run id, after :func:`bundle_run_id`'s
    checks."""
    run_id = bundle_run_id(manifest, list(files))
    publish_files(zone, run_id, io.BytesIO(manifest), files, replace=replace)
    return run_id


def publish(folder: str | os.PathLike, landing: str | None = None, *,
            replace: bool = False) -> str:
    """Copy the bundle folder ``folder`` (named by its run id) into landing (``landing``, or
    the settings'); returns the bundle's landing location."""
    source = Path(folder)
    name = source.resolve().name if source.name in ("", ".") else source.name
    if not source.is_dir():
        raise PublishRefused(f"{folder}: not a folder", param="folder")
    if not is_valid_run_id(name):
        raise PublishRefused(f"bundle folder name {name!r:.80} is not a run id ({RUN_ID_RULE})",
                             param="folder")
    manifest = source / MANIFEST
    if not manifest.is_file():
        raise PublishRefused(f"{folder}: no manifest.json (a bundle needs one)", param="folder")
    paths = sorted(p for p in source.iterdir() if p.name != MANIFEST)
    for path in paths:
        if path.is_symlink() or not path.is_file():
            raise PublishRefused(f"{path}: only regular files can be published (no links or "
                                 "folders)", param="folder")
    return publish_files(open_landing(landing), name, manifest, {p.name: p for p in paths},
                         replace=replace)
