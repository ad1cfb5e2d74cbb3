"""The ``ingest_log`` table: one append-only row per bundle handled, whatever happened to it.

Its nested parts are typed Arrow columns, so a reader filters them with column expressions
(:func:`wrote`, :func:`touches`, :func:`refused_by`), never by matching JSON text:

- ``tables`` / ``rows``: ``list<struct<table, version>>`` / ``list<struct<table, rows>>``;
- ``slices``: ``list<struct<table, market, symbol, symbols, date, first_ts, first_ts_nanos,
  last_ts, last_ts_nanos, rows, status>>``, one entry per market-data slice, or past
  :data:`~btlake_pipelines.ingest.market_slices.MAX_LISTED_SLICES` one per (table, market,
  date, status) with ``symbols`` counted instead of ``symbol`` (the row stays small); times are
  split as in the fact tables (``first_ts`` to the microsecond, ``first_ts_nanos`` the rest);
- ``reason``: ``struct<bundle, rule, table, column, message, rows, values>``; ``values`` are
  sample values of any JSON type, so each is kept as its JSON text.

A lake written before these types held JSON text in those columns;
:mod:`btlake_pipelines.metadata.ingest_log_migration` rewrites it in place, and until then
:func:`scan_log` converts it in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

_UTC_US = pa.timestamp("us", "UTC")
TABLE_VERSIONS = pa.list_(pa.struct([("table", pa.string()), ("version", pa.int64())]))
TABLE_ROWS = pa.list_(pa.struct([("table", pa.string()), ("rows", pa.int64())]))
SLICE = pa.struct([
    ("table", pa.string()), ("market", pa.string()), ("symbol", pa.string()),
    ("symbols", pa.int64()), ("date", pa.date32()), ("first_ts", _UTC_US),
    ("first_ts_nanos", pa.int16()), ("last_ts", _UTC_US), ("last_ts_nanos", pa.int16()),
    ("rows", pa.int64()), ("status", pa.string())])
SLICES = pa.list_(SLICE)
REASON = pa.struct([
    ("bundle", pa.string()), ("rule", pa.string()), ("table", pa.string()),
    ("column", pa.string()), ("message", pa.string()), ("rows", pa.list_(pa.int64())),
    ("values", pa.list_(pa.string()))])
SCHEMA = pa.schema([
    ("batch_id", pa.string()), ("bundle", pa.string()), ("run_id", pa.string()),
    ("kind", pa.string()), ("status", pa.string()), ("content_hash", pa.string()),
    ("error", pa.string()), ("reason", REASON), ("tables", TABLE_VERSIONS),
    ("rows", TABLE_ROWS), ("slices", SLICES), ("source_uri", pa.string()),
    ("destination_uri", pa.string()), ("handled_at", _UTC_US)])
#: Delta table properties of ``ingest_log``: file statistics for its flat columns only (see
#: :mod:`btlake_pipelines.metadata.ingest_log_migration`, which sets them).
TABLE_PROPERTIES = {"delta.dataSkippingStatsColumns": ",".join(
    f.name for f in SCHEMA if not pa.types.is_nested(f.type))}
#: The columns that held JSON text before they were typed.
NESTED = ("reason", "tables", "rows", "slices")

STATUSES = ("ingested", "unchanged", "replaced", "quarantined")


@dataclass
class BundleResult:
    """What happened to one bundle; the CLI, the API and Dagster all report this."""

    bundle: str  # the folder name as received
    status: str
    run_id: str | None = None
    kind: str | None = None
    content_hash: str | None = None
    error: str | None = None
    reason: dict[str, Any] | None = None
    tables: dict[str, int] = field(default_factory=dict)  # table -> version written
    rows: dict[str, int] = field(default_factory=dict)
    slices: list[dict[str, Any]] = field(default_factory=list)
    source_uri: str | None = None
    destination_uri: str | None = None  # where it went: archive or quarantine

    def to_json(self) -> dict[str, Any]:
        out = {"bundle": self.bundle, "run_id": self.run_id, "status": self.status,
               "kind": self.kind, "content_hash": self.content_hash, "tables": self.tables,
               "rows": self.rows}
        if self.status == "quarantined":
            out.update(error=self.error, reason=self.reason)
        return out


def log_rows(results: list[BundleResult], *, batch_id: str, handled_at: datetime) -> pa.Table:
    """The ``ingest_log`` rows of one batch's results."""
    return records_table([{
        "batch_id": batch_id, "bundle": r.bundle, "run_id": r.run_id, "kind": r.kind,
        "status": r.status, "content_hash": r.content_hash, "error": r.error,
        "reason": r.reason, "tables": r.tables, "rows": r.rows, "slices": r.slices,
        "source_uri": r.source_uri, "destination_uri": r.destination_uri,
        "handled_at": handled_at} for r in results])


def records_table(records: Iterable[dict[str, Any]]) -> pa.Table:
    """``ingest_log`` rows from records whose nested parts are plain Python (a result's
    ``tables`` / ``rows`` dicts, its slice dicts, its reason dict), typed as :data:`SCHEMA`."""
    typed = [{**r, "reason": _reason(r.get("reason")),
              "tables": _entries(r.get("tables"), "version"),
              "rows": _entries(r.get("rows"), "rows"),
              "slices": [_slice(s) for s in r.get("slices") or []]} for r in records]
    return pa.Table.from_pylist(typed, schema=SCHEMA)


def _entries(mapping: dict[str, int] | None, value: str) -> list[dict[str, Any]]:
    return [{"table": k, value: v} for k, v in sorted((mapping or {}).items())]


def _reason(reason: dict[str, Any] | None) -> dict[str, Any] | None:
    if not reason:
        return None
    return {"bundle": reason.get("bundle"), "rule": reason.get("rule"),
            "table": reason.get("table"), "column": reason.get("column"),
            "message": reason.get("message"), "rows": list(reason.get("rows") or []),
            "values": [json.dumps(v, default=str) for v in reason.get("values") or []]}


def _slice(entry: dict[str, Any]) -> dict[str, Any]:
    first_us, first_nanos = _split_ns(entry.get("first_ts"))
    last_us, last_nanos = _split_ns(entry.get("last_ts"))
    day = entry.get("date")
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day)
        except ValueError:
            day = None
    return {"table": entry.get("table"), "market": entry.get("market"),
            "symbol": entry.get("symbol"), "symbols": entry.get("symbols"),
            "date": day,
            "first_ts": first_us, "first_ts_nanos": first_nanos, "last_ts": last_us,
            "last_ts_nanos": last_nanos, "rows": entry.get("rows"),
            "status": entry.get("status")}


def _split_ns(text: str | None) -> tuple[datetime | None, int | None]:
    """An ISO-8601 UTC time exact to the nanosecond as (its microsecond floor, the rest);
    (None, None) for None or text that is not a time."""
    try:
        ns = int(np.datetime64(str(text).removesuffix("Z"), "ns").astype(np.int64))
    except ValueError:
        return None, None
    us, nanos = divmod(ns, 1000)
    return np.datetime64(us, "us").astype(datetime).replace(tzinfo=UTC), nanos


# --- reading -----------------------------------------------------------------------------


def scan_log(lake: str, version: int | None = None) -> pl.LazyFrame | None:
    """``ingest_log`` (at ``version`` if given) with its typed columns, None when it does not
    exist; a table still in the JSON-text layout is converted in memory (whole: such a table
    is rewritten by the next ingestion or maintenance run)."""
    from btlake_pipelines.contract.tables import INGEST_LOG
    from btlake_pipelines.storage.scan import scan

    lf = scan(lake, INGEST_LOG, version)
    if lf is None:
        return None
    schema = lf.collect_schema()
    if not is_legacy(schema):
        return lf
    return pl.from_arrow(from_legacy(lf.collect())).lazy()  # type: ignore[union-attr]


def is_legacy(schema: pl.Schema | pa.Schema) -> bool:
    """Whether a table with this schema keeps its nested parts as JSON text."""
    if isinstance(schema, pa.Schema):
        return any(schema.field(c).type in (pa.string(), pa.large_string())
                   for c in NESTED if c in schema.names)
    return any(schema.get(c) == pl.String for c in NESTED)


def from_legacy(frame: pl.DataFrame) -> pa.Table:
    """Rows of the JSON-text layout in the typed one (what the old code wrote, decoded once)."""
    def decoded(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            return None  # never written so; kept as no entries rather than failing the move

    return records_table({**row, **{c: decoded(row.get(c)) for c in NESTED}}
                         for row in frame.iter_rows(named=True))


def empty_frame() -> pl.DataFrame:
    """A log with no rows, typed as a real one."""
    return pl.from_arrow(pa.Table.from_batches([], schema=SCHEMA))  # type: ignore[return-value]


def wrote(table: str) -> pl.Expr:
    """Rows whose handling wrote ``table`` (it is among ``tables``)."""
    return pl.col("tables").list.eval(pl.element().struct.field("table") == table).list.any()


def touches(table: str, dates: Callable[[pl.Expr], pl.Expr] | None = None) -> pl.Expr:
    """Rows with a slice of ``table``; ``dates``: builds, from a slice's ``date``, a condition
    the same slice must meet too."""
    entry = pl.element().struct
    hit = entry.field("table") == table
    if dates is not None:
        hit = hit & dates(entry.field("date"))
    return pl.col("slices").list.eval(hit).list.any()


def refused_by(rule: str) -> pl.Expr:
    """Quarantined rows refused under ``rule``."""
    return (pl.col("status") == "quarantined") & (pl.col("reason").struct.field("rule") == rule)


def slice_parts(frame: pl.DataFrame | pl.LazyFrame, table: str | None = None) -> pl.DataFrame:
    """``(row, table, market, date)`` of each slice of the rows of ``frame`` (``row``: the
    row's position), only slices of ``table`` when given."""
    lf = frame.lazy().select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"),
                             pl.col("slices")).explode("slices").drop_nulls("slices")
    lf = lf.select("row", pl.col("slices").struct.field("table", "market", "date"))
    if table is not None:
        lf = lf.filter(pl.col("table") == table)
    return lf.collect()


def as_mapping(entries: list[dict[str, Any]] | None, value: str) -> dict[str, Any]:
    """A ``tables`` / ``rows`` entry list as the mapping results carry."""
    return {e["table"]: e[value] for e in entries or []}


def reason_record(reason: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored ``reason`` as the JSON-ready reason results carry (values decoded)."""
    if reason is None:
        return None
    return {**reason, "values": [json.loads(v) for v in reason.get("values") or []]}
