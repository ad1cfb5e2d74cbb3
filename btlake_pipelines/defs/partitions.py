"""How the lake's partitions look in Dagster: fact tables by ``date`` (monthly) x ``market``
(dynamic), ``runs`` by ``date`` (daily). Run ids are never partitions (a lake holds millions
of runs).

Why monthly: Dagster partitions are the product of the dimensions, and its UI slows above
about 25,000 per asset (dagster-io/dagster#21002) and freezes near 40,000 (#15679). Daily
dates since 2010 x 7 markets were already 43,260; monthly dates over 20 years x 40 markets
are 9,600. The lake itself stays partitioned by day (``market``, ``date`` in Delta): a
monthly key ``2024-11-01|XNAS`` stands for every daily Delta partition of XNAS in November
2024, and materializing it re-derives exactly those.

``runs`` stays daily: it has no market dimension, so 20 years are 7,305 partitions, and a
re-derivation reloads one day's archived manifests rather than a month's.

The first date defaults to 2010-01-01 (``BTLAKE_PARTITION_START`` changes it; the monthly
dimension starts on the first of that month). Rows dated earlier, or markets whose names
Dagster cannot use as keys, stay in the lake but get no Dagster partition. ``end_offset=1``
makes the current day's and month's partitions exist, so data published today shows up today.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MonthlyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

from btlake_pipelines.app.tables import RUNS, Key, month_start
from btlake_pipelines.settings import current

DEFAULT_START = "2010-01-01"
PARTITION_START = current().partition_start or DEFAULT_START
MARKET = "market"
DATE = "date"
#: Substrings Dagster refuses in partition keys, and the multi-partition delimiter.
_BAD_KEY_PARTS = ("...", "|", ",", "[", "]")
_FIRST_DAY = date.fromisoformat(PARTITION_START[:10])

daily_partitions = DailyPartitionsDefinition(start_date=PARTITION_START, end_offset=1)
monthly_partitions = MonthlyPartitionsDefinition(
    start_date=month_start(_FIRST_DAY).isoformat(), end_offset=1)
market_partitions = DynamicPartitionsDefinition(name=MARKET)
fact_partitions = MultiPartitionsDefinition({DATE: monthly_partitions,
                                             MARKET: market_partitions})


def fact_key(market: str, day: date) -> MultiPartitionKey:
    """The fact-table key of the month ``day`` falls in."""
    return MultiPartitionKey({DATE: month_start(day).isoformat(), MARKET: market})


def runs_key(day: date) -> str:
    return day.isoformat()


def key_of(table: str, market: str | None, day: date) -> str:
    """The Dagster partition key holding ``(market, day)`` of ``table``."""
    return runs_key(day) if table == RUNS or market is None else fact_key(market, day)


def parse_key(key: str) -> Key:
    """``(market, first day of the month)`` of a fact partition key, ``(None, date)`` of a
    ``runs`` key."""
    if isinstance(key, MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[MARKET], date.fromisoformat(dims[DATE])
    if "|" in key:
        day, market = key.split("|", 1)  # dimensions are ordered by name: date, market
        return market, date.fromisoformat(day)
    return None, date.fromisoformat(key)


def market_ok(market: str) -> bool:
    return bool(market) and not any(p in market for p in _BAD_KEY_PARTS)


def date_ok(day: date, *, monthly: bool = False) -> bool:
    first = month_start(_FIRST_DAY) if monthly else _FIRST_DAY
    return first <= day <= datetime.now(UTC).date()


def representable(key: Key) -> bool:
    """Whether Dagster has (or can add) a partition holding the daily partition ``key``: a
    fact partition (monthly) when it has a market, a ``runs`` partition (daily) when not."""
    market, day = key
    if market is None:
        return date_ok(day)
    return date_ok(day, monthly=True) and market_ok(market)
