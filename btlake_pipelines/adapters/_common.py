"""What every engine adapter shares: checking the arguments, UTC timestamps, metric values, the
manifest, and writing the folder through the demo bundle writer (tables first, manifest last).

Nothing here imports an engine, pandas included at module level: ``btlake`` works without the
``adapters`` extra, and an adapter loads its engine only when it is called.
"""

from __future__ import annotations

import datetime as dt
import math
import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from btlake_pipelines.contract.run_ids import RUN_ID_RULE, is_valid_run_id
from btlake_pipelines.demo.bundle_writer import write_bundle
from btlake_pipelines.errors import BtlakeError


class AdapterError(BtlakeError):
    """An engine result or an argument an adapter cannot turn into a bundle."""


def bundle_folder(folder: str | Path, run_id: str) -> Path:
    """The bundle's own folder: ``folder`` itself when it is already named by the run id,
    otherwise ``folder/<run_id>`` (a bundle folder is named by its run id, section 1)."""
    if not is_valid_run_id(run_id):
        raise AdapterError(f"{{param}}: {str(run_id)[:80]!r} is not a run id ({RUN_ID_RULE})",
                           param="run_id")
    folder = Path(folder)
    return folder if folder.name == run_id else folder / run_id


def one_market(markets: str | Sequence[str]) -> list[str]:
    """The manifest's ``markets``: these engines trade one book, so exactly one market, which
    ingestion writes into every row."""
    listed = [markets] if isinstance(markets, str) else list(markets)
    if len(listed) != 1 or not isinstance(listed[0], str) or not listed[0]:
        raise AdapterError("{param} must name exactly one market (for example 'XNAS'), got "
                           f"{listed!r:.80}", param="markets")
    return listed


def created_at_utc(created_at: dt.datetime | str | None) -> dt.datetime:
    """``created_at`` as an aware UTC datetime; None is now. A naive value is UTC (section 1)."""
    if created_at is None:
        return dt.datetime.now(dt.UTC)
    if isinstance(created_at, str):
        try:
            created_at = dt.datetime.fromisoformat(created_at)
        except ValueError:
            raise AdapterError(f"{{param}}: {created_at[:60]!r} is not an ISO-8601 timestamp",
                               param="created_at") from None
    if not isinstance(created_at, dt.datetime):
        raise AdapterError("{param} must be a datetime or an ISO-8601 string",
                           param="created_at")
    if created_at.tzinfo is None:
        return created_at.replace(tzinfo=dt.UTC)
    return created_at.astimezone(dt.UTC)


def utc_timestamps(values: Any, *, what: str) -> pa.Array:
    """Engine timestamps (a pandas index or series of datetimes) as ``timestamp[ns, UTC]``.
    Naive values are UTC, as the contract reads them; anything that is not a datetime (a
    backtest over a plain bar index) is refused, since the lake keys every row by time."""
    import pandas as pd

    if len(values) == 0:  # a run that never traded: no rows, whatever dtype the engine left
        return pa.array([], pa.timestamp("ns", "UTC"))
    if not pd.api.types.is_datetime64_any_dtype(values):
        raise AdapterError(f"{{param}}: the {what} are not timestamps; run the engine on data "
                           "indexed by a DatetimeIndex", param="result")
    index = pd.DatetimeIndex(values)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return pa.array(index.as_unit("ns"), type=pa.timestamp("ns", "UTC"))


def metric_value(value: Any) -> float | None:
    """One metric as a JSON number: durations in seconds, NaN and infinities as null (JSON has
    neither; the contract allows null metrics), anything not numeric as null."""
    import pandas as pd

    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timedelta | dt.timedelta | np.timedelta64):
        value = pd.Timedelta(value).total_seconds()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def snake_case(name: str) -> str:
    """A fallback metric name for an engine key not in an adapter's explicit map:
    ``'Avg. Trade [%]'`` -> ``avg_trade_pct``."""
    text = name.replace("[%]", " pct").replace("[$]", " ").replace("#", " n ")
    words = "".join(c.lower() if c.isalnum() else " " for c in text).split()
    return "_".join(words)


def metrics_from(stats: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, float | None]:
    """Map an engine's stats to btlake metric names: ``names`` first (stable, documented), then
    any other numeric key under its :func:`snake_case` name, so a newer engine's extra
    statistics are kept rather than dropped. Keys starting with ``_`` are engine objects."""
    out: dict[str, float | None] = {}
    for key, value in stats.items():
        key = str(key)
        if key.startswith("_"):
            continue
        name = names.get(key) or snake_case(key)
        number = metric_value(value)
        if key in names or number is not None:
            out.setdefault(name, number)
    return out


def param_value(value: Any) -> str | float | int | bool | None:
    """A parameter as the manifest allows it (string, number, bool); others become their text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def environment(*packages: str) -> dict[str, Any]:
    """What reproducing the run needs to know: Python and the versions of the engine's stack."""
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "platform": platform.platform(),
            "packages": versions}


def engine_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def write(folder: str | Path, *, run_id: str, strategy_id: str, markets: str | Sequence[str],
          created_at: dt.datetime | str | None, engine: Mapping[str, str],
          params: Mapping[str, Any], metrics: Mapping[str, float | None],
          env: Mapping[str, Any], tables: Mapping[str, pa.Table],
          code_version: str | None = None, tags: Sequence[str] | None = None) -> Path:
    """Write one backtest bundle (tables first, ``manifest.json`` last) and return its folder.
    ``code_version`` and ``tags`` go into the manifest only when given."""
    target = bundle_folder(folder, run_id)
    if not isinstance(strategy_id, str) or not strategy_id:
        raise AdapterError("{param} must be a non-empty string", param="strategy_id")
    manifest: dict[str, Any] = {
        "format": "btlake.bundle/1",
        "kind": "backtest",
        "run_id": run_id,
        "strategy_id": strategy_id,
        "created_at": created_at_utc(created_at).isoformat(),
        "engine": dict(engine),
        "params": {str(k): param_value(v) for k, v in params.items()},
        "metrics": dict(metrics),
        "environment": dict(env),
        "markets": one_market(markets),
        "tables": {name: f"{name}.parquet" for name in tables},
    }
    if code_version:
        manifest["code_version"] = code_version
    if tags:
        manifest["tags"] = list(tags)
    return write_bundle(target, manifest, tables)
