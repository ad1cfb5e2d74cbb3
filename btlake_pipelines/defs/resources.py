"""Where the lake and the landing zone are, as configurable resources.

Unset fields fall back to the settings the CLI uses too (``BTLAKE_LAKE``, ``BTLAKE_LANDING``,
then ``./btlake-data``; see :mod:`btlake_pipelines.settings`), so Dagster and ``btlake`` always
see the same lake. Each hands out the application layer's object (a
:class:`~btlake_pipelines.app.lake.Lake`, a :class:`~btlake_pipelines.app.landing.Landing`),
whose methods are all the Dagster code calls; a local folder and an S3 prefix look the same.
"""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from btlake_pipelines.app.lake import Lake
from btlake_pipelines.app.landing import Landing
from btlake_pipelines.app.watch import DEFAULT_BATCH_SIZE, DEFAULT_INGEST_RUNS
from btlake_pipelines.settings import current


class LakeResource(ConfigurableResource):
    """The lake root: a folder or ``s3://bucket/prefix``."""

    uri: str | None = Field(default=None, description="lake root; default BTLAKE_LAKE, then "
                                                      "./btlake-data/lake")

    def get_lake(self) -> Lake:
        return Lake(self.uri)


class LandingZoneResource(ConfigurableResource):
    """The landing zone the sensor watches, and how many bundles one ingestion run takes."""

    uri: str | None = Field(default=None, description="landing zone; default BTLAKE_LANDING, "
                                                      "then ./btlake-data/landing")
    batch_size: int | None = Field(default=None, description="bundles per ingestion run; "
                                   f"default BTLAKE_BATCH_SIZE, then {DEFAULT_BATCH_SIZE}")
    max_runs_in_flight: int | None = Field(
        default=None, description="ingestion runs in flight at once; default "
        f"BTLAKE_INGEST_RUNS, then {DEFAULT_INGEST_RUNS}")

    def zone(self) -> Landing:
        return Landing(self.uri)

    @property
    def max_runs(self) -> int:
        return max(1, self.max_runs_in_flight or current().ingest_runs or DEFAULT_INGEST_RUNS)

    @property
    def max_batch(self) -> int:
        return self.batch_size or current().batch_size or DEFAULT_BATCH_SIZE
