"""The lake's tables and partitions as a front end names them: which tables hold facts, the
columns the contract promises, and how a catalog (Dagster's asset partitions) groups the lake's
daily Delta partitions.

The lake stores fact tables by ``(market, date)`` and ``runs`` by ``date``, one Delta partition
a day. A catalog shows fact tables by month and market instead, to stay within the partitions
its UI handles (the numbers are in :mod:`btlake_pipelines.defs.partitions`): a catalog
partition is ``(market, first day of the month)`` for a fact table and ``(None, day)`` for
``runs``, which has no market dimension and stays daily. :func:`catalog_key` is the one place
that mapping is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from btlake_pipelines.contract.tables import FACT_TABLES as _SPECS
from btlake_pipelines.contract.tables import PARTITION_COLUMNS, PARTITIONED_TABLES, RUNS
from btlake_pipelines.ingest.report import Key, month_start

__all__ = ["FACT_TABLES", "PARTITIONED_TABLES", "RUNS", "Column", "Key", "catalog_key",
           "contract_columns", "month_start", "scope"]

#: The fact tables (a run's results and shared market data), by name.
FACT_TABLES: tuple[str, ...] = tuple(_SPECS)
#: The tables stored in partitions a catalog shows: the fact tables and ``runs``.

#: Arrow type names of the contract's column kinds.
_ARROW_TYPES = {"timestamp": "timestamp[us, UTC]", "string": "string", "float": "double",
                "int": "int64"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Arrow's name of the stored type
    description: str


def contract_columns(table: str) -> list[Column]:
    """The columns every stored row of fact ``table`` has, from the contract: what a catalog
    can show before any data lands."""
    cols = [Column(n, _ARROW_TYPES[k], "required by the contract")
            for n, k in _SPECS[table].required]
    return cols + [Column(c, "string" if c == "market" else "date32", "partition")
                   for c in PARTITION_COLUMNS]


def scope(table: str) -> str:
    """Whose rows fact ``table`` holds: ``run``, ``market`` or ``either``."""
    return _SPECS[table].scope.value


def catalog_key(table: str, market: str | None, day: date) -> Key:
    """The catalog partition the daily Delta partition ``(market, day)`` of ``table`` falls
    in: ``(market, first day of the month)`` for fact tables, ``(None, day)`` for ``runs``."""
    if table == RUNS or market is None:
        return (None, day)
    return (market, month_start(day))
