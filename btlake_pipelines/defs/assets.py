"""One asset per lake table, named as the table and partitioned as it is stored.

Ingestion (the landing sensor's runs) is what normally fills these partitions and records their
materializations. Materializing a partition here, from the UI or a backfill, re-derives it
from the archived raw bundles: a fact partition ``(month, market)`` rewrites the daily Delta
partitions of that market in that month, a ``runs`` partition one day. The commits' escaped
predicates name exactly those daily partitions; they are written by ``rederive`` itself,
never through an IO manager (whose multi-partition overwrite can wipe a table,
dagster-io/dagster#34064). Backfills use a single-run policy, so a range becomes one run, and
one commit unless it spans more than a few market-months (see ``rederive``).
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

from btlake_pipelines.app.lake import Lake
from btlake_pipelines.app.partitions import Rederived
from btlake_pipelines.app.tables import FACT_TABLES, RUNS, Key, catalog_key, scope
from btlake_pipelines.defs.concurrency import LAKE_WRITER_POOL
from btlake_pipelines.defs.metadata import contract_schema, partitions_metadata
from btlake_pipelines.defs.partitions import daily_partitions, fact_partitions, parse_key
from btlake_pipelines.defs.resources import LakeResource

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


def _rederive(context: AssetExecutionContext, lake: Lake, table: str) -> MaterializeResult:
    """Re-derive the requested partitions; partition-scoped metadata for each requested key
    (its daily partitions grouped), and a log line per key."""
    requested = {key: parse_key(key) for key in context.partition_keys}
    results = lake.rederive(table, requested.values())
    found = partitions_metadata(lake, table, {r.part: r.version for r in results},
                                keys=requested.values(),
                                sources={r.part: r.sources for r in results},
                                notes={r.part: r.note for r in results if r.note})
    by_key: dict[Key, list[Rederived]] = {}
    for r in results:
        by_key.setdefault(catalog_key(table, *r.part), []).append(r)
    for key, part in requested.items():
        days = by_key.get(part, [])
        written = [r for r in days if r.version is not None]
        for r in days:
            if r.note:
                context.log.warning(f"{table} {key} {r.day}: {r.note}")
        context.log.info(
            f"{table} {key}: {sum(r.rows for r in written)} row(s) in {len(written)} daily "
            f"partition(s) from {len({s for r in written for s in r.sources})} archived "
            f"bundle(s), Delta version(s) {sorted({r.version for r in written}) or 'none'}")
        md = (found or {}).get(part)
        if md is None:
            md = {"dagster/partition_row_count": MetadataValue.int(0),
                  "dates": MetadataValue.json([]),
                  "note": MetadataValue.text("the table has no data yet")}
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
        description=f"{_DESCRIPTIONS[table]} Partitioned by month and market over daily Delta "
                    "partitions; materializing a partition re-derives that market's days of "
                    "that month from the archived bundles.",
        metadata={"dagster/column_schema": contract_schema(table),
                  "dagster/table_name": f"btlake.{table}",
                  "scope": scope(table)},
    )
    def _table(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        return _rederive(context, lake.get_lake(), table)

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
    return _rederive(context, lake.get_lake(), RUNS)


table_assets = [fact_asset(t) for t in FACT_TABLES]
all_assets = [*table_assets, runs]
