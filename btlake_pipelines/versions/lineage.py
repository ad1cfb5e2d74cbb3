"""Run lineage (CONTRACT section 7): what each run read, at which versions, and whether the
data has changed since.

Storage: ``<lake>/_run_inputs``, a Delta table of btlake's own, one row per input of a run
content (``run_id``, ``content_hash``, ``position``, the slice: ``table``, ``market``,
``symbols``, ``start``, ``end``; the resolved ``version``, how it was resolved, and a multiset
fingerprint of the slice's rows at that version). Ingest appends these rows before the run's
``runs`` row (:func:`write_inputs`), so a run is never visible without its inputs; readers keep
the rows whose ``(run_id, content_hash)`` is the run's current one, so a crashed batch or an
older content of a replaced run never shows. Appends only: concurrent ingesters never conflict.
A long table of plain typed columns (names dictionary-encoded), not a column of ``runs``:
200,000 runs x a few inputs is a few hundred thousand small rows that one scan reads, and the
``runs`` layout and its index are left alone.

Staleness: an input is stale when the rows of its slice in the latest version of its table
differ from the rows at its version, compared by the fingerprint stored at ingest (count and
sums of two 64-bit row hashes over the table's required columns, ``market`` and exact
nanoseconds). Only slices whose partitions (market, date) a data-changing commit
(``dataChange: true``; compaction is not one) touched after the input's version are
fingerprinted again; when those commit files are gone (log cleanup) every slice is. The latest
version is always readable and the stored fingerprint never goes away, so staleness stays known
after vacuum and log cleanup. A slice changed and later changed back reads as not stale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

import polars as pl
import pyarrow as pa

from btlake_pipelines.contract.inputs import InputSpec
from btlake_pipelines.contract.tables import FACT_TABLES, NANOS_SUFFIX
from btlake_pipelines.errors import (
    BtlakeError,
    BundleRefused,
    NotFoundError,
    QueryError,
    RetentionError,
)
from btlake_pipelines.storage import delta_log
from btlake_pipelines.storage.catalog import Catalog
from btlake_pipelines.storage.delta import table_uri

#: Where resolved inputs live, under the lake root.
RUN_INPUTS = "_run_inputs"
TS = pa.timestamp("us", "UTC")
SCHEMA = pa.schema([
    ("run_id", pa.string()), ("content_hash", pa.string()), ("position", pa.int32()),
    ("table", pa.string()), ("market", pa.string()), ("symbols", pa.list_(pa.string())),
    ("start", TS), ("end", TS), ("version", pa.int64()), ("resolved_by", pa.string()),
    ("tag", pa.string()), ("rows", pa.int64()), ("fingerprint", pa.string()),
    ("batch_id", pa.string()), ("ingested_at", TS),
])
_SLICE = ["table", "market", "symbols", "start", "end"]
#: ``Catalog.table_at`` cached for one call: each version read there is opened once.
TableAt = Callable[[str, int], Any]


@dataclass(frozen=True)
class Resolved:
    """One input of a run resolved to a version of its table (None: the table had no
    version at the run's ``created_at``), with the fingerprint of its rows there."""

    spec: InputSpec
    version: int | None
    resolved_by: str  # "version", "tag" or "created_at"
    rows: int
    fingerprint: str | None


# --- at ingest ---------------------------------------------------------------------------------


def resolve_batch(lake: str, bundles: list[Any]) -> tuple[list[Any], list[BundleRefused],
                                                          dict[str, list[Resolved]]]:
    """Resolve the inputs of every backtest bundle; a bundle whose input names a version or
    tag that does not exist (or can no longer be read) is refused. Returns the bundles kept,
    the refusals, and each kept bundle's resolved inputs by bundle name."""
    catalog = Catalog(lake)
    history: dict[str, list[tuple[int, datetime]]] = {}
    prints: dict[tuple, tuple[int, str]] = {}
    table_at = cache(catalog.table_at)
    kept, refused, resolved = [], [], {}
    for b in bundles:
        specs = b.manifest.inputs if b.manifest.is_backtest else ()
        if not specs:
            kept.append(b)
            continue
        try:
            resolved[b.name] = [_resolve(catalog, b.name, i, spec, b.manifest.created_at,
                                         history, prints, table_at)
                                for i, spec in enumerate(specs)]
            kept.append(b)
        except BundleRefused as refusal:
            refused.append(refusal)
    return kept, refused, resolved


def _resolve(catalog: Catalog, bundle: str, i: int, spec: InputSpec, created_at: datetime,
             history: dict, prints: dict, table_at: TableAt) -> Resolved:
    from btlake_pipelines.versions.tags import cached_tag

    def refuse(message: str) -> BundleRefused:
        return BundleRefused(bundle, "inputs", f"inputs[{i}]: {message}", table="manifest",
                             column="inputs")

    dt = catalog.table(spec.table)
    latest = None if dt is None else dt.version()
    if spec.tag is not None:
        try:
            tag = cached_tag(catalog, spec.tag)
        except NotFoundError:
            raise refuse(f"unknown tag '{spec.tag}'") from None
        version, how = tag.versions.get(spec.table), "tag"
        if version is None:
            raise refuse(f"tag '{spec.tag}' records no version of table '{spec.table}'")
    elif spec.version is not None:
        version, how = spec.version, "version"
        if latest is None or version > latest:
            raise refuse(f"table '{spec.table}' has no version {version} (latest is "
                         f"{'none' if latest is None else latest})")
    else:
        how = "created_at"
        version = None if latest is None else _version_at(catalog, spec.table, created_at,
                                                           latest, history)
    if version is None:
        return Resolved(spec, None, how, 0, None)
    key = (spec.table, spec.market, spec.symbols, spec.start, spec.end, version)
    if key not in prints:
        try:
            prints[key] = fingerprint(catalog, spec, table_at(spec.table, version))
        except RetentionError:
            raise refuse(f"version {version} of table '{spec.table}' is no longer readable "
                         "(vacuumed)") from None
        except BtlakeError as exc:  # e.g. a slice filter the table cannot take
            raise refuse(f"cannot read it at version {version}: {exc}") from None
    rows, digest = prints[key]
    return Resolved(spec, version, how, rows, digest)


def _version_at(catalog: Catalog, table: str, moment: datetime, latest: int,
                history: dict) -> int | None:
    """The latest version of ``table`` committed at or before ``moment``: from the commit
    files, or (after log cleanup) from the table's history, read once per batch."""
    key = (table, moment)
    if key not in history:
        found = delta_log.version_at(catalog.lake, table, moment, latest)
        if found is False:
            if table not in history:
                history[table] = [(c.version, c.timestamp) for c in
                                  delta_log.history(catalog.table(table)) if c.timestamp]
            before = [v for v, t in history[table] if t <= moment]
            found = max(before) if before else None
        history[key] = found
    return history[key]


def write_inputs(lake: str, bundles: list[Any], resolved: dict[str, list[Resolved]],
                 batch_id: str) -> int | None:
    """Append the resolved inputs of the batch's new or changed runs (one commit), before
    their ``runs`` rows are written; returns the version (None: nothing to write)."""
    from deltalake import CommitProperties, write_deltalake

    from btlake_pipelines.settings import storage_options

    now = datetime.now(UTC)
    rows = [{"run_id": b.run_id, "content_hash": b.content_hash, "position": i,
             "table": r.spec.table, "market": r.spec.market, "symbols": list(r.spec.symbols),
             "start": r.spec.start, "end": r.spec.end, "version": r.version,
             "resolved_by": r.resolved_by, "tag": r.spec.tag, "rows": r.rows,
             "fingerprint": r.fingerprint, "batch_id": batch_id, "ingested_at": now}
            for b in bundles for i, r in enumerate(resolved.get(b.name, []))]
    if not rows:
        return None
    uri = table_uri(lake, RUN_INPUTS)
    write_deltalake(uri, pa.Table.from_pylist(rows, schema=SCHEMA), mode="append",
                    storage_options=storage_options(uri),
                    commit_properties=CommitProperties(custom_metadata={
                        "btlake.batch": batch_id, "btlake.run_count": len(bundles)}))
    return None


def fingerprint(catalog: Catalog, spec: Any, dt) -> tuple[int, str]:
    """(rows, fingerprint) of the slice ``spec`` (table, market, symbols, start, end) at the
    version of its table ``dt`` is loaded at (by ``Catalog.table_at``); order-free, equal
    exactly when the multisets of rows are (up to 64-bit hash collisions)."""
    from btlake_pipelines.query.read import scan_slice

    lf = scan_slice(catalog, spec.table, market=spec.market,
                    symbol=list(spec.symbols) or None, start=spec.start, end=spec.end,
                    as_of=dt.version(), pinned=dt)
    return _digest(lf, spec.table)


def _digest(lf: pl.LazyFrame, table: str) -> tuple[int, str]:
    has = lf.collect_schema().names()
    cols = [c for c in (*FACT_TABLES[table].required_names, "market") if c in has]
    exprs = [pl.col(c) for c in cols]
    nanos = "ts" + NANOS_SUFFIX
    exprs.append(pl.col(nanos).fill_null(0).cast(pl.Int64) if nanos in has
                 else pl.lit(0, pl.Int64).alias(nanos))
    row = pl.struct(exprs)
    h1, h2 = row.hash(1), row.hash(2)
    low = 1 << 32
    out = lf.select(pl.len().cast(pl.UInt64).alias("n"), (h1 // low).sum().alias("a"),
                    (h1 % low).sum().alias("b"), (h2 // low).sum().alias("c"),
                    (h2 % low).sum().alias("d")).collect().row(0)
    n = int(out[0])
    return n, "-".join(str(int(v or 0)) for v in out)


# --- reading -----------------------------------------------------------------------------------


def live_inputs(catalog: Catalog, runs: pl.DataFrame | None = None) -> pl.DataFrame:
    """Every current input: rows of ``_run_inputs`` whose (run_id, content_hash) is the
    content ``runs`` shows (default: the latest ``runs``), one per (run, position)."""
    dt = catalog.table(RUN_INPUTS)
    runs = catalog.runs_frame() if runs is None else runs
    if dt is None or runs.is_empty():
        return pl.DataFrame(schema=delta_log.polars_schema(SCHEMA))
    key = ("lineage:live", dt.version(), catalog.runs_version(), runs.height)

    def load() -> pl.DataFrame:
        frame = pl.scan_delta(dt).collect()
        current = runs.select("run_id", "content_hash").unique()
        return (frame.join(current, on=["run_id", "content_hash"], how="semi")
                .sort("ingested_at").unique(["run_id", "position"], keep="last")
                .sort("run_id", "position"))

    return catalog.derived(key, load)


def run_inputs(catalog: Catalog, run_id: str) -> pl.DataFrame:
    """One run's current inputs, in manifest order; :class:`NotFoundError` for an unknown run."""
    runs = catalog.runs_frame()
    if runs.is_empty() or runs.filter(pl.col("run_id") == run_id).is_empty():
        raise NotFoundError(f"unknown run '{run_id}'")
    return live_inputs(catalog).filter(pl.col("run_id") == run_id)


def lineage(catalog: Catalog, run_id: str) -> dict[str, Any]:
    """``btlake lineage --format json``: the run's inputs, their versions and staleness."""
    inputs = run_inputs(catalog, run_id)
    stale = stale_flags(catalog, inputs)
    out = []
    for row, flag in zip(inputs.iter_rows(named=True), stale, strict=True):
        out.append({"table": row["table"], "market": row["market"],
                    "symbols": list(row["symbols"] or []),
                    "start": _iso(row["start"]), "end": _iso(row["end"]),
                    "version": row["version"], "stale": flag,
                    "resolved_by": row["resolved_by"], "tag": row["tag"], "rows": row["rows"]})
    return {"run_id": run_id, "inputs": out}


def input_tables(catalog: Catalog, run_id: str) -> dict[str, pa.Table]:
    """Each input's rows exactly as of its resolved version, keyed ``TABLE:MARKET`` (a second
    input of the same table and market is keyed ``TABLE:MARKET#2``, and so on)."""
    from btlake_pipelines.query.read import read_table

    out: dict[str, pa.Table] = {}
    table_at = cache(catalog.table_at)
    for row in run_inputs(catalog, run_id).iter_rows(named=True):
        key = base = f"{row['table']}:{row['market']}"
        n = 1
        while key in out:
            n += 1
            key = f"{base}#{n}"
        if row["version"] is None:
            out[key] = pa.table({})
            continue
        version = int(row["version"])
        out[key] = read_table(catalog, row["table"], market=row["market"],
                              symbol=list(row["symbols"] or []) or None, start=row["start"],
                              end=row["end"], as_of=version,
                              pinned=table_at(row["table"], version))
    return out


def pinned_versions(catalog: Catalog) -> dict[str, set[int]]:
    """Per table, the versions some existing run read: what maintenance keeps readable."""
    inputs = live_inputs(catalog)
    out: dict[str, set[int]] = {}
    for table, version in inputs.select("table", "version").drop_nulls().unique().iter_rows():
        out.setdefault(table, set()).add(int(version))
    return out


# --- staleness ---------------------------------------------------------------------------------


def stale_flags(catalog: Catalog, inputs: pl.DataFrame) -> list[bool]:
    """Whether each row of ``inputs`` (rows of ``_run_inputs``) is stale (module docstring).
    Decided once per distinct (slice, version), then joined back: 200,000 runs reading a few
    hundred distinct slices cost a few hundred decisions."""
    if inputs.is_empty():
        return []
    keys = ["table", "market", "_symbols", "start", "end", "version", "fingerprint"]
    keyed = inputs.with_columns(
        pl.col("symbols").list.join("\x1f").fill_null("").alias("_symbols"))
    distinct = keyed.filter(pl.col("version").is_not_null()).unique(keys, keep="first")
    decided: list[bool] = []
    current: dict[tuple, tuple[int, str]] = {}
    touched_of: dict[str, Any] = {}
    table_at = cache(catalog.table_at)
    for row in distinct.iter_rows(named=True):
        table = row["table"]
        dt = catalog.table(table)
        latest = None if dt is None else dt.version()
        version = int(row["version"])
        if latest is None or version >= latest:
            decided.append(False)
            continue
        if table not in touched_of:
            low = int(distinct.filter(pl.col("table") == table)
                      .get_column("version").min())  # type: ignore[arg-type]
            touched_of[table] = catalog.derived((f"lineage:touched:{table}", low, latest),
                                                _touched_of(catalog.lake, table, low, latest))
        touched = touched_of[table]
        if touched is not None and not _touches(touched, version, row):
            decided.append(False)
            continue
        slice_key = (table, row["market"], row["_symbols"], row["start"], row["end"])
        if slice_key not in current:
            current[slice_key] = fingerprint(catalog, _Slice(**{k: row[k] for k in _SLICE}),
                                             table_at(table, latest))
        decided.append(current[slice_key][1] != row["fingerprint"])
    flags = distinct.select(keys).with_columns(pl.Series("_stale", decided, pl.Boolean))
    joined = keyed.select(keys).join(flags, on=keys, how="left", nulls_equal=True,
                                     maintain_order="left")
    return joined.get_column("_stale").fill_null(False).to_list()


def stale_runs(catalog: Catalog) -> list[str]:
    """Run ids with at least one stale input."""
    inputs = live_inputs(catalog)
    if inputs.is_empty():
        return []
    flags = stale_flags(catalog, inputs)
    return sorted(inputs.filter(pl.Series(flags, dtype=pl.Boolean)).get_column("run_id")
                  .unique().to_list())


@dataclass(frozen=True)
class _Slice:
    table: str
    market: str
    symbols: tuple[str, ...] | list[str] | None
    start: datetime
    end: datetime


def _touched_of(lake: str, table: str, after: int, upto: int):
    return lambda: _touched(lake, table, after, upto)


def _touched(lake: str, table: str, after: int, upto: int
             ) -> dict[int, set[tuple[str | None, str | None]]] | None:
    """Per version in ``after + 1 .. upto``, the partitions its data-changing actions touched
    (None when a commit file is gone or names no partitions)."""
    out: dict[int, set] = {}
    for version in range(after + 1, upto + 1):
        found = delta_log.changed_partitions(lake, table, version - 1, version)
        if found is None:
            return None
        out[version] = found
    return out


def _touches(touched: dict[int, set], version: int, row: dict[str, Any]) -> bool:
    days = _days(row["start"], row["end"])
    for v, parts in touched.items():
        if v <= version:
            continue
        for market, day in parts:
            if market not in (None, row["market"]):
                continue
            if day is None or day in days:
                return True
    return False


def _days(start: datetime, end: datetime) -> set[str]:
    """The ``date`` partitions a ``ts`` range [start, end) can fall in."""
    first: date = start.astimezone(UTC).date()
    last: date = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    return {(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


# --- search ------------------------------------------------------------------------------------


def search_runs_at(catalog: Catalog, *, as_of=None, stale: bool = False, **options: Any):
    """A run search (``btlake runs``) over the runs as of ``as_of`` (version, time or
    ``tag:NAME``) and, with ``stale``, only runs with a stale input: the search is ordered
    as usual, then kept to the stale runs before ``limit`` / ``offset`` apply."""
    from btlake_pipelines.query.search import search_runs
    from btlake_pipelines.versions.time_travel import catalog_at

    source = catalog if as_of is None else catalog_at(catalog, as_of)
    if not stale:
        return search_runs(source, **options)
    limit, offset = options.pop("limit", None), options.pop("offset", 0) or 0
    if offset < 0 or (limit is not None and limit < 0):
        raise QueryError("limit and offset must be >= 0")
    frame, _ = search_runs(source, **options)
    if frame.is_empty():
        return frame, 0
    frame = frame.filter(pl.col("run_id").is_in(stale_runs(catalog)))
    end = None if limit is None else offset + limit
    return frame[offset:end], frame.height
