"""Small, explicit bundle builders for core tests (the demo module makes realistic ones)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from btlake_pipelines.demo import write_bundle

T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def ts_array(n: int, start: datetime = T0, step_ms: int = 1000, unit: str = "ns",
             extra_ns: int = 0) -> pa.Array:
    base = int(start.timestamp() * 1_000_000_000)
    values = [base + i * step_ms * 1_000_000 + extra_ns for i in range(n)]
    return pa.array(values, pa.timestamp("ns", "UTC")).cast(pa.timestamp(unit, "UTC"))


def trades(n: int = 4, price: float = 100.0, symbol: str = "AAPL") -> pa.Table:
    return pa.table({
        "ts": ts_array(n, extra_ns=7),
        "symbol": [symbol] * n,
        "side": ["buy" if i % 2 == 0 else "sell" for i in range(n)],
        "qty": [10.0 + i for i in range(n)],
        "price": [price + i * 0.5 for i in range(n)],
    })


def equity(n: int = 5, start: float = 1_000_000.0) -> pa.Table:
    return pa.table({"ts": ts_array(n, step_ms=60_000, unit="us"),
                     "equity": [start + 100.0 * i for i in range(n)]})


def ticks(n: int = 6, price: float = 50.0, symbol: str = "AAPL",
          start: datetime = T0) -> pa.Table:
    return pa.table({
        "ts": ts_array(n, start=start, step_ms=250, extra_ns=123),
        "symbol": [symbol] * n,
        "price": [price + 0.01 * i for i in range(n)],
        "size": [100.0] * n,
    })


def manifest(run_id: str, **overrides: Any) -> dict[str, Any]:
    doc = {
        "format": "btlake.bundle/1",
        "run_id": run_id,
        "strategy_id": "momentum",
        "created_at": "2024-03-05T08:00:00Z",
        "engine": {"name": "testengine", "version": "1.0"},
        "code_version": "abc123",
        "params": {"lookback": 20, "mode": "fast", "hedge": False},
        "metrics": {"sharpe": 1.2, "total_return": 0.05},
        "environment": {"python": "3.11"},
        "markets": ["XNAS"],
        "tags": ["test"],
    }
    doc.update(overrides)
    return doc


def backtest(landing: Path | str, run_id: str, *, tables: dict[str, pa.Table] | None = None,
             file_format: str = "parquet", **manifest_fields: Any) -> Path:
    tables = {"trades": trades(), "equity": equity()} if tables is None else tables
    return write_bundle(Path(landing) / run_id, manifest(run_id, **manifest_fields), tables,
                        file_format=file_format)


def market_data(landing: Path | str, run_id: str, tables: dict[str, pa.Table],
                market: str = "XNAS") -> Path:
    doc = {"format": "btlake.bundle/1", "kind": "market_data", "run_id": run_id,
           "created_at": "2024-03-05T08:00:00Z", "markets": [market]}
    return write_bundle(Path(landing) / run_id, doc, tables)


def later(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)
