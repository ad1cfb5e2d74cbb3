"""Market data is stored once: a bundle's rows for one (table, market, symbol, date) replace the
stored rows of that slice whose ``ts`` lies between the bundle's first and last ``ts`` there.

A full-market day is 20,000 slices and an options chain 200,000, so nothing here works slice by
slice. Slices are rows of a frame (:func:`slice_bounds`); the stored rows they touch are read
once per batch and classified with joins (:func:`classify`); and what is written is planned per
Delta partition (:func:`plan_units`), so the predicate handed to deltalake never grows with the
number of slices:

- a partition where nothing stored is touched is a plain append (no predicate at all);
- a partition where stored rows change is rewritten for the symbols written there
  (``market = M AND date = D AND symbol IN (...)``, at most :data:`IN_LIMIT` names) or, past
  that, as a whole (``market = M AND date = D``); the stored rows that clause covers but no
  written slice replaces are written back unchanged (``kept``), so rows outside a bundle's
  ranges survive exactly as the contract says.

deltalake walks a predicate recursively: an OR of ~3,000 clauses, or an ``IN`` list of
~200,000 names, overflows a worker thread's stack and kills the process (TRAPS.md). Clauses are
therefore packed into commits of bounded size (:func:`pack`); a slice is always whole inside
one commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from btlake_pipelines.contract.tables import FACT_TABLES
from btlake_pipelines.storage import predicates as P

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Most symbols named in one partition's ``IN`` list; past it the partition is rewritten whole.
IN_LIMIT = 500
#: Most partition clauses and ``IN`` items in one commit's predicate (measured: 2,000 ORed
#: clauses and a 20,000-item list pass, 3,000-4,000 clauses and 200,000 items crash).
MAX_CLAUSES = 64
MAX_ITEMS = 2_000
#: Slices described one by one in a bundle's result (and ``ingest_log``); a bundle with more
#: is described per partition (symbol count, rows, first and last ts) so the log row stays small.
MAX_LISTED_SLICES = 1_000

SLICE = "__slice"
ROW = "__row"


def exact_ns() -> pl.Expr:
    """A row's exact time in nanoseconds: ``ts`` (microseconds) plus ``ts_nanos``."""
    return pl.col("ts").cast(pl.Int64) * 1000 + pl.col("ts_nanos").cast(pl.Int64)


def slice_keys(table: str) -> list[str]:
    """The columns that name one slice of ``table``: market, date and (but events) symbol."""
    return ["market", "date", *(["symbol"] if "symbol" in FACT_TABLES[table].slice_by else [])]


def partition_keys() -> list[str]:
    return ["market", "date"]


def slice_bounds(table: str, rows: pl.DataFrame, *, presorted: bool = False) -> pl.DataFrame:
    """One row per slice of ``rows``: its keys, first and last exact ``ts`` and row count, in
    the order the slices first appear. ``presorted``: ``rows`` are sorted by their slice keys,
    so each slice is one run of rows; numbering the runs compares neighbours instead of
    hashing every row's strings (about 4x cheaper on a million ticks)."""
    keys = slice_keys(table)
    bounds = [exact_ns().min().alias("first_ns"), exact_ns().max().alias("last_ns"),
              pl.len().alias("rows")]
    if not presorted:
        return rows.group_by(keys, maintain_order=True).agg(*bounds)
    return (rows.group_by(pl.struct(keys).rle_id().alias("__run"), maintain_order=True)
            .agg(*[pl.col(k).first() for k in keys], *bounds).drop("__run"))


@dataclass
class BundleRows:
    """One bundle's rows of one table (its market-data part) and the slices they form."""

    bundle: str
    rows: pl.DataFrame
    bounds: pl.DataFrame


def waves(table: str, items: list[BundleRows]) -> list[list[BundleRows]]:
    """Split a batch's bundles into waves so that no two slices of one wave overlap (same key,
    intersecting ranges); a later bundle's overlapping slice lands in a later wave, after the
    earlier one is stored, and so replaces it. Only keys that appear in more than one bundle
    are compared, so a batch of disjoint bundles costs one group-by."""
    if len(items) < 2:
        return [items] if items else []
    keys = slice_keys(table)
    tagged = pl.concat([it.bounds.select(*keys, "first_ns", "last_ns")
                        .with_columns(pl.lit(i, pl.Int64).alias("__bundle"))
                        for i, it in enumerate(items)], how="vertical_relaxed")
    shared = tagged.filter(pl.len().over(keys) > 1)
    if shared.is_empty():
        return [items]
    levels: dict[tuple, int] = {}  # (bundle index, *key) -> wave
    for _, group in shared.sort("__bundle", maintain_order=True).group_by(
            keys, maintain_order=True):
        placed: list[tuple[int, int, int]] = []  # (first, last, level)
        for row in group.iter_rows(named=True):
            level = 0
            for first, last, lvl in placed:
                if not (row["last_ns"] < first or last < row["first_ns"]):
                    level = max(level, lvl + 1)
            placed.append((row["first_ns"], row["last_ns"], level))
            if level:
                levels[(row["__bundle"], *(row[k] for k in keys))] = level
    if not levels:
        return [items]
    out: list[list[BundleRows]] = [[] for _ in range(max(levels.values()) + 1)]
    for i, it in enumerate(items):
        mine = {key[1:]: lvl for key, lvl in levels.items() if key[0] == i}
        if not mine:
            out[0].append(it)
            continue
        lv = pl.DataFrame([{**dict(zip(keys, k, strict=True)), "__wave": v}
                           for k, v in mine.items()],
                          schema={**{k: it.bounds.schema[k] for k in keys}, "__wave": pl.Int64})
        rows = it.rows.join(lv, on=keys, how="left", nulls_equal=True).with_columns(
            pl.col("__wave").fill_null(0))
        bounds = it.bounds.join(lv, on=keys, how="left", nulls_equal=True).with_columns(
            pl.col("__wave").fill_null(0))
        for w in range(len(out)):
            part = rows.filter(pl.col("__wave") == w).drop("__wave")
            if part.height:
                out[w].append(BundleRows(it.bundle, part,
                                         bounds.filter(pl.col("__wave") == w).drop("__wave")))
    return [w for w in out if w]


def stored_filter(table: str, bounds: pl.DataFrame) -> pl.Expr:
    """A filter for the stored rows a wave may touch: its partitions, narrowed to the written
    symbols where a partition names few of them (whole partitions are read otherwise, since
    they may be rewritten whole). Built from ``is_in`` lists, never one term per slice."""
    expr = (pl.col("market").is_in(bounds.get_column("market").unique().to_list())
            & pl.col("date").is_in(bounds.get_column("date").unique().to_list()))
    if table == "events":
        return expr & pl.col("run_id").is_null()
    if "symbol" not in bounds.columns:
        return expr
    per_part = bounds.group_by(partition_keys()).agg(pl.col("symbol").n_unique().alias("n"))
    if per_part.get_column("n").max() > IN_LIMIT:
        return expr  # a whole partition is read; rows of other partitions are dropped below
    return expr & pl.col("symbol").is_in(bounds.get_column("symbol").unique().to_list())


def restrict(table: str, stored: pl.DataFrame, bounds: pl.DataFrame) -> pl.DataFrame:
    """``stored`` rows of exactly the wave's partitions (the filter above is a cross product),
    and, in partitions read narrowly, of the written symbols only."""
    parts = bounds.select(partition_keys()).unique()
    stored = stored.join(parts, on=partition_keys(), how="semi", nulls_equal=True)
    if "symbol" not in bounds.columns or stored.is_empty():
        return stored
    wide = _wide_partitions(bounds)
    narrow_keys = bounds.select("market", "date", "symbol").unique().join(
        wide, on=partition_keys(), how="anti")
    in_wide = stored.join(wide, on=partition_keys(), how="semi")
    in_narrow = stored.join(narrow_keys, on=["market", "date", "symbol"], how="semi",
                            nulls_equal=True)
    return pl.concat([in_wide, in_narrow], how="vertical_relaxed")


def _wide_partitions(bounds: pl.DataFrame) -> pl.DataFrame:
    """Partitions naming more than :data:`IN_LIMIT` symbols: read and rewritten whole."""
    return (bounds.group_by(partition_keys()).agg(pl.col("symbol").n_unique().alias("n"))
            .filter(pl.col("n") > IN_LIMIT).select(partition_keys()))


@dataclass
class Classified:
    """What a wave does to the stored rows: per slice its status, and the stored rows in the
    range of each slice."""

    #: one row per slice: bundle, keys, first_ns, last_ns, rows, stored (rows in range), status
    slices: pl.DataFrame
    #: stored rows (with ``__row``, their position in ``stored``) inside some slice's range
    in_range: pl.DataFrame


def classify(table: str, items: list[BundleRows], stored: pl.DataFrame) -> Classified:
    """Each slice is ``ingested`` (nothing stored in its range), ``unchanged`` (the stored rows
    there equal the bundle's as multisets over the bundle's columns) or ``replaced``.

    Multisets are compared by two independent 64-bit row hashes per row, counted per slice on
    both sides: one join instead of one sort-and-compare per slice."""
    keys = slice_keys(table)
    all_bounds = pl.concat([it.bounds.with_columns(pl.lit(it.bundle).alias("bundle"))
                            for it in items], how="vertical_relaxed").with_row_index(SLICE)
    stored = stored.with_row_index(ROW)
    if stored.is_empty():
        in_range = stored.with_columns(pl.lit(None, pl.UInt32).alias(SLICE))
    else:
        in_range = (stored.join(all_bounds.select(SLICE, *keys, "first_ns", "last_ns"),
                                on=keys, how="inner", nulls_equal=True)
                    .filter(exact_ns().is_between(pl.col("first_ns"), pl.col("last_ns")))
                    .drop("first_ns", "last_ns"))
    counts = in_range.group_by(SLICE).agg(pl.len().alias("stored"))
    slices = all_bounds.join(counts, on=SLICE, how="left").with_columns(
        pl.col("stored").fill_null(0))
    differs: list[pl.Series] = []
    offset = 0
    for it in items:
        n = it.bounds.height
        mine = slices.slice(offset, n)
        offset += n
        touched = mine.filter(pl.col("stored") > 0)
        if touched.is_empty():
            continue
        differs.append(_differing(table, it, touched, in_range))
    bad = pl.concat(differs) if differs else pl.Series(SLICE, [], pl.UInt32)
    status = (pl.when(pl.col("stored") == 0).then(pl.lit("ingested"))
              .when(pl.col(SLICE).is_in(bad.implode())).then(pl.lit("replaced"))
              .otherwise(pl.lit("unchanged")))
    return Classified(slices.with_columns(status.alias("status")), in_range)


def _differing(table: str, it: BundleRows, touched: pl.DataFrame, in_range: pl.DataFrame
               ) -> pl.Series:
    """The ids of ``touched`` slices of one bundle whose stored rows differ from the bundle's."""
    keys = slice_keys(table)
    cols = [c for c in it.rows.columns if not c.startswith("__")]
    mine = in_range.join(touched.select(SLICE), on=SLICE, how="semi")
    if any(c not in mine.columns for c in cols):
        return touched.get_column(SLICE)
    try:
        right = mine.select(SLICE, *[pl.col(c).cast(it.rows.schema[c]) for c in cols])
    except Exception:  # a stored column the bundle's type cannot hold: not the same rows
        return touched.get_column(SLICE)
    left = it.rows.join(touched.select(SLICE, *keys), on=keys, how="inner", nulls_equal=True)
    sides = []
    for side, frame in (("a", left), ("b", right)):
        sides.append(frame.select(
            SLICE,
            pl.struct(cols).hash(1).alias("__h1"),
            pl.struct(cols).hash(2).alias("__h2"),
        ).group_by(SLICE, "__h1", "__h2").agg(pl.len().alias(side)))
    joined = sides[0].join(sides[1], on=[SLICE, "__h1", "__h2"], how="full", coalesce=True)
    mismatch = joined.filter(pl.col("a").fill_null(0) != pl.col("b").fill_null(0))
    return mismatch.get_column(SLICE).unique()


@dataclass
class Unit:
    """Rows written to one partition in one commit, and the clause of stored rows they
    replace (None: nothing stored is touched, a plain append)."""

    clause: str | None
    items: int  # names in the clause's IN list, for packing
    frames: list[pl.DataFrame]
    bundles: set[str]
    removed: int = 0  # stored rows the bundles' slices replace (history's rows_removed)
    added: int = 0  # rows the bundles bring (kept rows written back are not counted)


def plan_units(table: str, items: list[BundleRows], stored: pl.DataFrame, result: Classified
               ) -> list[Unit]:
    """The writes of one wave: one append :class:`Unit` for every partition where nothing
    stored is replaced, and one overwrite unit per partition where something is."""
    keys = slice_keys(table)
    written = result.slices.filter(pl.col("status") != "unchanged")
    if written.is_empty():
        return []
    replaced = written.filter(pl.col("status") == "replaced")
    touched = replaced.select(partition_keys()).unique()
    appends: list[pl.DataFrame] = []
    rewrites: list[pl.DataFrame] = []
    for it in items:
        mine = written.filter(pl.col("bundle") == it.bundle)
        if mine.is_empty():
            continue
        rows = it.rows if mine.height == it.bounds.height else it.rows.join(
            mine.select(keys), on=keys, how="semi", nulls_equal=True)
        if touched.is_empty():
            appends.append(rows)
            continue
        appends.append(rows.join(touched, on=partition_keys(), how="anti", nulls_equal=True))
        rewrites.append(rows.join(touched, on=partition_keys(), how="semi", nulls_equal=True))
    units: list[Unit] = []
    appended = [f for f in appends if f.height]
    if appended:
        quiet = written.join(touched, on=partition_keys(), how="anti", nulls_equal=True)
        units.append(Unit(None, 0, appended, set(quiet.get_column("bundle").to_list()),
                          added=sum(f.height for f in appended)))
    if touched.is_empty():
        return units
    gone = result.in_range.join(written.select(SLICE), on=SLICE, how="semi").get_column(ROW)
    stored = stored.with_row_index(ROW)
    wide = {tuple(r) for r in _wide_partitions(written).iter_rows()} if "symbol" in keys \
        else set()
    new_by_part = pl.concat(rewrites, how="diagonal_relaxed").partition_by(
        partition_keys(), as_dict=True, maintain_order=True)
    old_by_part = stored.partition_by(partition_keys(), as_dict=True, maintain_order=True)
    parts = written.join(touched, on=partition_keys(), how="semi", nulls_equal=True)
    for (market, day), part in parts.group_by(partition_keys(), maintain_order=True):
        new = new_by_part[(market, day)]
        base = [P.eq("market", market), P.eq("date", day)]
        old = old_by_part.get((market, day), stored.head(0))
        unit = Unit(None, 0, [new], set(part.get_column("bundle").to_list()),
                    removed=int(part.filter(pl.col("status") == "replaced")
                                .get_column("stored").sum()), added=new.height)
        if table == "events":
            base.append("run_id IS NULL")
        elif "symbol" in keys and (market, day) not in wide:
            names = part.get_column("symbol").unique().sort().to_list()
            base.append(P.is_in("symbol", names))
            unit.items = len(names)
            old = old.filter(pl.col("symbol").is_in(names))
        unit.clause = P.all_of(*base)
        kept = old.filter(~pl.col(ROW).is_in(gone.implode())).drop(ROW)
        if kept.height:
            unit.frames.append(kept)
        units.append(unit)
    return units


def pack(units: Iterable[Unit]) -> list[list[Unit]]:
    """Units grouped into commits: every append together, overwrites at most
    :data:`MAX_CLAUSES` clauses and :data:`MAX_ITEMS` listed names per commit."""
    appends = [u for u in units if u.clause is None]
    out: list[list[Unit]] = [appends] if appends else []
    current: list[Unit] = []
    items = 0
    for u in units:
        if u.clause is None:
            continue
        if current and (len(current) >= MAX_CLAUSES or items + u.items > MAX_ITEMS):
            out.append(current)
            current, items = [], 0
        current.append(u)
        items += u.items
    if current:
        out.append(current)
    return out


def describe(table: str, slices: pl.DataFrame) -> list[dict]:
    """A bundle's slices for its result and ``ingest_log``: one entry per slice, or, past
    :data:`MAX_LISTED_SLICES`, one per (partition, status) with the number of symbols."""
    keys = slice_keys(table)
    if slices.height > MAX_LISTED_SLICES and "symbol" in keys:
        slices = (slices.group_by(*partition_keys(), "status", maintain_order=True)
                  .agg(pl.col("symbol").n_unique().alias("symbols"),
                       pl.col("first_ns").min(), pl.col("last_ns").max(), pl.col("rows").sum()))
    out = []
    for row in slices.iter_rows(named=True):
        entry = {"table": table, "market": row["market"]}
        if "symbol" in keys:
            if "symbols" in row:
                entry["symbols"] = row["symbols"]
            else:
                entry["symbol"] = row["symbol"]
        else:
            entry["symbol"] = None
        entry.update({"date": row["date"].isoformat(), "first_ts": iso_ns(row["first_ns"]),
                      "last_ts": iso_ns(row["last_ns"]), "rows": row["rows"],
                      "status": row["status"]})
        out.append(entry)
    return out


def overlay(table: str, base: pl.DataFrame | None, new: pl.DataFrame) -> pl.DataFrame:
    """``base`` with ``new``'s slices applied: the rows of ``base`` inside the range of one of
    ``new``'s slices are dropped, then ``new`` is added. What replaying bundles in handling
    order onto an empty partition gives (re-derivation), in a few joins."""
    if base is None or base.is_empty():
        return new
    keys = slice_keys(table)
    bounds = slice_bounds(table, new)
    inside = (base.with_row_index(ROW)
              .join(bounds.select(*keys, "first_ns", "last_ns"), on=keys, how="inner",
                    nulls_equal=True)
              .filter(exact_ns().is_between(pl.col("first_ns"), pl.col("last_ns")))
              .get_column(ROW))
    kept = base.with_row_index(ROW).filter(~pl.col(ROW).is_in(inside.implode())).drop(ROW)
    return pl.concat([kept, new], how="diagonal_relaxed")


def _us_datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def iso_ns(ns: int) -> str:
    us, rem = divmod(ns, 1000)
    text = _us_datetime(us).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"{text}{rem:03d}Z"
