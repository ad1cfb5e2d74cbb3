"""Where an ingesting process is, written down for whoever watches it.

A process that dies in native code leaves no traceback. The crash supervisor
(:mod:`ingest.isolated`) gives its child a file (the ``breadcrumb`` setting,
``BTLAKE_INGEST_BREADCRUMB``); before each commit the child writes there which table it is
writing and for which bundles, so a crash's quarantine reason can name the table. Unset, a
call costs one look at the settings.
"""

from __future__ import annotations

import json

from btlake_pipelines.settings import current


def writing(table: str, bundles: list[str]) -> None:
    """Record that a commit of ``table`` holding ``bundles``' rows starts now."""
    path = current().breadcrumb
    if not path:
        return
    doc = {"stage": "commit", "table": table, "bundles": bundles[:100]}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)


def read(path: str) -> dict:
    """The last breadcrumb written to ``path`` (empty when none was)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}
