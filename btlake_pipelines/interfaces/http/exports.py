"""Encoding a table slice for a download: Parquet, Arrow IPC stream and CSV batch by batch from
``Lake.scan``'s record batches (the server holds about one batch), JSON as capped rows.

The encoders are pyarrow's writers over a sink that hands out what was written since the last
batch, so each batch becomes one chunk of the streamed answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pydantic_core

from btlake_pipelines.interfaces.http.models import TableRows

MEDIA_TYPES = {
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}
EXTENSIONS = {"parquet": "parquet", "arrow": "arrows", "csv": "csv", "json": "json"}


class _Chunks:
    """A write-only file object that hands out what was written since the last call."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def stream(reader: pa.RecordBatchReader, fmt: str) -> Iterator[bytes]:
    """The slice in ``fmt`` (parquet, arrow or csv), one chunk per batch."""
    sink = _Chunks()
    schema = reader.schema
    writer: Any
    if fmt == "parquet":
        writer = pq.ParquetWriter(sink, schema, compression="zstd")
    elif fmt == "arrow":
        writer = pa.ipc.new_stream(sink, schema)
    elif fmt == "csv":
        schema = _csv_schema(schema)
        writer = pacsv.CSVWriter(sink, schema)
    else:  # pragma: no cover - the route only passes the three formats above
        raise ValueError(fmt)
    for batch in reader:
        writer.write_batch(_csv_batch(batch, schema) if fmt == "csv" else batch)
        yield sink.take()
    writer.close()
    yield sink.take()


def _nested(t: pa.DataType) -> bool:
    return (pa.types.is_struct(t) or pa.types.is_list(t) or pa.types.is_large_list(t)
            or pa.types.is_map(t))


def _csv_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, pa.large_string()) if _nested(f.type) else f
                      for f in schema])


def _csv_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """CSV has no nested types: lists, structs and maps become JSON text."""
    if schema == batch.schema:
        return batch
    columns = []
    for i, f in enumerate(batch.schema):
        column = batch.column(i)
        if _nested(f.type):
            column = pa.array([None if v is None else _json_text(v)
                               for v in column.to_pylist()], pa.large_string())
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _json_text(value: Any) -> str:
    return pydantic_core.to_json(value, inf_nan_mode="null").decode()


def json_rows(table: str, reader: pa.RecordBatchReader, limit: int) -> TableRows:
    """At most ``limit`` rows of ``reader`` (which may hold one more, to tell whether more
    matched) as objects, timestamps as ISO-8601 text exact to the nanosecond."""
    data = reader.read_all()
    truncated = data.num_rows > limit
    # sliced only when needed: a slice of a table without columns claims its full length
    frame = pl.from_arrow(data.slice(0, limit) if truncated else data)
    assert isinstance(frame, pl.DataFrame)
    texts = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime):
            col = pl.col(name)
            if dtype.time_zone:
                col = col.dt.convert_time_zone("UTC")
            texts.append(col.dt.to_string("%Y-%m-%dT%H:%M:%S%.f" + (
                "Z" if dtype.time_zone else "")))
    if texts:
        frame = frame.with_columns(texts)
    rows = frame.to_dicts()
    return TableRows(table=table, columns=frame.columns, rows=rows, row_count=len(rows),
                     limit=limit, truncated=truncated)
