"""The ``runs`` table: everything known about a run, one row each, queryable without JSON.

Params and metrics are lists of (name, value) entries sorted by name: ``param_values``
(``list<struct<name, num, str, bool>>``, exactly one of the three value fields set, by the
param's JSON type, so a param never changes type under a query and a predicate compares numbers
as numbers) and ``metric_values`` (``list<struct<name, value>>``; a null metric is left out, as
a missing one). The schema does not depend on which names exist: 20,000 distinct param names
cost what 30 cost (names are dictionary-encoded in Parquet), where the layout before this one,
one struct field per distinct name (``params_num``, ``params_str``, ``params_bool``,
``metrics``), made every commit carry a schema of megabytes and every reader hold names x runs
values; :mod:`btlake_pipelines.metadata.runs_migration` rewrites a lake still in that layout.
The exact manifest values stay in ``params`` (JSON text).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:  # the query path reads the layout constants without loading validation
    from btlake_pipelines.bundles.loader import LoadedBundle

VERSIONED_TABLES = ("trades", "equity", "events", "ticks", "l2")
_COUNTS = pa.struct([(t, pa.int64()) for t in VERSIONED_TABLES])
TS = pa.timestamp("us", "UTC")
PARAM_VALUE = pa.struct([("name", pa.string()), ("num", pa.float64()), ("str", pa.string()),
                         ("bool", pa.bool_())])
METRIC_VALUE = pa.struct([("name", pa.string()), ("value", pa.float64())])
PARAM_VALUES = pa.list_(PARAM_VALUE)
METRIC_VALUES = pa.list_(METRIC_VALUE)
#: The struct columns of the layout before ``param_values`` / ``metric_values``.
LEGACY_COLUMNS = ("params_num", "params_str", "params_bool", "metrics")


def run_rows(bundles: list[LoadedBundle], *, versions: dict[str, dict[str, int]],
             archive: dict[str, str], ingested_at: datetime, batch_id: str) -> pa.Table:
    """The ``runs`` rows for runs written in one batch (``versions``: bundle -> table ->
    the version that holds the run's rows there)."""
    rows = [_row(b, versions[b.name], archive[b.name], ingested_at, batch_id) for b in bundles]
    columns: dict[str, pa.Array] = {}
    plain = {
        "run_id": pa.string(), "strategy_id": pa.string(), "created_at": TS, "kind": pa.string(),
        "engine_name": pa.string(), "engine_version": pa.string(), "code_version": pa.string(),
        "markets": pa.list_(pa.string()), "tags": pa.list_(pa.string()),
        "params": pa.string(), "param_values": PARAM_VALUES, "metric_values": METRIC_VALUES,
        "environment": pa.string(), "extra": pa.string(),
        "manifest": pa.string(), "tables": pa.list_(pa.string()), "rows": _COUNTS,
        "versions": _COUNTS, "source_uri": pa.string(), "archive_uri": pa.string(),
        "content_hash": pa.string(), "ingested_at": TS, "batch_id": pa.string(),
    }
    for name, typ in plain.items():
        columns[name] = pa.array([r[name] for r in rows], typ)
    columns["date"] = pa.array([b.manifest.created_at.date() for b in bundles], pa.date32())
    return pa.table(columns)


def param_entries(params: dict[str, Any]) -> list[dict[str, Any]]:
    """``param_values`` of one run: by name, the value in the field of its JSON type."""
    out = []
    for name in sorted(params):
        v = params[name]
        entry: dict[str, Any] = {"name": name, "num": None, "str": None, "bool": None}
        if isinstance(v, bool):
            entry["bool"] = v
        elif isinstance(v, int | float):
            entry["num"] = float(v)
        elif isinstance(v, str):
            entry["str"] = v
        else:
            continue
        out.append(entry)
    return out


def metric_entries(metrics: dict[str, float | None]) -> list[dict[str, Any]]:
    """``metric_values`` of one run, by name; null metrics are left out."""
    return [{"name": k, "value": float(metrics[k])} for k in sorted(metrics)
            if metrics[k] is not None]


def _row(b: LoadedBundle, versions: dict[str, int], archive_uri: str, ingested_at: datetime,
         batch_id: str) -> dict[str, Any]:
    m = b.manifest
    counts = b.row_counts()
    data_markets = {mk for df in (*b.run_tables.values(), *b.market_tables.values())
                    for mk in df.get_column("market").unique().to_list()}
    params = m.params
    return {
        "run_id": m.run_id,
        "strategy_id": m.strategy_id,
        "created_at": m.created_at,
        "kind": m.kind,
        "engine_name": m.engine_name,
        "engine_version": m.engine_version,
        "code_version": m.code_version,
        "markets": sorted(set(m.markets) | data_markets),
        "tags": list(m.tags),
        "params": json.dumps(params, sort_keys=True),
        "param_values": param_entries(params),
        "metric_values": metric_entries(m.metrics),
        "environment": json.dumps(m.environment, sort_keys=True, default=str),
        "extra": json.dumps(m.extra, sort_keys=True, default=str),
        "manifest": json.dumps(m.raw, sort_keys=True, default=str),
        "tables": sorted(m.tables),
        "rows": {t: counts.get(t) for t in VERSIONED_TABLES},
        "versions": {t: versions.get(t) if t in counts else None for t in VERSIONED_TABLES},
        "source_uri": b.source_uri,
        "archive_uri": archive_uri,
        "content_hash": b.content_hash,
        "ingested_at": ingested_at,
        "batch_id": batch_id,
    }


def _struct(values: list[dict[str, Any]], typ: pa.DataType) -> pa.StructArray | None:
    """One struct column over the union of the rows' keys (None when no row has any): how the
    layout before ``param_values`` stored params and metrics. Kept to build tables in that
    layout, which readers and the migration still accept."""
    names = sorted({k for v in values for k in v})
    if not names:
        return None
    children = [pa.array([v.get(n) for v in values], typ) for n in names]
    return pa.StructArray.from_arrays(children, names=names)
