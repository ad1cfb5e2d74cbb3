"""What a batch or a re-derivation changed, in terms a catalog can show: the partitions each
commit touched, per-partition row counts, the runs in a partition, a small preview and the
table's schema.

The lake's Delta partitions are daily; a catalog may show coarser ones (Dagster's fact assets
are monthly, to stay within the partitions its UI handles). A monthly key is
``(market, first day of the month)`` and stands for every daily partition of that market in
that month: its facts add them up and list them.

Plain functions over the lake; the Dagster layer turns them into materializations and asset
checks. Counts come from the Delta log (no data file is read); only previews and per-run counts
read data, and only for a bounded number of partitions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import polars as pl
import pyarrow as pa

from btlake_pipelines.contract.tables import FACT_TABLES
from btlake_pipelines.storage import delta, delta_log
from btlake_pipelines.storage.scan import scan_table

#: A partition of any lake table: (market, date), market None for ``runs``.
Key = tuple[str | None, date]
PREVIEW_ROWS = 5
PREVIEW_COLUMNS = 8
DETAIL_LIMIT = 50  # partitions per table and call that get a preview and per-run counts


@dataclass
class TableFacts:
    table: str
    uri: str
    version: int
    rows: int
    schema: list[tuple[str, str]]
    partition_rows: dict[Key, int]


def month_start(day: date) -> date:
    """The key of the month ``day`` falls in: its first day."""
    return day.replace(day=1)


def next_month(day: date) -> date:
    """The first day of the month after ``day``'s."""
    first = month_start(day)
    return first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(
        month=first.month + 1)


@dataclass
class PartitionFacts:
    key: Key
    rows: int
    #: the daily Delta partitions holding those rows (one for a daily key)
    days: list[date] = field(default_factory=list)
    #: (run_id, strategy_id, rows) of each run with rows here; None when not read
    runs: list[tuple[str, str | None, int]] | None = None
    preview: pl.DataFrame | None = None


def committed_partitions(lake: str, table: str, versions: Iterable[int]) -> dict[Key, int]:
    """Partitions whose files the given commits added or removed, each with the last of those
    versions that touched it; read from the commits' own log entries."""
    out: dict[Key, int] = {}
    for version in sorted(set(versions)):
        actions = delta_log.actions(lake, table, version)
        if actions is None:
            raise FileNotFoundError(delta_log.commit_uri(lake, table, version))
        for action in actions:
            for kind in ("add", "remove"):
                values = (action.get(kind) or {}).get("partitionValues")
                if values and values.get("date"):
                    out[(values.get("market"), date.fromisoformat(values["date"]))] = version
    return out


def rows_per_partition(dt) -> dict[Key, int]:
    """Rows per stored partition of an open table, from its Delta log alone (no data file is
    read): ``(market, date)`` for fact tables, ``(None, date)`` for ``runs``."""
    actions = pl.DataFrame(delta_log.add_actions(dt, flatten=True))
    if actions.is_empty():
        return {}
    market = (pl.col("partition.market") if "partition.market" in actions.columns
              else pl.lit(None, pl.String))
    counts = actions.group_by(market.alias("m"), pl.col("partition.date").alias("d")).agg(
        pl.col("num_records").sum())
    return {(row["m"], _as_date(row["d"])): int(row["num_records"] or 0)
            for row in counts.iter_rows(named=True)}


def table_facts(lake: str, table: str, dt=None) -> TableFacts | None:
    """Version, schema and row counts of ``table`` (or of the already open ``dt``)."""
    dt = dt if dt is not None else delta.open_table(lake, table)
    if dt is None:
        return None
    schema = pa.schema(dt.schema().to_arrow())
    counts = rows_per_partition(dt)
    return TableFacts(table, delta.table_uri(lake, table), dt.version(), sum(counts.values()),
                      [(f.name, str(f.type)) for f in schema], counts)


def partition_facts(lake: str, table: str, keys: Iterable[Key], *, dt=None,
                    facts: TableFacts | None = None, monthly: bool = False,
                    detail_limit: int = DETAIL_LIMIT) -> dict[Key, PartitionFacts]:
    """Row counts for every key; previews and per-run counts for the first ``detail_limit``.
    ``monthly``: keys are ``(market, first day of a month)`` and cover that month's daily
    partitions. Pass the open table and its facts when the caller has them (each open replays
    the log)."""
    keys = sorted(set(keys), key=lambda k: (k[1], k[0] or ""))
    dt = dt if dt is not None else delta.open_table(lake, table)
    facts = facts or (table_facts(lake, table, dt) if dt is not None else None)
    stored: dict[Key, dict[date, int]] = {}
    for (market, day), n in (facts.partition_rows.items() if facts else ()):
        if n:
            key = (market, month_start(day)) if monthly else (market, day)
            stored.setdefault(key, {})[day] = n
    out = {k: PartitionFacts(k, sum(stored.get(k, {}).values()), sorted(stored.get(k, {})))
           for k in keys}
    if dt is None:
        return out
    lf = scan_table(dt, lake, table)
    columns = lf.collect_schema().names()
    for key in keys[:detail_limit]:
        if not out[key].rows:
            continue
        part = lf.filter(_key_filter(key, monthly))
        out[key].preview = _preview(part, columns, table)
        if "run_id" in columns:
            by_run = (part.filter(pl.col("run_id").is_not_null())
                      .group_by("run_id", "strategy_id").len().sort("run_id").collect())
            out[key].runs = [(r["run_id"], r["strategy_id"], int(r["len"]))
                             for r in by_run.iter_rows(named=True)]
    return out


def markdown_table(df: pl.DataFrame, *, width: int = 40) -> str:
    """A small DataFrame as a Markdown table, cells cut to ``width`` characters."""
    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= width else text[: width - 1] + "…"

    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join([head, rule, *body])


def _key_filter(key: Key, monthly: bool) -> pl.Expr:
    market, day = key
    expr = ((pl.col("date") >= day) & (pl.col("date") < next_month(day)) if monthly
            else pl.col("date") == day)
    return expr if market is None else expr & (pl.col("market") == market)


def _preview(part: pl.LazyFrame, columns: list[str], table: str) -> pl.DataFrame:
    lead = [c for c in ("run_id", "symbol", "ts", "strategy_id", "created_at") if c in columns]
    spec = FACT_TABLES.get(table)
    required = list(spec.required_names) if spec else []
    rest = [c for c in columns if c not in lead and c not in ("market", "date")
            and not c.endswith("_nanos") and c not in ("run_hash", "manifest", "params",
                                                       "environment", "extra")]
    chosen = list(dict.fromkeys([*lead, *required, *rest]))[:PREVIEW_COLUMNS]
    return part.select(chosen).head(PREVIEW_ROWS).collect()


def _as_date(value) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
