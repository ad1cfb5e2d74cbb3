"""Extra columns grow a table's schema; a column's type, once stored, stays. This module fits
each bundle's frames to the types the lake already holds (and to earlier bundles of the same
batch), and refuses a bundle whose extra column cannot take that type, naming both types,
instead of letting one bundle fail the whole batch's commit."""

from __future__ import annotations

import polars as pl

from btlake_pipelines.bundles.loader import LoadedBundle
from btlake_pipelines.contract.tables import FACT_TABLES
from btlake_pipelines.errors import BundleRefused
from btlake_pipelines.storage.scan import scan


def fit_schemas(lake: str, bundles: list[LoadedBundle]
                ) -> tuple[list[LoadedBundle], list[BundleRefused]]:
    """(bundles whose frames now match the lake's column types, refusals)."""
    refused: dict[str, BundleRefused] = {}
    for table in FACT_TABLES:
        holders = [b for b in bundles if table in b.run_tables or table in b.market_tables]
        if not holders:
            continue
        lf = scan(lake, table)
        known: dict[str, pl.DataType] = dict(lf.collect_schema()) if lf is not None else {}
        for b in holders:
            if b.name in refused:
                continue
            frames = b.market_tables if table in b.market_tables else b.run_tables
            try:
                frames[table] = fit_frame(frames[table], known)
            except SchemaMismatch as exc:
                refused[b.name] = BundleRefused(
                    b.name, "column_type", f"column '{exc.column}' is {exc.got} here but "
                    f"{exc.want} in the lake's '{table}' table", table=table, column=exc.column)
                continue
            for name, dtype in frames[table].schema.items():
                if dtype != pl.Null:  # all-null says nothing about the type: the next decides
                    known.setdefault(name, dtype)
    return [b for b in bundles if b.name not in refused], list(refused.values())


class SchemaMismatch(Exception):
    def __init__(self, column: str, got: pl.DataType, want: pl.DataType) -> None:
        super().__init__(column)
        self.column, self.got, self.want = column, got, want


def fit_frame(df: pl.DataFrame, known: dict[str, pl.DataType]) -> pl.DataFrame:
    casts = {}
    for name, dtype in df.schema.items():
        want = known.get(name)
        # a column the lake holds as Null (Delta "void": only nulls so far) takes any type;
        # refusing would let one bundle with an empty column block that name for good
        if want is None or want == dtype or dtype == pl.Null or want == pl.Null:
            continue
        col = df.get_column(name)
        try:
            cast = col.cast(want, strict=True)
        except Exception:
            raise SchemaMismatch(name, dtype, want) from None
        if cast.null_count() != col.null_count() or (
                dtype.is_numeric() and want.is_numeric()
                and not (cast.cast(dtype) == col).fill_null(True).all()):
            raise SchemaMismatch(name, dtype, want)  # 1.5 into an integer column would lose .5
        casts[name] = cast
    return df.with_columns(**casts) if casts else df
