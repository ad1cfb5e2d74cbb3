"""vectorbt (a ``Portfolio``) to a btlake bundle.

- ``trades``: one fill per order of ``portfolio.orders`` (``records_readable``): ``ts`` the
  order's ``Timestamp``, ``symbol`` its ``Column`` (or ``symbol=`` for a one-column portfolio),
  ``side`` buy / sell, ``qty`` the ``Size``, ``price`` the ``Price``. Extra columns:
  ``commission`` (``Fees``), ``order_id`` (``Order Id``) and ``pnl``: realized profit, the
  summed ``pnl`` of the closed trades (``portfolio.trades``, fees included) that the order
  exits, 0 for an order that exits none, so ``sum(pnl)`` is the closed trades' PnL.
- ``equity``: ``portfolio.value()``: ``ts``, ``equity``, ``drawdown``
  (``portfolio.drawdown()``: ``value / running peak - 1``) and ``cash``.
- metrics: :data:`METRICS` maps ``portfolio.stats()`` keys to stable snake_case names
  (durations in seconds, percentages in percent with a ``_pct`` suffix; ``final_equity``,
  ``n_trades`` and ``sharpe`` as for the other engines), plus btlake's cross-engine fractions:
  ``total_return``, ``max_drawdown`` (negative, from vectorbt's positive percent) and
  ``win_rate``. A key not in the map is kept under
  its snake_case name.
- A portfolio of several columns that are not grouped has one value curve per column; it is
  refused with what to do instead: select one column (``portfolio["SYM"]``) or group the
  columns into one book (``group_by=True, cash_sharing=True``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from btlake_pipelines.adapters._common import (
    AdapterError,
    engine_version,
    environment,
    metric_value,
    metrics_from,
    utc_timestamps,
    write,
)

ENGINE = "vectorbt"

#: ``Portfolio.stats()`` key -> btlake metric name. Documented in the README.
METRICS: dict[str, str] = {
    "Period": "period_s",
    "Start Value": "start_value",
    "End Value": "final_equity",
    "Total Return [%]": "total_return_pct",
    "Benchmark Return [%]": "benchmark_return_pct",
    "Max Gross Exposure [%]": "max_gross_exposure_pct",
    "Total Fees Paid": "total_fees_paid",
    "Max Drawdown [%]": "max_drawdown_pct",
    "Max Drawdown Duration": "max_drawdown_duration_s",
    "Total Trades": "n_trades",
    "Total Closed Trades": "total_closed_trades",
    "Total Open Trades": "total_open_trades",
    "Open Trade PnL": "open_trade_pnl",
    "Win Rate [%]": "win_rate_pct",
    "Best Trade [%]": "best_trade_pct",
    "Worst Trade [%]": "worst_trade_pct",
    "Avg Winning Trade [%]": "avg_winning_trade_pct",
    "Avg Losing Trade [%]": "avg_losing_trade_pct",
    "Avg Winning Trade Duration": "avg_winning_trade_duration_s",
    "Avg Losing Trade Duration": "avg_losing_trade_duration_s",
    "Profit Factor": "profit_factor",
    "Expectancy": "expectancy",
    "Sharpe Ratio": "sharpe",
    "Calmar Ratio": "calmar_ratio",
    "Omega Ratio": "omega_ratio",
    "Sortino Ratio": "sortino_ratio",
}

_NOT_METRICS = ("Start", "End")


def write_bundle(portfolio: Any, folder: str | Path, *, run_id: str, strategy_id: str,
                 markets: str | Sequence[str], params: Mapping[str, Any] | None = None,
                 created_at: dt.datetime | str | None = None, symbol: str | None = None,
                 code_version: str | None = None, tags: Sequence[str] | None = None) -> Path:
    """Write the bundle of one vectorbt ``Portfolio`` and return its folder (``folder``
    itself when named ``run_id``, else ``folder/run_id``). ``params`` default: ``{}``
    (a portfolio does not keep the signal parameters that made it). See the module
    docstring for what goes where."""
    _check(portfolio)
    return write(folder, run_id=run_id, strategy_id=strategy_id, markets=markets,
                 created_at=created_at,
                 engine={"name": ENGINE, "version": engine_version("vectorbt")},
                 params=dict(params or {}), metrics=metrics(portfolio),
                 env=environment("vectorbt", "numba", "pandas", "numpy"),
                 tables={"trades": fills(portfolio, symbol=symbol),
                         "equity": equity(portfolio)},
                 code_version=code_version, tags=tags)


def _check(portfolio: Any) -> None:
    if not all(hasattr(portfolio, name) for name in ("orders", "value", "stats", "trades")):
        raise AdapterError("{param} must be a vectorbt Portfolio (vbt.Portfolio.from_signals, "
                           "from_orders, ...)", param="portfolio")
    value = portfolio.value()
    if getattr(value, "ndim", 1) != 1:
        raise AdapterError(f"{{param}} has {value.shape[1]} ungrouped columns, so one value "
                           "curve per column; pass one column (portfolio['SYM']) or group "
                           "them into one book (group_by=True, cash_sharing=True)",
                           param="portfolio")


def fills(portfolio: Any, *, symbol: str | None = None) -> pa.Table:
    """One fill per order, in the engine's order of records."""
    readable = portfolio.orders.records_readable
    records = portfolio.orders.records
    n = len(readable)
    if symbol is not None and readable["Column"].nunique() > 1:
        raise AdapterError("{param} names one instrument but the portfolio traded "
                           f"{readable['Column'].nunique()}; leave it unset to use the column "
                           "names", param="symbol")
    symbols = ([symbol] * n if symbol is not None
               else [str(c) for c in readable["Column"].astype(object)])
    return pa.table({
        "ts": utc_timestamps(readable["Timestamp"], what="order timestamps"),
        "symbol": pa.array(symbols, pa.string()),
        "side": pa.array([str(s).lower() for s in readable["Side"].astype(object)],
                         pa.string()),
        "qty": pa.array(readable["Size"].to_numpy(dtype=np.float64)),
        "price": pa.array(readable["Price"].to_numpy(dtype=np.float64)),
        "commission": pa.array(readable["Fees"].to_numpy(dtype=np.float64)),
        "order_id": pa.array(readable["Order Id"].to_numpy(dtype=np.int64)),
        "pnl": pa.array(_realized_pnl(portfolio, records["col"].to_numpy(),
                                      records["idx"].to_numpy())),
    })


def _realized_pnl(portfolio: Any, cols: np.ndarray, idxs: np.ndarray) -> np.ndarray:
    """Per order: the summed PnL of the closed trades whose exit is that order's bar and
    column (vectorbt fills at most one order per column and bar)."""
    trades = portfolio.trades.closed.records
    exits: dict[tuple[int, int], float] = {}
    for col, idx, pnl in zip(trades["col"].to_numpy(), trades["exit_idx"].to_numpy(),
                             trades["pnl"].to_numpy(), strict=True):
        exits[(int(col), int(idx))] = exits.get((int(col), int(idx)), 0.0) + float(pnl)
    return np.array([exits.get((int(c), int(i)), 0.0) for c, i in zip(cols, idxs, strict=True)],
                    dtype=np.float64)


def equity(portfolio: Any) -> pa.Table:
    """The portfolio's value per bar, its drawdown (negative fraction) and cash."""
    value = portfolio.value()
    return pa.table({
        "ts": utc_timestamps(value.index, what="value curve's bars"),
        "equity": pa.array(value.to_numpy(dtype=np.float64)),
        "drawdown": pa.array(portfolio.drawdown().to_numpy(dtype=np.float64)),
        "cash": pa.array(portfolio.cash().to_numpy(dtype=np.float64)),
    })


def metrics(portfolio: Any) -> dict[str, float | None]:
    """:data:`METRICS` and btlake's cross-engine names (see the module docstring)."""
    import warnings

    with warnings.catch_warnings():
        # Ratios need a frequency; without one vectorbt warns and leaves them out.
        warnings.simplefilter("ignore", UserWarning)
        stats = portfolio.stats()
    out = metrics_from({k: v for k, v in stats.items() if k not in _NOT_METRICS}, METRICS)

    def scaled(key: str, factor: float) -> float | None:
        value = metric_value(stats.get(key))
        return None if value is None else value * factor

    out.update({
        "total_return": scaled("Total Return [%]", 0.01),
        "max_drawdown": scaled("Max Drawdown [%]", -0.01),
        "win_rate": scaled("Win Rate [%]", 0.01),
    })
    return out
