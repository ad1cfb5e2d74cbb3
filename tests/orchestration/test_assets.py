"""Materializing table assets re-derives exactly the requested partitions.

The known failure this guards against (dagster-io/dagster#34064): a multi-partition,
single-run backfill through an IO manager overwrote a whole Delta table. Here every partition
outside the request must keep the same data files, byte for byte, and the same active files in
the Delta log; the requested ones must hold the same rows as before.
"""

from __future__ import annotations

from datetime import date

import pytest
from dagster import AssetKey, BackfillPolicy, materialize

from btlake_pipelines.defs.assets import all_assets
from btlake_pipelines.defs.checks import all_checks
from btlake_pipelines.defs.resources import LakeResource
from btlake_pipelines.storage.delta import open_table

try:
    from . import orchestration_kit as kit
except ImportError:
    import orchestration_kit as kit

D1, D2 = kit.DAYS
NOV = "2024-11-01"  # the month key of both days
RANGE_TAGS = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
REQUIRED_METADATA = {"delta_version", "dagster/row_count", "dagster/partition_row_count",
                     "dagster/column_schema", "dagster/table_name", "runs", "preview",
                     "source_bundles", "dates"}


def run(instance, lake, table, *, key=None, start=None, end=None):
    tags = dict(zip(RANGE_TAGS, (start, end), strict=True)) if start else None
    result = materialize([*all_assets, *all_checks], selection=[AssetKey(table)],
                         partition_key=key, tags=tags, instance=instance,
                         resources={"lake": LakeResource(uri=lake)})
    assert result.success
    materializations = [ev.event_specific_data.materialization
                        for ev in result.get_asset_materialization_events()]
    return {str(m.partition): m.metadata for m in materializations}


def rows_of(lake, table, parts):
    return {p: kit.partition_rows(lake, table, *p) for p in parts}


def test_every_table_asset_backfills_in_a_single_run():
    for assets_def in all_assets:
        assert assets_def.backfill_policy == BackfillPolicy.single_run()


@pytest.mark.parametrize(("table", "market", "days"), [
    ("trades", "XNAS", [D1, D2]),
    ("l2", "BINANCE", [date(2024, 8, 8), date(2024, 8, 9)]),
])
def test_one_month_rewrites_its_days_of_that_market(built_lake, dagster_instance, table,
                                                    market, days):
    """A monthly key re-derives every daily Delta partition of that market in that month, in
    one commit, and nothing else; its materialization lists the days."""
    lake = built_lake.lake
    month = days[0].replace(day=1).isoformat()
    assert sorted(d for m, d in kit.stored_partitions(lake, table)
                  if m == market and d.isoformat()[:7] == month[:7]) == days
    before, rows = kit.fingerprint(lake), rows_of(lake, table, [(market, d) for d in days])
    events = run(dagster_instance, lake, table, key=f"{month}|{market}")

    assert list(events) == [f"{month}|{market}"]
    metadata = events[f"{month}|{market}"]
    assert set(metadata) >= REQUIRED_METADATA
    assert metadata["dates"].value == [str(d) for d in days]
    assert metadata["dagster/partition_row_count"].value == sum(r.height for r in rows.values())
    assert metadata["delta_version"].value == open_table(lake, table).version()
    assert metadata["source_bundles"].value
    kit.assert_untouched(before, kit.fingerprint(lake),
                         {table: {kit.folder_of(table, market, d) for d in days}})
    for part, expected in rows.items():
        assert kit.partition_rows(lake, table, *part).equals(expected)


def test_a_two_by_two_range_rewrites_those_partitions_only(built_lake, dagster_instance):
    lake = built_lake.lake
    # markets were registered XNAS, XNYS, BINANCE: the range covers XNAS..XNYS in October
    # (nothing stored) and November (both days)
    parts = [(m, d) for m in ("XNAS", "XNYS") for d in (D1, D2)]
    before, rows = kit.fingerprint(lake), rows_of(lake, "trades", parts)
    version = open_table(lake, "trades").version()

    events = run(dagster_instance, lake, "trades", start="2024-10-01|XNAS", end=f"{NOV}|XNYS")

    assert sorted(events) == sorted(f"{month}|{m}" for month in ("2024-10-01", NOV)
                                    for m in ("XNAS", "XNYS"))
    assert open_table(lake, "trades").version() == version + 1  # one commit for the range
    assert {events[f"{NOV}|{m}"]["delta_version"].value for m in ("XNAS", "XNYS")} == {
        version + 1}
    assert events["2024-10-01|XNAS"]["dagster/partition_row_count"].value == 0
    assert events["2024-10-01|XNAS"]["dates"].value == []
    after = kit.fingerprint(lake)
    kit.assert_untouched(before, after, {"trades": {kit.folder_of("trades", m, d)
                                                    for m, d in parts}})
    for folder in (kit.folder_of("trades", "BINANCE", D1), kit.folder_of("trades", "BINANCE",
                                                                          D2)):
        assert after["trades"]["files"][folder] == before["trades"]["files"][folder]
    for part, expected in rows.items():
        assert kit.partition_rows(lake, "trades", *part).equals(expected)


def test_the_runs_asset_rebuilds_one_date(built_lake, dagster_instance):
    lake = built_lake.lake
    before = kit.fingerprint(lake)
    expected = kit.partition_rows(lake, "runs", None, D2)
    events = run(dagster_instance, lake, "runs", key=str(D2))
    assert events[str(D2)]["dagster/partition_row_count"].value == 6
    assert kit.partition_rows(lake, "runs", None, D2).equals(expected)
    kit.assert_untouched(before, kit.fingerprint(lake), {"runs": {("date=2024-11-05",)}})


def test_a_partition_without_data_writes_nothing(built_lake, dagster_instance):
    lake = built_lake.lake
    before = kit.fingerprint(lake)
    versions = {t: open_table(lake, t).version() for t in ("trades", "runs")}
    events = run(dagster_instance, lake, "trades", key="2024-12-01|XNAS")
    assert events["2024-12-01|XNAS"]["dagster/partition_row_count"].value == 0
    assert {t: open_table(lake, t).version() for t in versions} == versions
    assert kit.fingerprint(lake) == before
