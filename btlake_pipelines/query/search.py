"""Run search: the runs table in memory, filtered by options and the ``--where`` language.

The catalog holds params and metrics as long tables grouped by name (see
:mod:`btlake_pipelines.storage.runs_index`); a search fills, for the names it uses only, one
column each, then filters and orders the frame of plain columns by row number. Results keep
the shape runs always had: ``params`` as JSON text and ``metrics`` as one struct (its fields
the metric names the returned runs have).
"""

from __future__ import annotations

import json
from datetime import date, datetime
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
                             until=until, where=where, fields=view)
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
                where=None, fields: FieldSource | None = None) -> pl.Expr | None:
    parts: list[pl.Expr] = []
    if strategy:
        parts.append(pl.col("strategy_id").str.contains(glob_to_regex(strategy)))
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


#: Characters the regex engine of polars (Rust ``regex``) gives a meaning; escaped when literal.
#: ``<`` and ``>`` are never escaped: ``\<`` is a word boundary there.
_RX_META = frozenset("\\.+*?()|[]{}^$#&-~")


def glob_to_regex(pattern: str) -> str:
    """A shell glob (``*``, ``?``, ``[...]``, ``[!...]``) as an anchored regex matching exactly
    what :func:`fnmatch.fnmatchcase` matches; case-sensitive.

    ``fnmatch.translate`` cannot be handed to polars: it emits atomic groups, look-aheads and
    set syntax the Rust engine refuses (``a*b*`` failed the search). The glob is translated
    here instead, its bracket rules mirroring fnmatch's, into syntax Rust accepts."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if not out or out[-1] != ".*":
                out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append("\\[")
            else:
                out.append(_glob_set(pattern, i, j))
                i = j + 1
        else:
            out.append(_rx(c))
    return "(?s)^" + "".join(out) + "\\z"


def _rx(ch: str) -> str:
    return "\\" + ch if ch in _RX_META else ch


def _glob_set(pat: str, i: int, j: int) -> str:
    """The set ``pat[i:j]`` of a ``[...]``, split into chunks around range hyphens and with
    empty ranges dropped exactly as ``fnmatch.translate`` does."""
    chunks = [pat[i:j]]
    if "-" in chunks[0]:
        chunks = []
        k = i + 2 if pat[i] == "!" else i + 1
        while (k := pat.find("-", k, j)) >= 0:
            chunks.append(pat[i:k])
            i, k = k + 1, k + 3
        if pat[i:j]:
            chunks.append(pat[i:j])
        else:
            chunks[-1] += "-"
        for k in range(len(chunks) - 1, 0, -1):
            if chunks[k - 1][-1] > chunks[k][0]:
                chunks[k - 1] = chunks[k - 1][:-1] + chunks[k][1:]
                del chunks[k]
    if chunks == [""]:
        return "[^\\s\\S]"  # an empty set never matches
    if chunks == ["!"]:
        return "."  # a negated empty set matches any character
    negate = chunks[0].startswith("!")
    if negate:
        chunks[0] = chunks[0][1:]
    parts: list[str] = []
    for k, chunk in enumerate(chunks):
        if k and chunks[k - 1] and chunk:  # the hyphen between two chunks is a range
            parts.append(f"{parts.pop()}-{_rx(chunk[0])}")
            chunk = chunk[1:]
        elif k:
            parts.append("\\-")
        parts.extend(_rx(ch) for ch in chunk)
    return ("[^" if negate else "[") + "".join(parts) + "]"


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

