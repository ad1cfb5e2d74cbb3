"""Run search: the runs table in memory, filtered by options and the ``--where`` language.

The catalog holds params and metrics as long tables grouped by name (see
:mod:`btlake_pipelines.storage.runs_index`); a search fills, for the names it uses only, one
column each, then filters and orders the frame of plain columns by row number. Results keep
the shape runs always had: ``params`` as JSON text and ``metrics`` as one struct (its fields
the metric names the returned runs have).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime
from fnmatch import fnmatchcase
from typing import Any

import polars as pl

from btlake_pipelines.errors import QueryError
from btlake_pipelines.query.where import FieldSource, field_expr, parse_where
from btlake_pipelines.storage.catalog import Catalog
from btlake_pipelines.storage.runs_index import RunsView
from btlake_pipelines.versions.time_travel import parse_time

#: Columns a search returns by default; everything else is in the run's metadata snapshot.
HIDDEN = ("manifest",)
#: Columns of the stored layouts that results never carry (``params`` / ``metrics`` do).
LAYOUT = ("param_values", "metric_values", "params_num", "params_str", "params_bool")
_TEXT = pl.String
EMPTY_RUNS_SCHEMA = pl.Schema({
    "run_id": _TEXT, "strategy_id": _TEXT, "created_at": pl.Datetime("us", "UTC"),
    "kind": _TEXT, "engine_name": _TEXT, "engine_version": _TEXT, "code_version": _TEXT,
    "markets": pl.List(_TEXT), "tags": pl.List(_TEXT), "content_hash": _TEXT,
    "ingested_at": pl.Datetime("us", "UTC"), "date": pl.Date,
})


class _NoFields:
    """The field source of an empty lake: no param or metric exists."""

    def param_kinds(self, name: str) -> list[str]:
        return []

    def param(self, name: str, kind: str) -> pl.Expr:
        raise AssertionError("no param exists")

    def metric(self, name: str) -> pl.Expr | None:
        return None


def search_runs(catalog: Catalog, *, strategy: str | None = None,
                market: str | list[str] | None = None, since=None, until=None,
                where: str | None = None, order_by: str | None = None, desc: bool = False,
                limit: int | None = None, offset: int = 0) -> tuple[pl.DataFrame, int]:
    """Matching runs (ordered, limited) and how many matched before the limit."""
    view = catalog.runs_view()
    if view is None or not view.live:  # bad input is an error even on an empty lake
        run_filters(EMPTY_RUNS_SCHEMA, strategy=strategy, market=market, since=since,
                    until=until, where=where, fields=_NoFields())
        return pl.DataFrame(), 0
    frame = view.frame
    conditions = run_filters(frame.schema, strategy=strategy, market=market, since=since,
                             until=until, where=where, fields=view,
                             strategies=catalog.derived(
                                 ("runs:strategies", catalog.runs_version()),
                                 lambda: strategy_ids(frame)) if strategy else ())
    if offset < 0 or (limit is not None and limit < 0):
        raise QueryError("limit and offset must be >= 0")
    # Row numbers first, whole rows last: the predicate reads only the columns it names (and
    # fills only the params / metrics it names), the order is decided on (key, run_id) of the
    # matches alone (a top-k when limited), and only the rows returned are gathered, so a
    # search over a million runs costs milliseconds.
    rows = matching_rows(view, conditions)
    total = view.height if rows is None else rows.len()
    picked = _order(frame, order_by, desc, rows=rows, offset=offset, limit=limit, fields=view)
    return result_frame(view, picked), total


def matching_rows(view: RunsView, conditions: pl.Expr | None) -> pl.Series | None:
    """Row numbers of the view's live rows matching ``conditions`` (None: every row)."""
    if conditions is None:
        return None if view.alive is None else view.alive.arg_true()
    if view.alive is not None:
        conditions = conditions & pl.lit(view.alive)
    return view.bind(conditions).select(conditions.alias("__keep")).to_series().arg_true()


def result_frame(view: RunsView, rows: pl.Series, *, hidden: tuple[str, ...] = HIDDEN
                 ) -> pl.DataFrame:
    """The runs at ``rows`` of the view, in that order, in the shape searches return."""
    out = view.gather(rows, [c for c in view.frame.columns if c not in hidden])
    metrics = view.metrics_of(rows)
    if metrics is not None:
        out = out.with_columns(metrics)
    return out


def run_filters(schema: pl.Schema, *, strategy=None, market=None, since=None, until=None,
                where=None, fields: FieldSource | None = None,
                strategies: Iterable[str | None] = ()) -> pl.Expr | None:
    """The search options as one expression. ``strategies``: the distinct strategy ids of the
    runs searched, among which the ``strategy`` glob picks (see :func:`strategy_filter`)."""
    parts: list[pl.Expr] = []
    if strategy:
        parts.append(strategy_filter(strategy, strategies))
    if market:
        markets = [market] if isinstance(market, str) else list(market)
        parts.append(pl.any_horizontal([pl.col("markets").list.contains(m) for m in markets]))
    if since is not None:
        parts.append(pl.col("created_at") >= parse_time(since, what="since"))
    if until is not None:
        parts.append(pl.col("created_at") < parse_time(until, what="until"))
    if where:
        parts.append(parse_where(where, schema, fields))
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = out & p
    return out


def matching_strategies(pattern: str, strategies: Iterable[str | None]) -> list[str]:
    """The distinct ids among ``strategies`` that the shell glob ``pattern`` matches, exactly
    as :func:`fnmatch.fnmatchcase` decides: case-sensitive, ``*`` any run of characters
    (newlines too), ``?`` one, ``[...]`` / ``[!...]`` a set, a metacharacter taken literally
    inside brackets (``[*]``); there is no backslash escape.

    Strategies are few next to runs (thousands against millions), so the glob is matched in
    Python over the distinct ids and the rows are then filtered by membership: no glob is
    ever translated into a regex for another engine."""
    return sorted({s for s in strategies if s is not None and fnmatchcase(s, pattern)})


def strategy_filter(pattern: str, strategies: Iterable[str | None]) -> pl.Expr:
    """Rows whose ``strategy_id`` matches ``pattern`` (see :func:`matching_strategies`);
    ``strategies``: every id the filtered rows can hold (more does no harm)."""
    return pl.col("strategy_id").is_in(matching_strategies(pattern, strategies))


def strategy_ids(frame: pl.DataFrame) -> list[str]:
    """The distinct strategy ids of a runs frame (the runs index, in memory)."""
    if "strategy_id" not in frame.columns:
        return []
    return frame.get_column("strategy_id").drop_nulls().unique().to_list()


def _order(frame: pl.DataFrame, order_by: str | None, desc: bool, *,
           rows: pl.Series | None = None, offset: int = 0,
           limit: int | None = None, fields: RunsView | None = None) -> pl.Series:
    """Row numbers of ``frame`` (of ``rows`` only, when given) in result order: newest first
    by default, else by ``order_by`` (nulls last); ties by run id; then offset and limit.
    ``fields``: the view ``frame`` belongs to, when params and metrics are in its long
    tables (default: struct columns of ``frame``)."""
    if not order_by:
        key, descending, nulls_last = pl.col("created_at"), True, False
    else:
        key, kind = field_expr(order_by, frame.schema, fields=fields)
        if kind == "list":
            raise QueryError(f"cannot order by the list field {order_by!r}")
        descending, nulls_last = desc, True
    if fields is not None:
        frame = fields.bind(key, pl.col("run_id"))
    keys = frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("__row"),
                        key.alias("__order"), pl.col("run_id"))
    if rows is not None:
        keys = keys.select(pl.all().gather(rows))
    ordered = keys.lazy().sort(["__order", "run_id"], descending=[descending, False],
                               nulls_last=nulls_last).slice(offset, limit)
    return ordered.collect().get_column("__row")


def runs_to_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready run objects: ``params`` and ``metrics`` as objects, times as ISO-8601.
    ``frame``: search results, or ``runs`` rows as stored (either layout)."""
    if "metrics" not in frame.columns and "metric_values" in frame.columns:
        frame = frame.with_columns(pl.col("metric_values").alias("metrics"))
    drop = [c for c in LAYOUT if c in frame.columns]
    records = []
    for row in frame.drop(drop).iter_rows(named=True):
        row["params"] = json.loads(row["params"]) if row.get("params") else {}
        metrics = row.get("metrics") or {}
        if isinstance(metrics, list):  # stored entries: [{"name": ..., "value": ...}, ...]
            metrics = {e["name"]: e["value"] for e in metrics}
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

