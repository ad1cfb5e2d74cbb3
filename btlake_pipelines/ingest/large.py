"""Market-data bundles larger than memory: read, validated and written in pieces.

A busy day of US equities is a 1.5 GB Parquet file; loaded whole, with the copies validation,
sorting and writing make, it needs ten times that. A market-data bundle whose Parquet tables
together exceed ``bundles.loader.threshold_bytes()`` therefore takes this path instead of the
in-memory one in ``ingest/batch.py`` (the loader decides, from the listing it reads anyway),
with the same contract:

1. **Check** (one pass over each file, one row group at a time): normalize, validate with the
   same pandera rules (row numbers counted from the start of the file), fit extra columns to
   the lake's types, and keep per slice only its bounds and a multiset fingerprint of its rows
   (row count and four sums of 32-bit halves of two independent 64-bit row hashes: equal rows
   give equal sums in any order, and the sums cannot overflow). A refusal here has written
   nothing: the bundle is all-or-nothing.
2. **Compare**: the stored rows in each slice's range get the same fingerprint, computed by
   polars' streaming engine over the Delta table; equal fingerprints are ``unchanged``.
3. **Write** (a second pass over the files): the rows stream into deltalake as a
   ``RecordBatchReader``, one commit per table where predicates stay within bounds (usually
   one): an append for partitions nothing stored is touched in, an overwrite with the bounded
   partition clauses of ``ingest/market_slices.py`` otherwise, whose kept stored rows stream
   back from the table.

Peak memory is one row group of the input plus what the writers buffer, whatever the bundle's
size. Rows are sorted within each piece; maintenance's Z-order sorts the rest.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa

from btlake_pipelines.bundles.loader import canonical_manifest
from btlake_pipelines.bundles.normalize import normalize_table
from btlake_pipelines.contract.manifest import Manifest, parse_manifest
from btlake_pipelines.contract.run_ids import RUN_ID_RULE, is_valid_run_id
from btlake_pipelines.contract.schemas import validate_many
from btlake_pipelines.contract.tables import FACT_TABLES, INGEST_LOG
from btlake_pipelines.errors import BundleRefused
from btlake_pipelines.ingest import destinations, faults
from btlake_pipelines.ingest import market_slices as M
from btlake_pipelines.ingest.ordering import sort_rows
from btlake_pipelines.ingest.schema_fit import SchemaMismatch, fit_frame
from btlake_pipelines.ingest.writing import (
    REPLANS,
    BatchResult,
    Raced,
    Writer,
    move_out,
    others_appended,
    quarantine_claimed,
    settle_market_status,
)
from btlake_pipelines.landing.zone import MANIFEST, LandingZone
from btlake_pipelines.metadata.ingest_log import BundleResult, log_rows
from btlake_pipelines.storage import delta, delta_log
from btlake_pipelines.storage import predicates as P
from btlake_pipelines.storage.scan import scan, scan_table

#: Rows normalized and validated at a time.
CHUNK_ROWS = 1_000_000
_FP = ("rows", "f1", "f2", "f3", "f4")


@dataclass
class _Table:
    """What the check pass learned about one table of the bundle."""

    name: str
    file_name: str
    schema: pa.Schema  # the normalized, fitted rows
    #: one row per slice: keys, first_ns, last_ns and the fingerprint columns
    slices: pl.DataFrame
    known: dict[str, pl.DataType] = field(default_factory=dict)


def ingest_large(lake: str, zone: LandingZone, name: str, progress=None, *,
                 listed: tuple[Manifest, dict] | None = None) -> BatchResult:
    """Ingest one large market-data bundle, or quarantine it. ``listed``: its manifest and
    files as the loader read and listed them, the caller holding its claim
    (``ingest.batch``: one listing per bundle, which matters on S3); otherwise it is claimed
    and listed here."""
    if listed is not None:
        return _ingest_claimed(lake, zone, name, progress, listed)
    with zone.claim([name]) as claimed:
        if not claimed or not zone.has_manifest(name):
            return BatchResult(batch_id="")
        return _ingest_claimed(lake, zone, name, progress, None)


def _ingest_claimed(lake: str, zone: LandingZone, name: str, progress,
                    listed: tuple[Manifest, dict] | None) -> BatchResult:
    now = datetime.now(UTC)
    batch = BatchResult(batch_id=f"{destinations.stamp(now)}-{uuid.uuid4().hex[:8]}")
    writer = Writer(lake, batch)
    try:
        result = _one_pass(lake, zone, name, listed, writer)
        if result is None:
            manifest, digest, tables = _check(lake, zone, name, listed)
    except BundleRefused as refusal:
        return quarantine_claimed(lake, zone, refusal, batch, now)
    if result is None:
        faults.point("loaded")
        result = BundleResult(name, "ingested", manifest.run_id, manifest.kind, digest,
                              rows={t.name: int(t.slices.get_column("rows").sum())
                                    for t in tables},
                              source_uri=zone.location(name))
        for t in tables:
            _write_table(lake, zone, name, manifest, t, writer, result)
            if progress:
                progress("write", tables.index(t) + 1, len(tables))
    settle_market_status(result)
    digest = result.content_hash
    result.destination_uri = destinations.archive_uri(lake, result.run_id, digest, now)
    writer.write(INGEST_LOG, log_rows([result], batch_id=batch.batch_id, handled_at=now),
                 None, [])
    faults.point("before_move")
    move_out(zone, result, batch.batch_id, now)
    faults.point("after_move")
    batch.results = [result]
    return batch


# --- 0. one pass -----------------------------------------------------------------------------


class _Overlap(Exception):
    """The bundle's rows turned out to touch stored rows: the one-pass append is abandoned."""


def _one_pass(lake: str, zone: LandingZone, name: str, listed: tuple[Manifest, dict] | None,
              writer: Writer) -> BundleResult | None:
    """A one-table bundle into partitions where nothing is stored (a first ingest, the next
    days of a feed), read once: each piece is normalized, validated, sorted and streamed into
    a plain append while its slice bounds are collected. A rule broken in any piece raises out
    of the stream, and deltalake then commits nothing, so the bundle is still all-or-nothing.
    None when this does not apply (then the check / compare / write passes below run):
    several tables (one commit each, so a later table's refusal would come after an earlier
    commit), no ``ts`` statistics in the Parquet footer to bound the dates with, stored rows in
    that range, or stored rows found in the bundle's partitions once its rows are known (the
    stream is then abandoned before the commit)."""
    from deltalake.exceptions import CommitFailedError

    if not is_valid_run_id(name):
        return None
    manifest, entries = listed if listed is not None else (
        parse_manifest(zone.read_bytes(name, MANIFEST), name), zone.entries(name))
    if len(manifest.tables) != 1:
        return None
    (table, file_name), = manifest.tables.items()
    entry = entries.get(file_name)
    if entry is None or entry.kind != "file":
        return None
    snapshot = delta.open_table(lake, table)
    with zone.open_file(name, file_name) as fh:
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(fh).metadata
        except (pa.ArrowException, OSError, ValueError):
            return None  # the ordinary path refuses it with its reason
        finally:
            fh.seek(0)
        if meta.num_rows == 0 or (snapshot is not None
                                  and _stored_in_file_range(lake, table, snapshot, meta)):
            return None
        digest = hashlib.sha256(canonical_manifest(manifest.raw))
        if _hash_file(fh, digest, table, file_name) != entry.size:
            return None
    rows_in_file = meta.num_rows
    faults.point("loaded")
    lf = scan(lake, table)
    known0: dict[str, pl.DataType] = dict(lf.collect_schema()) if lf is not None else {}
    order = ["market", "date", *FACT_TABLES[table].sort_by]
    seen: dict = {}

    def pieces() -> Iterator[pl.DataFrame]:
        seen.clear()
        known = seen.setdefault("known", dict(known0))
        bounds = seen.setdefault("bounds", [])
        with zone.open_file(name, file_name) as fh:
            for df in _pieces(name, manifest, table, file_name, fh, known, validate=True,
                              meta=meta):
                df = sort_rows(df, order)
                bounds.append(M.slice_bounds(table, df, presorted=True))
                seen.setdefault("schema", df.head(0).to_arrow().schema)
                yield df
        slices = _slices(table, bounds)
        if snapshot is not None and _stored_in_partitions(lake, table, snapshot, slices):
            raise _Overlap
        seen["slices"] = slices

    def reader() -> pa.RecordBatchReader:
        stream = _prefetched(pieces())
        first = next(stream)  # a refusal in the first piece raises here, before deltalake
        schema = first.head(0).to_arrow().schema

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from first.to_arrow().to_batches()
                for df in stream:
                    yield from df.to_arrow().to_batches()
            except BaseException as exc:  # deltalake reports it as its own error: keep it
                seen["error"] = exc
                raise
        return pa.RecordBatchReader.from_batches(schema, _conformed(schema, batches()))

    try:
        version = writer.write(table, reader, None, [name], added=rows_in_file)
    except (CommitFailedError, Raced):
        raise
    except Exception as exc:
        cause = seen.get("error", exc)
        if isinstance(cause, _Overlap):
            return None
        raise cause from None
    result = BundleResult(name, "ingested", manifest.run_id, manifest.kind, digest.hexdigest(),
                          rows={table: rows_in_file}, source_uri=zone.location(name))
    slices = seen["slices"]
    t = _Table(table, file_name, seen["schema"], slices, seen["known"])
    result.slices += M.describe(table, slices.with_columns(pl.lit("ingested").alias("status")))
    if version is not None:
        result.tables[table] = version
        parts = {(str(m), str(d)) for m, d in slices.select("market", "date").unique()
                 .iter_rows()}
        if snapshot is not None and others_appended(lake, table, snapshot.version(), version,
                                                    parts):
            # another writer appended to these partitions meanwhile: settle them as the
            # ordinary path does after a race, planned again from the table as it is now
            for attempt in range(REPLANS):
                try:
                    _write_once(lake, zone, name, manifest, t, writer, result,
                                delta.open_table(lake, table), describe=False)
                    break
                except (CommitFailedError, Raced):
                    if attempt == REPLANS - 1:
                        raise
    return result


def _stored_in_file_range(lake: str, table: str, snapshot, meta) -> bool:
    """Whether ``snapshot`` holds rows in the dates the ``ts`` statistics of the file's footer
    ``meta`` span (True when the footer does not say: the caller then takes the ordinary
    path)."""
    try:
        arrow_schema = meta.schema.to_arrow_schema()
        column = arrow_schema.get_field_index("ts")
        if column < 0 or meta.num_row_groups == 0:
            return True
        lows, highs = [], []
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(column).statistics
            if stats is None or not stats.has_min_max:
                return True
            lows.append(stats.min_raw)
            highs.append(stats.max_raw)
        kind = arrow_schema.field(column).type
        first, last = _utc_date(min(lows), kind), _utc_date(max(highs), kind)
    except (pa.ArrowException, OSError, ValueError, TypeError, AttributeError):
        return True
    if first is None or last is None:
        return True
    lf = scan_table(snapshot, lake, table)
    found = lf.filter(pl.col("date").is_between(first, last)).select(pl.len()).collect()
    return bool(found.item())


def _utc_date(raw, kind: pa.DataType):
    """The UTC calendar date of a raw ``ts`` statistic of Arrow type ``kind`` (a timestamp
    with or without zone: Parquet keeps zoned ones in UTC, and btlake reads naive ones as
    UTC); None for any other type."""
    from datetime import date, timedelta

    if not isinstance(raw, int):
        return None
    if pa.types.is_timestamp(kind):
        per_day = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000,
                   "ns": 86_400_000_000_000}[kind.unit]
        return date(1970, 1, 1) + timedelta(days=raw // per_day)
    if pa.types.is_date32(kind):
        return date(1970, 1, 1) + timedelta(days=raw)
    return None


def _stored_in_partitions(lake: str, table: str, snapshot, slices: pl.DataFrame) -> bool:
    """Whether ``snapshot`` holds any row in the (market, date) partitions of ``slices``."""
    parts = slices.select(M.partition_keys()).unique()
    lf = scan_table(snapshot, lake, table)
    found = (lf.filter(pl.col("market").is_in(parts.get_column("market").implode())
                       & pl.col("date").is_in(parts.get_column("date").implode()))
             .select("market", "date").join(parts.lazy(), on=M.partition_keys(), how="semi")
             .select(pl.len()).collect())
    return bool(found.item())


def _prefetched(items: Iterator, depth: int = 1) -> Iterator:
    """``items``, produced in a background thread up to ``depth`` ahead of the consumer: the
    next piece is read, validated and sorted (polars, numpy and Arrow let go of the GIL) while
    deltalake encodes and writes the last one; on two cores a 10M-tick bundle took 4.1-4.5 s
    without this and 3.9-4.1 s with it. An exception of the producer is raised to the
    consumer; a consumer that stops early (deltalake failed) stops the producer."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put((False, exc))
            return
        put((True, end))

    threading.Thread(target=produce, daemon=True, name="btlake-prefetch").start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is end:
                return
            yield item
    finally:
        stop.set()


def _conformed(schema: pa.Schema, batches: Iterator[pa.RecordBatch]
               ) -> Iterator[pa.RecordBatch]:
    """Each batch cast to ``schema`` (a later piece may type a column the first left null)."""
    for b in batches:
        if b.schema.equals(schema):
            yield b
            continue
        yield pa.RecordBatch.from_arrays(
            [b.column(f.name).cast(f.type) if f.name in b.schema.names
             else pa.nulls(b.num_rows, f.type) for f in schema], schema=schema)


def _slices(table: str, bounds: list[pl.DataFrame]) -> pl.DataFrame:
    """Per-piece slice bounds merged into one row per slice (a slice may span pieces)."""
    return (pl.concat(bounds).group_by(M.slice_keys(table), maintain_order=True)
            .agg(pl.col("first_ns").min(), pl.col("last_ns").max(),
                 pl.col("rows").sum().cast(pl.UInt64)))


# --- 1. check --------------------------------------------------------------------------------


def _check(lake: str, zone: LandingZone, name: str, listed: tuple[Manifest, dict] | None
           ) -> tuple[Manifest, str, list[_Table]]:
    if not is_valid_run_id(name):
        raise BundleRefused(name, "run_id", f"bundle folder name must be a run id: {RUN_ID_RULE}")
    if listed is None:
        manifest, entries = parse_manifest(zone.read_bytes(name, MANIFEST), name), \
            zone.entries(name)
    else:
        manifest, entries = listed
    digest = hashlib.sha256(canonical_manifest(manifest.raw))
    tables = []
    for table, file_name in sorted(manifest.tables.items()):
        entry = entries.get(file_name)
        if entry is None or entry.kind != "file":
            raise BundleRefused(name, "missing_file", f"file '{file_name}' named in the manifest "
                                "is not a regular file of the bundle", table=table)
        with zone.open_file(name, file_name) as fh:
            size = _hash_file(fh, digest, table, file_name)
            if size != entry.size:
                raise BundleRefused(name, "file_changing", f"'{file_name}' changed size while "
                                    "being read: it is still being written after its manifest "
                                    "appeared", table=table)
            fh.seek(0)
            tables.append(_check_table(lake, name, manifest, table, file_name, fh))
    return manifest, digest.hexdigest(), tables


def _hash_file(fh, digest, table: str, file_name: str) -> int:
    """Feed the file into the content hash exactly as the in-memory loader does."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(0)
    digest.update(f"\0{table}\0{file_name}\0{size}\0".encode())
    while piece := fh.read(8 << 20):
        digest.update(piece)
    return size


def _check_table(lake: str, name: str, manifest: Manifest, table: str, file_name: str, fh
                 ) -> _Table:
    lf = scan(lake, table)
    known: dict[str, pl.DataType] = dict(lf.collect_schema()) if lf is not None else {}
    partial: list[pl.DataFrame] = []
    schema: pa.Schema | None = None
    for df in _pieces(name, manifest, table, file_name, fh, known, validate=True):
        partial.append(M.slice_bounds(table, df))
        if schema is None:
            schema = df.head(0).to_arrow().schema
    if schema is None:  # no rows: nothing to store, the bundle is still handled
        empty = pl.DataFrame(schema={"market": pl.String, "date": pl.Date,
                                     **({"symbol": pl.String} if "symbol" in
                                        M.slice_keys(table) else {}),
                                     "first_ns": pl.Int64, "last_ns": pl.Int64,
                                     "rows": pl.UInt32})
        return _Table(table, file_name, pa.schema([]), empty, known)
    return _Table(table, file_name, schema, _slices(table, partial), known)


def _pieces(name: str, manifest: Manifest, table: str, file_name: str, fh,
            known: dict[str, pl.DataType], *, validate: bool, meta=None
            ) -> Iterator[pl.DataFrame]:
    """The file's rows in the lake's shape, :data:`CHUNK_ROWS` at a time; ``meta``: its
    footer, when the caller parsed it already."""
    try:
        reader = _open_parquet(fh, meta)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BundleRefused(name, "file_format", f"unreadable Parquet: {str(exc)[:200]}",
                            table=table) from None
    offset = 0
    try:
        for raw in _file_pieces(reader):
            df = normalize_table(raw, spec=FACT_TABLES[table], manifest=manifest, bundle=name,
                                 run_hash="", market_rows=True)
            if validate:
                refused = validate_many(table, [(name, df)]).get(name)
                if refused is not None:
                    refused.rows = [r + offset for r in refused.rows]
                    raise refused
            try:
                df = fit_frame(df, known)
            except SchemaMismatch as exc:
                raise BundleRefused(name, "column_type", f"column '{exc.column}' is {exc.got} "
                                    f"here but {exc.want} in the lake's '{table}' table",
                                    table=table, column=exc.column) from None
            for col, dtype in df.schema.items():
                if dtype != pl.Null:
                    known.setdefault(col, dtype)
            offset += raw.num_rows
            yield df
    except BundleRefused:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BundleRefused(name, "file_format", f"unreadable Parquet: {str(exc)[:200]}",
                            table=table) from None


def _open_parquet(fh, meta=None):
    """The bundle file (``meta``: its footer, if parsed already), its text columns read as
    dictionaries: a few thousand symbols repeated over millions of rows decode about 2.5x
    faster as indices into one dictionary than as one string per row (normalization turns
    them back into plain strings)."""
    import pyarrow.parquet as pq

    if meta is None:
        meta = pq.ParquetFile(fh).metadata
    text = [f.name for f in meta.schema.to_arrow_schema()
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    return pq.ParquetFile(fh, metadata=meta, read_dictionary=text or None)


def _file_pieces(reader) -> Iterator[pa.Table]:
    """The file's rows about :data:`CHUNK_ROWS` at a time, cut along its row groups: small row
    groups are read together, one up to twice the size is read alone, and only a larger one is
    cut into batches (a batch that spans two row groups costs a copy of both)."""
    meta = reader.metadata
    group: list[int] = []
    rows = 0
    for i in range(meta.num_row_groups):
        n = meta.row_group(i).num_rows
        if group and rows + n > CHUNK_ROWS:
            yield reader.read_row_groups(group)
            group, rows = [], 0
        if n > 2 * CHUNK_ROWS:
            for batch in reader.iter_batches(batch_size=CHUNK_ROWS, row_groups=[i]):
                yield pa.Table.from_batches([batch])
            continue
        group.append(i)
        rows += n
    if group:
        yield reader.read_row_groups(group)


def _fingerprint(cols: list[str], casts: dict[str, pl.DataType] | None = None) -> list[pl.Expr]:
    """A multiset fingerprint of rows over ``cols``: count and four sums of 32-bit halves of
    two seeded 64-bit hashes (order-free, and no sum can overflow below 2**32 rows)."""
    row = pl.struct([pl.col(c).cast(casts[c]) if casts else pl.col(c) for c in cols])
    h1, h2 = row.hash(1), row.hash(2)
    low = 1 << 32
    return [pl.len().cast(pl.UInt64).alias("rows"),
            (h1 // low).sum().alias("f1"), (h1 % low).sum().alias("f2"),
            (h2 // low).sum().alias("f3"), (h2 % low).sum().alias("f4")]


# --- 2. compare ------------------------------------------------------------------------------


def _classify(lake: str, t: _Table, snapshot,
              bundle_fingerprints: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
    """``t.slices`` with ``stored`` (rows in range) and ``status``, as of ``snapshot``.

    Stored rows are counted first; fingerprints are computed, on both sides, only for the
    slices that have stored rows (a first ingest hashes nothing)."""
    keys = M.slice_keys(t.name)
    lf = None if snapshot is None else scan_table(snapshot, lake, t.name)
    slices = t.slices.with_row_index(M.SLICE)
    if lf is None or slices.is_empty():
        return slices.with_columns(pl.lit(0, pl.UInt64).alias("stored"),
                                   pl.lit("ingested").alias("status"))
    inside = (lf.filter(M.stored_filter(t.name, t.slices))
              .join(slices.lazy().select(M.SLICE, *keys, "first_ns", "last_ns"), on=keys,
                    how="inner", nulls_equal=True)
              .filter(M.exact_ns().is_between(pl.col("first_ns"), pl.col("last_ns"))))
    counts = inside.group_by(M.SLICE).agg(pl.len().cast(pl.UInt64).alias("stored")) \
        .collect(engine="streaming")
    slices = slices.join(counts, on=M.SLICE, how="left").with_columns(
        pl.col("stored").fill_null(0))
    touched = slices.filter(pl.col("stored") > 0)
    same = pl.Series(M.SLICE, [], pl.UInt32)
    cols = [f.name for f in t.schema]
    if not touched.is_empty() and all(c in lf.collect_schema() for c in cols):
        casts = dict(delta_log.polars_schema(t.schema))
        try:
            theirs = (inside.join(touched.lazy().select(M.SLICE), on=M.SLICE, how="semi")
                      .group_by(M.SLICE).agg(_fingerprint(cols, casts))
                      .collect(engine="streaming"))
        except pl.exceptions.InvalidOperationError:  # a stored type the bundle's can't hold
            theirs = None
        if theirs is not None:
            mine = bundle_fingerprints(touched.select(M.SLICE, *keys))
            both = mine.join(theirs.drop("rows"), on=M.SLICE, suffix="_stored").join(
                touched.select(M.SLICE, "rows", "stored"), on=M.SLICE)
            equal = pl.col("rows") == pl.col("stored")
            for f in _FP[1:]:
                equal = equal & (pl.col(f) == pl.col(f"{f}_stored"))
            same = both.filter(equal).get_column(M.SLICE)
    status = (pl.when(pl.col("stored") == 0).then(pl.lit("ingested"))
              .when(pl.col(M.SLICE).is_in(same.implode())).then(pl.lit("unchanged"))
              .otherwise(pl.lit("replaced")))
    return slices.with_columns(status.alias("status"))


# --- 3. write --------------------------------------------------------------------------------


def _write_table(lake: str, zone: LandingZone, name: str, manifest: Manifest, t: _Table,
                 writer: Writer, result: BundleResult) -> None:
    """Write one table, planned again if a concurrent writer changed what it read (see
    ``batch._write_wave``, whose rules this follows)."""
    from deltalake.exceptions import CommitFailedError

    for attempt in range(REPLANS):
        snapshot = delta.open_table(lake, t.name)
        try:
            _write_once(lake, zone, name, manifest, t, writer, result, snapshot,
                        describe=attempt == 0)
            return
        except (CommitFailedError, Raced):
            if attempt == REPLANS - 1:
                raise


def _write_once(lake: str, zone: LandingZone, name: str, manifest: Manifest, t: _Table,
                writer: Writer, result: BundleResult, snapshot, *, describe: bool) -> None:
    keys = M.slice_keys(t.name)

    def bundle_fingerprints(touched: pl.DataFrame) -> pl.DataFrame:
        """The bundle's fingerprint of each of ``touched``'s slices: one more pass over the
        file, made only when stored rows exist in some slice's range."""
        partial = []
        with zone.open_file(name, t.file_name) as fh:
            for df in _pieces(name, manifest, t.name, t.file_name, fh, dict(t.known),
                              validate=False):
                cols = list(df.columns)
                part = df.join(touched, on=keys, how="inner", nulls_equal=True)
                partial.append(part.group_by(M.SLICE).agg(_fingerprint(cols)))
        return pl.concat(partial).group_by(M.SLICE).agg(pl.col(f).sum() for f in _FP[1:])

    slices = _classify(lake, t, snapshot, bundle_fingerprints).with_columns(
        pl.lit(name).alias("bundle"))
    if describe:
        result.slices += M.describe(t.name, slices)
    written = slices.filter(pl.col("status") != "unchanged")
    if written.is_empty():
        return
    touched = written.filter(pl.col("status") == "replaced").select(M.partition_keys()).unique()
    quiet = written.join(touched, on=M.partition_keys(), how="anti", nulls_equal=True)

    def bundle_rows(wanted: pl.DataFrame) -> Callable[[], Iterator[pa.RecordBatch]]:
        whole = wanted.height == t.slices.height

        def batches() -> Iterator[pa.RecordBatch]:
            with zone.open_file(name, t.file_name) as fh:
                for df in _pieces(name, manifest, t.name, t.file_name, fh, dict(t.known),
                                  validate=False):
                    if not whole:
                        df = df.join(wanted.select(keys), on=keys, how="semi",
                                     nulls_equal=True)
                    df = sort_rows(df, ["market", "date", *FACT_TABLES[t.name].sort_by])
                    yield from df.to_arrow().to_batches()
        return batches

    if not touched.is_empty():
        for group in _overwrite_groups(t.name, written.join(touched, on=M.partition_keys(),
                                                             how="semi", nulls_equal=True)):
            clauses = [c for c, _ in group]
            parts = pl.concat([p for _, p in group])
            kept = _kept_rows(lake, t.name, parts, snapshot)
            schema = _union(t.schema, kept[0]) if kept[0] is not None else t.schema
            version = writer.write(
                t.name, _stream(schema, [bundle_rows(parts), kept[1]]),
                P.balanced_or(clauses), [name],
                removed=int(parts.filter(pl.col("status") == "replaced")
                            .get_column("stored").sum()),
                added=int(parts.get_column("rows").sum()), snapshot=snapshot)
            if version is not None:
                result.tables[t.name] = version
    if not quiet.is_empty():
        version = writer.write(t.name, _stream(t.schema, [bundle_rows(quiet)]), None, [name],
                               added=int(quiet.get_column("rows").sum()))
        if version is not None:
            result.tables[t.name] = version
            parts = {(str(m), str(d)) for m, d in quiet.select("market", "date").unique()
                     .iter_rows()}
            if snapshot is not None and others_appended(lake, t.name, snapshot.version(),
                                                        version, parts):
                raise Raced


def _overwrite_groups(table: str, parts: pl.DataFrame) -> list[list[tuple[str, pl.DataFrame]]]:
    """Bounded clauses (one per partition) for the partitions where stored rows change,
    grouped like ``market_slices.pack``."""
    units = []
    for (market, day), part in parts.group_by(M.partition_keys(), maintain_order=True):
        base = [P.eq("market", market), P.eq("date", day)]
        items = 0
        if table == "events":
            base.append("run_id IS NULL")
        elif "symbol" in part.columns and part.height <= M.IN_LIMIT:
            names = part.get_column("symbol").unique().sort().to_list()
            base.append(P.is_in("symbol", names))
            items = len(names)
        units.append(M.Unit(P.all_of(*base), items, [part], set()))
    return [[(u.clause, u.frames[0]) for u in group] for group in M.pack(units)]


def _kept_rows(lake: str, table: str, parts: pl.DataFrame, snapshot
               ) -> tuple[pa.Schema | None, Callable[[], Iterator[pa.RecordBatch]]]:
    """The stored rows the clauses cover that no written slice replaces, streamed from the
    table at ``snapshot``: written back unchanged in the same commit."""
    keys = M.slice_keys(table)
    lf = None if snapshot is None else scan_table(snapshot, lake, table)
    if lf is None:
        return None, lambda: iter(())
    per_part = []
    for (market, day), part in parts.group_by(M.partition_keys(), maintain_order=True):
        expr = (pl.col("market") == market) & (pl.col("date") == day)
        if table == "events":
            expr &= pl.col("run_id").is_null()
        elif "symbol" in part.columns and part.height <= M.IN_LIMIT:
            expr &= pl.col("symbol").is_in(part.get_column("symbol").unique().to_list())
        per_part.append(expr)
    cover = per_part[0]
    for e in per_part[1:]:
        cover = cover | e
    ranges = parts.lazy().select(*keys, pl.col("first_ns").alias("__lo"),
                                 pl.col("last_ns").alias("__hi"))
    kept = (lf.filter(cover).join(ranges, on=keys, how="left", nulls_equal=True)
            .filter(pl.col("__lo").is_null()
                    | ~M.exact_ns().is_between(pl.col("__lo"), pl.col("__hi")))
            .drop("__lo", "__hi"))
    schema = pl.DataFrame(schema=kept.collect_schema()).to_arrow().schema

    def batches() -> Iterator[pa.RecordBatch]:
        for df in kept.collect_batches(chunk_size=CHUNK_ROWS, engine="streaming"):
            yield from df.to_arrow().to_batches()
    return schema, batches


def _union(a: pa.Schema, b: pa.Schema) -> pa.Schema:
    return pa.unify_schemas([a, b], promote_options="permissive")


def _stream(schema: pa.Schema, sources: list[Callable[[], Iterator[pa.RecordBatch]]]
            ) -> Callable[[], pa.RecordBatchReader]:
    """A factory of readers over ``sources``' batches, each cast to ``schema`` (missing
    columns null): called once per commit attempt."""
    def conform(batch: pa.RecordBatch) -> pa.RecordBatch:
        cols = [batch.column(f.name).cast(f.type) if f.name in batch.schema.names
                else pa.nulls(batch.num_rows, f.type) for f in schema]
        return pa.RecordBatch.from_arrays(cols, schema=schema)

    def reader() -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(
            schema, (conform(b) for source in sources for b in source()))
    return reader
