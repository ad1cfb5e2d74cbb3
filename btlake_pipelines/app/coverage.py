"""What ``Lake.coverage`` and ``Lake.coverage_map`` return: typed results every front end
formats its own way (``btlake coverage``, ``GET /api/v1/coverage``, the coverage page, the
Dagster gap check and sensor)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    from btlake_pipelines.query.coverage import CoverageFrames, HeatMap


@dataclass(frozen=True)
class Gap:
    market: str
    symbol: str | None
    date: date


@dataclass(frozen=True)
class Coverage:
    """Coverage rows and gaps of one market-data table (see CONTRACT section 10)."""

    table: str
    frames: CoverageFrames

    @property
    def rows(self) -> pl.DataFrame:
        """``market, symbol, date, rows, first_ts, last_ts``."""
        return self.frames.coverage

    @property
    def gap_frame(self) -> pl.DataFrame:
        """``market, symbol, date``."""
        return self.frames.gaps

    @property
    def calendars(self) -> dict[str, str | None]:
        """Each market's exchange calendar (None: trades every day)."""
        return self.frames.calendars

    def gaps(self) -> list[Gap]:
        return [Gap(*row) for row in self.frames.gaps.iter_rows()]

    def gap_partitions(self) -> list[tuple[str, date]]:
        """The daily ``(market, date)`` partitions that have a gap, sorted."""
        return sorted({(g.market, g.date) for g in self.gaps()})

    def to_json(self) -> dict[str, Any]:
        """The contract's JSON: ``{"coverage": [...], "gaps": [...]}`` (times ISO-8601 UTC)."""
        rows = self.frames.coverage
        coverage = [
            {"market": m, "symbol": s, "date": d.isoformat(), "rows": int(n),
             "first_ts": _iso(f), "last_ts": _iso(t)}
            for m, s, d, n, f, t in rows.select(
                "market", "symbol", "date", "rows", "first_ts", "last_ts").iter_rows()]
        gaps = [{"market": g.market, "symbol": g.symbol, "date": g.date.isoformat()}
                for g in self.gaps()]
        return {"coverage": coverage, "gaps": gaps}


@dataclass(frozen=True)
class CoverageMap:
    """One market's heat map: bands of symbols x days, gaps marked, holidays shaded."""

    heat: HeatMap

    def to_json(self) -> dict[str, Any]:
        h = self.heat
        return {
            "table": h.table, "market": h.market, "calendar": h.calendar,
            "days": [d.isoformat() for d in h.days], "kinds": h.kinds,
            "bands": [{"first": lo, "last": hi, "symbols": n} for lo, hi, n in h.bands],
            "present": h.present, "gaps": h.gaps, "symbols": h.symbols,
            "gap_count": h.gap_count,
        }


def _iso(value) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")
