"""Timestamps to UTC without losing precision.

Delta stores timestamps in microseconds. btlake stores each timestamp column ``C`` floored to the
microsecond and, for ``ts`` always and for other columns whose input had nanoseconds, an int16
column ``C_nanos`` (0..999) with the rest, so ``C * 1000 + C_nanos`` is the exact input.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from btlake_pipelines.contract.tables import NANOS_SUFFIX

_HAS_OFFSET = r"([Zz]|[+-]\d{2}(:?\d{2})?)$"
_DATE_ONLY = r"^\d{4}-\d{2}-\d{2}$"
_CHUNK = 65_536
#: What ``timestamp[ns]`` holds: 1677-09-21T00:12:43.145224192 to 2262-04-11T23:47:16.854775807.
_MIN_US, _MAX_US = -(2**63) // 1000 + 1, (2**63 - 1) // 1000 - 1


class TimestampError(ValueError):
    """Some values are not timestamps; ``rows`` holds a few of their row numbers."""

    def __init__(self, message: str, rows: list[int], values: list[object]) -> None:
        super().__init__(message)
        self.rows = rows
        self.values = values


def to_utc_ns(series: pl.Series) -> pl.Series:
    """Any timestamp-like column as ``Datetime("ns", "UTC")``; no zone means UTC."""
    dtype = series.dtype
    if dtype == pl.Datetime("ns", "UTC"):
        return series
    if isinstance(dtype, pl.Datetime | pl.Date):
        if isinstance(dtype, pl.Datetime):
            series = (series.dt.replace_time_zone("UTC") if dtype.time_zone is None
                      else series.dt.convert_time_zone("UTC"))
        else:
            series = series.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        _check_ns_range(series)
        return series.dt.cast_time_unit("ns")
    if dtype in (pl.String, pl.Utf8):
        parsed = pl.from_arrow(parse_iso8601(series.to_arrow()))
        assert isinstance(parsed, pl.Series)
        return parsed.alias(series.name)
    if dtype == pl.Null:
        return series.cast(pl.Datetime("ns", "UTC"))
    raise TimestampError(f"expected a timestamp or ISO-8601 text, got {dtype}", [], [])


def _check_ns_range(series: pl.Series) -> None:
    """Refuse instants a nanosecond timestamp cannot hold instead of letting the cast fail
    (or wrap) later: btlake keeps every timestamp exactly, in nanoseconds."""
    unit = series.dtype.time_unit  # type: ignore[union-attr]
    if unit == "ns":
        return
    per_us = 1000 if unit == "ms" else 1
    raw = series.to_physical()
    bad = (raw < -(-_MIN_US // per_us)) | (raw > _MAX_US // per_us)
    if bad.any():
        rows = bad.arg_true().head(5).to_list()
        raise TimestampError("has values outside 1677-09-21 to 2262-04-11 (what a nanosecond "
                             "timestamp holds)", rows, [str(v) for v in series.gather(rows)])


def parse_iso8601(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """ISO-8601 strings, each with its own offset or none (UTC), as timestamp[ns, UTC]."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_large_string(values.type) or pa.types.is_string_view(values.type):
        values = values.cast(pa.string())
    text = pc.utf8_trim_whitespace(values)
    text = pc.if_else(pc.match_substring_regex(text, _DATE_ONLY),
                      pc.binary_join_element_wise(text, "T00:00:00", ""), text)
    text = pc.if_else(pc.match_substring_regex(text, _HAS_OFFSET), text,
                      pc.binary_join_element_wise(text, "Z", ""))
    text = pc.replace_substring_regex(text, r"[zZ]$", "+00:00")
    try:
        return pc.cast(text, pa.timestamp("ns", "UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        rows = _failing_rows(text)
        raise TimestampError(
            "not an ISO-8601 timestamp", rows, [values[i].as_py() for i in rows]
        ) from None


def _failing_rows(text: pa.Array, limit: int = 5) -> list[int]:
    """Row numbers of the first values that do not parse, found chunk by chunk."""
    bad: list[int] = []
    for start in range(0, len(text), _CHUNK):
        chunk = text.slice(start, _CHUNK)
        try:
            pc.cast(chunk, pa.timestamp("ns", "UTC"))
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        for i in range(len(chunk)):
            try:
                pc.cast(chunk.slice(i, 1), pa.timestamp("ns", "UTC"))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                bad.append(start + i)
                if len(bad) >= limit:
                    return bad
    return bad


def split_nanos(df: pl.DataFrame, column: str, *, always: bool) -> pl.DataFrame:
    """Replace a ``Datetime(ns, UTC)`` column by its microsecond floor and ``<col>_nanos``.

    ``always`` keeps the nanos column even when every remainder is zero, so ``ts`` has one
    schema whatever unit the input used."""
    out = df.with_columns(*nanos_exprs(column))
    if not always and out.get_column(column + NANOS_SUFFIX).fill_null(0).max() in (0, None):
        out = out.drop(column + NANOS_SUFFIX)
    return out


def nanos_exprs(column: str) -> tuple[pl.Expr, pl.Expr]:
    """The microsecond floor of a ``Datetime(ns, UTC)`` column and its 0..999 remainder."""
    ns = pl.col(column).cast(pl.Int64)
    return ((ns // 1000).cast(pl.Datetime("us", "UTC")).alias(column),
            (ns % 1000).cast(pl.Int16).alias(column + NANOS_SUFFIX))


def join_nanos(table: pa.Table) -> pa.Table:
    """Undo :func:`split_nanos` for reads: each ``C`` with a ``C_nanos`` column becomes an exact
    ``timestamp[ns, UTC]`` and the helper column is dropped."""
    names = table.column_names
    for name in names:
        helper = name + NANOS_SUFFIX
        if helper not in names or not pa.types.is_timestamp(table.schema.field(name).type):
            continue
        ts = pc.cast(table[name], pa.timestamp("us", "UTC")).cast(pa.int64())
        extra = pc.fill_null(table[helper], 0).cast(pa.int64())
        exact = pc.add(pc.multiply(ts, 1000), extra).cast(pa.timestamp("ns", "UTC"))
        table = table.set_column(table.column_names.index(name), name, exact)
        table = table.drop_columns([helper])
    return table

