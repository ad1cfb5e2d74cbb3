"""Validation outcomes per table, for the ``bundles_valid`` asset checks.

A check fails while a refused bundle is *unresolved*: refused within the look-back window
(7 days) and not handled successfully since under the same name (fix it and publish it
again, and the check turns green). A refusal counts against the table its rule names; one
about the manifest or the folder counts against ``runs``, which sees every refusal. Each
summary also carries the counts of one batch (the one just ingested, or the latest that
concerned the table), so the check's history shows what each batch did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from btlake_pipelines.contract.tables import FACT_TABLES, PARTITIONED_TABLES, RUNS
from btlake_pipelines.metadata.ingest_log import (
    as_mapping,
    empty_frame,
    reason_record,
    scan_log,
)

TABLES = PARTITIONED_TABLES
WINDOW = timedelta(days=7)
_LOG_COLUMNS = ("batch_id", "bundle", "status", "error", "reason", "tables", "rows",
                "handled_at")


@dataclass
class ValidationSummary:
    table: str
    checked: int = 0  # bundles of the batch that concerned the table
    accepted: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)  # in the batch
    unresolved: list[dict[str, Any]] = field(default_factory=list)  # in the window

    @property
    def passed(self) -> bool:
        return not self.unresolved and not self.refused


def batch_summaries(results: Iterable[Any]) -> dict[str, ValidationSummary]:
    """Per table, the bundles of one batch that concerned it and which of them were refused.
    ``results``: ``BundleResult`` objects or typed ``ingest_log`` rows (dicts)."""
    out = {t: ValidationSummary(t) for t in TABLES}
    for r in map(_record, results):
        refused_table = _refused_table(r)
        tables = {t for t in (*r["tables"], *r["rows"]) if t in FACT_TABLES}
        if refused_table:
            tables.add(refused_table)
        for table in (*tables, RUNS):
            summary = out[table]
            summary.checked += 1
            if r["status"] != "quarantined":
                summary.accepted += 1
            elif table in (refused_table, RUNS):
                summary.refused.append(_failure(r))
    return out


def validation_report(lake: str, results: Iterable[Any] | None = None, *,
                      now: datetime | None = None) -> dict[str, ValidationSummary]:
    """Every table's summary: the counts of ``results`` (one batch; default: for each table
    the latest batch that concerned it) and the unresolved refusals of the window."""
    log = _recent_log(lake, (now or datetime.now(UTC)) - WINDOW)
    if results is not None:
        out = batch_summaries(results)
    else:
        out = {t: ValidationSummary(t) for t in TABLES}
        for _, rows in log.sort("handled_at", descending=True).group_by("batch_id",
                                                                        maintain_order=True):
            for table, summary in batch_summaries(rows.iter_rows(named=True)).items():
                if summary.checked and not out[table].checked:
                    out[table] = summary
            if all(s.checked for s in out.values()):
                break
    for table, failures in _unresolved(log).items():
        out[table].unresolved = failures
    return out


def _recent_log(lake: str, since: datetime) -> pl.DataFrame:
    lf = scan_log(lake)
    if lf is None:
        return empty_frame().select(*_LOG_COLUMNS)
    return lf.filter(pl.col("handled_at") >= since).select(*_LOG_COLUMNS).collect()


def _unresolved(log: pl.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Refusals whose bundle's latest handling in the window is still a refusal."""
    out: dict[str, list[dict[str, Any]]] = {}
    if log.is_empty():
        return out
    latest = (log.with_row_index("_seq").sort("handled_at", "_seq")
              .group_by("bundle", maintain_order=True).last()
              .filter(pl.col("status") == "quarantined").sort("handled_at", descending=True))
    for r in map(_record, latest.iter_rows(named=True)):
        failure = _failure(r)
        out.setdefault(RUNS, []).append(failure)
        if _refused_table(r):
            out.setdefault(_refused_table(r), []).append(failure)
    return out


def _refused_table(r: dict[str, Any]) -> str | None:
    table = (r["reason"] or {}).get("table")
    return table if r["status"] == "quarantined" and table in FACT_TABLES else None


def _failure(r: dict[str, Any]) -> dict[str, Any]:
    reason = r["reason"] or {}
    return {"bundle": r["bundle"], "rule": reason.get("rule"), "table": reason.get("table"),
            "column": reason.get("column"), "rows": reason.get("rows") or [],
            "values": reason.get("values") or [],
            "message": reason.get("message") or r["error"]}


def _record(r: Any) -> dict[str, Any]:
    if isinstance(r, dict):  # a typed ingest_log row
        return {"bundle": r["bundle"], "status": r["status"], "error": r.get("error"),
                "reason": reason_record(r.get("reason")),
                "tables": as_mapping(r.get("tables"), "version"),
                "rows": as_mapping(r.get("rows"), "rows")}
    return {"bundle": r.bundle, "status": r.status, "error": r.error, "reason": r.reason,
            "tables": r.tables, "rows": r.rows}
