"""Bundles into the lake and back: values and UTC timestamps survive exactly."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.compute as pc

from btlake_pipelines import Lake
from btlake_pipelines.ingest import ingest
from btlake_pipelines.landing.local import LocalLandingZone
from tests.core import bundles as B


def _ingest(dirs):
    return ingest(dirs.lake, LocalLandingZone(dirs.landing))


def test_round_trip_keeps_values_and_nanosecond_utc_timestamps(dirs):
    trades = B.trades(6)
    B.backtest(dirs.landing, "rt-1", tables={"trades": trades, "equity": B.equity()})
    result = _ingest(dirs)
    assert [r.status for r in result.results] == ["ingested"]

    got = Lake(dirs.lake).read("trades", run_id="rt-1")
    assert got.num_rows == 6
    assert got.schema.field("ts").type == pa.timestamp("ns", "UTC")
    assert pc.all(pc.equal(got.column("ts").cast(pa.int64()),
                           trades.column("ts").cast(pa.int64()))).as_py()
    for col in ("symbol", "side", "qty", "price"):
        assert got.column(col).to_pylist() == trades.column(col).to_pylist()
    assert set(got.column("run_id").to_pylist()) == {"rt-1"}
    assert set(got.column("strategy_id").to_pylist()) == {"momentum"}
    assert set(got.column("market").to_pylist()) == {"XNAS"}
    # trades are partitioned by the run's date, not the trading date
    assert set(got.column("date").to_pylist()) == {dt.date(2024, 3, 5)}


def test_csv_offsets_are_converted_to_utc_and_naive_means_utc(dirs):
    folder = dirs.landing_path / "csv-1"
    folder.mkdir()
    (folder / "equity.csv").write_text(
        "ts,equity\n"
        "2024-03-04T10:00:00+02:00,100\n"
        "2024-03-04T08:00:01Z,101\n"
        "2024-03-04 08:00:02,102\n"
        "2024-03-04T03:00:03.5-05:00,103\n"
    )
    (folder / "manifest.json").write_text(json.dumps(
        B.manifest("csv-1", tables={"equity": "equity.csv"})))
    assert _ingest(dirs).results[0].status == "ingested"
    got = Lake(dirs.lake).read("equity", run_id="csv-1").column("ts").to_pylist()
    utc = dt.UTC
    assert got == [dt.datetime(2024, 3, 4, 8, 0, 0, tzinfo=utc),
                   dt.datetime(2024, 3, 4, 8, 0, 1, tzinfo=utc),
                   dt.datetime(2024, 3, 4, 8, 0, 2, tzinfo=utc),
                   dt.datetime(2024, 3, 4, 8, 0, 3, 500000, tzinfo=utc)]


def test_parquet_time_zones_and_units_become_utc(dirs):
    local = pa.array([dt.datetime(2024, 3, 4, 9, 30)], pa.timestamp("ms")).cast(
        pa.timestamp("ms", "America/New_York"))
    naive = pa.array([dt.datetime(2024, 3, 4, 9, 30)], pa.timestamp("s"))
    table = pa.table({"ts": pa.concat_arrays([local.cast(pa.timestamp("ms", "UTC")),
                                              naive.cast(pa.timestamp("ms")).cast(
                                                  pa.timestamp("ms", "UTC"))]),
                      "equity": [1.0, 2.0]})
    B.backtest(dirs.landing, "tz-1", tables={"equity": table})
    _ingest(dirs)
    got = Lake(dirs.lake).read("equity", run_id="tz-1").column("ts").to_pylist()
    assert got == [v.as_py().astimezone(dt.UTC) for v in table.column("ts")]


def test_missing_market_column_comes_from_manifest(dirs):
    B.backtest(dirs.landing, "mk-1", markets=["XLON"])
    _ingest(dirs)
    assert set(Lake(dirs.lake).read("trades").column("market").to_pylist()) == {"XLON"}


def test_market_column_in_file_wins_and_two_markets_without_column_refuse(dirs):
    with_col = B.trades(2).append_column("market", pa.array(["XNYS", "XNYS"]))
    B.backtest(dirs.landing, "mk-2", tables={"trades": with_col}, markets=["XNYS", "XNAS"])
    B.backtest(dirs.landing, "mk-3", markets=["XNYS", "XNAS"])
    result = {r.bundle: r for r in _ingest(dirs).results}
    assert result["mk-2"].status == "ingested"
    assert result["mk-3"].status == "quarantined"
    assert result["mk-3"].reason["rule"] == "market_missing"


def test_extra_columns_are_kept_and_unknown_manifest_fields_too(dirs):
    t = B.trades(3).append_column("fee", pa.array([0.1, 0.2, 0.3]))
    B.backtest(dirs.landing, "ex-1", tables={"trades": t}, custom_field={"a": 1})
    _ingest(dirs)
    lake = Lake(dirs.lake)
    assert lake.read("trades", run_id="ex-1").column("fee").to_pylist() == [0.1, 0.2, 0.3]
    assert lake.run("ex-1")["extra"] == {"custom_field": {"a": 1}}


def test_identical_rows_and_empty_tables_are_valid(dirs):
    one = B.trades(1)
    twice = pa.concat_tables([one, one])
    empty = B.trades(0)
    B.backtest(dirs.landing, "dup-1", tables={"trades": twice, "equity": B.equity()})
    B.backtest(dirs.landing, "empty-1", tables={"trades": empty, "equity": B.equity()})
    statuses = {r.bundle: r.status for r in _ingest(dirs).results}
    assert statuses == {"dup-1": "ingested", "empty-1": "ingested"}
    lake = Lake(dirs.lake)
    assert lake.read("trades", run_id="dup-1").num_rows == 2
    assert lake.read("trades", run_id="empty-1").num_rows == 0
    assert {r["run_id"] for r in lake.runs().to_pylist()} == {"dup-1", "empty-1"}


def test_handled_bundles_leave_landing_for_the_archive(dirs):
    B.backtest(dirs.landing, "arc-1")
    result = _ingest(dirs).results[0]
    assert not (dirs.landing_path / "arc-1").exists()
    archived = result.destination_uri
    assert archived and archived.startswith(dirs.lake + "/_archive/arc-1/")
    import os

    assert os.path.isfile(os.path.join(archived, "manifest.json"))
    assert Lake(dirs.lake).run("arc-1")["archive_uri"] == archived
