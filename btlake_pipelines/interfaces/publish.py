"""``publish``: hand a bundle folder to landing safely, table files first, manifest last, so
ingestion never sees a half-copied bundle as complete."""

from __future__ import annotations

import os
from pathlib import Path

from btlake_pipelines.contract.run_ids import RUN_ID_RULE, is_valid_run_id
from btlake_pipelines.errors import BtlakeError
from btlake_pipelines.landing.zone import MANIFEST, open_landing


def publish(folder: str | os.PathLike, landing: str | None = None, *,
            replace: bool = False) -> str:
    """Copy ``folder`` into landing under its own name; returns the bundle's landing location."""
    source = Path(folder)
    name = source.resolve().name if source.name in ("", ".") else source.name
    if not source.is_dir():
        raise BtlakeError(f"{folder}: not a folder")
    if not is_valid_run_id(name):
        raise BtlakeError(f"bundle folder name {name!r:.80} is not a run id ({RUN_ID_RULE})")
    manifest = source / MANIFEST
    if not manifest.is_file():
        raise BtlakeError(f"{folder}: no manifest.json (a bundle needs one)")
    zone = open_landing(landing)
    if zone.has_manifest(name) and not replace:
        raise BtlakeError(f"bundle {name!r} is already waiting in landing; wait for it to be "
                          "ingested or publish with replace")
    files = sorted(p for p in source.iterdir() if p.name != MANIFEST)
    for path in files:
        if path.is_symlink() or not path.is_file():
            raise BtlakeError(f"{path}: only regular files can be published (no links or "
                              "folders)")
    for path in files:
        with open(path, "rb") as f:
            zone.write_file(name, path.name, f)
    with open(manifest, "rb") as f:
        zone.write_file(name, MANIFEST, f)
    return zone.location(name)
