"""Replication in Dagster (CONTRACT section 8): a sensor that starts a replication run when
the replica lags, the job that copies, and an asset check on ``runs`` that fails past a lag.

Off unless a replica is configured (``BTLAKE_REPLICA``): the sensor then skips every tick
saying so. It ticks every ``BTLAKE_REPLICA_INTERVAL`` seconds (default 60), so a batch an
ingestion run commits is on the replica about a minute later; a tick costs a listing of each
table's ``_delta_log`` on both sides (:meth:`Lake.replication_status`), and starts nothing
while a replication run is in flight or the replica is level.

The copying op runs in the lake-writer pool (:mod:`.concurrency`), like maintenance,
catch-up and re-derivations: in one instance it never runs beside them. On the replica
itself, maintenance writes no commit and deletes only files the log removed
(:mod:`btlake_pipelines.storage.replica`), so a replica's own schedule is safe too.

``replica_lag`` (on the ``runs`` asset, whose rows are copied last: a run is on the replica
when its ``runs`` row is) fails when the replica's newest commit is more than
``BTLAKE_REPLICA_MAX_LAG`` seconds (default 900) older than the primary's; every replication
run reports it, with the per-table versions as metadata, and it can be executed on demand.
"""

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    Config,
    DagsterRunStatus,
    DefaultSensorStatus,
    MetadataValue,
    OpExecutionContext,
    RunConfig,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    asset_check,
    in_process_executor,
    job,
    op,
    sensor,
)
from pydantic import Field

from btlake_pipelines.app.replication import ReplicationStatus
from btlake_pipelines.defs.concurrency import LAKE_WRITER_POOL
from btlake_pipelines.defs.resources import LakeResource
from btlake_pipelines.settings import current

REPLICATION_JOB = "replication_job"
CHECK = "replica_lag"
CHECKED_ASSET = "runs"
_IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED,
              DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


class ReplicateConfig(Config):
    to: str = Field(default="", description="the replica's root; default BTLAKE_REPLICA")


def _lag_metadata(status: ReplicationStatus) -> dict:
    return {"replica": MetadataValue.text(status.replica),
            "lag_versions": MetadataValue.int(status.lag_versions),
            "lag_seconds": MetadataValue.float(float(status.lag_seconds)),
            "tables": MetadataValue.json(status.to_dict()["tables"])}


def _passed(status: ReplicationStatus) -> bool:
    return status.lag_seconds <= current().replica_max_lag


def _description(status: ReplicationStatus) -> str:
    return (f"replica {status.lag_versions} version(s), {status.lag_seconds:g} s behind "
            f"(threshold {current().replica_max_lag} s)")


@op(pool=LAKE_WRITER_POOL,
    description="Copy what the lake holds and the replica lacks (btlake replicate), then "
                "report the replica's lag as the replica_lag check of runs.")
def replicate_lake(context: OpExecutionContext, config: ReplicateConfig,
                   lake: LakeResource) -> None:
    api = lake.get_lake()
    report = api.replicate(config.to or None)
    context.log.info(report.summary())
    status = api.replication_status(config.to or None)
    context.log_event(AssetCheckEvaluation(
        asset_key=AssetKey(CHECKED_ASSET), check_name=CHECK, passed=_passed(status),
        metadata=_lag_metadata(status), severity=AssetCheckSeverity.ERROR,
        description=_description(status)))


@job(name=REPLICATION_JOB, tags={"btlake/job": "replication"}, executor_def=in_process_executor,
     description="Replicate the lake to BTLAKE_REPLICA.")
def replication_job():
    replicate_lake()


@sensor(job=replication_job, minimum_interval_seconds=current().replica_interval,
        default_status=DefaultSensorStatus.RUNNING,
        description="Starts a replication run when the replica (BTLAKE_REPLICA) lags the lake; "
                    "off when no replica is configured.")
def replication_sensor(context: SensorEvaluationContext, lake: LakeResource):
    api = lake.get_lake()
    if not api.settings.replica:
        return SkipReason("no replica configured (BTLAKE_REPLICA)")
    if context.instance.get_run_records(
            RunsFilter(job_name=REPLICATION_JOB, statuses=_IN_FLIGHT), limit=1):
        return SkipReason("a replication run is in flight")
    status = api.replication_status()
    if status.lag_versions == 0:
        return SkipReason("the replica is level with the lake")
    versions = ",".join(f"{t}={v.primary_version}" for t, v in sorted(status.tables.items()))
    return RunRequest(run_key=f"replicate:{versions}",
                      run_config=RunConfig(ops={"replicate_lake": ReplicateConfig()}),
                      tags={"btlake/lag_versions": str(status.lag_versions)})


@asset_check(asset=CHECKED_ASSET, name=CHECK, blocking=False,
             description="The replica (BTLAKE_REPLICA) is at most BTLAKE_REPLICA_MAX_LAG "
                         "seconds behind the lake; passes when no replica is configured.")
def replica_lag_check(lake: LakeResource) -> AssetCheckResult:
    api = lake.get_lake()
    if not api.settings.replica:
        return AssetCheckResult(passed=True, description="no replica configured")
    status = api.replication_status()
    return AssetCheckResult(passed=_passed(status), metadata=_lag_metadata(status),
                            severity=AssetCheckSeverity.ERROR,
                            description=_description(status))
