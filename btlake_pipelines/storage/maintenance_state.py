"""A small JSON record under ``<lake>/_maintenance/state.json`` of when maintenance last
vacuumed and with what retention, so btlake can tell which old versions are still readable."""

from __future__ import annotations

import json
from typing import Any

from btlake_pipelines.storage import lake_files

STATE = "_maintenance/state.json"


def load(lake: str) -> dict[str, Any]:
    uri = lake_files.join(lake, STATE)
    try:
        return json.loads(lake_files.read_bytes(uri))
    except (OSError, FileNotFoundError, ValueError):
        return {}


def save(lake: str, state: dict[str, Any]) -> None:
    lake_files.write_bytes(lake_files.join(lake, STATE), json.dumps(state, indent=2).encode())
