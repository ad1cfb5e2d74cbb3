"""A read as a stream of Arrow record batches, for answers larger than memory (downloads).

The scan is :func:`~btlake_pipelines.query.read.scan_read`, the lazy form of ``Lake.read``: the
same filters, runs caught mid-replace read at the version their ``runs`` row pins, so a
stream is as consistent as a read. polars collects it in batches; each batch gets its exact
nanosecond timestamps back (``join_nanos``) and the one schema of the stream. The first batch
is read before the reader is returned, so a bad filter or a failing scan raises in the
caller, not halfway through an answer that has already started.
"""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pyarrow as pa

from btlake_pipelines.bundles.timestamps import join_nanos
from btlake_pipelines.query.read import scan_read
from btlake_pipelines.storage.catalog import Catalog

BATCH_ROWS = 65_536
#: large_string / large_list: readable by any Arrow reader, whatever polars' own level
_COMPAT = pl.CompatLevel.oldest()


def _arrow(frame: pl.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    table = join_nanos(frame.to_arrow(compat_level=_COMPAT))
    return table if schema is None or table.schema == schema else table.cast(schema)


def stream_read(catalog: Catalog, table: str, *, limit: int | None = None,
                batch_rows: int = BATCH_ROWS, **filters) -> pa.RecordBatchReader:
    """The rows of ``table`` matching ``filters`` (those of ``Lake.read``), at most ``limit``,
    as batches of about ``batch_rows`` rows with timestamps exact to the nanosecond."""
    lazy = scan_read(catalog, table, **filters)
    if limit is not None:
        lazy = lazy.head(limit)
    schema = _arrow(pl.DataFrame(schema=lazy.collect_schema())).schema
    frames = iter(lazy.collect_batches(chunk_size=batch_rows, lazy=True))
    first = next(frames, None)
    head = [] if first is None else [_arrow(first, schema)]

    def batches() -> Iterator[pa.RecordBatch]:
        if head:
            yield from head.pop().to_batches()
        for frame in frames:
            yield from _arrow(frame, schema).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())
