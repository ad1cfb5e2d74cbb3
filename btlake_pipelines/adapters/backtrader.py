"""backtrader (a ``Strategy`` that ``Cerebro.run()`` returned) to a btlake bundle, from the
run's own analyzers and observers.

- ``trades``: one fill per executed order, from the ``Transactions`` analyzer (add it:
  ``cerebro.addanalyzer(bt.analyzers.Transactions)``): ``ts`` its bar's time, ``symbol`` the
  data feed's name, ``side`` by the sign of the amount, ``qty`` its size, ``price`` its price.
  Extras: ``value`` (the cash flow backtrader records, ``-amount * price``) and ``commission``
  (the broker's commission scheme for that data feed applied to the fill).
- ``equity``: the ``value`` and ``cash`` lines of the ``Broker`` observer (on by default,
  ``stdstats=True``) or a ``Value`` observer, one row per bar, with btlake's ``drawdown``
  (``value / running peak - 1``).
- metrics, from the analyzers present: ``sharpe`` (``SharpeRatio``), ``max_drawdown_pct``,
  ``max_moneydown``, ``max_drawdown_len`` and ``max_drawdown`` as a negative fraction
  (``DrawDown``), ``returns_rtot``, ``returns_ravg``, ``returns_rnorm``, ``returns_rnorm100``
  (``Returns``), ``trades_total``, ``trades_open``, ``n_trades`` (closed), ``trades_won``,
  ``trades_lost``, ``pnl_net``, ``pnl_gross`` and ``win_rate`` (``TradeAnalyzer``), ``sqn``
  (``SQN``); always ``final_equity`` (the broker's value) and ``total_return`` (from the value
  curve).
- params: given, or the strategy's ``params`` (public names, simple values).

backtrader's times carry no time zone unless a feed sets one; naive times are UTC, as the
contract reads them.
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
    param_value,
    utc_timestamps,
    write,
)

ENGINE = "backtrader"


def write_bundle(strategy: Any, folder: str | Path, *, run_id: str, strategy_id: str,
                 markets: str | Sequence[str], params: Mapping[str, Any] | None = None,
                 created_at: dt.datetime | str | None = None, symbol: str | None = None,
                 code_version: str | None = None, tags: Sequence[str] | None = None) -> Path:
    """Write the bundle of one backtrader strategy run and return its folder (``folder``
    itself when named ``run_id``, else ``folder/run_id``). ``symbol`` replaces the data feed's
    name (for a one-feed run). See the module docstring for what goes where."""
    analyzers = _analyzers(strategy)
    if "Transactions" not in analyzers:
        raise AdapterError("{param}: the run has no Transactions analyzer, so its fills are "
                           "unknown; add cerebro.addanalyzer(bt.analyzers.Transactions) and "
                           "run again", param="strategy")
    curve = equity(strategy)
    return write(folder, run_id=run_id, strategy_id=strategy_id, markets=markets,
                 created_at=created_at,
                 engine={"name": ENGINE, "version": engine_version("backtrader")},
                 params=strategy_params(strategy) if params is None else params,
                 metrics=metrics(strategy, analyzers, curve),
                 env=environment("backtrader", "numpy"),
                 tables={"trades": fills(strategy, analyzers["Transactions"], symbol=symbol),
                         "equity": curve},
                 code_version=code_version, tags=tags)


def _analyzers(strategy: Any) -> dict[str, Any]:
    if not hasattr(strategy, "analyzers") or not hasattr(strategy, "observers"):
        raise AdapterError("{param} must be a backtrader Strategy as Cerebro.run() returns it",
                           param="strategy")
    return {type(a).__name__: a for a in strategy.analyzers}


def fills(strategy: Any, transactions: Any, *, symbol: str | None = None) -> pa.Table:
    """One row per fill the ``Transactions`` analyzer recorded, in time order."""
    feeds = {getattr(d, "_name", "") or str(i): d for i, d in enumerate(strategy.datas)}
    times, names, amounts, prices, values, fees = [], [], [], [], [], []
    for when, rows in sorted(transactions.get_analysis().items()):
        for amount, price, sid, name, value in rows:
            feed = feeds[name] if name in feeds else strategy.datas[sid]  # no truth test:
            # a backtrader line object's bool() builds an indicator
            comminfo = strategy.broker.getcommissioninfo(feed)
            times.append(when)
            names.append(symbol or name or str(sid))
            amounts.append(float(amount))
            prices.append(float(price))
            values.append(float(value))
            fees.append(float(comminfo.getcommission(amount, price)))
    import pandas as pd

    size = np.array(amounts, dtype=np.float64)
    return pa.table({
        "ts": utc_timestamps(pd.DatetimeIndex(times, dtype="datetime64[ns]"),
                             what="fill times"),
        "symbol": pa.array(names, pa.string()),
        "side": pa.array(np.where(size > 0, "buy", "sell").tolist(), pa.string()),
        "qty": pa.array(np.abs(size)),
        "price": pa.array(np.array(prices, dtype=np.float64)),
        "value": pa.array(np.array(values, dtype=np.float64)),
        "commission": pa.array(np.array(fees, dtype=np.float64)),
    })


def equity(strategy: Any) -> pa.Table:
    """The value curve one row per bar, from the ``Broker`` or ``Value`` observer."""
    import backtrader as bt
    import pandas as pd

    observer = next((o for o in strategy.observers if hasattr(o.lines, "value")), None)
    if observer is None:
        raise AdapterError("{param}: the run has no Broker or Value observer, so no value "
                           "curve; keep Cerebro(stdstats=True) (the default) or add "
                           "bt.observers.Value", param="strategy")
    bars = len(strategy)
    value = np.asarray(observer.lines.value.array[:bars], dtype=np.float64)
    times = [bt.num2date(x) for x in strategy.datetime.array[:bars]]
    columns = {
        "ts": utc_timestamps(pd.DatetimeIndex(times, dtype="datetime64[ns]"),
                             what="bar times"),
        "equity": pa.array(value),
        "drawdown": pa.array(value / np.maximum.accumulate(value) - 1.0),
    }
    if hasattr(observer.lines, "cash"):
        columns["cash"] = pa.array(np.asarray(observer.lines.cash.array[:bars],
                                              dtype=np.float64))
    return pa.table(columns)


def metrics(strategy: Any, analyzers: Mapping[str, Any],
            curve: pa.Table) -> dict[str, float | None]:
    """The metrics of the analyzers present (see the module docstring)."""
    value = curve.column("equity").to_numpy()
    out: dict[str, float | None] = {
        "final_equity": metric_value(strategy.broker.getvalue()),
        "total_return": metric_value(value[-1] / value[0] - 1.0) if len(value) else None,
    }
    if "SharpeRatio" in analyzers:
        out["sharpe"] = metric_value(analyzers["SharpeRatio"].get_analysis().get("sharperatio"))
    if "DrawDown" in analyzers:
        worst = analyzers["DrawDown"].get_analysis()["max"]
        out["max_drawdown_pct"] = metric_value(worst["drawdown"])
        out["max_moneydown"] = metric_value(worst["moneydown"])
        out["max_drawdown_len"] = metric_value(worst["len"])
        pct = out["max_drawdown_pct"]
        out["max_drawdown"] = None if pct is None else -pct / 100
    if "Returns" in analyzers:
        for key, item in analyzers["Returns"].get_analysis().items():
            out[f"returns_{key}"] = metric_value(item)
    if "TradeAnalyzer" in analyzers:
        out.update(_trade_metrics(analyzers["TradeAnalyzer"].get_analysis()))
    if "SQN" in analyzers:
        out["sqn"] = metric_value(analyzers["SQN"].get_analysis().get("sqn"))
    return out


def _trade_metrics(analysis: Any) -> dict[str, float | None]:
    def get(*path: str) -> float | None:
        node = analysis
        for key in path:
            if not hasattr(node, "get") or key not in node:
                return None
            node = node[key]
        return metric_value(node)

    closed, won = get("total", "closed"), get("won", "total")
    return {
        "trades_total": get("total", "total"),
        "trades_open": get("total", "open"),
        "n_trades": closed,
        "trades_won": won,
        "trades_lost": get("lost", "total"),
        "pnl_net": get("pnl", "net", "total"),
        "pnl_gross": get("pnl", "gross", "total"),
        "win_rate": won / closed if closed and won is not None else None,
    }


def strategy_params(strategy: Any) -> dict[str, Any]:
    """The strategy's backtrader ``params`` with their run values (public, simple ones)."""
    kwargs = strategy.params._getkwargs()
    return {key: param_value(value) for key, value in kwargs.items()
            if not key.startswith("_")
            and isinstance(value, bool | int | float | str | np.generic)}
