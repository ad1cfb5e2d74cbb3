"""Bundles and CLI runs for the S3 tests."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from btlake_pipelines.demo import write_bundle

T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
BTLAKE = str(Path(sys.executable).with_name("btlake"))


def trades(n: int, price: float = 100.0) -> pa.Table:
    return pa.table({
        "ts": pa.array([T0 + timedelta(seconds=i) for i in range(n)], pa.timestamp("us", "UTC")),
        "symbol": ["AAPL"] * n,
        "side": ["buy" if i % 2 == 0 else "sell" for i in range(n)],
        "qty": [1.0 + i for i in range(n)],
        "price": [price + i for i in range(n)],
    })


def equity(n: int = 3) -> pa.Table:
    return pa.table({
        "ts": pa.array([T0 + timedelta(minutes=i) for i in range(n)], pa.timestamp("us", "UTC")),
        "equity": [1000.0 + i for i in range(n)],
    })


def ticks(n: int = 5) -> pa.Table:
    return pa.table({
        "ts": pa.array([T0 + timedelta(milliseconds=250 * i) for i in range(n)],
                       pa.timestamp("ns", "UTC")),
        "symbol": ["AAPL"] * n,
        "price": [50.0 + 0.01 * i for i in range(n)],
        "size": [100.0] * n,
    })


def backtest(root: Path, run_id: str, n_trades: int = 4, *, price: float = 100.0,
             file_format: str = "parquet", **fields: Any) -> Path:
    manifest = {
        "run_id": run_id, "strategy_id": fields.pop("strategy_id", "momentum"),
        "created_at": "2024-03-05T08:00:00Z", "engine": {"name": "testengine", "version": "1"},
        "params": {"lookback": 20}, "metrics": {"sharpe": 1.1}, "markets": ["XNAS"], **fields,
    }
    return write_bundle(root / run_id, manifest,
                        {"trades": trades(n_trades, price), "equity": equity()},
                        file_format=file_format)


def market_data(root: Path, run_id: str) -> Path:
    manifest = {"kind": "market_data", "run_id": run_id, "created_at": "2024-03-05T08:00:00Z",
                "markets": ["XNAS"]}
    return write_bundle(root / run_id, manifest, {"ticks": ticks()})


def broken(root: Path, run_id: str) -> Path:
    """A backtest whose trades break a rule (negative price): quarantined."""
    folder = backtest(root, run_id)
    bad = trades(3, price=-5.0)
    write_bundle(folder, {"run_id": run_id, "strategy_id": "momentum",
                          "created_at": "2024-03-05T08:00:00Z",
                          "engine": {"name": "testengine", "version": "1"},
                          "markets": ["XNAS"]}, {"trades": bad})
    return folder


def btlake(*args: str, env: dict[str, str] | None = None, timeout: float = 120
           ) -> subprocess.CompletedProcess:
    """Run the installed ``btlake`` command with the current (test) environment."""
    return subprocess.run([BTLAKE, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
