"""Streamed market data in Dagster: what ``btlake flight`` appends shows up as
materializations of the market-data assets, and a schedule compacts the partitions a stream
has finished with.

- ``streamed_partitions_sensor`` (running by default, every 30 s): reads the streamed commits
  of ``ticks``, ``l2`` and ``events`` since its cursor (one small commit file per new version:
  a tick costs what is new) and reports one runless materialization per catalog partition
  (market x month) and window of commits, with the rows, Delta versions, daily partitions and
  each writer's last seq; never one per batch. Markets new to Dagster are added as partitions.
- ``streamed_compaction`` (hourly, at :20): bin-packs the small files streams left in
  today's and yesterday's partitions (only those files: an hour's worth), beside the running
  streams, whose blind appends do not conflict with it (tested with maintenance mid-stream).
  The nightly maintenance Z-orders the closed day as for any partition.
"""

import json
from datetime import UTC, date, datetime, timedelta

from dagster import (
    AssetKey,
    AssetMaterialization,
    Config,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MetadataValue,
    OpExecutionContext,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    in_process_executor,
    job,
    op,
    schedule,
    sensor,
)
from pydantic import Field

from btlake_pipelines.app.maintenance import maintenance_report
from btlake_pipelines.app.streaming import StreamedPartition, stream_tables
from btlake_pipelines.defs.concurrency import LAKE_WRITER_POOL
from btlake_pipelines.defs.partitions import MARKET, fact_key, market_partitions, representable
from btlake_pipelines.defs.resources import LakeResource

SENSOR_SECONDS = 30


def _materialization(table: str, key, parts: list[StreamedPartition]) -> AssetMaterialization:
    writers: dict[str, int] = {}
    for p in parts:
        writers.update(p.writers)
    return AssetMaterialization(
        asset_key=AssetKey(table), partition=key,
        description=f"{sum(p.commits for p in parts)} streamed commit(s)",
        metadata={
            "btlake/operation": "stream",
            "dagster/row_count": sum(p.rows for p in parts),
            "btlake/delta_version": max(p.last_version for p in parts),
            "btlake/first_version": min(p.first_version for p in parts),
            "btlake/commits": sum(p.commits for p in parts),
            "btlake/daily_partitions": MetadataValue.json(
                {p.date: p.rows for p in sorted(parts, key=lambda p: p.date)}),
            "btlake/writers": MetadataValue.json(writers),
        })


@sensor(minimum_interval_seconds=SENSOR_SECONDS, default_status=DefaultSensorStatus.RUNNING,
        description="Reports the partitions streamed by 'btlake flight' as materializations "
                    "of ticks, l2 and events: one per partition and window of commits.")
def streamed_partitions_sensor(context: SensorEvaluationContext, lake: LakeResource):
    cursor = json.loads(context.cursor) if context.cursor else {}
    api = lake.get_lake()
    events, markets = [], set()
    for table in stream_tables():
        found = api.streamed_since(table, int(cursor.get(table, -1)))
        cursor[table] = found.upto
        groups: dict[str, tuple[object, list[StreamedPartition]]] = {}
        for part in found.partitions:
            day = date.fromisoformat(part.date)
            if not representable((part.market, day)):
                continue
            key = fact_key(part.market, day)
            groups.setdefault(str(key), (key, []))[1].append(part)
            markets.add(part.market)
        events += [_materialization(table, key, parts) for key, parts in groups.values()]
    text = json.dumps(cursor, sort_keys=True)
    if not events:
        return SensorResult(skip_reason="no streamed commits since the last tick", cursor=text)
    known = set(context.instance.get_dynamic_partitions(MARKET))
    new = sorted(m for m in markets if m not in known)
    return SensorResult(
        asset_events=events, cursor=text,
        dynamic_partitions_requests=[market_partitions.build_add_request(new)] if new else [])


class CompactStreamedConfig(Config):
    day: str = Field(default="", description="the UTC day whose streamed partitions to "
                                             "compact (YYYY-MM-DD); default today and "
                                             "yesterday")


@op(pool=LAKE_WRITER_POOL,
    description="Bin-pack the small files streams left in a day's partitions.")
def compact_streamed(context: OpExecutionContext, config: CompactStreamedConfig,
                     lake: LakeResource) -> None:
    today = datetime.now(UTC).date()
    days = [date.fromisoformat(config.day)] if config.day else [today - timedelta(days=1),
                                                                today]
    api = lake.get_lake()
    for day in days:
        reports = api.compact_streamed(day)
        context.log.info(f"compacted the streamed partitions of {day}")
        for line in maintenance_report(reports):
            context.log.info(line)


@job(tags={"btlake/job": "compact-streamed"}, executor_def=in_process_executor,
     description="Bin-pack the streamed tables' small files of today and yesterday.")
def compact_streamed_job():
    compact_streamed()


@schedule(job=compact_streamed_job, cron_schedule="20 * * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING)
def streamed_compaction(context: ScheduleEvaluationContext) -> RunRequest:
    hour = context.scheduled_execution_time.strftime("%Y-%m-%dT%H")
    return RunRequest(run_key=f"compact-streamed-{hour}")
