"""Moving a ``runs`` table from the struct layout to ``param_values`` / ``metric_values``.

The layout before kept params in three struct columns (``params_num``, ``params_str``,
``params_bool``) and metrics in the struct ``metrics``, one field per distinct name: with
thousands of names every commit carried megabytes of schema and every reader held names x runs
values (see :mod:`btlake_pipelines.metadata.runs_table`). :func:`migrate` rewrites such a table
in place, in one Delta overwrite commit that also drops the struct columns from the schema:
readers see the old layout up to the version before it and the new one from it on, and time
travel still reads the old versions. It runs before the first write of ``runs`` rows by
ingestion and at the start of ``btlake maintain``; until then, readers convert in memory
(:func:`legacy_entries`).

The rewrite streams: one data file at a time is read, converted and handed to the writer, so
its memory is one file's rows, not the table's. A concurrent commit makes it start over from
the new version (commit retries are off: a retried overwrite would drop rows it never saw).
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from btlake_pipelines.contract.tables import RUNS
from btlake_pipelines.metadata.runs_table import LEGACY_COLUMNS, METRIC_VALUES, PARAM_VALUES

#: Attempts before a migration losing every race to other writers gives up (the next write or
#: maintenance run tries again; readers handle both layouts meanwhile).
ATTEMPTS = 5
_LEGACY_PARAMS = {"params_num": "num", "params_str": "str", "params_bool": "bool"}


def is_legacy(names: list[str]) -> bool:
    """Whether a ``runs`` table with these columns needs :func:`migrate`."""
    return any(c in names for c in LEGACY_COLUMNS) or not {
        "param_values", "metric_values"} <= set(names)


def migrate(lake: str) -> int | None:
    """Rewrite ``lake``'s ``runs`` table in the current layout if it is not; returns the
    version of the rewrite, None when there was nothing to do (or every attempt lost a race to
    another writer: readers handle both layouts, the next call tries again)."""
    from deltalake import CommitProperties, write_deltalake
    from deltalake.exceptions import CommitFailedError

    from btlake_pipelines.storage import delta_log
    from btlake_pipelines.storage.delta import PARTITIONS, open_table, writer_properties

    for _ in range(ATTEMPTS):
        dt = open_table(lake, RUNS)
        if dt is None:
            return None
        schema = pa.schema(dt.schema().to_arrow())
        if not is_legacy(schema.names):
            return None
        target = current_schema(schema)
        files = delta_log.live_files(dt)
        source = delta_log.table_schema(dt)

        def batches(files=files, source=source, target=target):
            for f in files:
                frame = delta_log.read_files(lake, RUNS, [f], source, PARTITIONS[RUNS])
                converted = to_current(frame.drop(delta_log.FILE_COLUMN))
                yield from converted.to_arrow().select(target.names).cast(target).to_batches()

        reader = pa.RecordBatchReader.from_batches(target, batches())
        try:
            write_deltalake(
                dt, reader, mode="overwrite", schema_mode="overwrite",
                partition_by=PARTITIONS[RUNS], writer_properties=writer_properties(RUNS, target),
                commit_properties=CommitProperties(
                    custom_metadata={"btlake.maintenance": "migrate_runs_layout"},
                    max_commit_retries=0))
        except CommitFailedError:
            continue
        return dt.version()
    return None


def current_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` (a ``runs`` table's) in the current layout: the struct columns replaced by
    ``param_values`` / ``metric_values``, placed after ``params``."""
    fields = [f for f in schema if f.name not in (*LEGACY_COLUMNS, "param_values",
                                                     "metric_values")]
    at = next((i + 1 for i, f in enumerate(fields) if f.name == "params"), len(fields))
    fields[at:at] = [pa.field("param_values", PARAM_VALUES),
                     pa.field("metric_values", METRIC_VALUES)]
    return pa.schema(fields)


def to_current(frame: pl.DataFrame) -> pl.DataFrame:
    """``runs`` rows of any layout (or a mix) in the current one: each row's param and metric
    entries sorted by name; an entry already in ``param_values`` wins over a struct field."""
    row = "\x00row"
    indexed = frame.with_row_index(row)
    params = [_entries(indexed, "param_values", row)] if "param_values" in frame.columns else []
    for column, field in _LEGACY_PARAMS.items():
        if column in frame.columns:
            params.append(legacy_entries(indexed, column, row).rename({"value": field}))
    metrics = [_entries(indexed, "metric_values", row)] if "metric_values" in frame.columns \
        else []
    if "metrics" in frame.columns:
        metrics.append(legacy_entries(indexed, "metrics", row))
    out = indexed.drop([c for c in (*LEGACY_COLUMNS, "param_values", "metric_values")
                        if c in frame.columns])
    out = out.join(_lists(params, row, ["num", "str", "bool"], PARAM_VALUES, "param_values"),
                   on=row, how="left", maintain_order="left")
    out = out.join(_lists(metrics, row, ["value"], METRIC_VALUES, "metric_values"),
                   on=row, how="left", maintain_order="left")
    return out.with_columns(pl.col("param_values", "metric_values").fill_null([])).drop(row)


def legacy_entries(frame: pl.DataFrame, column: str, row: str = "row") -> pl.DataFrame:
    """A struct column of the old layout (one field per name) as long ``(row, name, value)``
    entries, nulls left out; ``row``: the frame's row-number column (made when missing)."""
    dtype = frame.schema.get(column)
    if not isinstance(dtype, pl.Struct) or not dtype.fields:
        return pl.DataFrame(schema={row: pl.UInt32, "name": pl.String, "value": pl.Null})
    if row not in frame.columns:
        frame = frame.with_row_index(row)
    # prefixed: a param may be called like the row column
    wide = frame.select(row, pl.col(column).struct.unnest().name.prefix("\x00"))
    return (wide.unpivot(index=row, variable_name="name", value_name="value")
            .drop_nulls("value").with_columns(pl.col("name").str.slice(1)))


def _entries(frame: pl.DataFrame, column: str, row: str) -> pl.DataFrame:
    return (frame.select(row, column).explode(column).drop_nulls(column).unnest(column)
            .filter(pl.col("name").is_not_null()))


def _lists(parts: list[pl.DataFrame], row: str, values: list[str], dtype: pa.DataType,
           column: str) -> pl.DataFrame:
    """Per row, its entries as one sorted list column of ``dtype``."""
    one = pa.schema([pa.field(column, dtype)])
    target = pl.from_arrow(pa.Table.from_batches([], schema=one)).schema[column]
    parts = [p for p in parts if p.height]
    if not parts:
        return pl.DataFrame(schema={row: pl.UInt32, column: target})
    long = pl.concat([p.select(row, "name", *[pl.col(v) for v in values if v in p.columns])
                      for p in parts], how="diagonal_relaxed")
    for v in values:
        if v not in long.columns:
            long = long.with_columns(pl.lit(None).alias(v))
    inner = target.inner  # type: ignore[union-attr]
    long = long.unique([row, "name"], keep="first", maintain_order=True).sort(row, "name")
    entry = pl.struct("name", *values).cast(inner)
    return long.group_by(row, maintain_order=True).agg(entry.alias(column))
