"""Market data is stored once: slices replace by (market, symbol, date, ts range)."""

from __future__ import annotations

import pyarrow as pa

from btlake_pipelines import Lake
from btlake_pipelines.ingest import ingest
from btlake_pipelines.landing.local import LocalLandingZone
from tests.core import bundles as B


def test_two_bundles_sharing_market_data_store_it_once(dirs):
    ticks = B.ticks(6)
    B.backtest(dirs.landing, "share-1", tables={"trades": B.trades(), "ticks": ticks})
    B.backtest(dirs.landing, "share-2", tables={"trades": B.trades(), "ticks": ticks})
    result = ingest(dirs.lake, LocalLandingZone(dirs.landing))
    assert [r.status for r in result.results] == ["ingested", "ingested"]
    stored = Lake(dirs.lake).read("ticks")
    assert stored.num_rows == 6
    assert stored.column("ts").cast("int64").to_pylist() == \
        ticks.column("ts").cast("int64").to_pylist()
    assert [s["status"] for s in result.results[1].slices] == ["unchanged"]


def test_market_bundle_statuses_ingested_unchanged_replaced(dirs):
    zone = LocalLandingZone(dirs.landing)
    B.market_data(dirs.landing, "md-a", {"ticks": B.ticks(5)})
    assert ingest(dirs.lake, zone).results[0].status == "ingested"
    B.market_data(dirs.landing, "md-a", {"ticks": B.ticks(5)})
    assert ingest(dirs.lake, zone).results[0].status == "unchanged"
    B.market_data(dirs.landing, "md-a", {"ticks": B.ticks(5, price=60.0)})
    assert ingest(dirs.lake, zone).results[0].status == "replaced"
    assert Lake(dirs.lake).read("ticks").column("price").to_pylist()[0] == 60.0


def test_replacement_keeps_rows_outside_the_bundle_range(dirs):
    zone = LocalLandingZone(dirs.landing)
    full = B.ticks(10)
    B.market_data(dirs.landing, "md-full", {"ticks": full})
    ingest(dirs.lake, zone)
    middle = full.slice(3, 4)
    patched = middle.set_column(2, "price", pa.array([999.0] * 4))
    B.market_data(dirs.landing, "md-patch", {"ticks": patched})
    assert ingest(dirs.lake, zone).results[0].status == "replaced"
    prices = Lake(dirs.lake).read("ticks").sort_by("ts").column("price").to_pylist()
    assert prices[:3] == full.column("price").to_pylist()[:3]
    assert prices[3:7] == [999.0] * 4
    assert prices[7:] == full.column("price").to_pylist()[7:]
    history = Lake(dirs.lake).history("ticks").to_pylist()
    assert history[0]["rows_removed"] == 4 and history[0]["rows_added"] == 4


def test_slices_are_per_symbol_and_market_quotes_are_escaped(dirs):
    zone = LocalLandingZone(dirs.landing)
    B.market_data(dirs.landing, "md-q1", {"ticks": B.ticks(3, symbol="O'REILLY")})
    B.market_data(dirs.landing, "md-q2", {"ticks": B.ticks(3, symbol="MSFT")})
    ingest(dirs.lake, zone)
    B.market_data(dirs.landing, "md-q3", {"ticks": B.ticks(3, symbol="O'REILLY", price=7.0)})
    ingest(dirs.lake, zone)
    lake = Lake(dirs.lake)
    assert lake.read("ticks", symbol="MSFT").column("price").to_pylist()[0] == 50.0
    assert lake.read("ticks", symbol="O'REILLY").column("price").to_pylist()[0] == 7.0
    assert lake.read("ticks").num_rows == 6
