"""Real-sample converters: contract-shaped tables whose row counts match the raw files.

Every expected count is taken from the raw sample with code independent of the converter
(plain ``gzip``/``json``/``csv`` reading), so a dropped or duplicated message shows up.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from btlake_pipelines.demo import real_samples
from btlake_pipelines.demo.real_samples import (
    SAMPLES,
    hftbacktest_tables,
    real_sample_bundles,
    write_real_sample_bundles,
)

RUN_ID = re.compile(r"^(?!\.)[A-Za-z0-9._-]{1,128}$")
REQUIRED = {
    "ticks": ["ts", "symbol", "price", "size"],
    "l2": ["ts", "symbol", "side", "level", "price", "size"],
}


@pytest.fixture(scope="module")
def bundles() -> dict[str, tuple[dict, dict[str, pa.Table], str]]:
    return {manifest["run_id"]: (manifest, tables, fmt)
            for manifest, tables, fmt in real_sample_bundles()}


def _csv_rows(name: str) -> list[dict[str, str]]:
    with open(SAMPLES / name, newline="") as handle:
        return list(csv.DictReader(handle))


def _capture_counts(name: str) -> tuple[int, int, list[int]]:
    """(trade messages, depth levels incl. the snapshot's, receive ns of trades) of a capture."""
    trades, levels, recv = 0, 0, []
    with gzip.open(SAMPLES / name, "rt") as handle:
        for line in handle:
            stamp, message = line.split(" ", 1)
            message = json.loads(message)
            if message.get("stream", "").endswith("@trade"):
                trades += 1
                recv.append(int(stamp))
            elif "@depth" in message.get("stream", ""):
                levels += len(message["data"]["b"]) + len(message["data"]["a"])
            elif "lastUpdateId" in message:
                levels += len(message["bids"]) + len(message["asks"])
    return trades, levels, recv


def test_samples_ship_inside_the_package_with_their_origin() -> None:
    package = Path(real_samples.__file__).parent
    assert package / "samples" == SAMPLES
    readme = (SAMPLES / "README.md").read_text()
    for sample in SAMPLES.iterdir():
        if sample.name != "README.md":
            assert f"`{sample.name}`" in readme, f"{sample.name} has no origin in README"
    assert "nkaz001/hftbacktest" in readme and "nautechsystems/nautilus_trader" in readme
    assert "MIT" in readme and "LGPL-3.0" in readme


def test_expected_bundles_and_manifests(bundles: dict) -> None:
    assert set(bundles) == {
        "binance-btcusdt-20240808-ws", "binance-ethusdt-20240808-ws",
        "truefx-usdjpy-20130101-ticks", "binance-btcusdt-20210108-trades",
        "binance-futures-btcusdt-20221101-depth", "binance-futures-btcusdt-20200901-book25",
        "deribit-btc-perpetual-20200401-l2", "bitmex-xbtusd-20200301-trades",
    }
    for run_id, (manifest, tables, fmt) in bundles.items():
        assert RUN_ID.match(run_id) and manifest["run_id"] == run_id
        assert manifest["format"] == "btlake.bundle/1"
        assert manifest["kind"] == "market_data"
        assert datetime.fromisoformat(manifest["created_at"]).utcoffset().total_seconds() == 0
        assert len(manifest["markets"]) == 1
        assert set(tables) <= set(REQUIRED) and tables
        assert fmt in ("parquet", "csv")
        for table in tables.values():
            if "market" in table.column_names:
                assert table["market"].unique().to_pylist() == manifest["markets"]


def test_tables_obey_the_contract_rules(bundles: dict) -> None:
    for run_id, (_, tables, _) in bundles.items():
        for name, table in tables.items():
            assert table.num_rows > 0, run_id
            for column in REQUIRED[name]:
                assert table[column].null_count == 0, (run_id, column)
            for column in ("ts", "recv_ts", "event_ts"):
                if column in table.column_names:
                    assert table.schema.field(column).type.tz == "UTC", (run_id, column)
            frame = pl.from_arrow(table)
            assert (frame["price"] > 0).all() and (frame["size"] >= 0).all(), run_id
            if name == "l2":
                assert set(frame["side"].unique()) <= {"bid", "ask"}
                assert (frame["level"] >= 0).all()


def test_snapshot_levels_are_true_book_levels(bundles: dict) -> None:
    """In a snapshot, level 0 is the best price and prices worsen level by level."""
    for run_id in ("binance-futures-btcusdt-20200901-book25", "deribit-btc-perpetual-20200401-l2"):
        frame = pl.from_arrow(bundles[run_id][1]["l2"])
        for (_, side), group in frame.group_by("ts", "side"):
            prices = group.sort("level")["price"].to_list()
            assert group["level"].sort().to_list() == list(range(group.height))
            expected = sorted(prices, reverse=side == "bid")
            assert prices == expected, (run_id, side)
    book = pl.from_arrow(bundles["binance-futures-btcusdt-20200901-book25"][1]["l2"])
    raw = _csv_rows("tardis_binance-futures_book_snapshot_25_BTCUSDT.csv")
    first = book.filter((pl.col("ts") == pl.col("ts").min()) & (pl.col("level") == 0))
    best = dict(zip(first["side"], first["price"], strict=True))
    assert best == {"bid": float(raw[0]["bids[0].price"]), "ask": float(raw[0]["asks[0].price"])}


@pytest.mark.parametrize("pair", ["btcusdt", "ethusdt"])
def test_hftbacktest_counts_and_clocks(bundles: dict, pair: str) -> None:
    trades, levels, recv = _capture_counts(f"spot_{pair}_20240808.gz")
    _, tables, _ = bundles[f"binance-{pair}-20240808-ws"]
    ticks, l2 = tables["ticks"], tables["l2"]
    assert ticks.num_rows == trades and l2.num_rows == levels
    # the local receive time is kept to the nanosecond
    assert ticks["recv_ts"].cast(pa.int64()).to_pylist() == recv
    assert ticks.schema.field("recv_ts").type == pa.timestamp("ns", tz="UTC")
    assert ticks["trade_id"].to_pylist() == sorted(ticks["trade_id"].to_pylist())
    frame = pl.from_arrow(l2)
    snapshot = frame.filter(pl.col("is_snapshot"))
    assert snapshot.height > 0 and snapshot["symbol"].unique().to_list() == [pair.upper()]
    bids = snapshot.filter(pl.col("side") == "bid").sort("level")["price"]
    assert bids.is_sorted(descending=True) and bids.len() > 100
    # The capture runs past midnight UTC: its ticks span two trading dates.
    assert ticks["ts"].cast(pa.timestamp("ms")).cast(pa.date32()).unique().to_pylist() == [
        datetime(2024, 8, 8).date(), datetime(2024, 8, 9).date()
    ]


def test_hftbacktest_update_levels_rank_prices_within_a_message() -> None:
    l2 = pl.from_arrow(hftbacktest_tables(SAMPLES / "spot_btcusdt_20240808.gz")["l2"])
    updates = l2.filter(~pl.col("is_snapshot"))
    ranked = updates.group_by("update_id", "side").agg(
        ok=pl.when(pl.col("side").first() == "bid")
        .then(pl.col("price").sort_by("level").is_sorted(descending=True))
        .otherwise(pl.col("price").sort_by("level").is_sorted()),
        zero=pl.col("level").min() == 0,
    )
    assert ranked["ok"].all() and ranked["zero"].all()
    assert (updates["size"] == 0).any(), "deletions (size 0) are kept"


def test_nautilus_counts_match_the_raw_files(bundles: dict) -> None:
    def rows(run_id: str, table: str) -> int:
        return bundles[run_id][1][table].num_rows

    truefx = _csv_rows("truefx_usdjpy-ticks.csv")
    assert rows("truefx-usdjpy-20130101-ticks", "ticks") == len(truefx) == 1_000
    parquet_rows = pq.read_metadata(SAMPLES / "binance_btcusdt-trades.parquet").num_rows
    assert rows("binance-btcusdt-20210108-trades", "ticks") == parquet_rows
    depth = _csv_rows("binance_btcusdt-depth-snap.csv") + _csv_rows(
        "binance_btcusdt-depth-update.csv")
    assert rows("binance-futures-btcusdt-20221101-depth", "l2") == len(depth)
    assert rows("deribit-btc-perpetual-20200401-l2", "l2") == len(
        _csv_rows("tardis_deribit_incremental_book_L2_BTC-PERPETUAL.csv"))
    assert rows("bitmex-xbtusd-20200301-trades", "ticks") == len(
        _csv_rows("tardis_bitmex_trades_XBTUSD.csv"))
    snapshots = _csv_rows("tardis_binance-futures_book_snapshot_25_BTCUSDT.csv")
    filled = sum(1 for row in snapshots for key, value in row.items()
                 if key.endswith(".price") and value)
    assert rows("binance-futures-btcusdt-20200901-book25", "l2") == filled


def test_truefx_price_is_the_mid_and_quotes_are_kept(bundles: dict) -> None:
    ticks = pl.from_arrow(bundles["truefx-usdjpy-20130101-ticks"][1]["ticks"])
    raw = _csv_rows("truefx_usdjpy-ticks.csv")
    assert ticks["bid"].to_list() == [float(r["bid"]) for r in raw]
    assert ticks["price"].to_list() == pytest.approx(
        [(float(r["bid"]) + float(r["ask"])) / 2 for r in raw], abs=1e-9)
    assert (ticks["size"] == 0).all()
    first = datetime.fromisoformat(raw[0]["timestamp"])
    assert ticks["ts"][0] == first


def test_written_bundles_round_trip(tmp_path: Path, bundles: dict) -> None:
    folders = write_real_sample_bundles(tmp_path)
    assert sorted(f.name for f in folders) == sorted(bundles)
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["run_id"] == folder.name
        for name, file_name in manifest["tables"].items():
            assert (folder / file_name).is_file()
            original = bundles[folder.name][1][name]
            if file_name.endswith(".parquet"):
                assert pq.read_table(folder / file_name).equals(original)
                continue
            back = pl.read_csv(folder / file_name, schema_overrides={"ts": pl.String})
            parsed = back["ts"].str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="us",
                                                time_zone="UTC")
            assert back.height == original.num_rows
            assert parsed.to_list() == pl.from_arrow(original)["ts"].to_list()
