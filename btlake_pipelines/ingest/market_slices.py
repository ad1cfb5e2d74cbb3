"""Market data is stored once: a bundle's rows for one (table, market, symbol, date) replace the
stored rows of that slice whose ``ts`` lies between the bundle's first and last ``ts`` there.

This module finds a bundle's slices, builds the exact Delta predicate of each (nanosecond
bounds included), and decides per slice whether the stored rows are absent, identical or
different.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import polars as pl

from btlake_pipelines.contract.tables import FACT_TABLES
from btlake_pipelines.storage import predicates as P

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Slice:
    bundle: str
    table: str
    market: str
    symbol: str | None
    day: date
    first_ns: int
    last_ns: int
    rows: pl.DataFrame

    def key(self) -> tuple:
        return (self.table, self.market, self.symbol, self.day)

    def overlaps(self, other: Slice) -> bool:
        return self.key() == other.key() and not (
            self.last_ns < other.first_ns or other.last_ns < self.first_ns)

    def describe(self) -> dict:
        return {"table": self.table, "market": self.market, "symbol": self.symbol,
                "date": self.day.isoformat(), "first_ts": _iso(self.first_ns),
                "last_ts": _iso(self.last_ns), "rows": self.rows.height}

    def predicate(self) -> str:
        lo_us, lo_n = divmod(self.first_ns, 1000)
        hi_us, hi_n = divmod(self.last_ns, 1000)
        lo, hi = _us_datetime(lo_us), _us_datetime(hi_us)
        parts = [P.eq("market", self.market), P.eq("date", self.day)]
        if self.symbol is not None:
            parts.append(P.eq("symbol", self.symbol))
        if self.table == "events":
            parts.append("run_id IS NULL")
        parts.append(P.between("ts", lo, hi))
        if lo_n:
            parts.append(f"(ts > {P.literal(lo)} OR ts_nanos >= {lo_n})")
        if hi_n != 999:
            parts.append(f"(ts < {P.literal(hi)} OR ts_nanos <= {hi_n})")
        return P.all_of(*parts)

    def filter_expr(self) -> pl.Expr:
        """The same rows as :meth:`predicate`, as a polars expression for reading."""
        exact = pl.col("ts").cast(pl.Int64) * 1000 + pl.col("ts_nanos").cast(pl.Int64)
        expr = (pl.col("market") == self.market) & (pl.col("date") == self.day)
        if self.symbol is not None:
            expr &= pl.col("symbol") == self.symbol
        if self.table == "events":
            expr &= pl.col("run_id").is_null()
        return expr & exact.is_between(self.first_ns, self.last_ns)


def slices_of(bundle: str, table: str, df: pl.DataFrame) -> list[Slice]:
    keys = ["market", "date", *(["symbol"] if "symbol" in FACT_TABLES[table].slice_by else [])]
    exact = (pl.col("ts").cast(pl.Int64) * 1000 + pl.col("ts_nanos").cast(pl.Int64))
    out: list[Slice] = []
    # one partitioning pass (half the time of iterating a group_by on 10M rows), then the
    # exact-ns bounds of each part
    for key, part in df.partition_by(keys, maintain_order=True, as_dict=True).items():
        first_ns, last_ns = part.select(exact.min(), exact.max().alias("hi")).row(0)
        out.append(Slice(bundle, table, key[0], key[2] if len(key) > 2 else None, key[1],
                         int(first_ns), int(last_ns), part))
    return out


def plan_waves(slices: list[Slice]) -> list[list[Slice]]:
    """Group slices (in bundle order) into waves with no two overlapping slices, so each wave
    is one commit and a later bundle's overlap is applied after the earlier one's."""
    waves: list[list[Slice]] = []
    for s in slices:
        level = 0
        for i, wave in enumerate(waves):
            if any(s.overlaps(o) for o in wave):
                level = i + 1
        if level == len(waves):
            waves.append([])
        waves[level].append(s)
    return waves


def compare(s: Slice, stored: pl.DataFrame) -> str:
    """``ingested`` (nothing stored in the range), ``unchanged`` (identical rows) or
    ``replaced``. Rows are compared as multisets over the bundle's columns."""
    if stored.height == 0:
        return "ingested"
    cols = s.rows.columns
    if stored.height != s.rows.height or any(c not in stored.columns for c in cols):
        return "replaced"
    left = s.rows.select(cols)
    right = stored.select(cols)
    try:
        right = right.cast(dict(left.schema))  # type: ignore[arg-type]
    except Exception:
        return "replaced"
    return "unchanged" if left.sort(cols).equals(right.sort(cols)) else "replaced"


def _us_datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _iso(ns: int) -> str:
    us, rem = divmod(ns, 1000)
    text = _us_datetime(us).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"{text}{rem:03d}Z"
