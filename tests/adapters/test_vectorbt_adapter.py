"""vectorbt's real engine on a small seeded price series: the bundle the adapter writes ingests,
and what the lake returns equals the portfolio's own orders, value curve and stats."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt

from btlake_pipelines import Lake
from btlake_pipelines.adapters import engine_of, write_bundle
from btlake_pipelines.adapters import vectorbt as adapter
from btlake_pipelines.errors import BtlakeError

CREATED = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)


def _prices(n: int = 160, seed: int = 3) -> pd.DataFrame:
    """Two random walks, daily bars in New York time (a time zone the lake turns into UTC)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2023-01-02 16:00", periods=n, freq="D", tz="America/New_York")
    steps = rng.normal(0.0005, 0.02, size=(n, 2))
    return pd.DataFrame(100 * np.exp(np.cumsum(steps, axis=0)), index=index,
                        columns=["AAA", "BBB"])


def _crossover(close, fast: int, slow: int, **options):
    fast_ma = close.rolling(fast).mean()
    slow_ma = close.rolling(slow).mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return vbt.Portfolio.from_signals(close, fast_ma > slow_ma, fast_ma < slow_ma,
                                          direction="both", init_cash=10_000, fees=0.001,
                                          freq="1D", **options)


@pytest.fixture(scope="module")
def portfolio():
    return _crossover(_prices()["AAA"], 5, 20)


def test_fills_value_and_stats_read_back_equal_to_the_portfolio(dirs, portfolio):
    orders = portfolio.orders.records_readable
    assert len(orders) >= 4 and portfolio.trades.closed.count() >= 2
    lake = Lake(dirs.lake)
    lake.publish_result(portfolio, run_id="vbt-aaa", strategy_id="ma_cross", markets="XNYS",
                        params={"fast": 5, "slow": 20}, created_at=CREATED,
                        landing=dirs.landing)
    results = lake.ingest(dirs.landing, isolated=False).results
    assert [(r.run_id, r.status) for r in results] == [("vbt-aaa", "ingested")]

    fills = lake.read("trades", run_id="vbt-aaa").to_pandas().sort_values("order_id")
    assert fills.order_id.tolist() == orders["Order Id"].tolist()  # one fill per order
    assert (pd.DatetimeIndex(fills.ts) ==
            pd.DatetimeIndex(orders["Timestamp"]).tz_convert("UTC")).all()
    assert fills.side.tolist() == [s.lower() for s in orders["Side"]]
    assert np.array_equal(fills.qty.to_numpy(), orders["Size"].to_numpy())
    assert np.array_equal(fills.price.to_numpy(), orders["Price"].to_numpy())
    assert np.array_equal(fills.commission.to_numpy(), orders["Fees"].to_numpy())
    assert set(fills.symbol) == {"AAA"} and set(fills.market) == {"XNYS"}

    value = portfolio.value()
    equity = lake.read("equity", run_id="vbt-aaa").to_pandas().sort_values("ts")
    assert (pd.DatetimeIndex(equity.ts) == value.index.tz_convert("UTC")).all()
    assert np.array_equal(equity.equity.to_numpy(), value.to_numpy())
    assert np.array_equal(equity.drawdown.to_numpy(), portfolio.drawdown().to_numpy())
    assert np.array_equal(equity.cash.to_numpy(), portfolio.cash().to_numpy())

    # properties: fills, realized pnl, final equity
    assert len(fills) == portfolio.orders.count()
    assert fills.pnl.sum() == pytest.approx(portfolio.trades.closed.pnl.sum())
    assert equity.equity.iloc[-1] == pytest.approx(portfolio.final_value())

    run = lake.run("vbt-aaa")
    assert (run["engine_name"], run["engine_version"]) == ("vectorbt", vbt.__version__)
    assert run["params"] == {"fast": 5, "slow": 20}
    stats, metrics = portfolio.stats(), run["metrics"]
    assert metrics["final_equity"] == pytest.approx(portfolio.final_value())
    assert metrics["sharpe"] == pytest.approx(stats["Sharpe Ratio"])
    assert metrics["n_trades"] == stats["Total Trades"]
    assert metrics["total_return"] == pytest.approx(portfolio.total_return())
    assert metrics["max_drawdown"] == pytest.approx(portfolio.max_drawdown())
    assert metrics["max_drawdown"] < 0
    for key, name in adapter.METRICS.items():
        value = stats[key]
        if isinstance(value, pd.Timedelta):
            value = value.total_seconds()
        if pd.isna(value):
            assert metrics.get(name) is None, key
        else:
            assert metrics[name] == pytest.approx(float(value)), key


def test_grouped_portfolio_is_one_book_with_a_symbol_per_column(tmp_path):
    pf = _crossover(_prices(), 4, 12, group_by=True, cash_sharing=True)
    assert engine_of(pf) == "vectorbt"
    folder = write_bundle(pf, tmp_path, run_id="vbt-book", strategy_id="ma_cross",
                          markets="XNYS")
    import pyarrow.parquet as pq

    fills = pq.read_table(folder / "trades.parquet").to_pandas()
    orders = pf.orders.records_readable
    assert fills.symbol.tolist() == orders["Column"].astype(str).tolist()
    assert set(fills.symbol) == {"AAA", "BBB"}
    equity = pq.read_table(folder / "equity.parquet").to_pandas()
    assert equity.equity.iloc[-1] == pytest.approx(float(pf.final_value()))
    assert fills.pnl.sum() == pytest.approx(float(pf.trades.closed.pnl.sum()))


def test_ungrouped_columns_are_refused_with_what_to_do(tmp_path):
    pf = _crossover(_prices(), 4, 12)
    with pytest.raises(BtlakeError, match="group_by=True") as refused:
        write_bundle(pf, tmp_path, run_id="vbt-two", strategy_id="s", markets="XNYS")
    assert refused.value.param == "portfolio"
    assert not (tmp_path / "vbt-two").exists()


def test_a_portfolio_without_orders_writes_no_fills_and_its_flat_value(tmp_path):
    close = _prices()["AAA"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat = vbt.Portfolio.from_signals(close, close < 0, close < 0, init_cash=500,
                                          freq="1D")
    assert flat.orders.count() == 0
    folder = adapter.write_bundle(flat, tmp_path, run_id="vbt-flat", strategy_id="s",
                                  markets="XNYS")
    import pyarrow.parquet as pq

    assert pq.read_table(folder / "trades.parquet").num_rows == 0
    equity = pq.read_table(folder / "equity.parquet").column("equity").to_pylist()
    assert equity == [500.0] * len(close)
