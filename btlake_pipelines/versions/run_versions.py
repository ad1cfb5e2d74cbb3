"""Every stored version of one run, from ``ingest_log``: what time travel can still reach."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from btlake_pipelines.contract.tables import INGEST_LOG
from btlake_pipelines.errors import NotFoundError
from btlake_pipelines.metadata.ingest_log import as_mapping
from btlake_pipelines.query.search import jsonable
from btlake_pipelines.storage import maintenance_state
from btlake_pipelines.storage.catalog import Catalog


def run_versions(catalog: Catalog, run_id: str) -> list[dict[str, Any]]:
    """Versions of ``run_id`` written to the lake, newest first. A version is listed while
    vacuum has not removed the files it needs (``reachable``)."""
    dt = catalog.table(INGEST_LOG)
    if dt is None:
        raise NotFoundError(f"unknown run {run_id!r}")
    log = (pl.scan_delta(dt).select("run_id", "status", "kind", "handled_at", "content_hash",
                                    "tables", "rows", "destination_uri", "batch_id")
           .filter((pl.col("run_id") == run_id)
                   & pl.col("status").is_in(["ingested", "replaced"])
                   & (pl.col("kind") == "backtest"))
           .sort("handled_at", descending=True).collect())
    if log.is_empty():
        raise NotFoundError(f"unknown run {run_id!r}")
    cutoff = _vacuum_cutoff(catalog)
    out = []
    for i, row in enumerate(log.iter_rows(named=True)):
        reachable = i == 0 or cutoff is None or row["handled_at"] >= cutoff
        if not reachable:
            continue
        out.append(jsonable({
            "run_id": run_id,
            "content_hash": row["content_hash"],
            "ingested_at": row["handled_at"],
            "status": row["status"],
            "current": i == 0,
            "versions": _mapping(row["tables"], "version"),
            "rows": _mapping(row["rows"], "rows"),
            "archive_uri": row["destination_uri"],
            "batch_id": row["batch_id"],
        }))
    return out


def _mapping(value: Any, field: str) -> dict[str, Any]:
    """A row's ``tables`` / ``rows``: typed entries, or JSON text in a log not yet migrated."""
    return json.loads(value or "{}") if isinstance(value, str | None) else as_mapping(value, field)


def _vacuum_cutoff(catalog: Catalog) -> datetime | None:
    state = maintenance_state.load(catalog.lake)
    hours = state.get("vacuum_retention_hours")
    last = state.get("last_vacuum")
    if hours is None or last is None:
        return None
    return datetime.fromisoformat(last).astimezone(UTC) - timedelta(hours=float(hours))
