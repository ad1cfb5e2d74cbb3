"""Convert the real market-data samples shipped in ``samples/`` into ``market_data`` bundles.

The samples are vendors' formats (hftbacktest websocket captures, TrueFX quotes, Binance and
Tardis CSV/Parquet); see ``samples/README.md`` for their origin and licence. Each converter is
a plain function from a sample file to Arrow tables in the contract's shape, keeping the
vendor's extra fields (receive time, update ids, trade ids) as extra columns, because they are
what a researcher needs to check a replay.

Conventions shared by every converter:

- ``ts`` is the exchange's time; the local receive time, when the source has one, is kept
  exactly in ``recv_ts`` (timestamp[ns, UTC] for hftbacktest, microseconds for Tardis).
- ``level`` in ``l2`` is the rank of the price among that message's (or snapshot's) levels on
  that side, 0 = best (highest bid, lowest ask). For a snapshot that is the true book level; for
  an incremental update the full book is not known, so it is only the rank *within the update*.
- ``size`` 0 in ``l2`` is a deletion of that price level (valid: size >= 0).
- Markets: ``BINANCE`` (spot), ``BINANCE_FUTURES`` (USD-M futures: the depth files carry the
  futures-only ``pu`` field and 0.1 ticks), ``DERIBIT``, ``BITMEX``, ``TRUEFX``.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from btlake_pipelines.demo.bundle_writer import write_bundle

SAMPLES = Path(__file__).parent / "samples"
_HFTBACKTEST = "nkaz001/hftbacktest"
_NAUTILUS = "nautechsystems/nautilus_trader"
_UTC_MS = pa.timestamp("ms", tz="UTC")
_UTC_US = pa.timestamp("us", tz="UTC")
_UTC_NS = pa.timestamp("ns", tz="UTC")


# --- hftbacktest websocket captures ----------------------------------------------------------


def hftbacktest_tables(path: Path) -> dict[str, pa.Table]:
    """``ticks`` from ``trade`` messages and ``l2`` from depth messages of one capture.

    Each line is ``<local receive ns> <json>``. Ticks use the trade time ``T`` as ``ts`` (the
    moment of the print; the message's event time ``E`` is kept as ``event_ts``). L2 rows use
    the depth event time ``E``. The one REST depth snapshot in a capture (``lastUpdateId``,
    no exchange time) is dated with ``E`` of the first update that applies on top of it
    (``u > lastUpdateId``, Binance's own order-book rule), so all ``ts`` share the exchange
    clock; its rows have ``is_snapshot`` true and true levels. ``bookTicker`` messages carry no
    exchange time and duplicate the depth stream's top level, so they are not converted.
    """
    trades: dict[str, list[Any]] = {k: [] for k in ("T", "E", "recv", "s", "t", "p", "q", "m")}
    depth: dict[str, list[Any]] = {
        k: [] for k in ("msg", "E", "recv", "s", "side", "p", "q", "U", "u", "snap")
    }
    snapshots: list[tuple[int, int]] = []  # (message number, lastUpdateId)
    symbol = ""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            recv, _, text = line.partition(" ")
            if not text.strip():
                continue
            message = json.loads(text)
            data = message.get("data", {})
            stream = message.get("stream", "")
            if stream.endswith("@trade"):
                for key in ("T", "E", "s", "t", "p", "q", "m"):
                    trades[key].append(data[key])
                trades["recv"].append(int(recv))
                symbol = data["s"]
            elif "@depth" in stream:
                for side, key in (("bid", "b"), ("ask", "a")):
                    _add_levels(depth, number, data["E"], int(recv), data["s"], side, data[key],
                                data["U"], data["u"], False)
                symbol = data["s"]
            elif "lastUpdateId" in message:
                update_id = message["lastUpdateId"]
                snapshots.append((number, update_id))
                for side, key in (("bid", "bids"), ("ask", "asks")):
                    _add_levels(depth, number, None, int(recv), None, side, message[key],
                                update_id, update_id, True)

    ticks = pl.DataFrame({
        "ts": pl.Series(trades["T"], dtype=pl.Int64),
        "symbol": pl.Series(trades["s"], dtype=pl.String),
        "price": pl.Series(trades["p"], dtype=pl.String).cast(pl.Float64),
        "size": pl.Series(trades["q"], dtype=pl.String).cast(pl.Float64),
        "recv_ts": pl.Series(trades["recv"], dtype=pl.Int64),
        "event_ts": pl.Series(trades["E"], dtype=pl.Int64),
        # trade ids are identifiers, text at every venue (Tardis' BitMEX ids are UUIDs), so
        # the ticks table keeps one type for them whichever sample lands first
        "trade_id": pl.Series(trades["t"], dtype=pl.Int64).cast(pl.String),
        "is_buyer_maker": pl.Series(trades["m"], dtype=pl.Boolean),
    }).with_columns(market=pl.lit("BINANCE"))
    _date_snapshots(depth, snapshots, symbol)
    book = _depth_frame(depth)
    return {
        "ticks": _typed(ticks, {"ts": _UTC_MS, "recv_ts": _UTC_NS, "event_ts": _UTC_MS}),
        "l2": _typed(book, {"ts": _UTC_MS, "recv_ts": _UTC_NS}),
    }


def _add_levels(depth: dict[str, list[Any]], number: int, event_ms: int | None, recv: int,
                symbol: str | None, side: str, levels: list[list[str]], first_id: int,
                last_id: int, snapshot: bool) -> None:
    count = len(levels)
    depth["msg"].extend([number] * count)
    depth["E"].extend([event_ms] * count)
    depth["recv"].extend([recv] * count)
    depth["s"].extend([symbol] * count)
    depth["side"].extend([side] * count)
    depth["p"].extend(level[0] for level in levels)
    depth["q"].extend(level[1] for level in levels)
    depth["U"].extend([first_id] * count)
    depth["u"].extend([last_id] * count)
    depth["snap"].extend([snapshot] * count)


def _date_snapshots(depth: dict[str, list[Any]], snapshots: list[tuple[int, int]],
                    symbol: str) -> None:
    """Give snapshot rows the exchange time of the first update after them (see above).

    With no later update at all, the receive clock (ms) is the only time there is.
    """
    updates = sorted(
        (last_id, event_ms)
        for last_id, event_ms, snap in zip(depth["u"], depth["E"], depth["snap"], strict=True)
        if not snap
    )
    for number, snapshot_id in snapshots:
        later = [event_ms for last_id, event_ms in updates if last_id > snapshot_id]
        for row, msg in enumerate(depth["msg"]):
            if msg == number:
                depth["E"][row] = later[0] if later else depth["recv"][row] // 1_000_000
                depth["s"][row] = symbol


def _depth_frame(depth: dict[str, list[Any]]) -> pl.DataFrame:
    frame = pl.DataFrame({
        "msg": pl.Series(depth["msg"], dtype=pl.Int64),
        "ts": pl.Series(depth["E"], dtype=pl.Int64),
        "symbol": pl.Series(depth["s"], dtype=pl.String),
        "side": pl.Series(depth["side"], dtype=pl.String),
        "price": pl.Series(depth["p"], dtype=pl.String).cast(pl.Float64),
        "size": pl.Series(depth["q"], dtype=pl.String).cast(pl.Float64),
        "recv_ts": pl.Series(depth["recv"], dtype=pl.Int64),
        "is_snapshot": pl.Series(depth["snap"], dtype=pl.Boolean),
        "first_update_id": pl.Series(depth["U"], dtype=pl.Int64),
        "update_id": pl.Series(depth["u"], dtype=pl.Int64),
    })
    frame = frame.with_columns(level=_rank_levels(["msg", "side"]), market=pl.lit("BINANCE"))
    return _l2_order(frame.drop("msg"))


def _rank_levels(group: list[str]) -> pl.Expr:
    """Level = rank of the price on its side within ``group`` (0 = best); see module doc."""
    key = pl.when(pl.col("side") == "bid").then(-pl.col("price")).otherwise(pl.col("price"))
    return (key.rank("dense").over(group) - 1).cast(pl.Int32)


# --- nautilus_trader test data ---------------------------------------------------------------


def truefx_ticks(path: Path) -> pa.Table:
    """TrueFX USD/JPY quotes as ticks: ``price`` is the mid, ``bid``/``ask`` kept, ``size`` 0
    (a quote feed reports no traded size)."""
    frame = pl.read_csv(path, schema_overrides={"timestamp": pl.String})
    ticks = frame.select(
        ts=pl.col("timestamp").str.to_datetime(time_unit="us", time_zone="UTC"),
        symbol=pl.lit("USDJPY"),
        price=((pl.col("bid") + pl.col("ask")) / 2).round(6),
        size=pl.lit(0.0),
        bid=pl.col("bid"),
        ask=pl.col("ask"),
    )
    return _typed(ticks, {"ts": _UTC_US})


def binance_trades_ticks(path: Path) -> pa.Table:
    """Binance spot BTCUSDT trades (Parquet, ms timestamps) as ticks."""
    frame = pl.from_arrow(pq.read_table(path))
    ticks = frame.select(
        ts=pl.col("timestamp"),
        symbol=pl.lit("BTCUSDT"),
        price=pl.col("price"),
        size=pl.col("quantity"),
        trade_id=pl.col("trade_id").cast(pl.String),
        is_buyer_maker=pl.col("buyer_maker") == "True",
    )
    return _typed(ticks, {"ts": _UTC_MS})


def binance_depth_l2(snapshot: Path, update: Path) -> pa.Table:
    """Binance futures depth: a snapshot then the updates after it, one ``l2`` table.

    ``update_type`` ("snap"/"set") and the update ids are kept; a message is one
    ``(timestamp, last_update_id)`` batch, and levels are ranked within it per side.
    """
    frame = pl.concat([pl.read_csv(snapshot), pl.read_csv(update)])
    l2 = frame.select(
        ts=pl.col("timestamp"),
        symbol=pl.col("symbol"),
        side=pl.col("side").replace_strict({"b": "bid", "a": "ask"}),
        price=pl.col("price").cast(pl.Float64),
        size=pl.col("qty").cast(pl.Float64),
        is_snapshot=pl.col("update_type") == "snap",
        update_type=pl.col("update_type"),
        first_update_id=pl.col("first_update_id"),
        update_id=pl.col("last_update_id"),
        prev_update_id=pl.col("pu"),
    ).with_columns(level=_rank_levels(["ts", "update_id", "side"]))
    return _typed(_l2_order(l2), {"ts": _UTC_MS})


def tardis_trades_ticks(path: Path) -> pa.Table:
    """Tardis trades CSV (µs exchange and local times) as ticks; ``aggressor_side`` kept."""
    frame = pl.read_csv(path, schema_overrides={"id": pl.String})
    ticks = frame.select(
        ts=pl.col("timestamp"),
        symbol=pl.col("symbol"),
        price=pl.col("price").cast(pl.Float64),
        size=pl.col("amount").cast(pl.Float64),
        recv_ts=pl.col("local_timestamp"),
        trade_id=pl.col("id"),
        aggressor_side=pl.col("side"),
    )
    return _typed(ticks, {"ts": _UTC_US, "recv_ts": _UTC_US})


def tardis_incremental_l2(path: Path) -> pa.Table:
    """Tardis ``incremental_book_L2`` CSV as ``l2``; levels ranked per (timestamp, side)."""
    frame = pl.read_csv(path)
    l2 = frame.select(
        ts=pl.col("timestamp"),
        symbol=pl.col("symbol"),
        side=pl.col("side"),
        price=pl.col("price").cast(pl.Float64),
        size=pl.col("amount").cast(pl.Float64),
        recv_ts=pl.col("local_timestamp"),
        is_snapshot=pl.col("is_snapshot"),
    ).with_columns(level=_rank_levels(["ts", "recv_ts", "side"]))
    return _typed(_l2_order(l2), {"ts": _UTC_US, "recv_ts": _UTC_US})


def tardis_snapshot_l2(path: Path) -> pa.Table:
    """Tardis ``book_snapshot_25`` (wide: ``asks[i].price`` ...) as long ``l2`` rows.

    Here ``level`` is the true book level ``i``. Empty levels (no price) are dropped.
    """
    frame = pl.read_csv(path)
    depth = sum(1 for name in frame.columns if name.startswith("asks[") and name.endswith("price"))
    parts = [
        frame.select(
            ts=pl.col("timestamp"),
            symbol=pl.col("symbol"),
            side=pl.lit(side),
            level=pl.lit(i, dtype=pl.Int32),
            price=pl.col(f"{prefix}[{i}].price").cast(pl.Float64),
            size=pl.col(f"{prefix}[{i}].amount").cast(pl.Float64),
            recv_ts=pl.col("local_timestamp"),
            is_snapshot=pl.lit(True),
        )
        for i in range(depth)
        for side, prefix in (("bid", "bids"), ("ask", "asks"))
    ]
    l2 = pl.concat(parts).filter(pl.col("price").is_not_null())
    l2 = l2.sort(["ts", "side", "level"], descending=[False, True, False], maintain_order=True)
    return _typed(_l2_order(l2), {"ts": _UTC_US, "recv_ts": _UTC_US})


def _l2_order(frame: pl.DataFrame) -> pl.DataFrame:
    first = ["ts", "symbol", "side", "level", "price", "size"]
    return frame.select(first + [name for name in frame.columns if name not in first])


def _typed(frame: pl.DataFrame, timestamps: dict[str, pa.DataType]) -> pa.Table:
    """To Arrow, with epoch integers (or datetimes) cast to the given UTC timestamp types and
    polars' large strings narrowed to plain strings."""
    table = frame.to_arrow()
    for name, kind in timestamps.items():
        column = table[name]
        if pa.types.is_integer(column.type):
            column = column.cast(pa.int64()).cast(pa.timestamp(kind.unit, tz="UTC"))
        table = table.set_column(table.schema.get_field_index(name), name, column.cast(kind))
    for index, field in enumerate(table.schema):
        if pa.types.is_large_string(field.type):
            table = table.set_column(index, field.name, table[field.name].cast(pa.string()))
    return table


# --- bundles ---------------------------------------------------------------------------------


Bundle = tuple[dict[str, Any], dict[str, pa.Table], str]


def real_sample_bundles(samples: Path = SAMPLES) -> list[Bundle]:
    """Every sample as ``(manifest, tables, file_format)``, in a fixed order.

    The hftbacktest bundles put a ``market`` column in their tables; the others rely on the
    manifest's single ``markets`` entry. TrueFX and BitMEX are written as CSV, the rest as
    Parquet, so both readers meet real data.
    """
    nautilus = "tests/test_data"
    bundles = []
    for pair in ("btcusdt", "ethusdt"):
        name = f"spot_{pair}_20240808.gz"
        bundles.append(_bundle(
            "binance", pair, "ws", "BINANCE", hftbacktest_tables(samples / name),
            (_HFTBACKTEST, f"examples/spot/{pair}_20240808.gz", "MIT"), "parquet",
        ))
    sources = [
        ("truefx", "usdjpy", "ticks", "TRUEFX", "csv", "truefx/usdjpy-ticks.csv",
         lambda: {"ticks": truefx_ticks(samples / "truefx_usdjpy-ticks.csv")}),
        ("binance", "btcusdt", "trades", "BINANCE", "parquet", "binance/btcusdt-trades.parquet",
         lambda: {"ticks": binance_trades_ticks(samples / "binance_btcusdt-trades.parquet")}),
        ("binance-futures", "btcusdt", "depth", "BINANCE_FUTURES", "parquet",
         "binance/btcusdt-depth-snap.csv",
         lambda: {"l2": binance_depth_l2(samples / "binance_btcusdt-depth-snap.csv",
                                         samples / "binance_btcusdt-depth-update.csv")}),
        ("binance-futures", "btcusdt", "book25", "BINANCE_FUTURES", "parquet",
         "tardis/",
         lambda: {"l2": tardis_snapshot_l2(
             samples / "tardis_binance-futures_book_snapshot_25_BTCUSDT.csv")}),
        ("deribit", "btc-perpetual", "l2", "DERIBIT", "parquet",
         "tardis/deribit_incremental_book_L2_BTC-PERPETUAL.csv",
         lambda: {"l2": tardis_incremental_l2(
             samples / "tardis_deribit_incremental_book_L2_BTC-PERPETUAL.csv")}),
        ("bitmex", "xbtusd", "trades", "BITMEX", "csv", "tardis/",
         lambda: {"ticks": tardis_trades_ticks(samples / "tardis_bitmex_trades_XBTUSD.csv")}),
    ]
    for venue, symbol, what, market, file_format, path, load in sources:
        bundles.append(_bundle(venue, symbol, what, market, load(),
                               (_NAUTILUS, f"{nautilus}/{path}", "LGPL-3.0"), file_format))
    return bundles


def _bundle(venue: str, symbol: str, what: str, market: str, tables: dict[str, pa.Table],
            source: tuple[str, str, str], file_format: str) -> Bundle:
    """Name the drop after venue, symbol and first UTC date; date it by its last record."""
    first = min(_epoch_us(table, "min") for table in tables.values())
    last = max(_epoch_us(table, "max") for table in tables.values())
    day = datetime.fromtimestamp(first / 1e6, tz=UTC).strftime("%Y%m%d")
    repository, path, licence = source
    manifest = {
        "format": "btlake.bundle/1",
        "kind": "market_data",
        "run_id": f"{venue}-{symbol}-{day}-{what}",
        "created_at": datetime.fromtimestamp(last / 1e6, tz=UTC).isoformat().replace("+00:00", "Z"),
        "markets": [market],
        "tags": ["real-sample", venue],
        "source": {"repository": repository, "path": path, "license": licence},
    }
    return manifest, tables, file_format


def _epoch_us(table: pa.Table, which: str) -> int:
    values = table["ts"].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    return int(values.min() if which == "min" else values.max())


def write_real_sample_bundles(landing: Path) -> list[Path]:
    """Write every real-sample bundle into ``landing``; return their folders."""
    return [
        write_bundle(Path(landing) / manifest["run_id"], manifest, tables, file_format=file_format)
        for manifest, tables, file_format in real_sample_bundles()
    ]
