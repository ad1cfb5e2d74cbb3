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

import json
from datetime import date

import polars as pl

from btlake_pipelines.contract.tables import INGEST_LOG
from btlake_pipelines.storage.scan import scan

#: Gap dates looked up in ``ingest_log`` per pass (its ``slices`` text is pre-filtered by
#: date, so the log is read once per pass, not once per gap).
MAX_DATES_PER_PASS = 400


def archived_slices(lake: str, table: str, days: list[date]
                    ) -> set[tuple[str, str | None, date]]:
    """``(market, symbol, date)`` of ``table`` that archived, non-quarantined handlings hold
    on ``days``; a partition-level entry gives ``(market, "*", date)``."""
    out: set[tuple[str, str | None, date]] = set()
    lf = scan(lake, INGEST_LOG)
    if lf is None or not days:
        return out
    wanted = sorted(set(days))
    for i in range(0, len(wanted), MAX_DATES_PER_PASS):
        chunk = wanted[i:i + MAX_DATES_PER_PASS]
        texts = {d.isoformat() for d in chunk}
        mentions = pl.any_horizontal([pl.col("slices").str.contains(t, literal=True)
                                      for t in sorted(texts)])
        log = lf.filter((pl.col("status") != "quarantined")
                        & pl.col("slices").str.contains(table, literal=True) & mentions
                        ).select("slices").collect()
        for (text,) in log.iter_rows():
            for s in json.loads(text or "[]"):
                if s.get("table") != table or s.get("date") not in texts or not s.get("rows"):
                    continue
                symbol = "*" if "symbols" in s else s.get("symbol")
                out.add((s["market"], symbol, date.fromisoformat(s["date"])))
    return out


def fillable_partitions(lake: str, table: str, gaps: pl.DataFrame) -> list[tuple[str, date]]:
    """The ``(market, date)`` partitions holding a gap (``gaps``: ``market, symbol, date``)
    that the archive can fill, sorted."""
    if gaps.is_empty():
        return []
    held = archived_slices(lake, table, gaps.get_column("date").unique().to_list())
    found = {(m, d) for m, s, d in gaps.select("market", "symbol", "date").iter_rows()
             if (m, s, d) in held or (m, "*", d) in held}
    return sorted(found)
