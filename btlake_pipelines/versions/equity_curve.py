"""A run's equity curve and drawdown, reduced on the server to what a plot can show.

A browser cannot draw a million points, and a plain stride would drop the spike or the crash a
reader is looking for; :func:`downsample` keeps each bucket's extremes instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from btlake_pipelines.query.read import scan_slice
from btlake_pipelines.storage.catalog import Catalog
from btlake_pipelines.versions.compare import run_record


@dataclass(frozen=True)
class EquityCurve:
    """The curve of one run: ``ts``, ``equity`` and ``drawdown`` (``equity / running peak - 1``,
    computed on the whole curve before it was reduced), ``points`` of ``total_points`` rows."""

    run_id: str
    total_points: int
    points: int
    downsampled: bool
    ts: list[datetime]
    equity: list[float | None]
    drawdown: list[float | None]


def downsample(frame: pl.DataFrame, points: int) -> pl.DataFrame:
    """Reduce a curve (``ts``, ``equity``, sorted by ``ts``) to about ``points`` rows that keep
    its shape: the series is cut into ``points // 3`` equal buckets and each keeps the rows of its
    lowest and highest equity and its deepest drawdown (plus the very first and last rows), so
    spikes and troughs survive. ``drawdown`` (``equity / running peak - 1``) is computed on the
    full series first. A curve of ``points`` rows or fewer comes back whole."""
    eq = pl.col("equity").cast(pl.Float64)
    peak = eq.cum_max()
    frame = frame.with_columns(
        pl.when(peak > 0).then(eq / peak - 1.0).otherwise(None).alias("drawdown"))
    n = frame.height
    if n <= points:
        return frame
    buckets = max(points // 3, 1)
    indexed = frame.with_row_index("i").with_columns(
        (pl.col("i").cast(pl.Int64) * buckets // n).alias("bucket"))
    keep = indexed.group_by("bucket").agg(
        pl.col("i").get(pl.col("equity").arg_min()).alias("lo"),
        pl.col("i").get(pl.col("equity").arg_max()).alias("hi"),
        pl.col("i").get(pl.col("drawdown").fill_null(0.0).arg_min()).alias("dd"),
    )
    chosen = pl.concat([keep["lo"], keep["hi"], keep["dd"],
                        pl.Series([0, n - 1], dtype=keep["lo"].dtype)]).unique().sort()
    return indexed.filter(pl.col("i").is_in(chosen.implode())).drop("i", "bucket")


def equity_curve(catalog: Catalog, run_id: str, points: int) -> EquityCurve:
    """The run's equity curve and drawdown, downsampled to about ``points`` points; an unknown
    run raises :class:`~btlake_pipelines.errors.NotFoundError`, a run without equity rows gives
    an empty curve."""
    run_record(catalog, run_id)
    frame = pl.DataFrame(schema={"ts": pl.Datetime("us", "UTC"), "equity": pl.Float64})
    if catalog.table("equity") is not None:
        frame = (scan_slice(catalog, "equity", run_id=run_id, columns=["ts", "equity"])
                 .select("ts", pl.col("equity").cast(pl.Float64)).sort("ts").collect())
    small = downsample(frame, points)
    return EquityCurve(
        run_id=run_id, total_points=frame.height, points=small.height,
        downsampled=small.height < frame.height, ts=small.get_column("ts").to_list(),
        equity=small.get_column("equity").to_list(),
        drawdown=small.get_column("drawdown").to_list())
