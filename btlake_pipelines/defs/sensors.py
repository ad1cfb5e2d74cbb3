"""``landing_sensor``: running by default, it starts ingestion runs for bundles that land.

The decisions live in :mod:`btlake_pipelines.app.watch` (cursor, batching, retries); this
is the glue that asks the landing zone what is new (``Landing.list_new``: a local folder or
S3, the same code), asks Dagster whether an ingestion run is in flight, and registers the
markets the batch's manifests declare as ``market`` partitions before the run needs them (the
run adds any market found only in the data).

Freshness: a tick every 15 s, one ingestion run at a time; a bundle published to an idle
landing zone is visible in ``btlake runs`` well under a minute later (the end-to-end test
measures it).
"""

import time
from datetime import UTC, datetime, timedelta

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunConfig,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from btlake_pipelines.app.watch import WatchState, plan_tick
from btlake_pipelines.defs.jobs import INGEST_JOB, IngestConfig, ingest_job
from btlake_pipelines.defs.partitions import MARKET, market_ok, market_partitions
from btlake_pipelines.defs.resources import LandingZoneResource
from btlake_pipelines.settings import current

INTERVAL_SECONDS = current().sensor_interval
#: An ingestion run older than this no longer holds back the next batch (a worker that died
#: without Dagster noticing must not stop ingestion forever).
STALE_RUN = timedelta(hours=2)
_IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED,
              DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


@sensor(job=ingest_job, minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Starts ingestion runs for complete bundles in landing, a batch per run and "
                    "at most BTLAKE_INGEST_RUNS (default 2) in flight; the cursor keeps a "
                    "tick's work proportional to what is pending.")
def landing_sensor(context: SensorEvaluationContext, landing: LandingZoneResource):
    zone = landing.zone()
    state = WatchState.from_cursor(context.cursor)
    offered = zone.list_new(state.zone_cursor)
    in_flight = _ingest_in_flight(context)
    busy = in_flight >= landing.max_runs
    plan = plan_tick(state, offered.names, offered.cursor, zone.has_manifest, now=time.time(),
                     busy=busy, running=in_flight > 0, batch_size=landing.max_batch)
    cursor = plan.state.to_cursor()
    if not plan.batch:
        return SensorResult(skip_reason=plan.reason(busy), cursor=cursor)
    if plan.retried:
        context.log.warning(f"retrying {len(plan.retried)} bundle(s) still in landing after "
                            f"their run ended: {', '.join(plan.retried[:5])}")
    markets = {m for name in plan.batch if name not in plan.retried
               for m in zone.declared_markets(name)}
    known = set(context.instance.get_dynamic_partitions(MARKET))
    new = sorted(m for m in markets if m not in known and market_ok(m))
    return SensorResult(
        run_requests=[RunRequest(
            run_key=plan.run_key,
            run_config=RunConfig(ops={"ingest_bundles": IngestConfig(bundles=plan.batch)}),
            tags={"btlake/bundles": str(len(plan.batch))})],
        dynamic_partitions_requests=[market_partitions.build_add_request(new)] if new else [],
        cursor=cursor,
    )


def _ingest_in_flight(context: SensorEvaluationContext) -> int:
    """Ingestion runs in flight (runs older than :data:`STALE_RUN` do not count)."""
    records = context.instance.get_run_records(
        RunsFilter(job_name=INGEST_JOB, statuses=_IN_FLIGHT), limit=50)
    cutoff = datetime.now(UTC) - STALE_RUN
    return sum(r.create_timestamp >= cutoff for r in records)

