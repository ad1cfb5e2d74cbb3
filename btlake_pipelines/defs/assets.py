"""One asset per lake table, named as the table and partitioned as it is stored.

Ingestion (the landing sensor's runs) is what normally fills these partitions and records their
materializations. Materializing a partition here, from the UI or a backfill, re-derives it
from the archived raw bundles: one Delta commit whose escaped predicate names exactly the
requested partitions, written by ``rederive`` itself, never through an IO manager (whose
multi-partition overwrite can wipe a table, dagster-io/dagster#34064). Backfills use a
single-run policy, so a range becomes one run and one commit.
"""

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from btlake_pipelines.contract.tables import FACT_TABLES, RUNS
from btlake_pipelines.defs.concurrency import LAKE_WRITER_POOL
from btlake_pipelines.defs.metadata import contract_schema, partition_metadata
from btlake_pipelines.defs.partitions import daily_partitions, fact_partitions, parse_key
from btlake_pipelines.defs.resources import LakeResource
from btlake_pipelines.ingest.rederive import Rederived, rederive, rederive_runs
from btlake_pipelines.ingest.report import partition_facts, table_facts
from btlake_pipelines.storage.delta import open_table

GROUP = "lake"
KINDS = {"deltalake", "polars"}

raw_bundles = AssetSpec(
    "raw_bundles",
    description="Result bundles as published to landing, and the archive copy kept of each "
                "handling under <lake>/_archive/. Every table below is derived from them.",
    group_name="landing",
    kinds={"folder"},
)

_DESCRIPTIONS = {
    "trades": "Fills of every backtest run.",
    "equity": "Equity curve of every backtest run.",
    "events": "Run events (signals, orders) and market events.",
    "ticks": "Market trades and quotes, stored once per market, symbol and time range.",
    "l2": "Order-book levels (snapshots and updates), stored once per market data slice.",
}


def _record(context: AssetExecutionContext, lake: str, table: str,
            results: list[Rederived]) -> MaterializeResult:
    """Partition-scoped metadata for each requested key, and a log line per partition."""
    dt = open_table(lake, table)
    facts = table_facts(lake, table, dt) if dt is not None else None
    details = partition_facts(lake, table, [r.part for r in results], dt=dt, facts=facts)
    by_part = {r.part: r for r in results}
    for key in context.partition_keys:
        r = by_part[parse_key(key)]
        if r.note:
            context.log.warning(f"{table} {key}: {r.note}")
        else:
            context.log.info(f"{table} {key}: {r.rows} row(s) from {len(r.sources)} archived "
                             f"bundle(s), Delta version {r.version}")
        if facts is None:
            md = {"dagster/partition_row_count": MetadataValue.int(0),
                  "note": MetadataValue.text(r.note or "the table has no data yet")}
        else:
            md = partition_metadata(facts, details[r.part], version=r.version,
                                    sources=r.sources, note=r.note)
        context.add_asset_metadata(md, partition_key=key)
    written = sorted({r.version for r in results if r.version is not None})
    return MaterializeResult(metadata={"btlake/operation": "rederive",
                                       "partitions_rewritten": len([r for r in results
                                                                    if r.version is not None]),
                                       "delta_versions": MetadataValue.json(written)})


#: What every table asset shares: backfills as one run, one lake writer at a time, fed by the
#: raw bundles.
_TABLE_ASSET = dict(backfill_policy=BackfillPolicy.single_run(), pool=LAKE_WRITER_POOL,
                    deps=[raw_bundles], group_name=GROUP, kinds=KINDS)


def fact_asset(table: str) -> AssetsDefinition:
    @asset(
        name=table,
        partitions_def=fact_partitions,
        **_TABLE_ASSET,
        description=f"{_DESCRIPTIONS[table]} Materializing a partition re-derives it from the "
                    "archived bundles.",
        metadata={"dagster/column_schema": contract_schema(table),
                  "dagster/table_name": f"btlake.{table}",
                  "scope": FACT_TABLES[table].scope.value},
    )
    def _table(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        parts = [parse_key(k) for k in context.partition_keys]
        results = rederive(lake.root, table, [(m, d) for m, d in parts if m is not None])
        return _record(context, lake.root, table, results)

    return _table


@asset(
    name=RUNS,
    partitions_def=daily_partitions,
    **_TABLE_ASSET,
    description="One row per run: manifest, params, metrics, table versions, archive copy. "
                "Partitioned by the run's creation date; run ids are never partitions. "
                "Materializing a date rebuilds its rows from the archived manifests.",
    metadata={"dagster/table_name": f"btlake.{RUNS}"},
)
def runs(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    days = [parse_key(k)[1] for k in context.partition_keys]
    return _record(context, lake.root, RUNS, rederive_runs(lake.root, days))


table_assets = [fact_asset(t) for t in FACT_TABLES]
all_assets = [*table_assets, runs]
