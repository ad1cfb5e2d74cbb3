"""Two runs side by side: params and metrics with differences marked, and summaries of their
trades and equity curves."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from btlake_pipelines.errors import NotFoundError
from btlake_pipelines.query.read import scan_slice
from btlake_pipelines.query.search import jsonable, matching_rows, result_frame, runs_to_records
from btlake_pipelines.storage.catalog import Catalog


def run_record(catalog: Catalog, run_id: str) -> dict[str, Any]:
    """One run's metadata snapshot (the ``runs`` row as JSON-ready values, manifest included;
    metrics from the catalog's long tables, as a search returns them)."""
    view = catalog.runs_view()
    rows = matching_rows(view, pl.col("run_id") == run_id) if view is not None else None
    if rows is None or rows.is_empty():
        raise NotFoundError(f"unknown run {run_id!r}")
    return runs_to_records(result_frame(view, rows.head(1), hidden=()))[0]


def compare_runs(catalog: Catalog, run_a: str, run_b: str) -> dict[str, Any]:
    a, b = run_record(catalog, run_a), run_record(catalog, run_b)
    return {
        "runs": [run_a, run_b],
        "params": side_by_side(a["params"], b["params"]),
        "metrics": side_by_side(a["metrics"], b["metrics"]),
        "metadata": {"a": _brief(a), "b": _brief(b)},
        "summary": {
            "trades": {"a": trade_summary(catalog, run_a), "b": trade_summary(catalog, run_b)},
            "equity": {"a": equity_summary(catalog, run_a), "b": equity_summary(catalog, run_b)},
        },
    }


def side_by_side(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {"a": a.get(name), "b": b.get(name),
                   "differs": json.dumps(a.get(name)) != json.dumps(b.get(name))}
            for name in sorted(set(a) | set(b))}


def _brief(run: dict[str, Any]) -> dict[str, Any]:
    keys = ("strategy_id", "created_at", "engine_name", "engine_version", "code_version",
            "markets", "content_hash")
    return {k: run.get(k) for k in keys}


def trade_summary(catalog: Catalog, run_id: str, as_of: int | None = None) -> dict[str, Any]:
    df = scan_slice(catalog, "trades", run_id=run_id, as_of=as_of).collect() \
        if catalog.table("trades") is not None else pl.DataFrame()
    if df.is_empty():
        return {"rows": 0}
    notional = (df["qty"] * df["price"]).sum()
    return jsonable({
        "rows": df.height,
        "buys": int((df["side"] == "buy").sum()),
        "sells": int((df["side"] == "sell").sum()),
        "quantity": float(df["qty"].sum()),
        "notional": float(notional),
        "symbols": sorted(df["symbol"].unique().to_list()),
        "first_ts": df["ts"].min(),
        "last_ts": df["ts"].max(),
    })


def equity_summary(catalog: Catalog, run_id: str, as_of: int | None = None) -> dict[str, Any]:
    df = scan_slice(catalog, "equity", run_id=run_id, as_of=as_of).collect() \
        if catalog.table("equity") is not None else pl.DataFrame()
    if df.is_empty():
        return {"rows": 0}
    eq = df.sort("ts")["equity"]
    peak = eq.cum_max()
    drawdown = ((eq - peak) / peak).min()
    start, final = float(eq[0]), float(eq[-1])
    return jsonable({
        "rows": df.height,
        "start": start,
        "end": final,
        "return": (final / start - 1.0) if start else None,
        "max_drawdown": float(drawdown) if drawdown is not None else None,
        "min": float(eq.min()),
        "max": float(eq.max()),
    })
