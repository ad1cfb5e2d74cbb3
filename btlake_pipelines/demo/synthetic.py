"""Deterministic synthetic backtest bundles and tick streams for demos, tests and benchmarks.

Everything here is a pure function of its arguments (numpy ``default_rng`` seeded from ``seed``
and the run index), so two calls with the same arguments give byte-identical bundles: demos are
reproducible and the benchmark can ask for a bundle of an exact size.

Accounting model of a synthetic run, which the tests recompute from the bundle alone:

- Bars lie on a regular 24/7 grid of the run's ``timeframe`` (no session gaps, so annualisation
  is simply the number of bars in 365 days, see :func:`periods_per_year`). Bar ``i`` ends at
  ``ts[i]``; its close is the mark price.
- Orders fill at the close of their bar, no slippage, paying ``fee = qty * price * fee_bps/1e4``.
  Orders never fill on bar 0, so ``equity[0]`` is the initial cash.
- ``equity[t] = cash[t] + sum(position[t] * close[t])`` with every fill up to and including bar
  ``t`` applied. The equity table carries ``cash`` as an extra column so that identity can be
  checked.
- Positions are opened, sometimes scaled in, and closed again, so a run with two or more trades
  per symbol ends flat. Some orders fill in two identical halves (same ts, price and qty): the
  contract says identical rows are valid, and the demo makes sure the lake keeps them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from btlake_pipelines.demo.bundle_writer import write_bundle

NS_PER_MINUTE = 60_000_000_000
NS_PER_DAY = 86_400_000_000_000
TIMEFRAME_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "1h": 60}
INITIAL_CASH = 100_000.0
_MAX_SPAN_MINUTES = 100 * 365 * 24 * 60
# Early November: New York runs straddle the end of daylight saving (CSV offsets -04:00, -05:00).
DEFAULT_CREATED_AT = datetime(2024, 11, 4, 21, 0, tzinfo=UTC)


@dataclass(frozen=True)
class MarketSpec:
    """A venue: its symbols with start price and annual volatility, and its trading units."""

    symbols: tuple[tuple[str, float, float], ...]
    lot: float
    tick: float
    timeframes: tuple[str, ...]
    local_tz: str
    session_utc: tuple[float, float]  # hours of the UTC day with ticks, for synthetic_ticks


MARKETS: dict[str, MarketSpec] = {
    "XNAS": MarketSpec(
        (("AAPL", 190.0, 0.25), ("MSFT", 410.0, 0.22), ("NVDA", 120.0, 0.50),
         ("AMZN", 180.0, 0.30)),
        lot=1.0, tick=0.01, timeframes=("5m", "15m"), local_tz="America/New_York",
        session_utc=(13.5, 20.0),
    ),
    "XNYS": MarketSpec(
        (("JPM", 200.0, 0.22), ("XOM", 115.0, 0.25), ("KO", 62.0, 0.15), ("IBM", 170.0, 0.22)),
        lot=1.0, tick=0.01, timeframes=("5m", "15m"), local_tz="America/New_York",
        session_utc=(13.5, 20.0),
    ),
    "BINANCE": MarketSpec(
        (("BTCUSDT", 60_000.0, 0.60), ("ETHUSDT", 3_000.0, 0.70), ("SOLUSDT", 150.0, 0.90),
         ("BNBUSDT", 550.0, 0.65)),
        lot=1e-5, tick=0.01, timeframes=("1m", "5m", "1h"), local_tz="UTC",
        session_utc=(0.0, 24.0),
    ),
}

# Each strategy's parameter grid: lookback and threshold name the run, mode and flag vary it.
STRATEGIES: dict[str, dict[str, tuple[Any, ...]]] = {
    "momentum": {"lookback": (10, 20, 50), "threshold": (0.5, 1.0, 1.5),
                 "mode": ("long_short", "long_only"), "use_stop": (True, False)},
    "mean_reversion": {"lookback": (10, 20, 50), "threshold": (1.0, 1.5, 2.0),
                       "mode": ("zscore", "bollinger"), "allow_short": (True, False)},
    "breakout": {"lookback": (20, 50, 100), "threshold": (0.25, 0.5, 1.0),
                 "mode": ("close", "high_low"), "volume_filter": (True, False)},
    "pairs": {"lookback": (30, 60, 120), "threshold": (1.5, 2.0, 2.5),
              "mode": ("ols", "kalman"), "hedge": (True, False)},
}
ENGINES = (("vectorbt", "0.26.2"), ("backtrader", "1.9.78.123"),
           ("zipline-reloaded", "3.1"), ("nautilus_trader", "1.201.0"))


def periods_per_year(timeframe: str) -> float:
    """Bars in a year of the 24/7 synthetic clock: the Sharpe annualisation factor."""
    return 365.0 * 24 * 60 / TIMEFRAME_MINUTES[timeframe]


def compute_metrics(equity: np.ndarray, timeframe: str) -> dict[str, float | None]:
    """Summary metrics from an equity curve (one value per bar).

    - ``sharpe``: mean / sample std (ddof=1) of simple bar returns, times sqrt(bars per year);
      risk-free rate 0; ``None`` when undefined (fewer than two returns or zero variance).
    - ``total_return``: last / first - 1.
    - ``max_drawdown``: the worst fall from a running peak as a *negative* fraction (``-0.12``
      means 12% below the peak); ``0.0`` for a curve that never falls.
    - ``volatility``: annualised sample std of bar returns.
    """
    equity = np.asarray(equity, dtype=np.float64)
    if equity.size == 0:
        return {"sharpe": None, "total_return": None, "max_drawdown": None, "volatility": None}
    returns = np.diff(equity) / equity[:-1]
    std = float(np.std(returns, ddof=1)) if returns.size > 1 else 0.0
    scale = np.sqrt(periods_per_year(timeframe))
    return {
        "sharpe": float(np.mean(returns) / std * scale) if std > 0 else None,
        "total_return": float(equity[-1] / equity[0] - 1.0),
        "max_drawdown": float(np.min(equity / np.maximum.accumulate(equity) - 1.0)),
        "volatility": float(std * scale),
    }


def win_rate(symbols: np.ndarray, signed_qty: np.ndarray, price: np.ndarray,
             fee: np.ndarray) -> float | None:
    """Share of closed round trips (flat to flat, per symbol, fees included) that made money.

    Trades must be in execution order. ``None`` when no round trip closed.
    """
    pnls: list[np.ndarray] = []
    for symbol in np.unique(symbols):
        mask = symbols == symbol
        qty = signed_qty[mask]
        flows = -qty * price[mask] - fee[mask]
        position = np.cumsum(qty)
        closed = np.isclose(position, 0.0, atol=1e-9 * max(float(np.abs(qty).max()), 1.0))
        trip = np.concatenate(([0], np.cumsum(closed)[:-1]))
        pnls.append(np.bincount(trip, weights=flows)[: int(closed.sum())])
    all_pnls = np.concatenate(pnls) if pnls else np.empty(0)
    return float(np.mean(all_pnls > 0)) if all_pnls.size else None


def synthetic_backtest(
    run_index: int,
    *,
    seed: int,
    n_trades: int,
    n_equity: int,
    created_at: datetime,
) -> tuple[dict[str, Any], dict[str, pa.Table]]:
    """One synthetic run: ``(manifest, {"trades", "equity", "events"})``, ready for write_bundle.

    The run index picks the strategy (cycling through :data:`STRATEGIES`) and market; ``seed``
    and the index seed everything else. Exactly ``n_trades`` trade rows and ``n_equity`` equity
    rows are produced (``n_trades`` may be 0: a run that never traded). Even run indexes put a
    ``market`` column in every table; odd ones rely on the manifest's single ``markets`` entry.
    """
    if n_equity < 2 or n_trades < 0:
        raise ValueError("need n_equity >= 2 and n_trades >= 0")
    rng = np.random.default_rng([seed, run_index])
    strategy = list(STRATEGIES)[run_index % len(STRATEGIES)]
    market = list(MARKETS)[(run_index // len(STRATEGIES)) % len(MARKETS)]
    spec = MARKETS[market]
    params = _pick_params(rng, strategy, spec, n_equity)
    created = created_at.astimezone(UTC) if created_at.tzinfo else created_at.replace(tzinfo=UTC)

    legs = _pick_legs(rng, spec, 2 if strategy == "pairs" else 1)
    params["symbol"] = "/".join(symbol for symbol, _, _ in legs)
    closes = _price_paths(rng, legs, n_equity, params["timeframe"], spec.tick)
    fills = _simulate_fills(rng, strategy, params, closes, spec, n_trades, run_index % 3 == 0)
    priced = _priced(fills, closes, spec, params["fee_bps"])
    cash, equity = _mark_to_market(fills, closes, spec, priced)

    bar_ns = _bar_times(created, n_equity, params["timeframe"])
    ts_type = _timestamp_type(run_index, spec)
    trades = _trades_table(fills, legs, priced, bar_ns, ts_type)
    equity_table = pa.table({
        "ts": _timestamps(bar_ns, ts_type), "equity": equity, "cash": cash,
    })
    events = _events_table(fills, legs, bar_ns, ts_type, trades)
    tables = {"trades": trades, "equity": equity_table, "events": events}
    if run_index % 2 == 0:
        tables = {name: _with_market(table, market) for name, table in tables.items()}

    metrics: dict[str, Any] = compute_metrics(equity, params["timeframe"])
    metrics["n_trades"] = trades.num_rows
    metrics["win_rate"] = _win_rate_of(trades)
    metrics["final_equity"] = float(equity[-1])
    run_id = (f"{strategy}-{market}-lb{params['lookback']}-th{params['threshold']:g}"
              f"-{run_index + 1:03d}")
    manifest = _manifest(rng, run_id, strategy, market, created, params, metrics)
    return manifest, tables


def write_demo_bundles(
    landing: Path,
    runs: int = 24,
    *,
    seed: int = 7,
    created_at: datetime | None = None,
) -> list[Path]:
    """Write ``runs`` realistic bundles into ``landing``; return their folders.

    Each run has 200-800 trades and 1,000-3,000 equity rows. Runs are spaced two hours apart
    from ``created_at`` (default a fixed date, so the demo is reproducible), which spreads them
    over a few run dates. Every third run is written as CSV, the others as Parquet, so both
    reader paths see data; timestamp units and zones vary between runs for the same reason.
    """
    base = created_at or DEFAULT_CREATED_AT
    folders = []
    for index in range(runs):
        sizes = np.random.default_rng([seed, index, 1])
        manifest, tables = synthetic_backtest(
            index,
            seed=seed,
            n_trades=int(sizes.integers(200, 801)),
            n_equity=int(sizes.integers(1_000, 3_001)),
            created_at=base + timedelta(hours=2 * index),
        )
        file_format = "csv" if index % 3 == 2 else "parquet"
        folder = Path(landing) / manifest["run_id"]
        folders.append(write_bundle(folder, manifest, tables, file_format=file_format))
    return folders


# --- parameters, prices and fills ------------------------------------------------------------


def _pick_params(rng: np.random.Generator, strategy: str, spec: MarketSpec,
                 n_bars: int) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, grid in STRATEGIES[strategy].items():
        params[name] = grid[int(rng.integers(len(grid)))]
    # Huge benchmark runs fall back to short bars so timestamps stay within a century.
    fits = [tf for tf in spec.timeframes if n_bars * TIMEFRAME_MINUTES[tf] <= _MAX_SPAN_MINUTES]
    if not fits:
        raise ValueError(f"{n_bars} bars do not fit in a century even at 1-minute bars")
    params["timeframe"] = fits[int(rng.integers(len(fits)))]
    params["fee_bps"] = float(rng.choice([0.1, 0.2, 0.5, 1.0]))
    params["initial_cash"] = INITIAL_CASH
    return params


def _pick_legs(rng: np.random.Generator, spec: MarketSpec,
               count: int) -> list[tuple[str, float, float]]:
    chosen = rng.choice(len(spec.symbols), size=count, replace=False)
    return [spec.symbols[int(i)] for i in chosen]


def _price_paths(rng: np.random.Generator, legs: list[tuple[str, float, float]],
                 n_bars: int, timeframe: str, tick: float) -> np.ndarray:
    """Close prices, shape (legs, bars): fat-tailed geometric random walks, correlated legs.

    Student-t(4) shocks scaled to unit variance give the occasional jump real prices show; legs
    share a common factor (correlation 0.8) so a pairs spread mean-reverts plausibly.
    """
    bar_vol = 1.0 / np.sqrt(periods_per_year(timeframe))
    common = rng.standard_t(4, size=n_bars) / np.sqrt(2.0)
    closes = np.empty((len(legs), n_bars))
    for row, (_, start, annual_vol) in enumerate(legs):
        own = rng.standard_t(4, size=n_bars) / np.sqrt(2.0)
        shocks = (0.8 * common + 0.6 * own) * annual_vol * bar_vol
        shocks[0] = 0.0
        path = start * np.exp(np.cumsum(shocks))
        closes[row] = np.maximum(_to_tick(path, tick), tick)
    return closes


@dataclass(frozen=True)
class _Fills:
    """Trade rows in execution order (before the table is built)."""

    leg: np.ndarray  # index into legs
    bar: np.ndarray  # bar index of the fill
    lots: np.ndarray  # signed quantity in lots (integers held as int64)
    order_id: np.ndarray
    signal: np.ndarray  # direction decided when the position was opened (+1 / -1)
    opens: np.ndarray  # True on the fill that opens a position (a signal event)


def _simulate_fills(rng: np.random.Generator, strategy: str, params: dict[str, Any],
                    closes: np.ndarray, spec: MarketSpec, n_trades: int,
                    split_orders: bool) -> _Fills:
    """Turn the strategy rule into exactly ``n_trades`` fills.

    Decision bars are drawn at random, the *direction* at each entry follows the strategy's rule
    on the price path (momentum follows the lookback return, mean reversion fades it, pairs
    trade the spread). A position group is open+close, or open+scale-in+close; one order per
    group may fill in two identical halves.
    """
    n_legs, n_bars = closes.shape
    n_split = 0
    if n_legs == 2 and n_trades >= 2:
        n_split = n_trades % 2
        decisions = (n_trades - n_split) // 2
    else:
        n_legs = 1
        n_split = 1 if split_orders and n_trades >= 3 else 0
        decisions = n_trades - n_split
    if decisions > n_bars - 1:
        raise ValueError(f"{n_trades} trades need more than {n_bars} equity rows")

    targets, group_start = _position_targets(decisions)
    bars = np.sort(rng.choice(np.arange(1, n_bars), size=decisions, replace=False))
    group = np.cumsum(group_start) - 1
    direction = _directions(strategy, params, closes, bars[group_start])
    direction = _with_skill(rng, direction, closes, bars[group_start], _exit_bars(bars, group))
    if params.get("mode") == "long_only" or params.get("allow_short") is False:
        direction[:] = 1
    signal = direction[group] if decisions else np.empty(0, np.int64)
    unit = _unit_lots(closes[:, 0], spec.lot, n_legs)

    legs, all_bars, lots, order_id, signals, opens = [], [], [], [], [], []
    for leg in range(n_legs):
        sign = signal if leg == 0 else -signal
        delta = np.diff(np.concatenate(([0], targets))) * sign * unit[leg]
        legs.append(np.full(decisions, leg))
        all_bars.append(bars)
        lots.append(delta)
        order_id.append(np.arange(decisions) * n_legs + leg + 1)
        signals.append(sign)
        opens.append(group_start)
    order = np.lexsort((np.concatenate(legs), np.concatenate(all_bars)))
    fills = _Fills(*(np.concatenate(parts)[order]
                     for parts in (legs, all_bars, lots, order_id, signals, opens)))
    return _split_one_order(rng, fills, n_split)


def _position_targets(decisions: int) -> tuple[np.ndarray, np.ndarray]:
    """Target positions in units after each decision, and which decisions open a position.

    Groups are ``[1, 0]`` (open, close) and one ``[1, 2, 0]`` (scale in) when the count is odd;
    a single decision opens a position that stays open.
    """
    if decisions == 1:
        return np.array([1]), np.array([True])
    groups = [[1, 0]] * (decisions // 2)
    if decisions % 2:
        groups[0] = [1, 2, 0]
    targets = np.array([t for group in groups for t in group], dtype=np.int64)
    starts = np.array([i == 0 for group in groups for i in range(len(group))], dtype=bool)
    return targets, starts


def _directions(strategy: str, params: dict[str, Any], closes: np.ndarray,
                entry_bars: np.ndarray) -> np.ndarray:
    """+1 (long the first leg) or -1 at each entry bar, by the strategy's rule."""
    log_close = np.log(closes)
    back = np.maximum(entry_bars - int(params["lookback"]), 0)
    move = log_close[:, entry_bars] - log_close[:, back]
    if strategy == "pairs":
        score = -(move[0] - move[1])
    elif strategy == "mean_reversion":
        score = -move[0]
    else:
        score = move[0]
    return np.where(score >= 0, 1, -1).astype(np.int64)


def _exit_bars(bars: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Bar of each group's last decision (its exit, or the entry for a position held open)."""
    exits = np.zeros(int(group.max()) + 1 if group.size else 0, dtype=np.int64)
    np.maximum.at(exits, group, bars)
    return exits


def _with_skill(rng: np.random.Generator, direction: np.ndarray, closes: np.ndarray,
                entries: np.ndarray, exits: np.ndarray) -> np.ndarray:
    """Flip a random share of entries (the run's "skill", 0-12%) to the side that paid off.

    Pure rule-following on a random walk loses the fees every time; a little hindsight spreads
    the demo's runs over winners and losers, which is what a grid search really looks like.
    """
    paid = np.where(closes[0, exits] >= closes[0, entries], 1, -1)
    if closes.shape[0] == 2:  # pairs: long the first leg pays when it beats the second
        spread = np.log(closes[0] / closes[1])
        paid = np.where(spread[exits] >= spread[entries], 1, -1)
    lucky = rng.random(direction.size) < rng.uniform(0.0, 0.12)
    return np.where(lucky, paid, direction)


def _unit_lots(start_prices: np.ndarray, lot: float, n_legs: int) -> np.ndarray:
    """Lots per position unit: about 25% of initial cash per leg, always an even number of lots.

    An even lot count lets any order fill in two identical halves.
    """
    lots = np.floor(0.25 * INITIAL_CASH / start_prices[:n_legs] / lot / 2) * 2
    return np.maximum(lots, 2).astype(np.int64)


def _split_one_order(rng: np.random.Generator, fills: _Fills, n_split: int) -> _Fills:
    """Fill ``n_split`` (0 or 1) order(s) in two identical halves: two equal rows, one order."""
    if n_split == 0 or fills.lots.size == 0:
        return fills
    index = int(rng.integers(fills.lots.size))
    repeat = np.ones(fills.lots.size, dtype=np.int64)
    repeat[index] = 2
    lots = fills.lots.copy()
    lots[index] //= 2
    parts = [np.repeat(part, repeat) for part in
             (fills.leg, fills.bar, lots, fills.order_id, fills.signal, fills.opens)]
    parts[5][index + 1] = False
    return _Fills(*parts)


def _priced(fills: _Fills, closes: np.ndarray, spec: MarketSpec,
            fee_bps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed quantity, price and fee of every fill; the one source for table and cash."""
    price = closes[fills.leg, fills.bar]
    signed_qty = _quantity(fills.lots, spec.lot)
    fee = np.round(np.abs(signed_qty) * price * fee_bps / 1e4, 8)
    return signed_qty, price, fee


def _mark_to_market(fills: _Fills, closes: np.ndarray, spec: MarketSpec,
                    priced: tuple[np.ndarray, np.ndarray, np.ndarray]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Cash and equity per bar: fills at the close, fees paid in cash, positions marked."""
    n_legs, n_bars = closes.shape
    signed_qty, price, fee = priced
    flows = np.bincount(fills.bar, weights=signed_qty * price + fee, minlength=n_bars)
    cash = INITIAL_CASH - np.cumsum(flows)
    exposure = np.zeros(n_bars)
    for leg in range(n_legs):
        mask = fills.leg == leg
        lots = np.cumsum(np.bincount(fills.bar[mask], weights=fills.lots[mask],
                                     minlength=n_bars))
        exposure += _quantity(lots, spec.lot) * closes[leg]
    return cash, cash + exposure


def _quantity(lots: np.ndarray, lot: float) -> np.ndarray:
    """Lots to a quantity, exact in decimal (``123 * 1e-5`` would not be)."""
    return np.asarray(lots, dtype=np.float64) / np.round(1.0 / lot)


# --- tables and manifest ---------------------------------------------------------------------


def _bar_times(created: datetime, n_bars: int, timeframe: str) -> np.ndarray:
    """Bar end times in epoch ns: a regular grid ending just before the run's UTC day began."""
    end = datetime(created.year, created.month, created.day, tzinfo=UTC)
    end_ns = int(end.timestamp()) * 1_000_000_000
    step = TIMEFRAME_MINUTES[timeframe] * NS_PER_MINUTE
    return end_ns - step * np.arange(n_bars, 0, -1, dtype=np.int64)


def _timestamp_type(run_index: int, spec: MarketSpec) -> pa.DataType:
    """Vary unit and zone between runs so readers meet ns, us, ms, naive and local-zone data."""
    variants = (
        pa.timestamp("us", tz="UTC"),
        pa.timestamp("ns", tz="UTC"),
        pa.timestamp("ms"),  # no zone: UTC by the contract
        pa.timestamp("us", tz=spec.local_tz),
    )
    return variants[(run_index + run_index // 2) % len(variants)]


def _timestamps(epoch_ns: np.ndarray, ts_type: pa.TimestampType) -> pa.Array:
    factor = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}[ts_type.unit]
    return pa.array(np.asarray(epoch_ns, dtype=np.int64) // factor, type=ts_type)


def _strings(names: list[str], codes: np.ndarray) -> pa.Array:
    """Vectorised lookup of a few names: a dictionary array cast to plain strings."""
    dictionary = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(names))
    return dictionary.cast(pa.string())


def _trades_table(fills: _Fills, legs: list[tuple[str, float, float]],
                  priced: tuple[np.ndarray, np.ndarray, np.ndarray], bar_ns: np.ndarray,
                  ts_type: pa.TimestampType) -> pa.Table:
    signed_qty, price, fee = priced
    return pa.table({
        "ts": _timestamps(bar_ns[fills.bar], ts_type),
        "symbol": _strings([name for name, _, _ in legs], fills.leg),
        "side": _strings(["sell", "buy"], (signed_qty > 0).astype(np.int32)),
        "qty": np.abs(signed_qty),
        "price": price,
        "fee": fee,
        "order_id": fills.order_id.astype(np.int64),
    })


def _events_table(fills: _Fills, legs: list[tuple[str, float, float]], bar_ns: np.ndarray,
                  ts_type: pa.TimestampType, trades: pa.Table) -> pa.Table:
    """The run's own events: run_start, a signal per opened position, an order per order id,
    run_end. Payloads are JSON objects built column-wise (no per-row Python)."""
    frame = pl.from_arrow(trades.drop_columns(["ts"])).with_columns(
        ts_ns=pl.Series(bar_ns[fills.bar]), direction=pl.Series(fills.signal),
        opens=pl.Series(fills.opens), leg=pl.Series(fills.leg),
    )
    signals = frame.filter(pl.col("opens") & (pl.col("leg") == 0)).select(
        "ts_ns", "symbol", event_type=pl.lit("signal"), order=pl.lit(1),
        payload=pl.concat_str([
            pl.lit('{"symbol": "'), pl.col("symbol"), pl.lit('", "direction": '),
            pl.col("direction").cast(pl.String), pl.lit("}"),
        ]),
    )
    orders = frame.group_by("order_id", maintain_order=True).agg(
        pl.first("ts_ns", "symbol", "side"), pl.sum("qty").round(8),
    ).select(
        "ts_ns", "symbol", event_type=pl.lit("order"), order=pl.lit(2),
        payload=pl.concat_str([
            pl.lit('{"order_id": '), pl.col("order_id").cast(pl.String),
            pl.lit(', "symbol": "'), pl.col("symbol"), pl.lit('", "side": "'), pl.col("side"),
            pl.lit('", "qty": '), pl.col("qty").cast(pl.String), pl.lit(', "type": "market"}'),
        ]),
    )
    bounds = pl.DataFrame({
        "ts_ns": [int(bar_ns[0]), int(bar_ns[-1])], "symbol": [None, None],
        "event_type": ["run_start", "run_end"], "order": [0, 3],
        "payload": [
            f'{{"initial_cash": {INITIAL_CASH}, "symbols": "{"/".join(n for n, _, _ in legs)}"}}',
            f'{{"bars": {bar_ns.size}, "orders": {orders.height}}}',
        ],
    }, schema={"ts_ns": pl.Int64, "symbol": pl.String, "event_type": pl.String,
               "order": pl.Int32, "payload": pl.String})
    events = pl.concat([bounds, signals.cast(bounds.schema), orders.cast(bounds.schema)])
    events = events.sort(["ts_ns", "order"], maintain_order=True)
    return pa.table({
        "ts": _timestamps(events["ts_ns"].to_numpy(), ts_type),
        "event_type": events["event_type"].to_arrow().cast(pa.string()),
        "symbol": events["symbol"].to_arrow().cast(pa.string()),
        "payload": events["payload"].to_arrow().cast(pa.string()),
    })


def _with_market(table: pa.Table, market: str) -> pa.Table:
    return table.append_column("market", pa.array([market] * table.num_rows, pa.string()))


def _win_rate_of(trades: pa.Table) -> float | None:
    sign = np.where(trades["side"].to_numpy(zero_copy_only=False) == "buy", 1.0, -1.0)
    return win_rate(trades["symbol"].to_numpy(zero_copy_only=False),
                    sign * trades["qty"].to_numpy(), trades["price"].to_numpy(),
                    trades["fee"].to_numpy())


def _manifest(rng: np.random.Generator, run_id: str, strategy: str, market: str,
              created: datetime, params: dict[str, Any],
              metrics: dict[str, Any]) -> dict[str, Any]:
    engine, engine_version = ENGINES[int(rng.integers(len(ENGINES)))]
    release = int(rng.integers(3))
    return {
        "format": "btlake.bundle/1",
        "kind": "backtest",
        "run_id": run_id,
        "strategy_id": strategy,
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "engine": {"name": engine, "version": engine_version},
        # A fake but stable git sha: runs of one strategy share a few code releases.
        "code_version": hashlib.sha1(f"{strategy}@{release}".encode()).hexdigest(),
        "params": params,
        "metrics": metrics,
        "environment": {
            "python": ("3.11.9", "3.12.4")[release % 2],
            "packages": {"numpy": "1.26.4", "polars": "1.9.0", engine: engine_version},
            "host": f"research-{int(rng.integers(1, 9)):02d}",
            "os": "Linux-6.8.0-x86_64",
        },
        "markets": [market],
        "tags": ["demo", strategy, market, str(params["timeframe"])],
    }


# --- ticks -----------------------------------------------------------------------------------


def synthetic_ticks(
    n_rows: int,
    *,
    markets: list[str],
    symbols_per_market: int,
    days: int,
    start: date,
    seed: int,
) -> pa.Table:
    """``n_rows`` tick rows sorted by ``ts`` (timestamp[ns, UTC], with real nanosecond digits).

    Arrival times are a Poisson-like stream over the hours when at least one requested market is
    open (equity venues 13:30-20:00 UTC on every calendar day, crypto and unknown names all
    day); each row goes to one of the markets open at that moment and to a uniformly drawn
    symbol of it. Each symbol's price is a geometric random walk in time order, rounded to the
    tick. Everything is vectorised and times come out sorted by construction, so the only sort
    is a radix sort of small symbol codes: 20 million rows take a few seconds.
    """
    if n_rows < 0 or days < 1 or symbols_per_market < 1 or not markets:
        raise ValueError("need n_rows >= 0, days >= 1, symbols_per_market >= 1 and markets")
    rng = np.random.default_rng(seed)
    specs = [MARKETS.get(market) for market in markets]
    sessions = np.array([spec.session_utc if spec else (0.0, 24.0) for spec in specs]) * 3.6e12
    start_ns = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()) * 10**9
    day_offset, time_of_day = _arrival_times(rng, n_rows, days, sessions.astype(np.int64))
    market = _open_market(rng, time_of_day, sessions)
    code_type = np.int16 if len(markets) * symbols_per_market < 2**15 else np.int32
    symbol = (market.astype(code_type) * symbols_per_market
              + rng.integers(0, symbols_per_market, n_rows, dtype=code_type))

    names, price0, tick, vol, lot, size_scale = [], [], [], [], [], []
    for market_name, spec in zip(markets, specs, strict=True):
        for i in range(symbols_per_market):
            known = spec.symbols[i] if spec and i < len(spec.symbols) else None
            names.append(known[0] if known else f"{market_name}_{i:04d}")
            price0.append(known[1] if known else float(rng.uniform(10, 500)))
            tick.append(spec.tick if spec else 0.01)
            lot.append(spec.lot if spec else 1.0)
            vol.append(4e-5 if lot[-1] == 1.0 else 1e-4)  # per-tick std of log price
            size_scale.append(120.0 if lot[-1] == 1.0 else 2_500.0 / price0[-1])

    price = _tick_prices(rng, symbol, np.array(price0), np.array(tick), np.array(vol))
    per_lot = np.round(1.0 / np.array(lot))
    size = (np.round(rng.exponential(size=n_rows) * np.array(size_scale)[symbol] * per_lot[symbol])
            / per_lot[symbol])
    ts = start_ns + day_offset * NS_PER_DAY + time_of_day
    return pa.table({
        "ts": pa.array(ts, type=pa.timestamp("ns", tz="UTC")),
        "symbol": _strings(names, symbol),
        "market": _strings(list(markets), market),
        "price": price,
        "size": size,
    })


def _arrival_times(rng: np.random.Generator, n_rows: int, days: int,
                   sessions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (day, ns-of-day) arrivals spread uniformly over the union of the sessions.

    A cumulative sum of exponential gaps is sorted by construction; it is scaled onto the open
    time of all days and mapped back to clock time through the merged session windows.
    """
    merged: list[list[int]] = []
    for begin, end in sorted(sessions.tolist()):
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    window = np.array(merged, dtype=np.int64)
    edges = np.concatenate(([0], np.cumsum(window[:, 1] - window[:, 0])))
    open_per_day = int(edges[-1])
    arrivals = np.cumsum(rng.exponential(size=n_rows))
    total = float(arrivals[-1]) if n_rows else 1.0
    position = np.floor(arrivals * (days * open_per_day / (total * (1 + 1e-12)))).astype(np.int64)
    day, in_day = np.divmod(position, open_per_day)
    slot = np.searchsorted(edges, in_day, side="right") - 1
    return day, window[slot, 0] + in_day - edges[slot]


def _open_market(rng: np.random.Generator, time_of_day: np.ndarray,
                 sessions: np.ndarray) -> np.ndarray:
    """For each row, one market drawn uniformly among those open at its time of day."""
    is_open = [(time_of_day >= begin) & (time_of_day < end) for begin, end in sessions]
    n_open = np.sum(is_open, axis=0)
    pick = (rng.random(time_of_day.size) * n_open).astype(np.int64)
    market = np.zeros(time_of_day.size, dtype=np.int32)
    seen = np.zeros(time_of_day.size, dtype=np.int64)
    for index, open_now in enumerate(is_open):
        market[open_now & (seen == pick)] = index
        seen += open_now
    return market


def _tick_prices(rng: np.random.Generator, symbol: np.ndarray, start_price: np.ndarray,
                 tick: np.ndarray, tick_vol: np.ndarray) -> np.ndarray:
    """Per-symbol random walks over rows already in time order, with one grouped cumsum."""
    by_symbol = np.argsort(symbol, kind="stable")  # keeps time order inside each symbol
    counts = np.bincount(symbol, minlength=start_price.size)
    steps = rng.standard_normal(symbol.size) * np.repeat(tick_vol, counts)
    walk = np.cumsum(steps)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    before_group = np.concatenate(([0.0], walk))[first]  # the running sum each group starts on
    log_price = walk + np.repeat(np.log(start_price) - before_group, counts)
    price = np.empty(symbol.size)
    price[by_symbol] = np.exp(log_price)
    step = tick[symbol]
    return np.maximum(_to_tick(price, step), step)


def _to_tick(price: np.ndarray, tick: float | np.ndarray) -> np.ndarray:
    """Round to the tick by dividing by its inverse, so 178.7 is stored as 178.7, not
    178.70000000000002 (``round(p / 0.01) * 0.01`` would leave that artefact)."""
    per_unit = np.round(1.0 / np.asarray(tick))
    return np.round(price * per_unit) / per_unit
