"""The manifest's ``inputs``: what a run read (CONTRACT section 7).

Each item is ``{"table", "market", "symbols" (optional), "start", "end"}`` with at most one of
``"version"`` (a Delta version of the table) and ``"tag"`` (a lake tag). A bad item refuses
the bundle with a reason naming the manifest field and the item; nothing here reads the lake
(resolution to versions happens at ingest, :mod:`btlake_pipelines.ingest.lineage`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from btlake_pipelines.contract.run_ids import NAME_RULE, is_valid_name
from btlake_pipelines.contract.tables import FACT_TABLES
from btlake_pipelines.contract.values import MARKET_PATTERN, MARKET_RULE, parse_timestamp

#: Inputs one run may list: each is one row of ``_run_inputs`` and one read of ``Lake.inputs``.
MAX_INPUTS = 1000
MAX_SYMBOLS = 10_000
_KEYS = frozenset({"table", "market", "symbols", "start", "end", "version", "tag"})


@dataclass(frozen=True)
class InputSpec:
    """One input as the manifest states it; ``symbols`` empty means every symbol."""

    table: str
    market: str
    start: datetime
    end: datetime
    symbols: tuple[str, ...] = ()
    version: int | None = None
    tag: str | None = None


def parse_inputs(value: Any, refuse) -> tuple[InputSpec, ...]:
    """The ``inputs`` field checked item by item; ``refuse(rule, message, column)`` builds
    the refusal (see :func:`btlake_pipelines.contract.manifest.parse_manifest`)."""
    def bad(i: int, message: str):
        return refuse("inputs", f"inputs[{i}]: {message}", "inputs")

    if not isinstance(value, list):
        raise refuse("field_type", "inputs must be a list of objects", "inputs")
    if len(value) > MAX_INPUTS:
        raise refuse("inputs", f"inputs lists {len(value)} items; at most {MAX_INPUTS}",
                     "inputs")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise bad(i, "must be an object")
        unknown = sorted(str(k)[:40] for k in item if k not in _KEYS)
        if unknown:
            raise bad(i, f"unknown key(s) {', '.join(unknown)}; keys: {', '.join(sorted(_KEYS))}")
        for key in ("table", "market", "start", "end"):
            if key not in item:
                raise bad(i, f"'{key}' is required")
        table = item["table"]
        if table not in FACT_TABLES:
            raise bad(i, f"table must be one of {', '.join(FACT_TABLES)}, got {table!r:.60}")
        market = item["market"]
        if not isinstance(market, str) or not MARKET_PATTERN.fullmatch(market):
            raise bad(i, f"market must be {MARKET_RULE}")
        symbols = item.get("symbols", [])
        if symbols is None:
            symbols = []
        if (not isinstance(symbols, list) or len(symbols) > MAX_SYMBOLS
                or not all(isinstance(s, str) and s and len(s) <= 256 for s in symbols)):
            raise bad(i, f"symbols must be a list of at most {MAX_SYMBOLS} non-empty strings")
        times = []
        for key in ("start", "end"):
            try:
                times.append(parse_timestamp(item[key]))
            except (ValueError, AttributeError, TypeError):
                raise bad(i, f"{key} must be an ISO-8601 timestamp, got {item[key]!r:.60}"
                          ) from None
        if not times[0] < times[1]:
            raise bad(i, "start must be before end (start inclusive, end exclusive)")
        version, tag = item.get("version"), item.get("tag")
        if version is not None and tag is not None:
            raise bad(i, "give 'version' or 'tag', not both")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                    or not 0 <= version < 2**62):
            raise bad(i, f"version must be an integer >= 0, got {version!r:.60}")
        if tag is not None and not is_valid_name(tag):
            raise bad(i, f"tag must be {NAME_RULE}")
        out.append(InputSpec(table, market, times[0], times[1],
                             tuple(dict.fromkeys(symbols)), version, tag))
    return tuple(out)
