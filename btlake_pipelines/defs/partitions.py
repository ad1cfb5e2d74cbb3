"""How the lake's partitions look in Dagster: fact tables by ``date`` (daily) x ``market``
(dynamic), ``runs`` by ``date``. Run ids are never partitions (Dagster handles about 100k
partitions per asset; a lake holds millions of runs).

The first date defaults to 2010-01-01 (``BTLAKE_PARTITION_START`` changes it); rows dated
earlier, or markets whose names Dagster cannot use as keys, stay in the lake but get no
Dagster partition. ``end_offset=1`` makes today's partition exist, so a run published today
shows up today.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

DEFAULT_START = "2010-01-01"
PARTITION_START = os.environ.get("BTLAKE_PARTITION_START") or DEFAULT_START
MARKET = "market"
#: Substrings Dagster refuses in partition keys, and the multi-partition delimiter.
_BAD_KEY_PARTS = ("...", "|", ",", "[", "]")

daily_partitions = DailyPartitionsDefinition(start_date=PARTITION_START, end_offset=1)
market_partitions = DynamicPartitionsDefinition(name=MARKET)
fact_partitions = MultiPartitionsDefinition({"date": daily_partitions, MARKET: market_partitions})


def fact_key(market: str, day: date) -> MultiPartitionKey:
    return MultiPartitionKey({"date": day.isoformat(), MARKET: market})


def runs_key(day: date) -> str:
    return day.isoformat()


def key_of(table: str, market: str | None, day: date) -> str:
    return runs_key(day) if table == "runs" or market is None else fact_key(market, day)


def parse_key(key: str) -> tuple[str | None, date]:
    """(market, date) of a fact partition key, (None, date) of a ``runs`` key."""
    if isinstance(key, MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[MARKET], date.fromisoformat(dims["date"])
    if "|" in key:
        day, market = key.split("|", 1)  # dimensions are ordered by name: date, market
        return market, date.fromisoformat(day)
    return None, date.fromisoformat(key)


def market_ok(market: str) -> bool:
    return bool(market) and not any(p in market for p in _BAD_KEY_PARTS)


def date_ok(day: date) -> bool:
    first = date.fromisoformat(PARTITION_START[:10])
    return first <= day <= datetime.now(UTC).date()


def representable(market: str | None, day: date) -> bool:
    """Whether Dagster has (or can add) a partition for these values."""
    return date_ok(day) and (market is None or market_ok(market))
