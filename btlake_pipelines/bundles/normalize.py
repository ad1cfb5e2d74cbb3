"""One bundle table, as read from its file, into the lake's shape: the contract's column types,
UTC timestamps with exact nanoseconds, ``market`` filled, the run's identity on run rows, and
the ``date`` partition. Every problem becomes a refusal naming the column and rows."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from btlake_pipelines.bundles.timestamps import TimestampError, nanos_exprs, split_nanos, to_utc_ns
from btlake_pipelines.contract.manifest import MARKET_PATTERN, MARKET_RULE, Manifest
from btlake_pipelines.contract.tables import NANOS_SUFFIX, RUN_COLUMNS, TableSpec
from btlake_pipelines.errors import BundleRefused

#: Names btlake writes itself; an input column of that name is kept as ``src_<name>``.
RESERVED = frozenset({"date", *RUN_COLUMNS})
_CASTS = {"string": pl.String, "float": pl.Float64, "int": pl.Int64}


def normalize_table(raw: pa.Table, *, spec: TableSpec, manifest: Manifest, bundle: str,
                    run_hash: str, market_rows: bool) -> pl.DataFrame:
    """The stored form of one table of one bundle, or a :class:`BundleRefused` for a column or
    type problem. Value rules are checked after, for many bundles at once
    (:func:`btlake_pipelines.contract.schemas.validate_many`)."""
    table = spec.name

    def refuse(rule: str, message: str, column: str | None = None, rows=(), values=()):
        return BundleRefused(bundle, rule, message, table=table, column=column,
                             rows=list(rows), values=list(values))

    _check_column_names(raw.column_names, refuse)
    missing = [c for c in spec.required_names if c not in raw.column_names]
    if missing:
        raise refuse("missing_column", f"required column(s) {', '.join(missing)} missing "
                     f"(found: {', '.join(raw.column_names)[:200]})", missing[0])
    try:
        df = pl.from_arrow(raw, rechunk=False)
    except Exception as exc:  # an Arrow type polars cannot hold, e.g. an exotic extension
        raise refuse("type", f"unsupported column type: {str(exc)[:160]}") from None
    assert isinstance(df, pl.DataFrame)
    # dictionary-encoded text (as written by some engines, or read so for speed) is stored as
    # plain strings: Delta has no dictionary type
    coded = [c for c, t in df.schema.items() if isinstance(t, pl.Categorical | pl.Enum)]
    if coded:
        df = df.with_columns(pl.col(coded).cast(pl.String))

    df = _keep_reserved_as_source(df, manifest, refuse, run_rows=not market_rows)
    df = _cast_required(df, spec, refuse)
    df = _normalize_extra_timestamps(df, spec, refuse)
    if "payload" in df.columns and spec.name == "events":
        payload = df.get_column("payload")
        df = _replace(df, _cast_checked(payload, "string", "payload", refuse), payload)
    market = _market_expr(df, manifest, refuse)
    return _finish(df, spec, manifest, run_hash, market_rows, market)


def _check_column_names(names: list[str], refuse) -> None:
    seen: set[str] = set()
    for name in names:
        if not name or len(name) > 128 or not name.isprintable():
            raise refuse("column_name", "column names must be 1 to 128 printable characters",
                         name[:60] or None)
        if name in seen:
            raise refuse("column_name", f"column '{name}' appears twice", name)
        seen.add(name)


def _keep_reserved_as_source(df: pl.DataFrame, manifest: Manifest, refuse, *, run_rows: bool
                             ) -> pl.DataFrame:
    """Input columns named like btlake's own: equal run identity is dropped (it is added back
    from the manifest), a different one refuses, anything else is kept as ``src_<name>``."""
    for name in [c for c in df.columns if c in RESERVED or c.endswith(NANOS_SUFFIX)]:
        expected = {"run_id": manifest.run_id, "strategy_id": manifest.strategy_id}.get(name)
        if run_rows and expected is not None:
            col = df.get_column(name).cast(pl.String, strict=False)
            bad = (col != expected) | col.is_null()
            if bad.any():
                rows = bad.arg_true().head(5).to_list()
                raise refuse("run_identity", f"column '{name}' differs from the manifest's "
                             f"{name} '{expected}'", name, rows, col.gather(rows).to_list())
            df = df.drop(name)
        else:
            df = df.rename({name: f"src_{name}"})
    return df


def _cast_required(df: pl.DataFrame, spec: TableSpec, refuse) -> pl.DataFrame:
    for name, kind in spec.required:
        col = df.get_column(name)
        if kind == "timestamp":
            try:
                df = _replace(df, to_utc_ns(col), col)
            except TimestampError as exc:
                raise refuse("type", f"column '{name}' {exc}", name, exc.rows,
                             exc.values) from None
            continue
        df = _replace(df, _cast_checked(col, kind, name, refuse), col)
    return df


def _replace(df: pl.DataFrame, col: pl.Series, before: pl.Series) -> pl.DataFrame:
    """``df`` with ``col`` swapped in; no work when the cast returned the column unchanged."""
    return df if col is before else df.with_columns(col)


def _cast_checked(col: pl.Series, kind: str, name: str, refuse) -> pl.Series:
    target = _CASTS[kind]
    if col.dtype == target:
        return col
    if col.dtype == pl.Boolean or (kind != "string" and isinstance(col.dtype, pl.Datetime)):
        raise refuse("type", f"column '{name}' must be {kind}, got {col.dtype}", name)
    source = col.str.strip_chars() if col.dtype == pl.String and kind != "string" else col
    try:
        cast = source.cast(target, strict=False)
    except pl.exceptions.InvalidOperationError:
        raise refuse("type", f"column '{name}' must be {kind}, got {col.dtype}", name) from None
    if kind == "int" and col.dtype.is_float():
        cast = cast.set(col != col.round(0), None)  # 1.5 is not a level
    lost = cast.is_null() & col.is_not_null()
    if lost.any():
        rows = lost.arg_true().head(5).to_list()
        raise refuse("type", f"column '{name}' has values that are not {kind}", name, rows,
                     col.gather(rows).to_list())
    return cast.alias(name)


def _normalize_extra_timestamps(df: pl.DataFrame, spec: TableSpec, refuse) -> pl.DataFrame:
    for name, dtype in list(df.schema.items()):
        if name in spec.required_names or not isinstance(dtype, pl.Datetime | pl.Date):
            continue
        if isinstance(dtype, pl.Date):
            continue  # a calendar date is not an instant: keep it as given
        try:
            df = df.with_columns(to_utc_ns(df.get_column(name)).alias(name))
        except TimestampError as exc:
            raise refuse("type", f"column '{name}' {exc}", name, exc.rows, exc.values) from None
        if dtype.time_unit == "ns":
            df = split_nanos(df, name, always=False)
        else:
            df = df.with_columns(pl.col(name).dt.cast_time_unit("us"))
    return df


def _market_expr(df: pl.DataFrame, manifest: Manifest, refuse) -> pl.Expr:
    if "market" not in df.columns:
        market = manifest.single_market
        if market is None:
            raise refuse("market_missing", "the file has no 'market' column and the manifest's "
                         "'markets' does not name exactly one market", "market")
        return pl.lit(market, pl.String).alias("market")
    col = df.get_column("market").cast(pl.String, strict=False)
    # a file holds a few markets: the pattern is checked on the distinct names, and the rows
    # are searched only to name the bad ones (a regex over 10M rows took a second)
    names = col.unique()
    if not names.is_null().any() and names.str.contains(
            f"^(?:{MARKET_PATTERN.pattern})$").all():
        return pl.col("market").cast(pl.String)
    bad = col.is_null() | ~col.str.contains(f"^(?:{MARKET_PATTERN.pattern})$")
    if bad.any():
        rows = bad.arg_true().head(5).to_list()
        raise refuse("market_name", f"column 'market' must be {MARKET_RULE}", "market", rows,
                     col.gather(rows).to_list())
    return pl.col("market").cast(pl.String)


def _finish(df: pl.DataFrame, spec: TableSpec, manifest: Manifest, run_hash: str,
            market_rows: bool, market: pl.Expr) -> pl.DataFrame:
    """Add ``ts_nanos``, market, run identity and ``date`` and order the columns, in one pass."""
    if market_rows:
        date = pl.col("ts").dt.date()
        ident = [pl.lit(None, pl.String).alias(c) for c in RUN_COLUMNS] \
            if spec.name == "events" else []
    else:
        date = pl.lit(manifest.created_at.date(), pl.Date)
        ident = [pl.lit(manifest.run_id, pl.String).alias("run_id"),
                 pl.lit(manifest.strategy_id, pl.String).alias("strategy_id"),
                 pl.lit(run_hash, pl.String).alias("run_hash")]
    ts_us, ts_nanos = nanos_exprs("ts")
    # input columns named like RUN_COLUMNS were dropped or renamed by _keep_reserved_as_source
    body = [c for c in df.columns if c not in ("ts", "market")]
    first = [c for c in body if c == "symbol"]
    rest = [c for c in body if c != "symbol"]
    return df.select(*ident, *first, ts_us, ts_nanos, *rest, market, date.alias("date"))
