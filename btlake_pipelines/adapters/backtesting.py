"""backtesting.py (``Backtest.run()``'s ``Stats``) to a btlake bundle.

- ``trades``: every closed trade of ``stats._trades`` as two fills, entry then exit. Entry:
  ``side`` buy for a long (``Size > 0``) and sell for a short, ``qty = |Size|``, ``price =
  EntryPrice``, ``ts = EntryTime``; exit: the opposite side at ``ExitPrice``, ``ExitTime``.
  Extra columns: ``trade_id`` (the row of ``_trades``), ``leg`` (entry / exit),
  ``commission`` (the broker's commission on that fill: backtesting.py charges each leg and
  reports their sum, ``Commission``; the entry leg is recomputed with the broker's own
  commission function and the exit leg is the rest, so the two always add up), ``pnl``
  (realized: 0 on the entry, the trade's ``PnL``, commissions included, on the exit), and
  ``tag`` when any trade has one. Trades still open at the end are not closed trades and are
  not written (run with ``finalize_trades=True`` to include them, as backtesting.py's own
  statistics do). A bar index that is not a ``DatetimeIndex`` is refused: lake rows are keyed
  by time.
- ``equity``: ``stats._equity_curve``: ``ts``, ``equity`` and ``drawdown`` as btlake defines it
  (``equity / running peak - 1``, so ``-DrawdownPct``).
- metrics: :data:`METRICS` maps every ``Stats`` key to a stable snake_case name (durations in
  seconds, percentages kept in percent with a ``_pct`` suffix; ``final_equity``, ``n_trades``
  and ``sharpe`` are the names btlake's other engines use too), plus btlake's cross-engine
  fractions: ``total_return``, ``max_drawdown`` (negative) and ``win_rate``. A key not in
  the map (a newer backtesting.py) is kept under its snake_case name.
- params: given, or the strategy's parameters: the public class attributes of its class
  (and its bases below ``Strategy``), overridden by the values ``Backtest.run(**params)`` set.
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
    param_value,
    utc_timestamps,
    write,
)

ENGINE = "backtesting.py"

#: ``Stats`` key -> btlake metric name. Documented in the README ("Engine adapters").
METRICS: dict[str, str] = {
    "Duration": "duration_s",
    "Exposure Time [%]": "exposure_time_pct",
    "Equity Final [$]": "final_equity",
    "Equity Peak [$]": "equity_peak",
    "Commissions [$]": "commissions",
    "Return [%]": "return_pct",
    "Buy & Hold Return [%]": "buy_hold_return_pct",
    "Return (Ann.) [%]": "return_ann_pct",
    "Volatility (Ann.) [%]": "volatility_ann_pct",
    "CAGR [%]": "cagr_pct",
    "Sharpe Ratio": "sharpe",
    "Sortino Ratio": "sortino_ratio",
    "Calmar Ratio": "calmar_ratio",
    "Alpha [%]": "alpha_pct",
    "Beta": "beta",
    "Max. Drawdown [%]": "max_drawdown_pct",
    "Avg. Drawdown [%]": "avg_drawdown_pct",
    "Max. Drawdown Duration": "max_drawdown_duration_s",
    "Avg. Drawdown Duration": "avg_drawdown_duration_s",
    "# Trades": "n_trades",
    "Win Rate [%]": "win_rate_pct",
    "Best Trade [%]": "best_trade_pct",
    "Worst Trade [%]": "worst_trade_pct",
    "Avg. Trade [%]": "avg_trade_pct",
    "Max. Trade Duration": "max_trade_duration_s",
    "Avg. Trade Duration": "avg_trade_duration_s",
    "Profit Factor": "profit_factor",
    "Expectancy [%]": "expectancy_pct",
    "SQN": "sqn",
    "Kelly Criterion": "kelly_criterion",
}

#: Stats keys that are not metrics (dates; the engine objects start with ``_``).
_NOT_METRICS = ("Start", "End")


def write_bundle(stats: Any, folder: str | Path, *, run_id: str, strategy_id: str,
                 markets: str | Sequence[str], params: Mapping[str, Any] | None = None,
                 created_at: dt.datetime | str | None = None, symbol: str | None = None,
                 code_version: str | None = None, tags: Sequence[str] | None = None) -> Path:
    """Write the bundle of one backtesting.py run and return its folder (``folder`` itself
    when named ``run_id``, else ``folder/run_id``). ``symbol`` names the instrument (the
    engine does not know it): default the data frame's ``attrs["symbol"]``, else ``"asset"``.
    See the module docstring for what goes where."""
    trades, equity_curve, strategy = _parts(stats)
    name = symbol or _data_symbol(strategy) or "asset"
    tables = {"trades": fills(trades, symbol=name, commission=_commission_of(strategy)),
              "equity": equity(equity_curve)}
    return write(folder, run_id=run_id, strategy_id=strategy_id, markets=markets,
                 created_at=created_at,
                 engine={"name": ENGINE, "version": engine_version("backtesting")},
                 params=strategy_params(strategy) if params is None else params,
                 metrics=metrics(stats), env=environment("backtesting", "pandas", "numpy"),
                 tables=tables, code_version=code_version, tags=tags)


def _parts(stats: Any) -> tuple[Any, Any, Any]:
    try:
        return stats["_trades"], stats["_equity_curve"], stats["_strategy"]
    except (KeyError, TypeError, IndexError):
        raise AdapterError("{param} must be the Stats that backtesting.py's Backtest.run() "
                           "returns", param="stats") from None


def fills(trades: Any, *, symbol: str, commission: Any = None) -> pa.Table:
    """Two fills per closed trade (entry, exit), in time order of the trades' rows."""
    size = trades["Size"].to_numpy(dtype=np.float64)
    n = len(size)
    entry_price = trades["EntryPrice"].to_numpy(dtype=np.float64)
    total_fee = trades["Commission"].to_numpy(dtype=np.float64)
    entry_fee = (np.array([float(commission(s, p)) for s, p in zip(size, entry_price,
                                                                   strict=True)])
                 if commission is not None else np.zeros(n))
    long = size > 0
    # Entry and exit of trade i are rows 2i and 2i+1.
    columns: dict[str, Any] = {
        "ts": _interleave(utc_timestamps(trades["EntryTime"], what="trade entry times"),
                          utc_timestamps(trades["ExitTime"], what="trade exit times")),
        "symbol": pa.array([symbol] * (2 * n), pa.string()),
        "side": _interleave(pa.array(np.where(long, "buy", "sell")),
                            pa.array(np.where(long, "sell", "buy"))),
        "qty": _interleave(pa.array(np.abs(size)), pa.array(np.abs(size))),
        "price": _interleave(pa.array(entry_price),
                             pa.array(trades["ExitPrice"].to_numpy(dtype=np.float64))),
        "commission": _interleave(pa.array(entry_fee), pa.array(total_fee - entry_fee)),
        "pnl": _interleave(pa.array(np.zeros(n)),
                           pa.array(trades["PnL"].to_numpy(dtype=np.float64))),
        "trade_id": _interleave(pa.array(np.arange(n, dtype=np.int64)),
                                pa.array(np.arange(n, dtype=np.int64))),
        "leg": pa.array(["entry", "exit"] * n, pa.string()),
    }
    if "Tag" in trades and trades["Tag"].notna().any():
        tags = [None if t is None else str(t) for t in trades["Tag"].astype(object)]
        columns["tag"] = _interleave(pa.array(tags, pa.string()), pa.array(tags, pa.string()))
    return pa.table(columns)


def _interleave(first: pa.Array, second: pa.Array) -> pa.Array:
    """``[first[0], second[0], first[1], second[1], ...]``."""
    n = len(first)
    order = np.empty(2 * n, dtype=np.int64)
    order[0::2] = np.arange(n)
    order[1::2] = np.arange(n) + n
    return pa.concat_arrays([first, second.cast(first.type)]).take(pa.array(order))


def equity(curve: Any) -> pa.Table:
    """The equity curve, one row per bar, with btlake's drawdown (negative fraction)."""
    return pa.table({
        "ts": utc_timestamps(curve.index, what="equity curve's bars"),
        "equity": pa.array(curve["Equity"].to_numpy(dtype=np.float64)),
        "drawdown": pa.array(-curve["DrawdownPct"].to_numpy(dtype=np.float64)),
    })


def metrics(stats: Any) -> dict[str, float | None]:
    """:data:`METRICS` and btlake's cross-engine names (see the module docstring)."""
    values = {k: v for k, v in stats.items() if k not in _NOT_METRICS}
    out = metrics_from(values, METRICS)

    def scaled(key: str, factor: float) -> float | None:
        value = metric_value(stats.get(key))
        return None if value is None else value * factor

    out.update({
        "total_return": scaled("Return [%]", 0.01),
        "max_drawdown": scaled("Max. Drawdown [%]", 0.01),
        "win_rate": scaled("Win Rate [%]", 0.01),
    })
    return out


def strategy_params(strategy: Any) -> dict[str, Any]:
    """The strategy's parameters: public, simple-valued class attributes of its class and its
    bases (backtesting.py's own ``Strategy`` excluded), then what ``run(**params)`` set."""
    from backtesting import Strategy

    params: dict[str, Any] = {}
    for cls in reversed(type(strategy).__mro__):
        if not issubclass(cls, Strategy) or cls is Strategy:
            continue
        for key, value in vars(cls).items():
            if key.startswith("_") or callable(value) or isinstance(value, property | type):
                continue
            if isinstance(value, bool | int | float | str | np.generic):
                params[key] = param_value(value)
    for key, value in (getattr(strategy, "_params", None) or {}).items():
        params[key] = param_value(value)
    return params


def _commission_of(strategy: Any) -> Any:
    """The broker's commission function ``(size, price) -> cash``, when the run kept it."""
    broker = getattr(strategy, "_broker", None)
    return getattr(broker, "_commission", None)


def _data_symbol(strategy: Any) -> str | None:
    data = getattr(strategy, "_data", None)
    frame = getattr(data, "df", None)
    attrs = getattr(frame, "attrs", None) or {}
    value = attrs.get("symbol") or attrs.get("name")
    return str(value) if value else None
