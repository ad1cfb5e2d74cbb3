"""Op jobs for the work that is not "materialize these partitions": ingest a batch of bundles
(launched by the landing sensor), nightly maintenance, the hourly Delta log upkeep and the
nightly catch-up.

A batch touches arbitrary partitions of several tables at once, which no single run partition
can describe, so the ingestion job is an op that records one materialization per partition it
touched (with the partition's metadata) and one check evaluation per table concerned.

Each job is one op, run in the run worker's own process (``in_process_executor``): a step
subprocess would add about 3 s to every batch, which is most of the freshness budget.
"""

from datetime import UTC, date, datetime, timedelta

from dagster import (
    AssetKey,
    Config,
    DagsterInstance,
    OpExecutionContext,
    RetryPolicy,
    in_process_executor,
    job,
    op,
)
from pydantic import Field

from btlake_pipelines.app.lake import Lake
from btlake_pipelines.app.maintenance import (
    DEFAULT_RETENTION_HOURS,
    log_upkeep_report,
    maintenance_report,
)
from btlake_pipelines.app.partitions import BatchResult
from btlake_pipelines.app.tables import Key
from btlake_pipelines.defs.concurrency import LAKE_WRITER_POOL
from btlake_pipelines.defs.metadata import check_evaluation, partition_events
from btlake_pipelines.defs.partitions import MARKET, parse_key, representable
from btlake_pipelines.defs.resources import LakeResource, LandingZoneResource

INGEST_JOB = "ingest_job"


class IngestConfig(Config):
    bundles: list[str] = Field(description="bundle names in landing (the sensor fills this)")


@op(description="Ingest one batch of bundles from landing; record the partitions it touched "
                "and the validation results. Outside the lake-writer pool: ingestion runs "
                "commit concurrently (Delta optimistic concurrency, conflicting waves planned "
                "again), and re-derivations wait for their batches to be logged.")
def ingest_bundles(context: OpExecutionContext, config: IngestConfig, lake: LakeResource,
                   landing: LandingZoneResource) -> None:
    # in a child process: a bundle that crashes it is retried once, then quarantined as
    # ``ingest_crashed``; the run itself survives (no sensor retry loop)
    api = lake.get_lake()
    batch = api.ingest(landing.uri, list(config.bundles), isolated=True)
    context.log.info(batch.summary())
    for r in batch.quarantined:
        context.log.warning(f"{r.bundle} quarantined: {r.error}")
    record_batch(context, api, batch)


def record_batch(context: OpExecutionContext, lake: Lake, batch: BatchResult) -> None:
    """One materialization per Dagster partition the batch wrote (markets seen only in the
    data become partitions first) and one check evaluation per table."""
    touched = lake.batch_partitions(batch)
    add_markets(context.instance, {k[0] for parts in touched.versions.values() for k in parts
                                   if k[0] and representable(k)})
    skipped = 0
    for table, parts in touched.versions.items():
        skipped += sum(not representable(k) for k in parts)
        for event in partition_events(lake, table, parts, sources=touched.sources[table],
                                      batch_runs=touched.runs,
                                      tags={"btlake/batch": batch.batch_id}):
            context.log_event(event)
    if skipped:
        context.log.warning(f"{skipped} partition(s) have no Dagster partition (dated before "
                            "the first partition, in the future, or a market name Dagster "
                            "cannot use as a key); their data is in the lake all the same")
    for summary in lake.validation_report(batch.results).values():
        context.log_event(check_evaluation(summary))


def add_markets(instance: DagsterInstance, markets: set[str]) -> None:
    new = sorted(m for m in markets if not instance.has_dynamic_partition(MARKET, m))
    if new:
        instance.add_dynamic_partitions(MARKET, new)


@job(name=INGEST_JOB, tags={"btlake/job": "ingest"}, executor_def=in_process_executor,
     description="Ingest a batch of landed bundles (launched by landing_sensor).")
def ingest_job():
    ingest_bundles()


class MaintainConfig(Config):
    day: str = Field(default="", description="date whose partitions to compact and Z-order "
                                             "(YYYY-MM-DD); default yesterday (UTC)")
    retention_hours: int = Field(default=DEFAULT_RETENTION_HOURS,
                                 description="vacuum files older than this")


@op(retry_policy=RetryPolicy(max_retries=2, delay=60), pool=LAKE_WRITER_POOL,
    description="Compact and Z-order one day's partitions, checkpoint, vacuum past retention.")
def maintain_lake(context: OpExecutionContext, config: MaintainConfig,
                  lake: LakeResource) -> None:
    day = (date.fromisoformat(config.day) if config.day
           else datetime.now(UTC).date() - timedelta(days=1))
    api = lake.get_lake()
    markets = api.markets_on(day)
    context.log.info(f"maintaining {day}: markets {', '.join(markets) or '(none)'}")
    reports = api.maintain(partitions=[(m, day) for m in markets],
                           retention_hours=config.retention_hours)
    for line in maintenance_report(reports):
        context.log.info(line)


@job(tags={"btlake/job": "maintenance"}, executor_def=in_process_executor,
     description="Nightly lake maintenance.")
def maintenance_job():
    maintain_lake()


@op(retry_policy=RetryPolicy(max_retries=2, delay=60),
    description="Checkpoint every table with commits past its last checkpoint; remove log "
                "files past the log retention.")
def tidy_delta_logs(context: OpExecutionContext, lake: LakeResource) -> None:
    for line in log_upkeep_report(lake.get_lake().log_upkeep()):
        context.log.info(line)


@job(tags={"btlake/job": "log_upkeep"}, executor_def=in_process_executor,
     description="Hourly Delta log upkeep, so opening a table stays cheap under continuous "
                 "ingestion. Outside the lake-writer pool: it writes no commit and no data "
                 "file, so it never waits behind (or holds up) an ingestion run.")
def log_upkeep_job():
    tidy_delta_logs()


class CatchUpConfig(Config):
    lookback_days: int = Field(default=7, description="consider bundles handled in the last "
                                                      "N days; 0 = the whole history")
    limit: int = Field(default=500, description="at most this many partitions re-derived "
                                                "per run (the rest on the next run)")


@op(pool=LAKE_WRITER_POOL,
    description="Re-derive partitions the archive holds but the lake lacks; record "
                "partitions the lake holds but Dagster has not recorded.")
def catch_up(context: OpExecutionContext, config: CatchUpConfig, lake: LakeResource) -> None:
    instance = context.instance
    since = (datetime.now(UTC) - timedelta(days=config.lookback_days)
             if config.lookback_days > 0 else None)

    def recorded(table: str) -> set[Key]:
        return {parse_key(k) for k in instance.get_materialized_partitions(AssetKey(table))}

    api = lake.get_lake()
    plan = api.catch_up_plan(since=since, recorded=recorded, accept=representable,
                             limit=config.limit)
    missing, unrecorded = plan.counts()
    context.log.info(f"{missing} partition(s) to re-derive, {unrecorded} to record")
    add_markets(instance, {m for group in (plan.missing, plan.unrecorded)
                           for keys in group.values() for m, _ in keys if m})
    for table, keys in plan.missing.items():
        results = api.rederive_days(table, keys)
        for event in partition_events(
                api, table, {r.part: r.version for r in results if r.rows},
                sources={r.part: r.sources for r in results},
                notes={r.part: r.note for r in results if r.note},
                tags={"btlake/catch_up": "rederived"}):
            context.log_event(event)
    for table, keys in plan.unrecorded.items():
        for event in partition_events(api, table, dict.fromkeys(keys),
                                      tags={"btlake/catch_up": "recorded"}):
            context.log_event(event)


@job(tags={"btlake/job": "catch_up"}, executor_def=in_process_executor,
     description="Nightly catch-up of missed partitions.")
def catch_up_job():
    catch_up()


all_jobs = [ingest_job, maintenance_job, log_upkeep_job, catch_up_job]
