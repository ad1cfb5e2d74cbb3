"""Where the lake and the landing zone are, as configurable resources.

Unset fields fall back to the settings the CLI uses too (``BTLAKE_LAKE``, ``BTLAKE_LANDING``,
then ``./btlake-data``; see :mod:`btlake_pipelines.settings`), so Dagster and ``btlake`` always
see the same lake. The landing zone is one interface with a local and an S3 implementation;
nothing downstream knows which.
"""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from btlake_pipelines.ingest.watch import DEFAULT_BATCH_SIZE, DEFAULT_INGEST_RUNS
from btlake_pipelines.landing import LandingZone, open_landing
from btlake_pipelines.settings import current, lake_uri


class LakeResource(ConfigurableResource):
    """The lake root: a folder or ``s3://bucket/prefix``."""

    uri: str | None = Field(default=None, description="lake root; default BTLAKE_LAKE, then "
                                                      "./btlake-data/lake")

    @property
    def root(self) -> str:
        return lake_uri(self.uri)


class LandingZoneResource(ConfigurableResource):
    """The landing zone the sensor watches, and how many bundles one ingestion run takes."""

    uri: str | None = Field(default=None, description="landing zone; default BTLAKE_LANDING, "
                                                      "then ./btlake-data/landing")
    batch_size: int | None = Field(default=None, description="bundles per ingestion run; "
                                   f"default BTLAKE_BATCH_SIZE, then {DEFAULT_BATCH_SIZE}")

    def zone(self) -> LandingZone:
        return open_landing(self.uri)

    max_runs_in_flight: int | None = Field(
        default=None, description="ingestion runs in flight at once; default "
        f"BTLAKE_INGEST_RUNS, then {DEFAULT_INGEST_RUNS}")

    @property
    def max_runs(self) -> int:
        return max(1, self.max_runs_in_flight or current().ingest_runs or DEFAULT_INGEST_RUNS)

    @property
    def max_batch(self) -> int:
        return self.batch_size or current().batch_size or DEFAULT_BATCH_SIZE
