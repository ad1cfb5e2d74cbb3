"""What the lake browser needs beyond the contract's operations, built from the same core
functions: a run's equity curve downsampled for plotting, the difference between two stored
versions of a run, and a side-by-side view of two or more runs.

These are plain functions over a :class:`~btlake_pipelines.storage.catalog.Catalog`, so they can
move into the core (``versions/``) unchanged if the CLI ever wants them.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from btlake_pipelines.contract.tables import RUNS
from btlake_pipelines.errors import NotFoundError, QueryError
from btlake_pipelines.query.read import scan_slice
from btlake_pipelines.query.search import jsonable, runs_to_records
from btlake_pipelines.storage.catalog import Catalog
from btlake_pipelines.versions.compare import (
    equity_summary,
    run_record,
    side_by_side,
    trade_summary,
)
from btlake_pipelines.versions.run_versions import run_versions

MAX_COMPARE = 12


# --- equity curve ----------------------------------------------------------------------------


def downsample(frame: pl.DataFrame, points: int) -> pl.DataFrame:
    """Reduce a curve (``ts``, ``equity``, sorted by ``ts``) to about ``points`` rows that keep
    its shape: the series is cut into ``points // 3`` equal buckets and each keeps the rows of its
    lowest and highest equity and its deepest drawdown (plus the very first and last rows), so
    spikes and troughs survive. ``drawdown`` (``equity / running peak - 1``) is computed on the
    full series first. A curve of ``points`` rows or fewer comes back whole."""
    eq = pl.col("equity").cast(pl.Float64)
    peak = eq.cum_max()
    frame = frame.with_columns(
        pl.when(peak > 0).then(eq / peak - 1.0).otherwise(None).alias("drawdown"))
    n = frame.height
    if n <= points:
        return frame
    buckets = max(points // 3, 1)
    indexed = frame.with_row_index("i").with_columns(
        (pl.col("i").cast(pl.Int64) * buckets // n).alias("bucket"))
    keep = indexed.group_by("bucket").agg(
        pl.col("i").get(pl.col("equity").arg_min()).alias("lo"),
        pl.col("i").get(pl.col("equity").arg_max()).alias("hi"),
        pl.col("i").get(pl.col("drawdown").fill_null(0.0).arg_min()).alias("dd"),
    )
    chosen = pl.concat([keep["lo"], keep["hi"], keep["dd"],
                        pl.Series([0, n - 1], dtype=keep["lo"].dtype)]).unique().sort()
    return indexed.filter(pl.col("i").is_in(chosen.implode())).drop("i", "bucket")


def equity_curve(catalog: Catalog, run_id: str, points: int) -> dict[str, Any]:
    """The run's equity curve and drawdown, downsampled to about ``points`` points."""
    run_record(catalog, run_id)  # unknown run -> 404
    frame = pl.DataFrame(schema={"ts": pl.Datetime("us", "UTC"), "equity": pl.Float64})
    if catalog.table("equity") is not None:
        frame = (scan_slice(catalog, "equity", run_id=run_id, columns=["ts", "equity"])
                 .select("ts", pl.col("equity").cast(pl.Float64)).sort("ts").collect())
    total = frame.height
    small = downsample(frame, points)
    ts = small.get_column("ts").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ").to_list()
    return {
        "run_id": run_id, "total_points": total, "points": small.height,
        "downsampled": small.height < total, "ts": ts,
        "equity": jsonable(small.get_column("equity").to_list()),
        "drawdown": jsonable(small.get_column("drawdown").to_list()),
    }


# --- versions of one run ---------------------------------------------------------------------


def _runs_version(entry: dict[str, Any]) -> int | None:
    value = (entry.get("versions") or {}).get(RUNS)
    return int(value) if value is not None else None


def _record_at(catalog: Catalog, run_id: str, version: int) -> dict[str, Any]:
    dt = catalog.table_at(RUNS, version)
    found = pl.scan_delta(dt).filter(pl.col("run_id") == run_id).collect()
    if found.is_empty():
        raise NotFoundError(f"run {run_id!r} is not in version {version} of the runs table")
    return runs_to_records(found)[0]


def _side(catalog: Catalog, run_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    version = _runs_version(entry)
    assert version is not None
    record = _record_at(catalog, run_id, version)
    tables = entry.get("versions") or {}
    summary = {
        "trades": trade_summary(catalog, run_id, as_of=tables["trades"])
        if "trades" in tables else {"rows": 0},
        "equity": equity_summary(catalog, run_id, as_of=tables["equity"])
        if "equity" in tables else {"rows": 0},
    }
    return {"meta": {"runs_version": version, "content_hash": entry.get("content_hash"),
                     "ingested_at": entry.get("ingested_at"),
                     "current": bool(entry.get("current"))},
            "params": record.get("params") or {}, "metrics": record.get("metrics") or {},
            "rows": {k: v for k, v in (entry.get("rows") or {}).items()},
            "summary": summary}


def version_diff(catalog: Catalog, run_id: str, a: int | None = None,
                 b: int | None = None) -> dict[str, Any]:
    """What changed between two stored versions of a run, each named by the ``runs`` table
    version it was written in (``versions.runs`` of ``/runs/{id}/versions``). Defaults: ``b``
    the current version, ``a`` the one before it."""
    entries = [e for e in run_versions(catalog, run_id) if _runs_version(e) is not None]
    if not entries:
        raise NotFoundError(f"unknown run {run_id!r}")
    by_version = {_runs_version(e): e for e in entries}
    if b is None:
        b = _runs_version(entries[0])
    if a is None:
        older = [v for v in by_version if v is not None and b is not None and v < b]
        if not older:
            raise NotFoundError(f"run {run_id!r} has no version before {b}: nothing to compare")
        a = max(older)
    for name, v in (("a", a), ("b", b)):
        if v not in by_version:
            known = ", ".join(str(k) for k in by_version)
            raise NotFoundError(f"run {run_id!r} has no stored version {v} ({name}); versions "
                                f"(runs table versions): {known}")
    left, right = _side(catalog, run_id, by_version[a]), _side(catalog, run_id, by_version[b])
    out = {
        "run_id": run_id, "a": left["meta"], "b": right["meta"],
        "params": side_by_side(left["params"], right["params"]),
        "metrics": side_by_side(left["metrics"], right["metrics"]),
        "rows": side_by_side(left["rows"], right["rows"]),
        "summary": {part: side_by_side(left["summary"][part], right["summary"][part])
                    for part in ("trades", "equity")},
    }
    changed = [f"{section}.{name}" for section in ("params", "metrics", "rows")
               for name, v in out[section].items() if v["differs"]]
    changed += [f"summary.{part}.{name}" for part, values in out["summary"].items()
                for name, v in values.items() if v["differs"]]
    out["changed"] = changed
    return out


# --- two or more runs side by side -----------------------------------------------------------


def compare_many(catalog: Catalog, run_ids: list[str]) -> dict[str, Any]:
    """Params and metrics of 2..12 runs side by side (``differs`` when not all equal), with
    each run's trade and equity summary."""
    ids = list(dict.fromkeys(run_ids))
    if not 2 <= len(ids) <= MAX_COMPARE:
        raise QueryError(f"compare needs 2 to {MAX_COMPARE} different run ids, got {len(ids)}")
    records = {r: run_record(catalog, r) for r in ids}

    def table(section: str) -> dict[str, dict[str, Any]]:
        names = sorted({k for rec in records.values() for k in (rec.get(section) or {})})
        out = {}
        for name in names:
            values = {r: (records[r].get(section) or {}).get(name) for r in ids}
            distinct = {json.dumps(v, sort_keys=True, default=str) for v in values.values()}
            out[name] = {"values": values, "differs": len(distinct) > 1}
        return out

    keys = ("strategy_id", "created_at", "engine_name", "engine_version", "code_version",
            "markets", "content_hash")
    return {
        "runs": ids,
        "metadata": {r: {k: records[r].get(k) for k in keys} for r in ids},
        "params": table("params"),
        "metrics": table("metrics"),
        "summary": {r: {"trades": trade_summary(catalog, r), "equity": equity_summary(catalog, r)}
                    for r in ids},
    }
