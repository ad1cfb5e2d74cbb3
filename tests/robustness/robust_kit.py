"""Shared helpers of the robustness tests: small hand-made bundles, raw writers for broken ones,
and the invariants every test checks on a lake (no half-visible run, no run twice, every bundle
in exactly one of landing / archive / quarantine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from btlake_pipelines.demo import synthetic_backtest, write_bundle

CREATED = "2024-03-04T12:00:00Z"
T0 = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]
BTLAKE = str(Path(sys.executable).with_name("btlake"))
RUN_TABLES = ("trades", "equity", "events")


# --- building bundles ------------------------------------------------------------------------


def manifest(run_id: str, **over: Any) -> dict[str, Any]:
    """A valid backtest manifest for ``run_id`` (fields overridable, ``None`` removes one)."""
    doc: dict[str, Any] = {
        "format": "btlake.bundle/1",
        "kind": "backtest",
        "run_id": run_id,
        "strategy_id": "robust",
        "created_at": CREATED,
        "engine": {"name": "unit", "version": "1"},
        "params": {"lookback": 5, "mode": "fast", "hedged": True},
        "metrics": {"sharpe": 1.25, "total_return": 0.1},
        "markets": ["XNAS"],
        "tables": {"trades": "trades.parquet", "equity": "equity.parquet"},
    }
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


def market_manifest(run_id: str, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"format": "btlake.bundle/1", "kind": "market_data", "run_id": run_id,
                           "created_at": CREATED, "markets": ["XNAS"],
                           "tables": {"ticks": "ticks.parquet"}}
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


def ts_array(n: int, step_us: int = 1_000_000) -> pa.Array:
    base = int(T0.timestamp() * 1_000_000)
    return pa.array([base + i * step_us for i in range(n)], pa.timestamp("us", "UTC"))


def trades_table(n: int = 4, **cols: Any) -> pa.Table:
    data: dict[str, Any] = {
        "ts": ts_array(n),
        "symbol": pa.array(["AAPL"] * n),
        "side": pa.array(["buy", "sell"] * (n // 2) + ["buy"] * (n % 2)),
        "qty": pa.array([10.0] * n),
        "price": pa.array([100.0 + i for i in range(n)]),
    }
    data.update(cols)
    return pa.table(data)


def equity_table(n: int = 5, **cols: Any) -> pa.Table:
    data: dict[str, Any] = {"ts": ts_array(n), "equity": pa.array([1e5 + i for i in range(n)])}
    data.update(cols)
    return pa.table(data)


def ticks_table(n: int = 6, symbol: str = "AAPL", start_us: int = 0, **cols: Any) -> pa.Table:
    base = int(T0.timestamp() * 1_000_000) + start_us
    data: dict[str, Any] = {
        "ts": pa.array([base + i * 1000 for i in range(n)], pa.timestamp("us", "UTC")),
        "symbol": pa.array([symbol] * n),
        "price": pa.array([50.0 + i / 100 for i in range(n)]),
        "size": pa.array([1.0 * (i + 1) for i in range(n)]),
    }
    data.update(cols)
    return pa.table(data)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def csv_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    return sink.getvalue().to_pybytes()


def write_raw(folder: Path, manifest_doc: dict | bytes | str, files: dict[str, bytes]) -> Path:
    """Write ``files`` then ``manifest.json`` (a dict as JSON, bytes or text as given) into
    ``folder``, with no checks at all: the way a broken or hostile engine would."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    if isinstance(manifest_doc, dict):
        manifest_doc = json.dumps(manifest_doc)
    if isinstance(manifest_doc, str):
        manifest_doc = manifest_doc.encode("utf-8", "surrogateescape")
    (folder / "manifest.json").write_bytes(manifest_doc)
    return folder


def write_good(landing: Path, run_id: str, *, trades: pa.Table | None = None,
               equity: pa.Table | None = None, fmt: str = "parquet", **over: Any) -> Path:
    ext = "csv" if fmt == "csv" else "parquet"
    tables = {"trades": trades if trades is not None else trades_table(),
              "equity": equity if equity is not None else equity_table()}
    doc = manifest(run_id, tables={t: f"{t}.{ext}" for t in tables}, **over)
    return write_bundle(landing / run_id, doc, tables, file_format=fmt)


def write_synthetic(landing: Path, index: int, *, seed: int = 11, fmt: str = "parquet",
                    n_trades: int = 12, n_equity: int = 30) -> str:
    """A realistic synthetic run (trades, equity, events); returns its run id."""
    doc, tables = synthetic_backtest(index, seed=seed, n_trades=n_trades, n_equity=n_equity,
                                     created_at=datetime(2024, 3, 4 + index % 3, tzinfo=UTC))
    write_bundle(landing / doc["run_id"], doc, tables, file_format=fmt)
    return doc["run_id"]


# --- looking at a lake -----------------------------------------------------------------------


def reasons(lake: Path) -> dict[str, dict]:
    """Every ``reason.json`` under quarantine, by the bundle name it records."""
    out = {}
    root = lake / "_quarantine"
    if not root.is_dir():
        return out
    for folder in root.iterdir():
        path = folder / "reason.json"
        if path.is_file() and not path.is_symlink():
            doc = json.loads(path.read_text())
            out[doc["bundle"]] = {**doc, "_folder": folder.name}
    return out


def ingest_log(lake: Path) -> list[dict]:
    from btlake_pipelines import Lake

    return Lake(str(lake)).read("ingest_log").to_pylist()


def archived(lake: Path) -> Counter:
    """run id -> number of archive copies."""
    root = lake / "_archive"
    if not root.is_dir():
        return Counter()
    return Counter({d.name: len([c for c in d.iterdir() if not c.name.endswith(".partial")])
                    for d in root.iterdir()})


def quarantined_names(lake: Path) -> Counter:
    """Original bundle name -> number of quarantine folders holding it (by reason.json)."""
    root = lake / "_quarantine"
    out: Counter = Counter()
    if root.is_dir():
        for folder in root.iterdir():
            path = folder / "reason.json"
            if path.is_file():
                out[json.loads(path.read_text())["bundle"]] += 1
    return out


def run_ids_in(lake: Path, table: str) -> Counter:
    """run_id -> rows of ``table`` a btlake reader sees."""
    from btlake_pipelines import Lake

    tbl = Lake(str(lake)).read(table, columns=["run_id"])
    return Counter(tbl.column("run_id").to_pylist())


def raw_rows(lake: Path, table: str) -> list[dict]:
    """Rows of a Delta table read with deltalake alone (no btlake filtering)."""
    from deltalake import DeltaTable

    path = lake / table
    if not (path / "_delta_log").is_dir():
        return []
    return DeltaTable(str(path)).to_pyarrow_table().to_pylist()


def assert_runs_whole(lake: Path) -> dict[str, dict]:
    """No run twice in ``runs``; every visible run shows, through btlake, exactly the row count
    its ``runs`` row records for each of its tables. Returns the runs by id."""
    from btlake_pipelines import Lake

    lk = Lake(str(lake))
    runs = lk.runs().to_pylist()
    ids = Counter(r["run_id"] for r in runs)
    assert not [r for r, n in ids.items() if n > 1], f"runs twice: {ids}"
    by_id = {r["run_id"]: r for r in runs}
    for table in RUN_TABLES:
        seen = run_ids_in(lake, table)
        for run_id, r in by_id.items():
            want = (r["rows"] or {}).get(table) or 0
            assert seen.get(run_id, 0) == want, (
                f"run {run_id} shows {seen.get(run_id, 0)} {table} rows, its runs row says "
                f"{want}")
        stray = set(seen) - set(by_id) - {None}
        assert not stray, f"{table} shows rows of runs not in runs: {stray}"
    return by_id


def assert_each_bundle_once(landing: Path, lake: Path, names: list[str],
                            before: Counter | None = None) -> dict[str, str]:
    """Every bundle is in exactly one of landing, archive, quarantine (counting only archive
    copies made since ``before``, the archive counts of earlier handlings); returns
    name -> where."""
    arch, quar = archived(lake), quarantined_names(lake)
    arch.subtract(before or Counter())
    where = {}
    for name in names:
        places = []
        if (landing / name).exists() or (landing / name).is_symlink():
            places.append("landing")
        places += ["archive"] * arch.get(name, 0)
        places += ["quarantine"] * quar.get(name, 0)
        assert len(places) == 1, f"bundle {name!r} is in {places or 'no place'}"
        where[name] = places[0]
    return where


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120
            ) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("BTLAKE_DEBUG", None)
    return subprocess.run([BTLAKE, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, cwd=REPO)
