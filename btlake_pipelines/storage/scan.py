"""Lazy scans of lake tables with polars: partition pruning, file skipping by Delta statistics
and row-group skipping by Parquet statistics all come from pushing filters into the scan."""

from __future__ import annotations

import polars as pl

from btlake_pipelines.settings import storage_options
from btlake_pipelines.storage.delta import open_table, table_uri


def scan(lake: str, table: str, version: int | str | None = None) -> pl.LazyFrame | None:
    """A lazy frame over the table (at ``version`` if given), or None if it does not exist."""
    dt = open_table(lake, table, version)
    if dt is None:
        return None
    return scan_table(dt, lake, table)


def scan_table(dt, lake: str, table: str) -> pl.LazyFrame:
    uri = table_uri(lake, table)
    return pl.scan_delta(dt, storage_options=storage_options(uri))
