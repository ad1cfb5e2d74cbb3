"""Run search: the runs table in memory, filtered by options and the ``--where`` language."""

from __future__ import annotations

import fnmatch
import json
from datetime import date, datetime
from typing import Any

import polars as pl
import pyarrow as pa

from btlake_pipelines.errors import QueryError
from btlake_pipelines.query.where import field_expr, parse_where
from btlake_pipelines.storage.catalog import Catalog
from btlake_pipelines.versions.time_travel import parse_time

#: Columns a search returns by default; everything else is in the run's metadata snapshot.
HIDDEN = ("manifest",)
_TEXT = pl.String
EMPTY_RUNS_SCHEMA = pl.Schema({
    "run_id": _TEXT, "strategy_id": _TEXT, "created_at": pl.Datetime("us", "UTC"),
    "kind": _TEXT, "engine_name": _TEXT, "engine_version": _TEXT, "code_version": _TEXT,
    "markets": pl.List(_TEXT), "tags": pl.List(_TEXT), "content_hash": _TEXT,
    "ingested_at": pl.Datetime("us", "UTC"), "date": pl.Date,
})


def search_runs(catalog: Catalog, *, strategy: str | None = None,
                market: str | list[str] | None = None, since=None, until=None,
                where: str | None = None, order_by: str | None = None, desc: bool = False,
                limit: int | None = None, offset: int = 0) -> tuple[pl.DataFrame, int]:
    """Matching runs (ordered, limited) and how many matched before the limit."""
    frame = catalog.runs_frame()
    if frame.is_empty():
        run_filters(EMPTY_RUNS_SCHEMA, strategy=strategy, market=market, since=since,
                    until=until, where=where)  # bad input is an error even on an empty lake
        return frame, 0
    conditions = run_filters(frame.schema, strategy=strategy, market=market, since=since,
                             until=until, where=where)
    found = frame.filter(conditions) if conditions is not None else frame
    total = found.height
    found = _order(found, order_by, desc)
    if offset < 0 or (limit is not None and limit < 0):
        raise QueryError("limit and offset must be >= 0")
    found = found.slice(offset, limit)
    return found.drop([c for c in HIDDEN if c in found.columns]), total


def run_filters(schema: pl.Schema, *, strategy=None, market=None, since=None, until=None,
                where=None) -> pl.Expr | None:
    parts: list[pl.Expr] = []
    if strategy:
        parts.append(pl.col("strategy_id").str.contains(glob_to_regex(strategy)))
    if market:
        markets = [market] if isinstance(market, str) else list(market)
        parts.append(pl.col("markets").list.eval(pl.element().is_in(markets)).list.any())
    if since is not None:
        parts.append(pl.col("created_at") >= parse_time(since, what="since"))
    if until is not None:
        parts.append(pl.col("created_at") < parse_time(until, what="until"))
    if where:
        parts.append(parse_where(where, schema))
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = out & p
    return out


def glob_to_regex(pattern: str) -> str:
    """A shell glob (``*``, ``?``, ``[...]``) as an anchored regex; matching is case-sensitive."""
    translated = fnmatch.translate(pattern)  # "(?s:...)\Z"; Rust regex spells the end "\z"
    return translated[: -len("\\Z")] + "\\z" if translated.endswith("\\Z") else translated


def _order(frame: pl.DataFrame, order_by: str | None, desc: bool) -> pl.DataFrame:
    if not order_by:
        return frame.sort(["created_at", "run_id"], descending=[True, False])
    expr, kind = field_expr(order_by, frame.schema)
    if kind == "list":
        raise QueryError(f"cannot order by the list field {order_by!r}")
    return frame.with_columns(expr.alias("__order")).sort(
        ["__order", "run_id"], descending=[desc, False], nulls_last=True).drop("__order")


def runs_to_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready run objects: ``params`` and ``metrics`` as objects, times as ISO-8601."""
    drop = [c for c in ("params_num", "params_str", "params_bool") if c in frame.columns]
    records = []
    for row in frame.drop(drop).iter_rows(named=True):
        row["params"] = json.loads(row["params"]) if row.get("params") else {}
        metrics = row.get("metrics") or {}
        row["metrics"] = {k: v for k, v in metrics.items() if v is not None}
        for key in ("environment", "extra"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        if "manifest" in row and isinstance(row["manifest"], str):
            row["manifest"] = json.loads(row["manifest"])
        records.append({k: jsonable(v) for k, v in row.items()})
    return records


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


def to_arrow(frame: pl.DataFrame) -> pa.Table:
    return frame.to_arrow()
