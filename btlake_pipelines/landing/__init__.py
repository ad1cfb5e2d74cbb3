"""The landing zone: where engines drop bundles, behind one interface for local and S3."""

from btlake_pipelines.landing.zone import Entry, LandingZone, open_landing

__all__ = ["Entry", "LandingZone", "open_landing"]
