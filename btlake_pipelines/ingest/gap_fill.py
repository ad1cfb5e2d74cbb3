"""Which coverage gaps the archive can fill.

The archive keeps every bundle handled, and ``ingest_log`` records the market-data slices of
each handling (table, market, symbol, date; past a few thousand slices a bundle's entries
name a partition and a count of symbols instead). A gap ``(market, symbol, date)`` is
fillable when a handling that was not quarantined recorded a slice of that symbol on that
date (or a partition-level entry for that market and date): re-deriving the partition from
the archive (:mod:`btlake_pipelines.ingest.rederive`) brings those rows back. A gap no bundle
ever carried is a gap in the source, which only a new bundle fills.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from btlake_pipelines.metadata.ingest_log import scan_log, touches


def archived_slices(lake: str, table: str, days: list[date]
                    ) -> set[tuple[str, str | None, date]]:
    """``(market, symbol, date)`` of ``table`` that archived, non-quarantined handlings hold
    on ``days``; a partition-level entry gives ``(market, "*", date)``. The log's typed
    ``slices`` are filtered as columns, in one read of the log."""
    lf = scan_log(lake)
    if lf is None or not days:
        return set()
    wanted = sorted(set(days))
    entries = (lf.filter((pl.col("status") != "quarantined")
                         & touches(table, lambda d: d.is_in(wanted)))
               .select(pl.col("slices").explode()).unnest("slices")
               .filter((pl.col("table") == table) & pl.col("date").is_in(wanted)
                       & (pl.col("rows") > 0))
               .select("market", pl.when(pl.col("symbols").is_not_null()).then(pl.lit("*"))
                       .otherwise(pl.col("symbol")).alias("symbol"), "date")
               .unique().collect())
    return set(entries.iter_rows())


def fillable_partitions(lake: str, table: str, gaps: pl.DataFrame) -> list[tuple[str, date]]:
    """The ``(market, date)`` partitions holding a gap (``gaps``: ``market, symbol, date``)
    that the archive can fill, sorted."""
    if gaps.is_empty():
        return []
    held = archived_slices(lake, table, gaps.get_column("date").unique().to_list())
    found = {(m, d) for m, s, d in gaps.select("market", "symbol", "date").iter_rows()
             if (m, s, d) in held or (m, "*", d) in held}
    return sorted(found)
