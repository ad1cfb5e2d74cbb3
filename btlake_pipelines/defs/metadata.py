"""Turning lake facts into Dagster metadata: one place, so an ingestion run, a re-derivation
and the catch-up all record the same keys for a partition.

Every partition event carries the Delta version, ``dagster/row_count`` (whole table),
``dagster/partition_row_count``, ``dagster/column_schema``, ``dagster/table_name``, the runs
in the partition (a table), a preview (Markdown), the bundles the rows came from and
``dates``, the daily Delta partitions the event is about.

Work happens on daily Delta partitions; Dagster's fact partitions are months
(:mod:`btlake_pipelines.defs.partitions`). Daily partitions are grouped here, in one place:
one event per ``(month, market)`` touched, counting the whole month's rows and listing the
days it wrote.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
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

from btlake_pipelines.contract.tables import FACT_TABLES, PARTITION_COLUMNS, RUNS
from btlake_pipelines.defs.partitions import key_of, partition_of, representable
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
                       sources: Iterable[str] = (), note: str | None = None,
                       dates: Iterable[date] = ()) -> dict[str, Any]:
    """``dates``: the daily Delta partitions this event wrote or records."""
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
    md["dates"] = MetadataValue.json(sorted({d.isoformat() for d in dates}))
    md["stored_dates"] = MetadataValue.int(len(part.days))
    if note:
        md["note"] = MetadataValue.text(note)
    return md


def partitions_metadata(lake: str, table: str, touched: dict[Key, int | None], *,
                        keys: Iterable[Key] = (), sources: dict[Key, list[str]] | None = None,
                        batch_runs: set[str] | None = None,
                        notes: dict[Key, str] | None = None) -> dict[Key, dict[str, Any]] | None:
    """Metadata of each Dagster partition (as ``(market, date)``, see
    :func:`~btlake_pipelines.defs.partitions.partition_of`) that a daily Delta partition of
    ``touched`` falls in, plus every one of ``keys``; None when the table does not exist yet.

    ``touched`` maps daily partitions to the Delta version that wrote them (None: recorded,
    not written); a Dagster partition gets the latest of its days' versions. Its source
    bundles are ``sources`` of its days plus the runs in it that are in ``batch_runs``; its
    note joins its days' ``notes``. Daily partitions Dagster cannot represent are left out."""
    groups: dict[Key, list[Key]] = {k: [] for k in keys}
    for day in touched:
        if representable(*day):
            groups.setdefault(partition_of(table, *day), []).append(day)
    if not groups:
        return {}
    dt = open_table(lake, table)
    facts = table_facts(lake, table, dt) if dt is not None else None
    if facts is None:
        return None
    monthly = table != RUNS
    parts = partition_facts(lake, table, groups, dt=dt, facts=facts, monthly=monthly)
    out: dict[Key, dict[str, Any]] = {}
    for key in sorted(groups, key=_order):
        days = sorted(groups[key], key=_order)
        versions = [v for d in days if (v := touched[d]) is not None]
        found = [s for d in days for s in (sources or {}).get(d, ())]
        if batch_runs:
            found += [r for r, _, _ in parts[key].runs or () if r in batch_runs]
        day_notes = [(d, n) for d in days if (n := (notes or {}).get(d))]
        note = "; ".join(f"{d[1]}: {n}" if monthly else n for d, n in day_notes)
        out[key] = partition_metadata(facts, parts[key], version=max(versions, default=None),
                                      sources=found, note=note or None,
                                      dates=[d for _, d in days])
    return out


def partition_events(lake: str, table: str, touched: dict[Key, int | None], *,
                     sources: dict[Key, list[str]] | None = None,
                     batch_runs: set[str] | None = None,
                     notes: dict[Key, str] | None = None, description: str | None = None,
                     tags: dict[str, str] | None = None) -> list[AssetMaterialization]:
    """One materialization per Dagster partition the daily partitions ``touched`` fall in
    (one per month and market for fact tables); see :func:`partitions_metadata`."""
    found = partitions_metadata(lake, table, touched, sources=sources, batch_runs=batch_runs,
                                notes=notes)
    return [AssetMaterialization(asset_key=table, partition=key_of(table, *key),
                                 description=description, tags=tags, metadata=md)
            for key, md in (found or {}).items()]


def _order(key: Key) -> tuple:
    return (key[1], key[0] or "")


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
