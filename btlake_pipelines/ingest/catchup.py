"""The nightly catch-up's plan: partitions the archive says should exist, compared with the lake
and with what the orchestrator has recorded.

Expected partitions come from the lake's own metadata for bundles handled since a cut-off
(a look-back window, so a night's work follows recent activity, not the lake's age):

- each run in ``runs``: its date, and (market, date) for each of its markets in every
  run-scoped table it has rows for;
- each handling in ``ingest_log``: the (market, date) of every market-data slice it recorded.

A multi-market run whose table has rows in only some of its markets makes the others look
expected; re-deriving such a partition finds no rows and writes nothing, and the window ends
the retries.

Missing partitions are daily Delta partitions (only those are re-derived). What the
orchestrator has recorded may be coarser (Dagster's fact partitions are months): ``group``
maps a daily partition to its key there, and a daily partition counts as recorded when its
key is. A month recorded once therefore is not recorded again for a day that a CLI ingest
added later; the next ingestion run or re-derivation of that month refreshes its metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

import polars as pl

from btlake_pipelines.contract.tables import (
    FACT_TABLES,
    PARTITIONED_TABLES,
    RUNS,
    Scope,
)
from btlake_pipelines.ingest.rederive import delta_partition_rows
from btlake_pipelines.metadata.ingest_log import scan_log, slice_parts
from btlake_pipelines.storage.scan import scan

Key = tuple[str | None, date]
TABLES = PARTITIONED_TABLES


@dataclass
class CatchUpPlan:
    #: expected but absent from the lake: to re-derive from the archive
    missing: dict[str, list[Key]] = field(default_factory=dict)
    #: in the lake but not recorded by the orchestrator: to record, nothing is written
    unrecorded: dict[str, list[Key]] = field(default_factory=dict)

    def counts(self) -> tuple[int, int]:
        return (sum(map(len, self.missing.values())), sum(map(len, self.unrecorded.values())))


def expected_partitions(lake: str, *, since: datetime | None = None) -> dict[str, set[Key]]:
    out: dict[str, set[Key]] = {t: set() for t in TABLES}
    run_tables = [t for t, s in FACT_TABLES.items() if s.scope is not Scope.MARKET]
    runs = scan(lake, RUNS)
    if runs is not None:
        if since is not None:
            runs = runs.filter(pl.col("ingested_at") >= since)
        for row in runs.select("date", "markets", "rows").collect().iter_rows(named=True):
            out[RUNS].add((None, row["date"]))
            counts = row["rows"] or {}
            for table in run_tables:
                if counts.get(table):
                    out[table].update((m, row["date"]) for m in row["markets"] or [])
    log = scan_log(lake)
    if log is not None:
        log = log.filter((pl.col("status") != "quarantined") & (pl.col("slices").list.len() > 0))
        if since is not None:
            log = log.filter(pl.col("handled_at") >= since)
        parts = slice_parts(log.select("slices")).select("table", "market", "date").unique()
        for table, market, day in parts.iter_rows():
            if table in FACT_TABLES:
                out[table].add((market, day))
    return out


def plan_catch_up(lake: str, *, since: datetime | None = None,
                  recorded: Callable[[str], set[Key]] | None = None,
                  accept: Callable[[str, Key], bool] | None = None,
                  group: Callable[[str, Key], Key] | None = None,
                  limit: int = 500) -> CatchUpPlan:
    """Missing daily partitions (at most ``limit``, oldest first) and, when ``recorded`` says
    what the orchestrator knows per table (in its own keys, see ``group``), present daily
    partitions whose key it has not recorded. ``accept`` filters keys the orchestrator cannot
    represent (e.g. dates before its first partition)."""
    plan = CatchUpPlan()
    budget = limit
    for table, keys in expected_partitions(lake, since=since).items():
        keys = {k for k in keys if accept is None or accept(table, k)}
        present = {k for k, n in delta_partition_rows(lake, table).items() if n}
        missing = sorted(keys - present, key=_order)[:max(budget, 0)]
        budget -= len(missing)
        if missing:
            plan.missing[table] = missing
        if recorded is not None:
            known = recorded(table)
            unrecorded = sorted((k for k in keys & present
                                 if (group(table, k) if group else k) not in known), key=_order)
            if unrecorded:
                plan.unrecorded[table] = unrecorded
    return plan


def _order(key: Key) -> tuple:
    return (key[1], key[0] or "")
