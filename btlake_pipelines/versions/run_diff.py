"""What changed between two stored versions of one run: params, metrics, row counts and the
trade and equity summaries, each read at the Delta versions that run version wrote.

A run version is named by the ``runs`` table version it was written in (``versions.runs`` of
:func:`~btlake_pipelines.versions.run_versions.run_versions`), the one number that identifies
a re-ingestion across every table it touched.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from btlake_pipelines.contract.tables import RUNS
from btlake_pipelines.errors import NotFoundError
from btlake_pipelines.query.search import runs_to_records
from btlake_pipelines.storage.catalog import Catalog
from btlake_pipelines.versions.compare import equity_summary, side_by_side, trade_summary
from btlake_pipelines.versions.run_versions import run_versions

SECTIONS = ("params", "metrics", "rows")
SUMMARIES = ("trades", "equity")


def _runs_version(entry: dict[str, Any]) -> int | None:
    value = (entry.get("versions") or {}).get(RUNS)
    return int(value) if value is not None else None


def _record_at(catalog: Catalog, run_id: str, version: int) -> dict[str, Any]:
    found = pl.scan_delta(catalog.table_at(RUNS, version)).filter(
        pl.col("run_id") == run_id).collect()
    if found.is_empty():
        raise NotFoundError(f"run {run_id!r} is not in version {version} of the runs table")
    return runs_to_records(found)[0]


def _side(catalog: Catalog, run_id: str, entry: dict[str, Any], version: int
          ) -> dict[str, Any]:
    record = _record_at(catalog, run_id, version)
    tables = entry.get("versions") or {}
    summaries = {"trades": trade_summary, "equity": equity_summary}
    return {
        "meta": {"runs_version": version, "content_hash": entry.get("content_hash"),
                 "ingested_at": entry.get("ingested_at"), "current": bool(entry.get("current"))},
        "params": record.get("params") or {}, "metrics": record.get("metrics") or {},
        "rows": dict(entry.get("rows") or {}),
        "summary": {part: summaries[part](catalog, run_id, as_of=tables[part])
                    if part in tables else {"rows": 0} for part in SUMMARIES},
    }


def run_diff(catalog: Catalog, run_id: str, a: int | None = None,
             b: int | None = None) -> dict[str, Any]:
    """Two stored versions of ``run_id`` side by side (``differs`` per value) and ``changed``,
    every field that differs as ``section.name``. Defaults: ``b`` the current version, ``a``
    the one before it."""
    by_version: dict[int, dict[str, Any]] = {}
    for entry in run_versions(catalog, run_id):  # newest first
        version = _runs_version(entry)
        if version is not None:
            by_version.setdefault(version, entry)
    if not by_version:
        raise NotFoundError(f"unknown run {run_id!r}")
    if b is None:
        b = next(iter(by_version))
    if a is None:
        older = [v for v in by_version if v < b]
        if not older:
            raise NotFoundError(f"run {run_id!r} has no version before {b}: nothing to compare")
        a = max(older)
    for name, v in (("a", a), ("b", b)):
        if v not in by_version:
            known = ", ".join(str(k) for k in by_version)
            raise NotFoundError(f"run {run_id!r} has no stored version {v} ({{param}}); "
                                f"versions (runs table versions): {known}", param=name)
    left = _side(catalog, run_id, by_version[a], a)
    right = _side(catalog, run_id, by_version[b], b)
    out: dict[str, Any] = {"run_id": run_id, "a": left["meta"], "b": right["meta"]}
    for section in SECTIONS:
        out[section] = side_by_side(left[section], right[section])
    out["summary"] = {part: side_by_side(left["summary"][part], right["summary"][part])
                      for part in SUMMARIES}
    out["changed"] = [f"{section}.{name}" for section in SECTIONS
                      for name, v in out[section].items() if v["differs"]]
    out["changed"] += [f"summary.{part}.{name}" for part, values in out["summary"].items()
                       for name, v in values.items() if v["differs"]]
    return out
