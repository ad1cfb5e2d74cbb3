"""The one place that turns values into Delta (DataFusion SQL) predicate text.

Every value is a quoted literal with quotes doubled; column names are btlake's own constants,
never user text. Values with characters a SQL literal cannot carry safely are rejected.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

_FORBIDDEN = {"\x00"}


def literal(value: str | date | datetime | int | float) -> str:
    """A SQL literal for a string, date, UTC datetime or number."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return f"'{value.strftime('%Y-%m-%dT%H:%M:%S.%f')}Z'"
    if isinstance(value, date):
        return f"'{value.isoformat()}'"
    if any(ch in value for ch in _FORBIDDEN):
        raise ValueError("a NUL character cannot be used in a predicate value")
    return "'" + value.replace("'", "''") + "'"


def eq(column: str, value) -> str:
    return f"{column} = {literal(value)}"


def is_in(column: str, values: Iterable) -> str:
    items = sorted({literal(v) for v in values})
    if not items:
        return "false"
    if len(items) == 1:
        return f"{column} = {items[0]}"
    return f"{column} IN ({', '.join(items)})"


def between(column: str, low, high) -> str:
    """``low <= column <= high``, both inclusive."""
    return f"{column} >= {literal(low)} AND {column} <= {literal(high)}"


def all_of(*parts: str) -> str:
    parts = tuple(p for p in parts if p)
    return " AND ".join(f"({p})" if " OR " in p else p for p in parts) or "true"


def balanced_or(parts: list[str]) -> str:
    """``parts`` ORed as a balanced tree: deltalake walks a predicate recursively, and a flat
    chain of thousands of ORs overflows its stack (TRAPS.md); a balanced tree of n clauses is
    log2(n) deep. Callers still bound n (see ``ingest.market_slices.pack``)."""
    parts = [p for p in parts if p]
    if not parts:
        return "false"
    if len(parts) == 1:
        return parts[0]
    mid = len(parts) // 2
    return f"({balanced_or(parts[:mid])}) OR ({balanced_or(parts[mid:])})"


def month_chunks(parts: Iterable[tuple[str, date]], limit: int) -> list[list[tuple[str, date]]]:
    """(market, day) partitions in groups of at most ``limit`` days for one commit each,
    never splitting a market's month: a commit's clause names whole market-months, so a
    bounded number of days keeps its predicate bounded (a month over ``limit`` days stays
    one group)."""
    months: dict[tuple[str, str], list[tuple[str, date]]] = {}
    for part in sorted(parts):
        months.setdefault((part[0], part[1].strftime("%Y-%m")), []).append(part)
    chunks: list[list[tuple[str, date]]] = []
    for days in months.values():
        if chunks and len(chunks[-1]) + len(days) <= limit:
            chunks[-1].extend(days)
        else:
            chunks.append(list(days))
    return chunks
