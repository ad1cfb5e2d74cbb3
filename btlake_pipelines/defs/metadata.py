"""Turning lake facts into Dagster metadata: one place, so an ingestion run, a re-derivation
and the catch-up all record the same keys for a partition.

Every partition event carries the Delta version, ``dagster/row_count`` (whole table),
``dagster/partition_row_count``, ``dagster/column_schema``, ``dagster/table_name``, the runs
in the partition (a table), a preview (Markdown) and the bundles the rows came from.
"""

from __future__ import annotations

from collections.abc import Iterable
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

from btlake_pipelines.contract.tables import FACT_TABLES, PARTITION_COLUMNS
from btlake_pipelines.defs.partitions import key_of, representable
from btlake_pipelines.ingest.report import (
    Key,
    PartitionFacts,
    TableFacts,
    markdown_table,
    partition_facts,
    table_facts,
)
from btlake_pipelines.ingest.validation_report import WINDOW, ValidationSummary
from btlake_pipelines.storage.delta import open_table

CHECK_NAME = "bundles_valid"
_RUNS_SCHEMA = TableSchema(columns=[TableColumn("run_id", "string"),
                                    TableColumn("strategy_id", "string"),
                                    TableColumn("rows", "int")])
_TYPES = {"timestamp": "timestamp[us, UTC]", "string": "string", "float": "double",
          "int": "int64"}


def contract_schema(table: str) -> TableSchema:
    """The columns every stored row has, from the contract (shown before any data lands)."""
    spec = FACT_TABLES[table]
    cols = [TableColumn(n, _TYPES[k], description="required by the contract")
            for n, k in spec.required]
    cols += [TableColumn(c, "string" if c == "market" else "date32", description="partition")
             for c in PARTITION_COLUMNS]
    return TableSchema(columns=cols)


def table_metadata(facts: TableFacts) -> dict[str, Any]:
    return {
        "dagster/table_name": f"btlake.{facts.table}",
        "dagster/uri": MetadataValue.text(facts.uri),
        "dagster/row_count": MetadataValue.int(facts.rows),
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(name, kind) for name, kind in facts.schema]),
        "delta_version": MetadataValue.int(facts.version),
    }


def partition_metadata(facts: TableFacts, part: PartitionFacts, *, version: int | None,
                       sources: Iterable[str] = (), note: str | None = None) -> dict[str, Any]:
    md = table_metadata(facts)
    md["dagster/partition_row_count"] = MetadataValue.int(part.rows)
    if version is not None:
        md["delta_version"] = MetadataValue.int(version)
    sources = sorted(set(sources))
    # market data has no run id column: its "runs" are the bundles (named by run id) it came from
    runs = part.runs if part.runs is not None else [(b, None, None) for b in sources]
    md["runs"] = MetadataValue.table(
        records=[TableRecord({"run_id": r, "strategy_id": s, "rows": n})
                 for r, s, n in runs[:200]], schema=_RUNS_SCHEMA)
    md["run_count"] = MetadataValue.int(len(runs))
    if part.preview is not None:
        md["preview"] = MetadataValue.md(markdown_table(part.preview))
    md["source_bundles"] = MetadataValue.json(sources[:200])
    if note:
        md["note"] = MetadataValue.text(note)
    return md


def partition_events(lake: str, table: str, touched: dict[Key, int | None], *,
                     sources: dict[Key, list[str]] | None = None,
                     batch_runs: set[str] | None = None,
                     notes: dict[Key, str] | None = None, description: str | None = None,
                     tags: dict[str, str] | None = None) -> list[AssetMaterialization]:
    """One materialization per touched partition that Dagster can represent. A partition's
    source bundles are ``sources[key]`` plus the runs in it that are in ``batch_runs``."""
    keys = [k for k in touched if representable(*k)]
    dt = open_table(lake, table) if keys else None
    facts = table_facts(lake, table, dt) if dt is not None else None
    if facts is None:
        return []
    parts = partition_facts(lake, table, keys, dt=dt, facts=facts)
    events = []
    for k in sorted(keys, key=lambda k: (k[1], k[0] or "")):
        found = list((sources or {}).get(k, ()))
        if batch_runs:
            found += [r for r, _, _ in parts[k].runs or () if r in batch_runs]
        events.append(AssetMaterialization(
            asset_key=table, partition=key_of(table, *k), description=description, tags=tags,
            metadata=partition_metadata(facts, parts[k], version=touched[k], sources=found,
                                        note=(notes or {}).get(k))))
    return events


def check_metadata(summary: ValidationSummary) -> dict[str, Any]:
    md: dict[str, Any] = {
        "bundles_checked": MetadataValue.int(summary.checked),
        "bundles_accepted": MetadataValue.int(summary.accepted),
        "bundles_refused": MetadataValue.int(len(summary.refused)),
        "unresolved_refusals": MetadataValue.int(len(summary.unresolved)),
    }
    failures = summary.unresolved or summary.refused
    if failures:
        import polars as pl

        sample = pl.DataFrame([{**f, "rows": ", ".join(map(str, f["rows"][:5])),
                                "values": ", ".join(map(str, f["values"][:5]))}
                               for f in failures[:10]],
                              schema={c: pl.String for c in ("bundle", "rule", "table", "column",
                                                             "rows", "values", "message")})
        md["sample_failures"] = MetadataValue.md(markdown_table(sample, width=80))
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
