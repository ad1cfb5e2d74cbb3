"""Coverage of the market data (CONTRACT section 10): exactly the missing trading sessions are
gaps, and the summary stays right after replacements, plain appends and compaction, at a cost
of the partitions that changed."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from btlake_pipelines import Lake
from btlake_pipelines.errors import BtlakeError, QueryError
from btlake_pipelines.metadata import coverage_table as CT
from tests.core import bundles as B


def day_ticks(symbol: str, day: date, n: int = 3, *, hour: int = 15, price: float = 50.0
              ) -> pa.Table:
    return B.ticks(n, symbol=symbol, price=price,
                   start=datetime(day.year, day.month, day.day, hour, tzinfo=UTC))


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def ingest(lake: Lake, dirs, name: str, market: str, parts: list[pa.Table]) -> None:
    B.market_data(dirs.landing, name, {"ticks": pa.concat_tables(parts)}, market=market)
    batch = lake.ingest(dirs.landing)
    assert not batch.quarantined, batch.summary()


def gaps(found) -> set[tuple[str, str | None, date]]:
    return set(found.gap_frame.iter_rows())


def stored_coverage(lake: str, table: str = "ticks") -> pl.DataFrame:
    """The summary as stored (no refresh): what ingestion itself left."""
    lf = CT.scan_coverage(lake)
    assert lf is not None
    return lf.filter(pl.col("table") == table).collect().sort("market", "symbol", "date")


def test_exactly_the_missing_nyse_sessions_are_gaps(dirs):
    lake = Lake(dirs.lake)
    span = days(date(2024, 3, 25), date(2024, 4, 3))  # Good Friday 2024-03-29, a weekend
    missing = date(2024, 3, 27)  # a Wednesday: a session
    aapl = [day_ticks("AAPL", d) for d in span if d.weekday() < 5 and d not in
            (missing, date(2024, 3, 29))]
    msft = [day_ticks("MSFT", d, 2) for d in (date(2024, 3, 26), date(2024, 3, 28))]
    ingest(lake, dirs, "md-nyse", "XNYS", aapl + msft)

    found = lake.coverage()
    assert gaps(found) == {("XNYS", "AAPL", missing), ("XNYS", "MSFT", missing)}
    assert found.calendars == {"XNYS": "XNYS"}
    rows = found.rows.filter(pl.col("symbol") == "AAPL")
    assert rows.height == len(aapl)
    assert rows["rows"].to_list() == [3] * len(aapl)
    first = rows.row(0, named=True)
    assert first["date"] == date(2024, 3, 25)
    assert first["first_ts"] == datetime(2024, 3, 25, 15, tzinfo=UTC)
    assert first["last_ts"] == datetime(2024, 3, 25, 15, 0, 0, 500_000, tzinfo=UTC)
    # filters: one symbol, a window that starts after its first stored date
    only = lake.coverage(symbol="MSFT", start="2024-03-27", end="2024-04-03")
    assert gaps(only) == {("XNYS", "MSFT", missing)}
    assert only.rows["date"].to_list() == [date(2024, 3, 28)]
    # the contract's JSON
    doc = found.to_json()
    assert set(doc) == {"coverage", "gaps"}
    assert set(doc["coverage"][0]) == {"market", "symbol", "date", "rows", "first_ts",
                                       "last_ts"}
    assert doc["coverage"][0]["first_ts"] == "2024-03-25T15:00:00Z"
    assert {"market": "XNYS", "symbol": "AAPL", "date": "2024-03-27"} in doc["gaps"]


def test_a_crypto_venue_missing_saturday_is_a_gap_and_the_mapping_is_configurable(
        dirs, monkeypatch):
    lake = Lake(dirs.lake)
    friday, saturday, sunday = date(2024, 3, 29), date(2024, 3, 30), date(2024, 3, 31)
    ingest(lake, dirs, "md-btc", "BINANCE",
           [day_ticks("BTCUSDT", friday), day_ticks("BTCUSDT", sunday)])
    found = lake.coverage(market="BINANCE")
    assert gaps(found) == {("BINANCE", "BTCUSDT", saturday)}
    assert found.calendars == {"BINANCE": None}
    # mapped to an exchange calendar, the weekend is no longer a gap
    monkeypatch.setenv("BTLAKE_CALENDARS", "BINANCE=XNYS")
    assert gaps(Lake(dirs.lake).coverage(market="BINANCE")) == set()
    monkeypatch.setenv("BTLAKE_CALENDARS", "BINANCE=NOT_A_CALENDAR")
    with pytest.raises(BtlakeError, match="BTLAKE_CALENDARS"):
        Lake(dirs.lake).coverage(market="BINANCE")


def test_coverage_follows_a_replaced_slice_right_after_ingest(dirs):
    lake = Lake(dirs.lake)
    day = date(2024, 3, 4)
    ingest(lake, dirs, "md-rep", "XNAS", [day_ticks("AAPL", day, 10)])
    before = stored_coverage(dirs.lake).row(0, named=True)
    assert before["rows"] == 10
    # a later bundle replaces the stored rows in its range and extends the day
    # stored: 15:00:00 .. 15:00:02.25 every 250 ms; the bundle: 15:00:02 .. 15:00:02.75
    later = B.ticks(4, symbol="AAPL", price=70.0,
                    start=datetime(2024, 3, 4, 15, 0, 2, tzinfo=UTC))
    ingest(lake, dirs, "md-rep2", "XNAS", [later])
    after = stored_coverage(dirs.lake).row(0, named=True)  # refreshed by ingest itself
    assert after["rows"] == 8 + 4  # 2 stored rows in the bundle's range replaced by 4
    assert after["first_ts"] == before["first_ts"]
    assert after["last_ts"] == datetime(2024, 3, 4, 15, 0, 2, 750_000, tzinfo=UTC)
    assert after["last_ts"] != before["last_ts"]
    version = DeltaTable(f"{dirs.lake}/ticks").version()
    assert CT.summarised_version(CT.open_coverage(dirs.lake), "ticks") == version


def _append_directly(lake: str, rows: pa.Table, market: str, day: date) -> None:
    """A streaming writer's plain append: valid rows straight into the Delta table."""
    dt = DeltaTable(f"{lake}/ticks")
    schema = pa.schema(dt.schema().to_arrow())
    data = rows.append_column("market", pa.array([market] * rows.num_rows)).append_column(
        "date", pa.array([day] * rows.num_rows, pa.date32()))
    data = pa.table({f.name: (data.column(f.name).cast(f.type, safe=False)
                              if f.name in data.column_names
                              else pa.nulls(rows.num_rows, f.type)) for f in schema})
    write_deltalake(dt, data, mode="append", partition_by=["market", "date"])


def test_plain_appends_and_compaction_cost_only_what_changed(dirs):
    lake = Lake(dirs.lake)
    span = [date(2024, 3, 4) + timedelta(days=i) for i in range(5)]
    ingest(lake, dirs, "md-a", "XNAS", [day_ticks(s, d) for d in span for s in ("AAPL", "MSFT")])
    ingest(lake, dirs, "md-b", "XNYS", [day_ticks("IBM", d) for d in span])
    assert stored_coverage(dirs.lake).height == 15

    # a streaming append of a new symbol on one day: the next query sees it, and the refresh
    # re-read that one partition
    _append_directly(dirs.lake, day_ticks("NVDA", span[2], 5, hour=16), "XNAS", span[2])
    done = lake.refresh_coverage(["ticks"])[0]
    assert (done.full, done.partitions) == (False, 1)
    found = lake.coverage(symbol="NVDA")
    assert found.rows.select("market", "date", "rows").rows() == [("XNAS", span[2], 5)]
    # an append to a symbol's day already covered changes its rows and last ts
    _append_directly(dirs.lake, day_ticks("IBM", span[4], 2, hour=18), "XNYS", span[4])
    ibm = lake.coverage(symbol="IBM").rows.row(-1, named=True)
    assert ibm["rows"] == 5
    assert ibm["last_ts"] == datetime(2024, 3, 8, 18, 0, 0, 250_000, tzinfo=UTC)

    # compaction rewrites files (dataChange false): nothing to re-read, nothing changes
    before = stored_coverage(dirs.lake)
    DeltaTable(f"{dirs.lake}/ticks").optimize.compact()
    done = lake.refresh_coverage(["ticks"])[0]
    assert (done.full, done.partitions) == (False, 0)
    assert done.version == DeltaTable(f"{dirs.lake}/ticks").version()
    assert stored_coverage(dirs.lake).equals(before)


def test_a_cleaned_up_log_falls_back_to_a_full_summary(dirs):
    lake = Lake(dirs.lake)
    ingest(lake, dirs, "md-c1", "XNAS", [day_ticks("AAPL", date(2024, 3, 4))])
    summarised = CT.summarised_version(CT.open_coverage(dirs.lake), "ticks")
    _append_directly(dirs.lake, day_ticks("AAPL", date(2024, 3, 5)), "XNAS", date(2024, 3, 5))
    _append_directly(dirs.lake, day_ticks("AAPL", date(2024, 3, 6)), "XNAS", date(2024, 3, 6))
    dt = DeltaTable(f"{dirs.lake}/ticks")
    dt.create_checkpoint()  # the table opens from here; the commits before may go
    os.remove(f"{dirs.lake}/ticks/_delta_log/{summarised + 1:020d}.json")
    lake = Lake(dirs.lake)  # a new reader: the old one would look for that very file
    done = lake.refresh_coverage(["ticks"])[0]
    assert done.full and done.partitions == 3
    assert lake.coverage().rows["date"].to_list() == [date(2024, 3, d) for d in (4, 5, 6)]


def test_events_coverage_counts_market_events_only(dirs):
    lake = Lake(dirs.lake)
    events = pa.table({"ts": B.ts_array(2, start=datetime(2024, 3, 4, 15, tzinfo=UTC)),
                       "event_type": ["halt", "resume"]})
    B.market_data(dirs.landing, "md-ev", {"events": events}, market="XNAS")
    B.backtest(dirs.landing, "run-ev", tables={"trades": B.trades(), "events": events})
    lake.ingest(dirs.landing)
    found = lake.coverage("events")
    assert found.rows.select("market", "symbol", "date", "rows").rows() == [
        ("XNAS", None, date(2024, 3, 4), 2)]


def test_bad_coverage_arguments_name_the_parameter(dirs):
    lake = Lake(dirs.lake)
    with pytest.raises(QueryError, match="table") as bad:
        lake.coverage("trades")
    assert bad.value.param == "table"
    with pytest.raises(QueryError) as bad:
        lake.coverage(start="yesterday")
    assert bad.value.param == "start"
    assert lake.coverage().to_json() == {"coverage": [], "gaps": []}  # an empty lake


def test_heat_map_bands_symbols_and_shades_holidays(dirs):
    lake = Lake(dirs.lake)
    span = days(date(2024, 3, 25), date(2024, 4, 2))
    symbols = [f"S{i:02d}" for i in range(12)]
    parts = [day_ticks(s, d, 1) for s in symbols for d in span
             if d.weekday() < 5 and d != date(2024, 3, 29) and not (s == "S05" and d.day == 27)]
    ingest(lake, dirs, "md-map", "XNYS", parts)
    doc = lake.coverage_map("XNYS", bands=4).to_json()
    assert doc["days"][0] == "2024-03-25" and doc["days"][-1] == "2024-04-02"
    kinds = dict(zip(doc["days"], doc["kinds"], strict=True))
    assert kinds["2024-03-29"] == "holiday" and kinds["2024-03-30"] == "weekend"
    assert [b["symbols"] for b in doc["bands"]] == [3, 3, 3, 3]
    wednesday = doc["days"].index("2024-03-27")
    assert [row[wednesday] for row in doc["gaps"]] == [0, 1, 0, 0]  # S05 in the second band
    assert [row[wednesday] for row in doc["present"]] == [3, 2, 3, 3]
    assert doc["gap_count"] == 1 and doc["symbols"] == 12


def test_cli_prints_the_contract_json_and_a_table(dirs):
    import json
    import subprocess
    import sys

    lake = Lake(dirs.lake)
    friday, sunday = date(2024, 3, 29), date(2024, 3, 31)
    ingest(lake, dirs, "md-cli", "BINANCE",
           [day_ticks("BTCUSDT", friday), day_ticks("BTCUSDT", sunday)])
    env = {**os.environ, "BTLAKE_LAKE": dirs.lake, "BTLAKE_LANDING": dirs.landing}

    def btlake(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "btlake_pipelines.interfaces.cli",
                               *args], capture_output=True, text=True, env=env, timeout=120)

    out = btlake("coverage", "--market", "BINANCE", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc == lake.coverage(market="BINANCE").to_json()
    assert doc["gaps"] == [{"market": "BINANCE", "symbol": "BTCUSDT", "date": "2024-03-30"}]
    assert [r["rows"] for r in doc["coverage"]] == [3, 3]
    table = btlake("coverage", "--symbol", "BTCUSDT")
    assert table.returncode == 0, table.stderr
    assert "gaps: 1 missing session(s)" in table.stdout and "2024-03-30" in table.stdout
    bad = btlake("coverage", "--table", "trades")
    assert bad.returncode == 2 and bad.stderr.startswith("btlake: error: bad --table")
    assert "Traceback" not in bad.stderr


def test_the_coverage_table_compacts_its_own_files(dirs, monkeypatch):
    monkeypatch.setattr(CT, "UPKEEP_EVERY", 4)
    lake = Lake(dirs.lake)
    for i in range(5):  # one refresh commit each, every one touching its own day of March
        day = date(2024, 3, 4 + i)
        _append_directly(dirs.lake, day_ticks("AAPL", day), "XNAS", day) if i else \
            ingest(lake, dirs, "md-up", "XNAS", [day_ticks("AAPL", day)])
        lake.refresh_coverage(["ticks"])
    coverage = DeltaTable(f"{dirs.lake}/{CT.COVERAGE}")
    assert coverage.version() == 5  # refreshes 0-4, then the compaction after the 4th
    history = [c["operation"] for c in coverage.history()]
    assert "OPTIMIZE" in history
    assert len(coverage.file_uris()) == 1  # the month's files in one
    assert stored_coverage(dirs.lake)["rows"].to_list() == [3] * 5
    # what was summarised survives the compaction commit: nothing to redo
    assert CT.summarised_version(coverage, "ticks") == DeltaTable(f"{dirs.lake}/ticks").version()
    assert lake.refresh_coverage(["ticks"])[0].partitions == 0
