"""What a write changed, per catalog partition: the facts a catalog records about each
partition an ingestion batch, a re-derivation or the catch-up touched.

Work happens on daily Delta partitions; a catalog's fact partitions are months
(:func:`~btlake_pipelines.app.tables.catalog_key`). They are grouped here, in one place, so an
ingestion run, a re-derivation and the catch-up report the same facts for a partition: one
report per ``(month, market)`` touched, counting the whole month's rows and listing the days
the event wrote. Counts come from the Delta log; previews and per-run counts read data, for a
bounded number of partitions (:mod:`btlake_pipelines.ingest.report`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from btlake_pipelines.app.tables import PARTITIONED_TABLES, RUNS, Key, catalog_key
from btlake_pipelines.ingest.batch import BatchResult
from btlake_pipelines.ingest.catchup import CatchUpPlan
from btlake_pipelines.ingest.rederive import Rederived
from btlake_pipelines.ingest.report import (
    TableFacts,
    committed_partitions,
    markdown_table,
    partition_facts,
    table_facts,
)
from btlake_pipelines.storage.delta import open_table

__all__ = ["BatchPartitions", "BatchResult", "CatchUpPlan", "PartitionReport", "Rederived",
           "TableFacts", "batch_partitions", "partition_reports"]


@dataclass(frozen=True)
class PartitionReport:
    """One catalog partition after an event: the table's facts, the partition's own, and what
    the event did to it."""

    key: Key
    table: TableFacts
    #: rows of the whole catalog partition (a month of one market for fact tables)
    rows: int
    #: how many daily Delta partitions of it the lake holds
    stored_days: int
    #: the latest Delta version among the days the event wrote (None: recorded, not written)
    version: int | None
    #: (run id, strategy id, rows) per run in it; for market data, the bundles it came from
    runs: list[tuple[str, str | None, int | None]]
    #: the bundles the event's rows came from
    sources: list[str]
    #: the daily Delta partitions the event wrote or records
    dates: list[date]
    #: the first rows, as a Markdown table (None when not read)
    preview: str | None = None
    note: str | None = None


def partition_reports(lake: str, table: str, touched: Mapping[Key, int | None], *,
                      accept: Callable[[Key], bool] = lambda key: True,
                      keys: Iterable[Key] = (), sources: Mapping[Key, list[str]] | None = None,
                      batch_runs: set[str] | None = None,
                      notes: Mapping[Key, str] | None = None) -> dict[Key, PartitionReport] | None:
    """A report per catalog partition that a daily partition of ``touched`` falls in, plus one
    per catalog key in ``keys``, in date order; None when the table does not exist yet.

    ``touched`` maps daily partitions to the Delta version that wrote them (None: recorded,
    not written); ``accept`` leaves out daily partitions the catalog cannot represent. A
    catalog partition's sources are ``sources`` of its days plus its runs in ``batch_runs``;
    its note joins its days' ``notes``."""
    groups: dict[Key, list[Key]] = {k: [] for k in keys}
    for day in touched:
        if accept(day):
            groups.setdefault(catalog_key(table, *day), []).append(day)
    if not groups:
        return {}
    dt = open_table(lake, table)
    facts = table_facts(lake, table, dt) if dt is not None else None
    if facts is None:
        return None
    monthly = table != RUNS
    parts = partition_facts(lake, table, groups, dt=dt, facts=facts, monthly=monthly)
    out: dict[Key, PartitionReport] = {}
    for key in sorted(groups, key=_order):
        days = sorted(groups[key], key=_order)
        part = parts[key]
        versions = [v for d in days if (v := touched[d]) is not None]
        found = [s for d in days for s in (sources or {}).get(d, ())]
        if batch_runs:
            found += [r for r, _, _ in part.runs or () if r in batch_runs]
        found = sorted(set(found))
        day_notes = [(d, n) for d in days if (n := (notes or {}).get(d))]
        note = "; ".join(f"{d[1]}: {n}" if monthly else n for d, n in day_notes)
        out[key] = PartitionReport(
            key, facts, part.rows, len(part.days), max(versions, default=None),
            # market data has no run id column: its runs are the bundles it came from
            part.runs if part.runs is not None else [(b, None, None) for b in found],
            found, sorted({d for _, d in days}),
            markdown_table(part.preview) if part.preview is not None else None, note or None)
    return out


@dataclass(frozen=True)
class BatchPartitions:
    """The daily partitions one ingested batch committed to, per partitioned table."""

    #: table -> daily partition -> the last Delta version of the batch that touched it
    versions: dict[str, dict[Key, int]]
    #: table -> daily partition -> the bundles whose market-data slices wrote it
    sources: dict[str, dict[Key, list[str]]]
    #: the bundles the batch stored (every one not quarantined)
    runs: set[str] = field(default_factory=set)


def batch_partitions(lake: str, batch: BatchResult) -> BatchPartitions:
    """What ``batch`` committed, read from its commits' own log entries."""
    versions = {t: committed_partitions(lake, t, v) for t, v in batch.commits.items()
                if t in PARTITIONED_TABLES}
    slices: dict[tuple[str, Key], list[str]] = {}
    for r in batch.results:
        for s in r.slices:
            slices.setdefault((s["table"], (s["market"], date.fromisoformat(s["date"]))),
                              []).append(r.bundle)
    sources = {t: {k: slices.get((t, k), []) for k in parts} for t, parts in versions.items()}
    return BatchPartitions(versions, sources,
                           {r.bundle for r in batch.results if r.status != "quarantined"})


def _order(key: Key) -> tuple:
    return (key[1], key[0] or "")
