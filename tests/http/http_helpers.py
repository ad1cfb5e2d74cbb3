"""Helpers shared by the HTTP tests: build bundles, send them as multipart uploads."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx vs httpx2
    from fastapi.testclient import TestClient

from btlake_pipelines.demo import synthetic_backtest, write_bundle

#: Runs in the session's shared demo lake.
DEMO_RUNS = 8


def client_for(app) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def make_bundle(src: Path, index: int = 0, *, n_trades: int = 40, n_equity: int = 200,
                seed: int = 3, tweak=None) -> Path:
    """A small synthetic backtest bundle in ``src/<run_id>``; ``tweak(manifest, tables)`` may
    change it before it is written."""
    manifest, tables = synthetic_backtest(index, seed=seed, n_trades=n_trades, n_equity=n_equity,
                                          created_at=datetime(2024, 3, 4, 12, tzinfo=UTC))
    if tweak is not None:
        tweak(manifest, tables)
    return write_bundle(src / manifest["run_id"], manifest, tables)


def multipart(folder: Path, *, manifest_as_file: bool = False):
    """``(data, files)`` for httpx: the manifest field and one ``files`` part per table file."""
    text = (folder / "manifest.json").read_text()
    files = [("files", (name, (folder / name).read_bytes(), "application/octet-stream"))
             for name in json.loads(text)["tables"].values()]
    if manifest_as_file:
        return {}, [("manifest", ("manifest.json", text.encode(), "application/json")), *files]
    return {"manifest": text}, files


def upload(client: TestClient, folder: Path, *, ingest: bool = True, headers=None,
           manifest_as_file: bool = False, **params):
    data, files = multipart(folder, manifest_as_file=manifest_as_file)
    if ingest:
        params["ingest"] = "now"
    return client.post("/api/v1/bundles", params=params, data=data, files=files,
                       headers=headers or {})


def ns_trades(n: int = 30) -> pa.Table:
    """Trades with nanosecond timestamps that microseconds cannot hold."""
    base = 1_709_553_600_000_000_000  # 2024-03-04T12:00:00Z
    ts = [base + i * 60_000_000_000 + 123_456_789 + i for i in range(n)]
    return pa.table({
        "ts": pa.array(ts, pa.timestamp("ns", "UTC")),
        "symbol": pa.array(["BTCUSDT" if i % 2 else "ETHUSDT" for i in range(n)]),
        "side": pa.array(["buy" if i % 3 else "sell" for i in range(n)]),
        "qty": pa.array([0.5 + i for i in range(n)], pa.float64()),
        "price": pa.array([100.0 + i * 0.25 for i in range(n)], pa.float64()),
    })
