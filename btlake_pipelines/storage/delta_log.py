"""The Delta log of a table read directly: which data files commits added and removed, which
files a version has, and reading a given set of them.

A long-lived reader that already holds version ``v`` of a table needs only what happened after
it. Each commit ``NNN.json`` lists its ``add`` and ``remove`` actions, so the files to load and
the files to drop are known from a few small reads, without listing or replaying the table.
Anything this reader cannot follow exactly (a commit file gone after log cleanup, deletion
vectors, a change of schema or protocol, a path outside the table) is reported as "unknown",
and the caller falls back to a full load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import polars as pl

from btlake_pipelines.settings import storage_options
from btlake_pipelines.storage import lake_files
from btlake_pipelines.storage.delta import table_uri

#: Column every frame from :func:`read_files` carries: the log path of the row's data file.
FILE_COLUMN = "__file"


@dataclass(frozen=True)
class DataFile:
    """One data file as the log names it: ``path`` relative to the table and URL-encoded (the
    key ``remove`` actions use), and its partition values as text."""

    path: str
    partition_values: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Changes:
    """The net effect of commits ``after + 1 .. upto``: files that are new and still live, and
    files the reader held that are gone."""

    after: int
    upto: int
    added: list[DataFile]
    removed: set[str]
    #: the table's schema when a commit wrote one (delta-rs rewrites it with every schema
    #: merge, usually unchanged), else None; partition columns the same way
    schema: pl.Schema | None = None
    partition_columns: list[str] | None = None


def commit_uri(lake: str, table: str, version: int) -> str:
    return f"{table_uri(lake, table)}/_delta_log/{version:020d}.json"


def changes(lake: str, table: str, after: int, upto: int) -> Changes | None:
    """What commits ``after + 1`` to ``upto`` of ``table`` did to its set of data files, or
    None when that cannot be told from their commit files alone (see the module docstring)."""
    added: dict[str, DataFile] = {}
    removed: set[str] = set()
    metadata: dict[str, Any] | None = None
    for version in range(after + 1, upto + 1):
        actions = _actions(lake, table, version)
        if actions is None:
            return None
        for action in actions:
            if "protocol" in action:
                return None  # new reader rules: not a change of rows alone
            if "metaData" in action:
                metadata = action["metaData"]
            elif "add" in action:
                add = action["add"]
                path = add.get("path")
                if not _relative(path) or add.get("deletionVector"):
                    return None
                added[path] = DataFile(path, dict(add.get("partitionValues") or {}))
            elif "remove" in action:
                rem = action["remove"]
                path = rem.get("path")
                if not _relative(path) or rem.get("deletionVector"):
                    return None
                if added.pop(path, None) is None:
                    removed.add(path)
    out = Changes(after, upto, list(added.values()), removed)
    if metadata is not None:
        try:
            out.schema = schema_of(metadata["schemaString"])
            out.partition_columns = list(metadata.get("partitionColumns") or [])
        except Exception:  # a schema this reader cannot parse: load the table instead
            return None
    return out


def schema_of(schema_json: str) -> pl.Schema:
    """A Delta schema (the log's JSON text) as the polars schema readers get."""
    import pyarrow as pa
    from deltalake import Schema

    arrow = pa.schema(Schema.from_json(schema_json).to_arrow())
    return pl.Schema(pl.from_arrow(arrow.empty_table()).schema)  # type: ignore[union-attr]


def table_schema(dt) -> pl.Schema:
    """The polars schema of the version ``dt`` (a ``DeltaTable``) is loaded at."""
    import pyarrow as pa

    arrow = pa.schema(dt.schema().to_arrow())
    return pl.Schema(pl.from_arrow(arrow.empty_table()).schema)  # type: ignore[union-attr]


def _actions(lake: str, table: str, version: int) -> list[dict[str, Any]] | None:
    try:
        text = lake_files.read_bytes(commit_uri(lake, table, version))
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, ValueError):
        return None


def _relative(path: Any) -> bool:
    return isinstance(path, str) and bool(path) and "://" not in path and not path.startswith("/")


def live_files(dt) -> list[DataFile]:
    """The data files of the version ``dt`` (a ``DeltaTable``) is loaded at."""
    import pyarrow as pa

    actions = pa.table(dt.get_add_actions(flatten=False))
    paths = actions.column("path").to_pylist()
    if "partition" in actions.column_names:
        values = actions.column("partition").to_pylist()
    else:
        values = [{}] * len(paths)
    return [DataFile(p, {k: _text(v) for k, v in (pv or {}).items()})
            for p, pv in zip(paths, values, strict=True)]


def _text(value: Any) -> str | None:
    return None if value is None else value.isoformat() if hasattr(value, "isoformat") \
        else str(value)


def read_files(lake: str, table: str, files: list[DataFile], schema: pl.Schema,
               partition_columns: list[str]) -> pl.DataFrame:
    """The rows of ``files``, in that order and each file's rows together, with the table's
    ``schema`` (columns a file lacks are null) and :data:`FILE_COLUMN` naming each row's file.
    Partition values come from the log, not from folder names."""
    data_schema = pl.Schema({k: v for k, v in schema.items() if k not in partition_columns})
    if not files:
        return pl.DataFrame(schema={**schema, FILE_COLUMN: pl.String})
    from polars.io.scan_options.cast_options import ScanCastOptions

    root = table_uri(lake, table)
    uris = [f"{root}/{unquote(f.path)}" for f in files]
    frame = pl.scan_parquet(
        uris, schema=data_schema, hive_partitioning=False, missing_columns="insert",
        extra_columns="ignore", cast_options=ScanCastOptions._default_iceberg(),
        include_file_paths=FILE_COLUMN, storage_options=storage_options(root),
    ).collect()
    by_uri = dict(zip(uris, files, strict=True))
    lengths = frame.get_column(FILE_COLUMN).rle()
    owners = [by_uri[u] for u in lengths.struct.field("value").to_list()]
    counts = lengths.struct.field("len").to_list()
    extra = {FILE_COLUMN: pl.Series(FILE_COLUMN, [f.path for f in owners], pl.String)}
    for column in partition_columns:
        values = pl.Series(column, [f.partition_values.get(column) for f in owners], pl.String)
        extra[column] = _typed(values, schema.get(column, pl.String))
    index = _repeat_index(counts)
    columns = {k: v.gather(index) for k, v in extra.items()}
    frame = frame.with_columns(**columns)
    return frame.select([*schema.names(), FILE_COLUMN])


def _typed(values: pl.Series, dtype: pl.DataType) -> pl.Series:
    """Partition values (Delta keeps them as text) in the column's type."""
    if dtype == pl.Date:
        return values.str.to_date("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        return values.str.to_datetime(time_unit=dtype.time_unit, time_zone=dtype.time_zone)
    return values.cast(dtype)


def _repeat_index(counts: list[int]) -> pl.Series:
    import numpy as np

    return pl.Series(np.repeat(np.arange(len(counts), dtype=np.uint32), counts))
