"""Coverage gaps in Dagster: an asset check per market-data asset and a sensor that fills gaps
from the archive.

- ``coverage_gaps`` (on ``ticks``, ``l2``, ``events``): warns while a symbol misses a session
  of its market's exchange calendar between its first and last stored date, with the gaps in
  its metadata (count, markets, a sample, and how many the archive can fill).
- ``coverage_gap_sensor``: when a market-data table has new commits since its last tick
  (cursor: the table versions it looked at), it asks for the gaps the archive holds rows for
  (:meth:`Lake.fillable_gaps`) and requests one ``fill_gaps_job`` run re-deriving exactly
  those daily partitions. A run key per (table, partitions) means the same request is never
  made twice; gaps the archive cannot fill (the source never carried them) only show in the
  check.
"""

import hashlib
import json
from datetime import date

from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    Config,
    DefaultSensorStatus,
    MetadataValue,
    OpExecutionContext,
    RunConfig,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    asset_check,
    in_process_executor,
    job,
    op,
    sensor,
)
from pydantic import Field

from btlake_pipelines.defs.concurrency import LAKE_WRITER_POOL
from btlake_pipelines.defs.jobs import add_markets
from btlake_pipelines.defs.metadata import partition_events
from btlake_pipelines.defs.resources import LakeResource

MARKET_DATA = ("ticks", "l2", "events")
CHECK_NAME = "coverage_gaps"
FILL_JOB = "fill_gaps_job"
#: Gaps listed in a check's metadata; daily partitions one fill run re-derives at most.
SAMPLE_GAPS = 20
MAX_PARTITIONS_PER_RUN = 186
SENSOR_INTERVAL_SECONDS = 600


def coverage_gaps_check(table: str) -> AssetChecksDefinition:
    @asset_check(asset=table, name=CHECK_NAME, blocking=False,
                 description=f"Every symbol of {table} has rows on every session of its "
                             "market's exchange calendar between its first and last stored "
                             "date (weekends and holidays excepted; markets without a "
                             "calendar trade every day). Warns with the gaps.")
    def _check(lake: LakeResource) -> AssetCheckResult:
        api = lake.get_lake()
        found = api.coverage(table)
        gaps = found.gaps()
        fillable = api.fillable_gaps(found) if gaps else []
        sample = "\n".join(f"| {g.market} | {g.symbol} | {g.date} |" for g in gaps[:SAMPLE_GAPS])
        return AssetCheckResult(
            passed=not gaps, severity=AssetCheckSeverity.WARN,
            description=f"{len(gaps)} missing session(s)" if gaps else "no gaps",
            metadata={
                "gaps": MetadataValue.int(len(gaps)),
                "symbols_with_gaps": MetadataValue.int(len({(g.market, g.symbol)
                                                            for g in gaps})),
                "markets": MetadataValue.json(sorted({g.market for g in gaps})),
                "fillable_partitions": MetadataValue.int(len(fillable)),
                "calendars": MetadataValue.json(found.calendars),
                "sample": MetadataValue.md("| market | symbol | date |\n|---|---|---|\n"
                                           + sample) if gaps else MetadataValue.md("none"),
            })

    return _check


coverage_checks = [coverage_gaps_check(t) for t in MARKET_DATA]


class FillGapsConfig(Config):
    table: str = Field(description="market-data table: ticks, l2 or events")
    partitions: list[str] = Field(description="daily partitions MARKET|YYYY-MM-DD to re-derive")


@op(pool=LAKE_WRITER_POOL,
    description="Re-derive from the archive the daily partitions that hold coverage gaps.")
def fill_gaps(context: OpExecutionContext, config: FillGapsConfig, lake: LakeResource) -> None:
    api = lake.get_lake()
    parts = [_parse(p) for p in config.partitions]
    add_markets(context.instance, {m for m, _ in parts})
    results = api.rederive_days(config.table, parts)
    for event in partition_events(
            api, config.table, {r.part: r.version for r in results if r.rows},
            sources={r.part: r.sources for r in results},
            notes={r.part: r.note for r in results if r.note},
            tags={"btlake/coverage": "gap_fill"}):
        context.log_event(event)
    left = api.coverage(config.table).gap_partitions()
    still = sorted(set(left) & set(parts))
    context.log.info(f"re-derived {len(parts)} partition(s) of {config.table}; "
                     f"{len(still)} still have gaps")


@job(name=FILL_JOB, tags={"btlake/job": "fill_gaps"}, executor_def=in_process_executor,
     description="Fill coverage gaps from the archive (launched by coverage_gap_sensor).")
def fill_gaps_job():
    fill_gaps()


@sensor(job=fill_gaps_job, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Requests re-derivation of the daily partitions whose coverage gaps the "
                    "archive can fill; looks again only after a market-data table changed.")
def coverage_gap_sensor(context: SensorEvaluationContext, lake: LakeResource):
    api = lake.get_lake()
    seen = json.loads(context.cursor) if context.cursor else {}
    versions = {r.table: r.version for r in api.refresh_coverage(MARKET_DATA)}
    if versions == seen:
        return SensorResult(skip_reason="no market-data commit since the last look",
                            cursor=context.cursor)
    requests = []
    for table in MARKET_DATA:
        if versions.get(table) is None or versions.get(table) == seen.get(table):
            continue
        found = api.coverage(table)
        if found.gap_frame.is_empty():
            continue
        parts = api.fillable_gaps(found)[:MAX_PARTITIONS_PER_RUN]
        if not parts:
            continue
        keys = [f"{m}|{d.isoformat()}" for m, d in parts]
        digest = hashlib.sha256("\n".join([table, *keys]).encode()).hexdigest()[:16]
        requests.append(RunRequest(
            run_key=f"fill-{table}-{digest}",
            run_config=RunConfig(ops={"fill_gaps": FillGapsConfig(table=table,
                                                                  partitions=keys)}),
            tags={"btlake/table": table, "btlake/partitions": str(len(keys))}))
    cursor = json.dumps(versions, sort_keys=True)
    if not requests:
        return SensorResult(skip_reason="no gap the archive can fill", cursor=cursor)
    return SensorResult(run_requests=requests, cursor=cursor)


def _parse(key: str) -> tuple[str, date]:
    market, _, day = key.rpartition("|")
    return market, date.fromisoformat(day)
