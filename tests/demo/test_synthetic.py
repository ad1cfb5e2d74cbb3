"""Synthetic demo bundles: contract-valid, deterministic, and internally consistent.

The consistency checks recompute everything from the bundle's files alone (cash from trades,
positions marked at trade prices, metrics from the equity table), with their own arithmetic,
so a bug in the generator's accounting cannot hide behind the same bug in the check.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from btlake_pipelines.demo import bundle_writer, synthetic_backtest, synthetic_ticks, write_bundle
from btlake_pipelines.demo.synthetic import write_demo_bundles

RUN_ID = re.compile(r"^(?!\.)[A-Za-z0-9._-]{1,128}$")
TABLE_NAMES = {"trades", "equity", "ticks", "l2", "events"}
BARS_PER_YEAR = {"1m": 525_600, "5m": 105_120, "15m": 35_040, "1h": 8_760}
CREATED = datetime(2024, 11, 4, 21, 0, tzinfo=UTC)


def read_table(folder: Path, file_name: str) -> pl.DataFrame:
    """A bundle table as polars with ``ts`` as UTC; CSV timestamps parsed from their offsets."""
    if file_name.endswith(".parquet"):
        frame = pl.from_arrow(pq.read_table(folder / file_name))
        kind = frame.schema["ts"]
        if kind.time_zone is None:  # type: ignore[union-attr]
            return frame.with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
        return frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
    text_columns = {"ts": pl.String, "payload": pl.String}
    frame = pl.read_csv(folder / file_name, schema_overrides=text_columns)
    return frame.with_columns(
        pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="ns", time_zone="UTC")
    )


def load(folder: Path) -> tuple[dict, dict[str, pl.DataFrame]]:
    manifest = json.loads((folder / "manifest.json").read_text())
    tables = {name: read_table(folder, file) for name, file in manifest["tables"].items()}
    return manifest, tables


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("landing")
    write_demo_bundles(root)
    return root


@pytest.fixture(scope="module")
def bundles(landing: Path) -> list[tuple[Path, dict, dict[str, pl.DataFrame]]]:
    return [(folder, *load(folder)) for folder in sorted(landing.iterdir())]


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_gives_identical_bundles(tmp_path: Path) -> None:
    first = write_demo_bundles(tmp_path / "a", runs=6, seed=11)
    second = write_demo_bundles(tmp_path / "b", runs=6, seed=11)
    other = write_demo_bundles(tmp_path / "c", runs=6, seed=12)
    assert [f.name for f in first] == [f.name for f in second]
    for a, b, c in zip(first, second, other, strict=True):
        files = sorted(p.name for p in a.iterdir())
        assert files == sorted(p.name for p in b.iterdir())
        for name in files:
            assert (a / name).read_bytes() == (b / name).read_bytes(), f"{a.name}/{name}"
        assert json.loads((a / "manifest.json").read_text())["metrics"] != json.loads(
            (c / "manifest.json").read_text()
        )["metrics"]


def test_default_demo_is_24_runs_of_the_advertised_size(bundles: list) -> None:
    assert len(bundles) == 24
    for _, manifest, tables in bundles:
        assert 200 <= tables["trades"].height <= 800
        assert 1_000 <= tables["equity"].height <= 3_000
        assert manifest["metrics"]["n_trades"] == tables["trades"].height
    assert {m["strategy_id"] for _, m, _ in bundles} == {
        "momentum", "mean_reversion", "breakout", "pairs"
    }
    assert {m["markets"][0] for _, m, _ in bundles} == {"XNAS", "XNYS", "BINANCE"}
    assert len({m["engine"]["name"] for _, m, _ in bundles}) >= 2


# --- contract --------------------------------------------------------------------------------


def test_manifests_follow_the_contract(bundles: list) -> None:
    for folder, manifest, _ in bundles:
        assert RUN_ID.match(manifest["run_id"]) and manifest["run_id"] == folder.name
        assert manifest["format"] == "btlake.bundle/1"
        assert manifest.get("kind", "backtest") == "backtest"
        assert isinstance(manifest["strategy_id"], str) and manifest["strategy_id"]
        created = datetime.fromisoformat(manifest["created_at"])
        assert created.utcoffset() is not None and created.utcoffset().total_seconds() == 0
        assert set(manifest["engine"]) >= {"name", "version"}
        assert all(isinstance(v, str) for v in manifest["engine"].values())
        assert re.fullmatch(r"[0-9a-f]{40}", manifest["code_version"])
        for value in manifest["params"].values():
            assert isinstance(value, str | int | float | bool)
        for value in manifest["metrics"].values():
            assert value is None or (isinstance(value, int | float) and math.isfinite(value))
        assert set(manifest["environment"]) >= {"python", "packages", "host"}
        assert len(manifest["markets"]) == 1
        assert set(manifest["tables"]) == {"trades", "equity", "events"} <= TABLE_NAMES
        for file_name in manifest["tables"].values():
            assert "/" not in file_name and ".." not in file_name
            assert file_name.endswith((".parquet", ".csv"))
            assert (folder / file_name).is_file() and not (folder / file_name).is_symlink()
        listed = set(manifest["tables"].values()) | {"manifest.json"}
        assert {p.name for p in folder.iterdir()} == listed, "stray or temporary files left"


def test_both_market_paths_and_both_file_formats_are_exercised(bundles: list) -> None:
    with_column = [all("market" in t.columns for t in tables.values()) for _, _, tables in bundles]
    without = [all("market" not in t.columns for t in tables.values()) for _, _, tables in bundles]
    assert any(with_column) and any(without)
    assert all(a or b for a, b in zip(with_column, without, strict=True))
    for (_, manifest, tables), has in zip(bundles, with_column, strict=True):
        if has:
            for table in tables.values():
                assert table["market"].unique().to_list() == manifest["markets"]
    suffixes = {Path(f).suffix for _, m, _ in bundles for f in m["tables"].values()}
    assert suffixes == {".parquet", ".csv"}


def test_csv_bundles_carry_iso_timestamps_with_offsets(bundles: list) -> None:
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")
    offsets = set()
    for folder, manifest, _ in bundles:
        for file_name in manifest["tables"].values():
            if file_name.endswith(".csv"):
                stamps = pl.read_csv(folder / file_name, schema_overrides={"ts": pl.String})["ts"]
                assert all(iso.match(s) for s in stamps), file_name
                offsets.update(s[-6:] for s in stamps)
    assert {"+00:00", "-04:00", "-05:00"} <= offsets  # New York runs straddle the DST change


def test_rows_obey_the_table_rules(bundles: list) -> None:
    for folder, _, tables in bundles:
        trades, equity, events = tables["trades"], tables["equity"], tables["events"]
        for table, required in ((trades, ["ts", "symbol", "side", "qty", "price"]),
                                (equity, ["ts", "equity"]), (events, ["ts", "event_type"])):
            assert table.select(pl.col(required).null_count()).sum_horizontal().item() == 0
        assert set(trades["side"].unique()) <= {"buy", "sell"}, folder.name
        assert (trades["qty"] > 0).all() and (trades["price"] > 0).all()
        assert equity["equity"].is_finite().all()
        for payload in events["payload"].drop_nulls():
            assert isinstance(json.loads(payload), dict)
        assert {"signal", "order"} <= set(events["event_type"].unique())


def test_some_bundle_has_identical_fill_rows(bundles: list) -> None:
    """Two fills at the same time and price happen; the demo must produce them."""
    duplicated = [
        folder.name for folder, _, tables in bundles
        if tables["trades"].drop("market", strict=False).is_duplicated().any()
    ]
    assert duplicated


# --- accounting ------------------------------------------------------------------------------


def _signed(trades: pl.DataFrame) -> pl.DataFrame:
    sign = pl.when(pl.col("side") == "buy").then(1.0).otherwise(-1.0)
    return trades.with_columns(sq=sign * pl.col("qty"))


def test_cash_equals_initial_cash_minus_trade_flows(bundles: list) -> None:
    for folder, manifest, tables in bundles:
        trades, equity = _signed(tables["trades"]), tables["equity"]
        flows = trades.group_by("ts").agg(
            flow=(pl.col("sq") * pl.col("price") + pl.col("fee")).sum()
        )
        recomputed = (
            equity.join(flows, on="ts", how="left").sort("ts")
            .with_columns(cash2=manifest["params"]["initial_cash"]
                          - pl.col("flow").fill_null(0.0).cum_sum())
        )
        assert set(trades["ts"]) <= set(equity["ts"]), "every fill happens on a bar"
        np.testing.assert_allclose(recomputed["cash2"], recomputed["cash"], rtol=0, atol=1e-6,
                                   err_msg=folder.name)


def test_equity_is_cash_plus_positions_marked_at_traded_prices(bundles: list) -> None:
    checked = 0
    for folder, manifest, tables in bundles:
        params = manifest["params"]
        long_only = params.get("mode") == "long_only" or params.get("allow_short") is False
        trades, equity = _signed(tables["trades"]), tables["equity"]
        cash = dict(zip(equity["ts"], equity["cash"], strict=True))
        value = dict(zip(equity["ts"], equity["equity"], strict=True))
        position: dict[str, float] = {}
        for ts, bar in trades.group_by("ts", maintain_order=True):
            for symbol, sq in zip(bar["symbol"], bar["sq"], strict=True):
                position[symbol] = position.get(symbol, 0.0) + sq
                assert not long_only or position[symbol] > -1e-9, f"{folder.name} went short"
            price = dict(zip(bar["symbol"], bar["price"], strict=True))
            held = {s: q for s, q in position.items() if abs(q) > 1e-9}
            if set(held) <= set(price):  # every open position has a print on this bar
                marked = sum(q * price[s] for s, q in held.items())
                assert value[ts[0]] == pytest.approx(cash[ts[0]] + marked, abs=1e-6), folder.name
                checked += 1
        assert all(abs(q) < 1e-9 for q in position.values()), "runs end flat"
        assert equity["equity"][-1] == pytest.approx(equity["cash"][-1], abs=1e-6)
        assert equity["equity"][0] == pytest.approx(100_000.0)
    assert checked > 5_000


def test_metrics_match_the_equity_and_trades_tables(bundles: list) -> None:
    for folder, manifest, tables in bundles:
        metrics = manifest["metrics"]
        curve = tables["equity"].sort("ts")["equity"].to_list()
        returns = [b / a - 1 for a, b in itertools.pairwise(curve)]
        mean = sum(returns) / len(returns)
        std = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
        sharpe = mean / std * math.sqrt(BARS_PER_YEAR[manifest["params"]["timeframe"]])
        peak, worst = curve[0], 0.0
        for value in curve:
            peak = max(peak, value)
            worst = min(worst, value / peak - 1)
        assert metrics["sharpe"] == pytest.approx(sharpe, rel=1e-9), folder.name
        assert metrics["total_return"] == pytest.approx(curve[-1] / curve[0] - 1, abs=1e-12)
        assert metrics["max_drawdown"] == pytest.approx(worst, abs=1e-12)
        assert metrics["max_drawdown"] <= 0
        assert metrics["n_trades"] == tables["trades"].height
        assert metrics["win_rate"] == pytest.approx(_win_rate(_signed(tables["trades"])))


def _win_rate(trades: pl.DataFrame) -> float | None:
    wins = trips = 0
    for _, rows in trades.group_by("symbol", maintain_order=True):
        position = pnl = 0.0
        for sq, price, fee in zip(rows["sq"], rows["price"], rows["fee"], strict=True):
            position += sq
            pnl -= sq * price + fee
            if abs(position) < 1e-9:
                trips += 1
                wins += pnl > 0
                position = pnl = 0.0
    return wins / trips if trips else None


# --- synthetic_backtest sizes ----------------------------------------------------------------


@pytest.mark.parametrize("run_index", [0, 1, 2, 3, 10])
@pytest.mark.parametrize("n_trades", [0, 1, 2, 3, 7, 500])
def test_exact_sizes_on_request(run_index: int, n_trades: int) -> None:
    manifest, tables = synthetic_backtest(run_index, seed=3, n_trades=n_trades, n_equity=1_200,
                                          created_at=CREATED)
    assert tables["trades"].num_rows == n_trades
    assert tables["equity"].num_rows == 1_200
    assert manifest["metrics"]["n_trades"] == n_trades
    assert (pc.min(tables["trades"]["qty"]).as_py() or 1) > 0
    if n_trades == 0:
        assert manifest["metrics"]["win_rate"] is None
        assert set(tables["equity"]["equity"].to_pylist()) == {100_000.0}


def test_too_many_trades_for_the_bars_is_refused() -> None:
    with pytest.raises(ValueError, match="equity rows"):
        synthetic_backtest(0, seed=1, n_trades=50, n_equity=20, created_at=CREATED)


def test_benchmark_sized_run_is_fast_and_consistent() -> None:
    manifest, tables = synthetic_backtest(7, seed=5, n_trades=200_000, n_equity=1_000_000,
                                          created_at=CREATED)
    assert tables["trades"].num_rows == 200_000 and tables["equity"].num_rows == 1_000_000
    equity = tables["equity"]
    assert equity["equity"][-1].as_py() == pytest.approx(equity["cash"][-1].as_py())
    assert manifest["metrics"]["final_equity"] == pytest.approx(equity["equity"][-1].as_py())


# --- synthetic_ticks -------------------------------------------------------------------------


def test_synthetic_ticks_shape_order_and_determinism() -> None:
    kwargs = {"markets": ["XNAS", "BINANCE"], "symbols_per_market": 3, "days": 2,
              "start": date(2024, 8, 5)}
    ticks = synthetic_ticks(300_000, seed=9, **kwargs)
    assert ticks.num_rows == 300_000
    assert ticks.schema.field("ts").type == pa.timestamp("ns", tz="UTC")
    assert set(ticks.column_names) >= {"ts", "symbol", "market", "price", "size"}
    ns = ticks["ts"].cast(pa.int64()).to_numpy()
    assert np.all(np.diff(ns) >= 0)
    assert np.mean(ns % 1_000 != 0) > 0.99, "real nanosecond digits"
    start = int(datetime(2024, 8, 5, tzinfo=UTC).timestamp()) * 10**9
    assert start <= ns.min() and ns.max() < start + 2 * 86_400 * 10**9
    frame = pl.from_arrow(ticks)
    assert (frame["price"] > 0).all() and (frame["size"] >= 0).all()
    assert frame.group_by("market").agg(pl.col("symbol").n_unique())["symbol"].to_list() == [3, 3]
    nasdaq_hours = frame.filter(pl.col("market") == "XNAS")["ts"].dt.hour()
    assert nasdaq_hours.min() >= 13 and nasdaq_hours.max() < 20
    steps = frame.with_columns(r=pl.col("price").log().diff().over("symbol"))["r"].drop_nulls()
    assert steps.abs().max() < 0.01, "prices walk in small steps per symbol"
    assert synthetic_ticks(300_000, seed=9, **kwargs).equals(ticks)
    assert not synthetic_ticks(300_000, seed=10, **kwargs).equals(ticks)
    assert synthetic_ticks(0, seed=9, **kwargs).num_rows == 0


# --- write_bundle ----------------------------------------------------------------------------


def test_write_bundle_csv_timestamps_keep_offsets_and_precision(tmp_path: Path) -> None:
    # 01:40 New York wall time happens twice on 2024-11-03; only the offset tells them apart.
    ns = [1_730_612_400_123_456_789, 1_730_616_000_000_000_001]
    table = pa.table({
        "ts": pa.array(ns, pa.timestamp("ns", tz="America/New_York")),
        "naive": pa.array(ns, pa.timestamp("ns")),
        "event_type": ["a", "b"],
    })
    folder = write_bundle(tmp_path / "run-1", {"run_id": "run-1"}, {"events": table},
                          file_format="csv")
    text = (folder / "events.csv").read_text().splitlines()
    assert text[1].startswith(
        '"2024-11-03T01:40:00.123456789-04:00","2024-11-03T05:40:00.123456789+00:00"'
    )
    assert text[2].startswith('"2024-11-03T01:40:00.000000001-05:00"')
    back = read_table(folder, "events.csv")
    assert back["ts"].dt.epoch("ns").to_list() == ns
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest == {"run_id": "run-1", "format": "btlake.bundle/1",
                        "tables": {"events": "events.csv"}}


def test_write_bundle_keeps_given_fields_and_nulls_nan(tmp_path: Path) -> None:
    table = pa.table({"ts": pa.array([0], pa.timestamp("ms", tz="UTC")), "equity": [1.0]})
    manifest = {"format": "not-a-format", "tables": {"equity": "curve.parquet"},
                "metrics": {"sharpe": float("nan")}, "created_at": CREATED}
    folder = write_bundle(tmp_path / "x", manifest, {"equity": table})
    written = json.loads((folder / "manifest.json").read_text())
    assert written["format"] == "not-a-format"
    assert written["tables"] == {"equity": "curve.parquet"}
    assert written["metrics"] == {"sharpe": None}
    assert written["created_at"] == CREATED.isoformat()
    assert pq.read_table(folder / "curve.parquet").equals(table)
    assert "tables" in manifest and manifest["metrics"]["sharpe"] != 0  # caller's dict untouched


@pytest.mark.parametrize("name", ["../evil.parquet", "a/b.parquet", "..", ""])
def test_write_bundle_never_writes_outside_the_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="bare file name"):
        write_bundle(tmp_path / "b", {"tables": {"t": name}}, {"t": pa.table({"a": [1]})})
    assert not (tmp_path / "evil.parquet").exists()
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_write_bundle_hides_the_old_manifest_while_rewriting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = pa.table({"ts": pa.array([0], pa.timestamp("s", tz="UTC")), "equity": [1.0]})
    folder = write_bundle(tmp_path / "r", {"run_id": "r"}, {"equity": table})
    seen: list[bool] = []
    original = bundle_writer._write_table

    def spy(path: Path, *args: object) -> None:
        seen.append((folder / "manifest.json").exists())
        original(path, *args)

    monkeypatch.setattr(bundle_writer, "_write_table", spy)
    write_bundle(folder, {"run_id": "r"}, {"equity": table})
    assert seen == [False]
    assert (folder / "manifest.json").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["equity.parquet", "manifest.json"]
