"""The Dagster code location: assembles what ``defs/`` defines, nothing else.

Loaded by ``workspace.yaml`` (``dagster dev -w workspace.yaml``); resources default to the same
lake and landing zone as the ``btlake`` CLI (``BTLAKE_LAKE``, ``BTLAKE_LANDING``).
"""

from dagster import Definitions

from btlake_pipelines.defs.assets import all_assets, raw_bundles
from btlake_pipelines.defs.checks import all_checks
from btlake_pipelines.defs.coverage import coverage_checks, coverage_gap_sensor, fill_gaps_job
from btlake_pipelines.defs.jobs import all_jobs
from btlake_pipelines.defs.lineage import inputs_current, stale_runs_sensor
from btlake_pipelines.defs.resources import LakeResource, LandingZoneResource
from btlake_pipelines.defs.schedules import all_schedules
from btlake_pipelines.defs.sensors import landing_sensor
from btlake_pipelines.defs.streaming import (
    compact_streamed_job,
    streamed_compaction,
    streamed_partitions_sensor,
)

defs = Definitions(
    assets=[raw_bundles, *all_assets],
    asset_checks=[*all_checks, *coverage_checks, inputs_current],
    jobs=[*all_jobs, fill_gaps_job, compact_streamed_job],
    sensors=[landing_sensor, coverage_gap_sensor, streamed_partitions_sensor, stale_runs_sensor],
    schedules=[*all_schedules, streamed_compaction],
    resources={"lake": LakeResource(), "landing": LandingZoneResource()},
)
