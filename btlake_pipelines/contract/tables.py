"""The tables of the contract: what each requires, how it is typed, partitioned and ordered.

This is the single description of the lake's fact tables; validation, storage layout and the
query path all read it, so adding a column rule happens here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Scope(Enum):
    """Whose rows a table holds: a run's own results, or shared market data stored once."""

    RUN = "run"
    MARKET = "market"
    EITHER = "either"  # events: a run's own events, or market events in a market_data bundle


@dataclass(frozen=True)
class TableSpec:
    name: str
    scope: Scope
    #: Required columns and their lake type names (see ``storage.arrow_types``).
    required: tuple[tuple[str, str], ...]
    #: Sort order inside each written partition, so row groups can be skipped by statistics.
    sort_by: tuple[str, ...]
    #: For market data: the columns that identify a slice replaced as a whole (with ``date``).
    slice_by: tuple[str, ...] = ()

    @property
    def required_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.required)


TRADES = TableSpec(
    "trades",
    Scope.RUN,
    (("ts", "timestamp"), ("symbol", "string"), ("side", "string"), ("qty", "float"),
     ("price", "float")),
    sort_by=("run_id", "ts"),
)
EQUITY = TableSpec("equity", Scope.RUN, (("ts", "timestamp"), ("equity", "float")),
                   sort_by=("run_id", "ts"))
TICKS = TableSpec(
    "ticks",
    Scope.MARKET,
    (("ts", "timestamp"), ("symbol", "string"), ("price", "float"), ("size", "float")),
    sort_by=("symbol", "ts"),
    slice_by=("market", "symbol"),
)
L2 = TableSpec(
    "l2",
    Scope.MARKET,
    (("ts", "timestamp"), ("symbol", "string"), ("side", "string"), ("level", "int"),
     ("price", "float"), ("size", "float")),
    sort_by=("symbol", "ts", "side", "level"),
    slice_by=("market", "symbol"),
)
EVENTS = TableSpec(
    "events",
    Scope.EITHER,
    (("ts", "timestamp"), ("event_type", "string")),
    sort_by=("run_id", "ts"),
    slice_by=("market",),
)

FACT_TABLES: dict[str, TableSpec] = {t.name: t for t in (TRADES, EQUITY, TICKS, L2, EVENTS)}
RUNS = "runs"
INGEST_LOG = "ingest_log"
ALL_TABLES: tuple[str, ...] = (*FACT_TABLES, RUNS, INGEST_LOG)
#: The tables partitioned by date (and market): what a catalog shows as partitioned assets.
PARTITIONED_TABLES: tuple[str, ...] = (*FACT_TABLES, RUNS)

#: Columns btlake adds to every stored fact row.
PARTITION_COLUMNS = ("market", "date")
RUN_COLUMNS = ("run_id", "strategy_id", "run_hash")
#: Sub-microsecond remainder of a timestamp column: Delta keeps microseconds, so ``ts`` is
#: stored floored to the microsecond and ``ts_nanos`` (0..999) keeps the rest exactly.
NANOS_SUFFIX = "_nanos"


def is_market_rows(table: str, bundle_kind: str) -> bool:
    """Whether a bundle's rows of ``table`` are shared market data (stored once, by slice)
    rather than the run's own results (replaced by run id)."""
    scope = FACT_TABLES[table].scope
    if scope is Scope.EITHER:
        return bundle_kind == "market_data"
    return scope is Scope.MARKET
