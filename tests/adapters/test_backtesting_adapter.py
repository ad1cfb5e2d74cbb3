"""backtesting.py's real engine on its bundled GOOG data and SmaCross example: the bundle the
adapter writes ingests, and what the lake returns equals the engine's own objects."""

from __future__ import annotations

import datetime as dt
import json
import warnings

import backtesting
import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest
from backtesting.test import GOOG
from backtesting.test._test import SmaCross

from btlake_pipelines import Lake
from btlake_pipelines.adapters import backtesting as adapter
from btlake_pipelines.adapters import engine_of, write_bundle
from btlake_pipelines.errors import BtlakeError

CREATED = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def stats():
    """A year and a half of GOOG so the run is quick, with commission and run-time params; the
    trade still open at the end is closed (``finalize_trades``), so every trade is a fill pair."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(GOOG.iloc[:400], SmaCross, cash=10_000, commission=0.002,
                      finalize_trades=True)
        return bt.run(fast=5, slow=15)


def _publish_and_read(dirs, stats, run_id="sma-goog", **options):
    lake = Lake(dirs.lake)
    lake.publish_result(stats, run_id=run_id, strategy_id="sma_cross",
                                   markets="XNAS", symbol="GOOG", created_at=CREATED,
                                   landing=dirs.landing, **options)
    results = lake.ingest(dirs.landing, isolated=False).results
    assert [(r.run_id, r.status) for r in results] == [(run_id, "ingested")]
    trades = lake.read("trades", run_id=run_id).to_pandas()
    equity = lake.read("equity", run_id=run_id).to_pandas()
    return lake, trades.sort_values(["trade_id", "ts"], kind="stable"), equity


def test_fills_equity_metrics_and_params_read_back_equal_to_the_engine(dirs, stats):
    engine_trades, curve = stats._trades, stats._equity_curve
    assert len(engine_trades) >= 3  # the example trades: the comparison below means something
    lake, trades, equity = _publish_and_read(dirs, stats)

    # two fills per closed trade: entry then exit, sides and sizes from the trade's Size
    assert len(trades) == 2 * len(engine_trades)
    entry, exit_ = trades[trades.leg == "entry"], trades[trades.leg == "exit"]
    assert entry.trade_id.tolist() == exit_.trade_id.tolist() == list(range(len(engine_trades)))
    size = engine_trades["Size"].to_numpy()
    assert entry.side.tolist() == ["buy" if s > 0 else "sell" for s in size]
    assert exit_.side.tolist() == ["sell" if s > 0 else "buy" for s in size]
    assert np.array_equal(entry.qty.to_numpy(), np.abs(size))
    assert np.array_equal(exit_.qty.to_numpy(), np.abs(size))
    assert np.array_equal(entry.price.to_numpy(), engine_trades["EntryPrice"].to_numpy())
    assert np.array_equal(exit_.price.to_numpy(), engine_trades["ExitPrice"].to_numpy())
    # GOOG's index is naive: the contract reads that as UTC, to the nanosecond
    assert (pd.DatetimeIndex(entry.ts) ==
            pd.DatetimeIndex(engine_trades["EntryTime"]).tz_localize("UTC")).all()
    assert (pd.DatetimeIndex(exit_.ts) ==
            pd.DatetimeIndex(engine_trades["ExitTime"]).tz_localize("UTC")).all()
    assert set(trades.symbol) == {"GOOG"} and set(trades.market) == {"XNAS"}
    # commission: entry leg is the broker's 0.2% of the entry notional, both legs add up
    assert np.allclose(entry.commission.to_numpy(),
                       0.002 * np.abs(size) * engine_trades["EntryPrice"].to_numpy())
    assert np.allclose(entry.commission.to_numpy() + exit_.commission.to_numpy(),
                       engine_trades["Commission"].to_numpy(), rtol=0, atol=1e-9)
    # realized pnl on the exit leg; the sum is the engine's
    assert (entry.pnl == 0).all()
    assert np.array_equal(exit_.pnl.to_numpy(), engine_trades["PnL"].to_numpy())

    # equity: every bar, values exact, drawdown as btlake defines it
    equity = equity.sort_values("ts")
    assert len(equity) == len(curve)
    assert (pd.DatetimeIndex(equity.ts) == curve.index.tz_localize("UTC")).all()
    assert np.array_equal(equity.equity.to_numpy(), curve["Equity"].to_numpy())
    assert np.allclose(equity.drawdown.to_numpy(), -curve["DrawdownPct"].to_numpy())

    run = lake.run("sma-goog")
    assert (run["engine_name"], run["engine_version"]) == ("backtesting.py",
                                                           backtesting.__version__)
    # params: the class's attributes, overridden by what run(...) was given
    assert run["params"] == {"fast": 5, "slow": 15}
    metrics = run["metrics"]
    assert metrics["final_equity"] == pytest.approx(stats["Equity Final [$]"])
    assert metrics["sharpe"] == pytest.approx(stats["Sharpe Ratio"])
    assert metrics["n_trades"] == stats["# Trades"] == len(engine_trades)
    assert metrics["total_return"] == pytest.approx(stats["Return [%]"] / 100)
    assert metrics["max_drawdown"] == pytest.approx(stats["Max. Drawdown [%]"] / 100)
    assert metrics["max_drawdown"] < 0
    assert metrics["win_rate"] == pytest.approx(stats["Win Rate [%]"] / 100)
    assert metrics["max_drawdown_duration_s"] == pytest.approx(
        stats["Max. Drawdown Duration"].total_seconds())
    for key, name in adapter.METRICS.items():  # every mapped key arrives under its name
        value = stats[key]
        if isinstance(value, pd.Timedelta):
            value = value.total_seconds()
        if pd.isna(value):
            assert metrics.get(name) is None
        else:
            assert metrics[name] == pytest.approx(float(value)), key


def test_properties_count_of_fills_sum_of_pnl_and_final_equity(dirs, stats):
    _, trades, equity = _publish_and_read(dirs, stats, run_id="sma-props")
    assert len(trades) == 2 * stats["# Trades"]
    assert trades.pnl.sum() == pytest.approx(stats._trades["PnL"].sum())
    assert trades.commission.sum() == pytest.approx(stats["Commissions [$]"])
    assert equity.sort_values("ts").equity.iloc[-1] == pytest.approx(stats["Equity Final [$]"])
    # every trade closed: the starting cash plus realized pnl is the final equity
    assert 10_000 + trades.pnl.sum() == pytest.approx(stats["Equity Final [$]"])


def test_bundle_folder_is_complete_and_publish_cli_accepts_it(tmp_path, stats):
    folder = write_bundle(stats, tmp_path, run_id="sma-folder", strategy_id="sma_cross",
                          markets=["XNAS"], params={"fast": 5, "note": "given"},
                          created_at="2024-05-06T09:08:09+02:00")
    assert engine_of(stats) == "backtesting.py"
    assert folder == tmp_path / "sma-folder"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["created_at"] == "2024-05-06T07:08:09+00:00"
    assert manifest["params"] == {"fast": 5, "note": "given"}  # given params win
    assert manifest["tables"] == {"trades": "trades.parquet", "equity": "equity.parquet"}
    assert manifest["environment"]["packages"]["backtesting"] == backtesting.__version__
    # a folder already named by the run id is written in place
    again = adapter.write_bundle(stats, folder, run_id="sma-folder", strategy_id="s",
                                 markets="XNAS")
    assert again == folder and not (folder / "sma-folder").exists()


def test_bad_arguments_are_refused_by_name(tmp_path, stats):
    with pytest.raises(BtlakeError) as bad_markets:
        adapter.write_bundle(stats, tmp_path, run_id="r", strategy_id="s",
                             markets=["XNAS", "XNYS"])
    assert bad_markets.value.param == "markets"
    with pytest.raises(BtlakeError) as bad_run:
        adapter.write_bundle(stats, tmp_path, run_id="../up", strategy_id="s", markets="XNAS")
    assert bad_run.value.param == "run_id" and not (tmp_path.parent / "up").exists()
    with pytest.raises(BtlakeError) as not_stats:
        write_bundle(object(), tmp_path, run_id="r", strategy_id="s", markets="XNAS")
    assert not_stats.value.param == "result"
    # a run over a plain bar index has no timestamps for the lake
    frame = GOOG.iloc[:120].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranged = Backtest(frame, SmaCross).run(fast=3, slow=8)
    with pytest.raises(BtlakeError, match="DatetimeIndex"):
        adapter.write_bundle(ranged, tmp_path, run_id="r", strategy_id="s", markets="XNAS")
    assert not (tmp_path / "r" / "manifest.json").exists()


class _Idle(SmaCross):
    """Computes its indicators and never trades."""

    def next(self):
        pass


def test_a_run_that_never_traded_is_a_bundle_with_no_fills(dirs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idle = Backtest(GOOG.iloc[:60], _Idle).run()
    assert len(idle._trades) == 0
    lake = Lake(dirs.lake)
    lake.publish_result(idle, run_id="sma-idle", strategy_id="idle", markets="XNAS",
                        landing=dirs.landing)
    results = lake.ingest(dirs.landing, isolated=False).results
    assert [(r.run_id, r.status) for r in results] == [("sma-idle", "ingested")]
    assert lake.read("trades", run_id="sma-idle").num_rows == 0
    assert lake.read("equity", run_id="sma-idle").num_rows == 60
    run = lake.run("sma-idle")
    assert run["metrics"]["n_trades"] == 0 and run["metrics"]["final_equity"] == 10_000
    assert run["params"] == {"fast": 10, "slow": 30}  # inherited class attributes


def test_publishing_the_same_result_again_is_unchanged_and_new_params_replace(dirs, stats):
    lake = Lake(dirs.lake)
    statuses = []
    for params in (None, None, {"fast": 5, "slow": 15, "note": "retuned"}):
        lake.publish_result(stats, run_id="sma-again", strategy_id="sma_cross",
                            markets="XNAS", created_at=CREATED, params=params,
                            landing=dirs.landing)
        statuses += [r.status for r in lake.ingest(dirs.landing, isolated=False).results]
    assert statuses == ["ingested", "unchanged", "replaced"]
    assert lake.run("sma-again")["params"]["note"] == "retuned"
    assert lake.read("trades", run_id="sma-again").num_rows == 2 * len(stats._trades)
