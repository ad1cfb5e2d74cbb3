"""Coverage of the market-data tables and its gaps against exchange calendars.

Reads the coverage summary (:mod:`btlake_pipelines.metadata.coverage_table`), never the
market data itself. A gap is a session of the market's calendar
(:mod:`btlake_pipelines.query.calendars`) between a symbol's first and last stored date on
which that symbol has no rows; exchange holidays and weekends never are, and a market without
a calendar trades every day. Everything is joins over frames, so 20,000 symbols x 250 days is
a few million rows handled at once, not a loop per symbol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from btlake_pipelines.errors import QueryError
from btlake_pipelines.metadata.coverage_table import MARKET_TABLES, scan_coverage
from btlake_pipelines.query.calendars import MarketDays, calendar_mapping, market_days

COVERAGE_COLUMNS = ("market", "symbol", "date", "rows", "first_ts", "last_ts")
KEYS = ["market", "symbol", "date"]
#: The heat map's rows: at most this many bands of symbols (one symbol per band when fewer).
DEFAULT_BANDS = 100
MAX_BANDS = 1000
#: The heat map's default window, and the longest it draws.
DEFAULT_MAP_DAYS = 365
MAX_MAP_DAYS = 3660


@dataclass(frozen=True)
class CoverageFrames:
    """Coverage rows (``market, symbol, date, rows, first_ts, last_ts``) and gaps
    (``market, symbol, date``), sorted, and each market's calendar (None: every day)."""

    table: str
    coverage: pl.DataFrame
    gaps: pl.DataFrame
    calendars: dict[str, str | None]
    start: date | None
    end: date | None


@dataclass(frozen=True)
class HeatMap:
    """One market's coverage as bands of symbols x days: ``present[b][d]`` symbols of band
    ``b`` with rows on day ``d``, ``gaps[b][d]`` symbols missing a session there."""

    table: str
    market: str
    calendar: str | None
    days: list[date]
    #: per day: "session", "holiday" or "weekend"
    kinds: list[str]
    #: per band: (first symbol, last symbol, number of symbols)
    bands: list[tuple[str | None, str | None, int]]
    present: list[list[int]]
    gaps: list[list[int]]
    symbols: int
    gap_count: int


def check_table(table: str) -> str:
    if table not in MARKET_TABLES:
        raise QueryError(f"bad {{param}}: coverage is kept for {', '.join(MARKET_TABLES)}, "
                         f"not {table!r}", param="table")
    return table


def as_day(value: date | datetime | str | None, param: str) -> date | None:
    """A date argument: a ``date``, a ``datetime`` (its UTC date) or ISO-8601 text."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise QueryError(f"bad {{param}}: {str(value)[:40]!r} is not a date (YYYY-MM-DD)",
                         param=param) from None


def _names(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    return [v for v in items if v] or None


def coverage(lake: str, table: str = "ticks", *, market: str | Sequence[str] | None = None,
             symbol: str | Sequence[str] | None = None,
             start: date | datetime | str | None = None,
             end: date | datetime | str | None = None, coverage_dt=None) -> CoverageFrames:
    """Coverage rows of ``table`` dated ``start`` to ``end`` (both inclusive) for the
    ``market`` s and ``symbol`` s asked (all when None), and the gaps among them."""
    check_table(table)
    first, last = as_day(start, "start"), as_day(end, "end")
    if first and last and last < first:
        raise QueryError("bad {param}: the end date is before the start date", param="end")
    markets, symbols = _names(market), _names(symbol)
    mapping = calendar_mapping()
    lf = scan_coverage(lake, coverage_dt)
    if lf is None:
        return CoverageFrames(table, _empty_coverage(), _empty_gaps(), {}, first, last)
    lf = lf.filter(pl.col("table") == table)
    if markets:
        lf = lf.filter(pl.col("market").is_in(markets))
    if symbols:
        lf = lf.filter(pl.col("symbol").is_in(symbols))
    ranges = lf.group_by("market", "symbol").agg(
        pl.col("date").min().alias("first"), pl.col("date").max().alias("last")).collect()
    window = lf
    if first:
        window = window.filter(pl.col("date") >= first)
    if last:
        window = window.filter(pl.col("date") <= last)
    rows = window.select(*COVERAGE_COLUMNS).collect().sort(KEYS, nulls_last=True)
    gaps, days = _gaps(ranges, rows, first, last, mapping)
    return CoverageFrames(table, rows, gaps, {m: d.calendar for m, d in days.items()},
                          first, last)


def _gaps(ranges: pl.DataFrame, rows: pl.DataFrame, first: date | None, last: date | None,
          mapping: dict[str, str | None]) -> tuple[pl.DataFrame, dict[str, MarketDays]]:
    """Sessions inside each symbol's stored range and the window, with no coverage row."""
    sessions: list[pl.DataFrame] = []
    days: dict[str, MarketDays] = {}
    for market, lo, hi in ranges.group_by("market").agg(
            pl.col("first").min(), pl.col("last").max()).sort("market").iter_rows():
        lo, hi = max(lo, first) if first else lo, min(hi, last) if last else hi
        found = market_days(market, lo, hi, mapping)
        days[market] = found
        sessions.append(pl.DataFrame({"market": [market] * len(found.sessions),
                                      "date": found.sessions},
                                     schema={"market": pl.String, "date": pl.Date}))
    if not sessions:
        return _empty_gaps(), days
    expected = (pl.concat(sessions).join(ranges, on="market", how="inner")
                .filter(pl.col("date").is_between(pl.col("first"), pl.col("last")))
                .select(KEYS))
    gaps = expected.join(rows.select(KEYS), on=KEYS, how="anti", nulls_equal=True)
    return gaps.sort(KEYS, nulls_last=True), days


def heat_map(lake: str, table: str, market: str, *, start: date | datetime | str | None = None,
             end: date | datetime | str | None = None, bands: int = DEFAULT_BANDS,
             coverage_dt=None) -> HeatMap:
    """``market``'s coverage aggregated on the server: symbols (sorted) cut into at most
    ``bands`` bands, each a row of per-day counts, so the page's size depends on bands x days,
    not on the number of symbols. Default window: the year up to the last stored date."""
    check_table(table)
    if not market:
        raise QueryError("bad {param}: name one market", param="market")
    if not 1 <= bands <= MAX_BANDS:
        raise QueryError(f"bad {{param}}: between 1 and {MAX_BANDS}", param="bands")
    first, last = as_day(start, "start"), as_day(end, "end")
    if first is None or last is None:
        lf = scan_coverage(lake, coverage_dt)
        stored = None if lf is None else lf.filter(
            (pl.col("table") == table) & (pl.col("market") == market)).select(
            pl.col("date").min().alias("lo"), pl.col("date").max().alias("hi")).collect()
        lo, hi = (None, None) if stored is None else stored.row(0)
        last = last or hi or date.today()
        if first is None:
            back = date.min + timedelta(days=DEFAULT_MAP_DAYS)
            first = max(last - timedelta(days=DEFAULT_MAP_DAYS - 1) if last > back
                        else date.min, lo or last)
    if last < first:
        raise QueryError("bad {param}: the end date is before the start date", param="end")
    if (last - first).days >= MAX_MAP_DAYS:
        raise QueryError(f"bad {{param}}: the map draws at most {MAX_MAP_DAYS} days",
                         param="start")
    days = market_days(market, first, last)
    all_days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    holidays, weekends = set(days.holidays), set(days.weekends)
    kinds = ["holiday" if d in holidays else "weekend" if d in weekends else "session"
             for d in all_days]
    sessions = np.array([k == "session" for k in kinds], dtype=bool)
    lf = scan_coverage(lake, coverage_dt)
    if lf is None:
        return HeatMap(table, market, days.calendar, all_days, kinds, [], [], [], 0, 0)
    lf = lf.filter((pl.col("table") == table) & (pl.col("market") == market))
    # symbols whose stored range meets the window, sorted, cut into bands
    ranges = (lf.group_by("symbol").agg(pl.col("date").min().alias("first"),
                                         pl.col("date").max().alias("last"))
              .filter((pl.col("first") <= last) & (pl.col("last") >= first))
              .collect().sort("symbol", nulls_last=True).with_row_index("i"))
    n = ranges.height
    count = min(bands, n)
    ranges = ranges.with_columns((pl.col("i").cast(pl.Int64) * count // max(n, 1)).alias("band"))
    width = len(all_days)
    present = np.zeros((count, width), dtype=np.int64)
    stored = (lf.filter(pl.col("date").is_between(first, last)).select("symbol", "date")
              .join(ranges.lazy().select("symbol", "band"), on="symbol", nulls_equal=True)
              .group_by("band", (pl.col("date") - pl.lit(first)).dt.total_days().alias("d"))
              .len().collect())
    if stored.height:
        present[stored["band"].to_numpy(), stored["d"].to_numpy()] = stored["len"].to_numpy()
    # symbols expected per band and day: inside their range, on a session (difference array)
    expected = np.zeros((count, width + 1), dtype=np.int64)
    if n:
        lo = np.clip((ranges["first"] - first).dt.total_days().to_numpy(), 0, width)
        hi = np.clip((ranges["last"] - first).dt.total_days().to_numpy() + 1, 0, width)
        band = ranges["band"].to_numpy()
        np.add.at(expected, (band, lo), 1)
        np.add.at(expected, (band, hi), -1)
    expected = np.cumsum(expected, axis=1)[:, :width]
    gaps = np.where(sessions, np.clip(expected - present, 0, None), 0)
    band_rows = ranges.group_by("band").agg(pl.col("symbol").first().alias("lo"),
                                            pl.col("symbol").last().alias("hi"),
                                            pl.len().alias("n")).sort("band")
    return HeatMap(table, market, days.calendar, all_days, kinds,
                   [(lo, hi, int(k)) for _, lo, hi, k in band_rows.iter_rows()],
                   present.tolist(), gaps.tolist(), n, int(gaps.sum()))


def markets(lake: str, table: str, coverage_dt=None) -> list[dict]:
    """Each market of ``table``'s coverage: symbols, days, rows and its first and last date."""
    check_table(table)
    lf = scan_coverage(lake, coverage_dt)
    if lf is None:
        return []
    found = (lf.filter(pl.col("table") == table).group_by("market")
             .agg(pl.col("symbol").n_unique().alias("symbols"),
                  pl.col("date").n_unique().alias("days"), pl.col("rows").sum(),
                  pl.col("date").min().alias("first"), pl.col("date").max().alias("last"))
             .sort("market").collect())
    return [{**row, "first": row["first"].isoformat(), "last": row["last"].isoformat()}
            for row in found.iter_rows(named=True)]


def _empty_coverage() -> pl.DataFrame:
    return pl.DataFrame(schema={"market": pl.String, "symbol": pl.String, "date": pl.Date,
                                "rows": pl.Int64, "first_ts": pl.Datetime("us", "UTC"),
                                "last_ts": pl.Datetime("us", "UTC")})


def _empty_gaps() -> pl.DataFrame:
    return pl.DataFrame(schema={"market": pl.String, "symbol": pl.String, "date": pl.Date})
