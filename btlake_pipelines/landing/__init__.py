"""The landing zone: where engines drop bundles, behind one interface
(:class:`~btlake_pipelines.landing.zone.LandingZone`) with a local folder and an S3 prefix as
implementations; :func:`open_landing` picks one from the location, so nothing downstream knows
which."""

from __future__ import annotations

from btlake_pipelines.landing.local import LocalLandingZone
from btlake_pipelines.landing.zone import Entry, LandingZone
from btlake_pipelines.settings import is_object_store, landing_uri

__all__ = ["Entry", "LandingZone", "open_landing"]


def open_landing(uri: str | None = None) -> LandingZone:
    """The landing zone at ``uri`` (``--landing`` / ``BTLAKE_LANDING`` / the default)."""
    resolved = landing_uri(uri)
    if is_object_store(resolved):
        from btlake_pipelines.landing.s3 import S3LandingZone  # boto3 only for S3 zones

        return S3LandingZone(resolved)
    return LocalLandingZone(resolved)
