"""backtrader's real engine (its bundled MA_CrossOver strategy, fed backtesting.py's bundled
GOOG prices): the bundle ingests and reads back equal to the run's analyzers and observers."""

from __future__ import annotations

import datetime as dt

import backtesting.test as testdata
import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from btlake_pipelines import Lake, publish_result
from btlake_pipelines.errors import BtlakeError


def _run(*analyzers):
    cerebro = bt.Cerebro()
    cerebro.adddata(bt.feeds.PandasData(dataname=testdata.GOOG.iloc[:400]), name="GOOG")
    cerebro.addstrategy(bt.strategies.MA_CrossOver, fast=5, slow=15)
    cerebro.broker.setcash(10_000)
    cerebro.broker.setcommission(commission=0.002)
    cerebro.addsizer(bt.sizers.FixedSize, stake=20)
    for analyzer in analyzers:
        cerebro.addanalyzer(analyzer)
    return cerebro.run()[0]


@pytest.fixture(scope="module")
def strategy():
    return _run(bt.analyzers.Transactions, bt.analyzers.SharpeRatio, bt.analyzers.DrawDown,
                bt.analyzers.TradeAnalyzer, bt.analyzers.SQN)


def test_fills_equity_metrics_and_params_read_back_equal_to_the_run(dirs, strategy):
    publish_result(strategy, run_id="bt-goog", strategy_id="ma_crossover", markets="XNAS",
                   created_at=dt.datetime(2024, 7, 1, tzinfo=dt.UTC), landing=dirs.landing)
    lake = Lake(dirs.lake)
    results = lake.ingest(dirs.landing, isolated=False).results
    assert [(r.run_id, r.status) for r in results] == [("bt-goog", "ingested")]

    fills = lake.read("trades", run_id="bt-goog").to_pandas().sort_values("ts", kind="stable")
    recorded = [(when, *row) for when, rows in
                sorted(strategy.analyzers.transactions.get_analysis().items()) for row in rows]
    assert len(recorded) >= 4 and len(fills) == len(recorded)
    assert (pd.DatetimeIndex(fills.ts) ==
            pd.DatetimeIndex([r[0] for r in recorded]).tz_localize("UTC")).all()
    assert fills.side.tolist() == ["buy" if r[1] > 0 else "sell" for r in recorded]
    assert fills.qty.tolist() == [abs(r[1]) for r in recorded]
    assert fills.price.tolist() == [r[2] for r in recorded]
    assert fills.symbol.tolist() == [r[4] for r in recorded] and set(fills.symbol) == {"GOOG"}
    assert np.allclose(fills.commission, 0.002 * fills.qty * fills.price)

    broker = strategy.observers.broker
    bars = len(strategy)
    equity = lake.read("equity", run_id="bt-goog").to_pandas().sort_values("ts")
    assert len(equity) == bars == len(testdata.GOOG.iloc[:400])
    assert np.array_equal(equity.equity.to_numpy(), np.asarray(broker.lines.value.array[:bars]))
    assert np.array_equal(equity.cash.to_numpy(), np.asarray(broker.lines.cash.array[:bars]))
    assert (pd.DatetimeIndex(equity.ts) ==
            testdata.GOOG.iloc[:400].index.tz_localize("UTC")).all()

    run = lake.run("bt-goog")
    assert run["params"] == {"fast": 5, "slow": 15}
    metrics, trades = run["metrics"], strategy.analyzers.tradeanalyzer.get_analysis()
    assert metrics["final_equity"] == pytest.approx(strategy.broker.getvalue())
    assert metrics["sharpe"] == pytest.approx(
        strategy.analyzers.sharperatio.get_analysis()["sharperatio"])
    worst = strategy.analyzers.drawdown.get_analysis()["max"]
    assert metrics["max_drawdown"] == pytest.approx(-worst["drawdown"] / 100)
    assert metrics["n_trades"] == trades["total"]["closed"]
    assert metrics["sqn"] == pytest.approx(strategy.analyzers.sqn.get_analysis()["sqn"])
    # properties: the broker's commissions are what separates gross from net pnl, and a flat
    # book ends at the starting cash plus every fill's cash flow less commissions
    assert trades["total"]["open"] == 0
    assert fills.commission.sum() == pytest.approx(
        trades["pnl"]["gross"]["total"] - trades["pnl"]["net"]["total"])
    assert 10_000 + fills.value.sum() - fills.commission.sum() == pytest.approx(
        equity.equity.iloc[-1])


def test_a_run_without_the_transactions_analyzer_is_refused(tmp_path):
    from btlake_pipelines.adapters import write_bundle

    with pytest.raises(BtlakeError, match="Transactions") as refused:
        write_bundle(_run(), tmp_path, run_id="bt-none", strategy_id="s", markets="XNAS")
    assert refused.value.param == "strategy" and not (tmp_path / "bt-none").exists()
