"""Turning lake facts into Dagster metadata: one place, so an ingestion run, a re-derivation
and the catch-up all record the same keys for a partition.

Every partition event carries the Delta version, ``dagster/row_count`` (whole table),
``dagster/partition_row_count``, ``dagster/column_schema``, ``dagster/table_name``, the runs
in the partition (a table), a preview (Markdown), the bundles the rows came from and
``dates``, the daily Delta partitions the event is about.

The facts are the application layer's (:mod:`btlake_pipelines.app.partitions`, which groups
the daily Delta partitions into Dagster's months: one event per ``(month, market)`` touched,
counting the whole month's rows and listing the days it wrote); this module only words them
in Dagster's vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
)

from btlake_pipelines.app.lake import Lake
from btlake_pipelines.app.partitions import PartitionReport
from btlake_pipelines.app.tables import Key, contract_columns
from btlake_pipelines.app.validation import WINDOW, ValidationSummary, failure_sample
from btlake_pipelines.defs.partitions import key_of, representable

CHECK_NAME = "bundles_valid"
_RUNS_SCHEMA = TableSchema(columns=[TableColumn("run_id", "string"),
                                    TableColumn("strategy_id", "string"),
                                    TableColumn("rows", "int")])


def contract_schema(table: str) -> TableSchema:
    """The columns every stored row has, from the contract (shown before any data lands)."""
    return TableSchema(columns=[TableColumn(c.name, c.type, description=c.description)
                                for c in contract_columns(table)])


def partition_metadata(report: PartitionReport) -> dict[str, Any]:
    facts = report.table
    md: dict[str, Any] = {
        "dagster/table_name": f"btlake.{facts.table}",
        "dagster/uri": MetadataValue.text(facts.uri),
        "dagster/row_count": MetadataValue.int(facts.rows),
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(name, kind) for name, kind in facts.schema]),
        "delta_version": MetadataValue.int(facts.version if report.version is None
                                           else report.version),
        "dagster/partition_row_count": MetadataValue.int(report.rows),
        "runs": MetadataValue.table(
            records=[TableRecord({"run_id": r, "strategy_id": s, "rows": n})
                     for r, s, n in report.runs[:200]], schema=_RUNS_SCHEMA),
        "run_count": MetadataValue.int(len(report.runs)),
    }
    if report.preview is not None:
        md["preview"] = MetadataValue.md(report.preview)
    md["source_bundles"] = MetadataValue.json(report.sources[:200])
    md["dates"] = MetadataValue.json([d.isoformat() for d in report.dates])
    md["stored_dates"] = MetadataValue.int(report.stored_days)
    if report.note:
        md["note"] = MetadataValue.text(report.note)
    return md


def partitions_metadata(lake: Lake, table: str, touched: Mapping[Key, int | None], *,
                        keys: Iterable[Key] = (), sources: Mapping[Key, list[str]] | None = None,
                        batch_runs: set[str] | None = None, notes: Mapping[Key, str] | None = None
                        ) -> dict[Key, dict[str, Any]] | None:
    """Metadata of each Dagster partition (as ``(market, date)``) that a daily partition of
    ``touched`` falls in, plus every one of ``keys``; None when the table does not exist yet
    (see :meth:`Lake.partition_reports <btlake_pipelines.app.lake.Lake.partition_reports>`).
    Daily partitions Dagster cannot represent are left out."""
    reports = lake.partition_reports(table, touched, accept=representable, keys=keys,
                                     sources=sources, batch_runs=batch_runs, notes=notes)
    return None if reports is None else {k: partition_metadata(r) for k, r in reports.items()}


def partition_events(lake: Lake, table: str, touched: Mapping[Key, int | None], *,
                     sources: Mapping[Key, list[str]] | None = None,
                     batch_runs: set[str] | None = None,
                     notes: Mapping[Key, str] | None = None, description: str | None = None,
                     tags: dict[str, str] | None = None) -> list[AssetMaterialization]:
    """One materialization per Dagster partition the daily partitions ``touched`` fall in
    (one per month and market for fact tables); see :func:`partitions_metadata`."""
    found = partitions_metadata(lake, table, touched, sources=sources, batch_runs=batch_runs,
                                notes=notes)
    return [AssetMaterialization(asset_key=table, partition=key_of(table, *key),
                                 description=description, tags=tags, metadata=md)
            for key, md in (found or {}).items()]


def check_metadata(summary: ValidationSummary) -> dict[str, Any]:
    md: dict[str, Any] = {
        "bundles_checked": MetadataValue.int(summary.checked),
        "bundles_accepted": MetadataValue.int(summary.accepted),
        "bundles_refused": MetadataValue.int(len(summary.refused)),
        "unresolved_refusals": MetadataValue.int(len(summary.unresolved)),
    }
    sample = failure_sample(summary)
    if sample is not None:
        md["sample_failures"] = MetadataValue.md(sample)
    return md


def check_description(summary: ValidationSummary) -> str:
    batch = (f"latest batch: {summary.accepted} of {summary.checked} bundle(s) accepted"
             if summary.checked else "no batch has concerned this table yet")
    if summary.passed:
        return f"{batch}; no unresolved refusals"
    first = (summary.unresolved or summary.refused)[0]
    return (f"{len(summary.unresolved)} refused bundle(s) not yet replaced by a valid one "
            f"(last {WINDOW.days} days); {batch}. First: {first['bundle']}: {first['rule']} "
            f"{first['message']}")[:500]


def check_evaluation(summary: ValidationSummary) -> AssetCheckEvaluation:
    return AssetCheckEvaluation(
        asset_key=AssetKey(summary.table), check_name=CHECK_NAME, passed=summary.passed,
        metadata=check_metadata(summary), severity=AssetCheckSeverity.ERROR,
        description=check_description(summary))


def check_result(summary: ValidationSummary) -> AssetCheckResult:
    return AssetCheckResult(asset_key=summary.table, check_name=CHECK_NAME,
                            passed=summary.passed, metadata=check_metadata(summary),
                            severity=AssetCheckSeverity.ERROR,
                            description=check_description(summary))
