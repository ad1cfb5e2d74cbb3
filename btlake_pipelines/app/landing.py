"""The landing zone as a watcher sees it: what arrived since a cursor, whether a bundle is
still waiting, and the markets its manifest declares, whether landing is a folder or an S3
prefix. The landing sensor needs nothing else, so it never holds a
:class:`~btlake_pipelines.landing.zone.LandingZone` (which can also move and write bundles).
"""

from __future__ import annotations

import json

from btlake_pipelines.errors import BtlakeError
from btlake_pipelines.landing import open_landing
from btlake_pipelines.landing.zone import MANIFEST, NewBundles

__all__ = ["Landing", "NewBundles"]


class Landing:
    """The landing zone at ``uri`` (None: the settings' ``BTLAKE_LANDING``)."""

    def __init__(self, uri: str | None = None) -> None:
        self._zone = open_landing(uri)

    @property
    def uri(self) -> str:
        return self._zone.uri

    def list_new(self, cursor: str | None) -> NewBundles:
        """Complete bundles that arrived since ``cursor``, and the cursor to pass next time (a
        tick costs what is new: see :meth:`LandingZone.list_new
        <btlake_pipelines.landing.zone.LandingZone.list_new>`)."""
        return self._zone.list_new(cursor)

    def has_manifest(self, name: str) -> bool:
        """Whether a complete bundle of that name is still waiting (one HEAD on S3)."""
        return self._zone.has_manifest(name)

    def declared_markets(self, name: str) -> list[str]:
        """The markets the bundle's manifest declares; a manifest that cannot be read
        declares none (ingestion refuses the bundle and reports why)."""
        try:
            doc = json.loads(self._zone.read_bytes(name, MANIFEST))
            found = doc.get("markets") if isinstance(doc, dict) else None
        except (OSError, ValueError, BtlakeError):
            return []
        return [m for m in found if isinstance(m, str)] if isinstance(found, list) else []
