"""Table downloads that stream: Parquet, Arrow IPC stream and CSV are encoded batch by batch.

:func:`open_slice` runs the same scan as ``Lake.read`` (``query.read.scan_slice``) with polars'
batched collection, restores exact nanosecond timestamps per batch (``join_nanos``) and pulls
the first batch before the response starts, so a failing read is still a proper JSON error.
After that, each batch is encoded and sent; the server holds about one batch at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa

from btlake_pipelines.bundles.timestamps import join_nanos
from btlake_pipelines.query.search import jsonable

BATCH_ROWS = 65_536
MEDIA_TYPES = {
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}
EXTENSIONS = {"parquet": "parquet", "arrow": "arrows", "csv": "csv", "json": "json"}
_COMPAT = pl.CompatLevel.oldest()  # large_string / large_list: readable by any Arrow reader


@dataclass
class Slice:
    schema: pa.Schema
    first: pa.Table | None
    rest: Iterator[pl.DataFrame]

    def batches(self) -> Iterator[pa.RecordBatch]:
        if self.first is not None:
            yield from self.first.to_batches()
        for frame in self.rest:
            table = _arrow(frame)
            if table.schema != self.schema:
                table = table.cast(self.schema)
            yield from table.to_batches()


def _arrow(frame: pl.DataFrame) -> pa.Table:
    return join_nanos(frame.to_arrow(compat_level=_COMPAT))


def open_slice(lazy: pl.LazyFrame) -> Slice:
    """Start a batched read of ``lazy``; errors of the first batch raise here."""
    schema = _arrow(pl.DataFrame(schema=lazy.collect_schema())).schema
    batches = iter(lazy.collect_batches(chunk_size=BATCH_ROWS, lazy=True))
    first_frame = next(batches, None)
    first = None
    if first_frame is not None:
        first = _arrow(first_frame)
        if first.schema != schema:
            first = first.cast(schema)
    return Slice(schema, first, batches)


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


def stream(slice_: Slice, fmt: str) -> Iterator[bytes]:
    """The encoded bytes of ``slice_`` in ``fmt`` (parquet, arrow or csv), chunk by chunk."""
    sink = _Chunks()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        writer: Any = pq.ParquetWriter(sink, slice_.schema, compression="zstd")
        for batch in slice_.batches():
            writer.write_batch(batch)
            yield sink.take()
        writer.close()
    elif fmt == "arrow":
        writer = pa.ipc.new_stream(sink, slice_.schema)
        for batch in slice_.batches():
            writer.write_batch(batch)
            yield sink.take()
        writer.close()
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        csv_schema = _csv_schema(slice_.schema)
        writer = pacsv.CSVWriter(sink, csv_schema)
        for batch in slice_.batches():
            writer.write_batch(_csv_batch(batch, csv_schema))
            yield sink.take()
        writer.close()
    else:  # pragma: no cover - the route only passes the three formats above
        raise ValueError(fmt)
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
            column = pa.array([None if v is None else json.dumps(jsonable(v), default=str)
                               for v in column.to_pylist()], pa.large_string())
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def json_rows(lazy: pl.LazyFrame, limit: int) -> tuple[list[str], list[dict[str, Any]], bool]:
    """At most ``limit`` rows as JSON-ready objects (timestamps as ISO-8601 text, exact to the
    nanosecond), and whether more rows matched."""
    table = join_nanos(lazy.head(limit + 1).collect().to_arrow(compat_level=_COMPAT))
    truncated = table.num_rows > limit
    frame = pl.from_arrow(table.slice(0, limit))
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
    return frame.columns, [jsonable(r) for r in frame.iter_rows(named=True)], truncated
