"""The ``runs`` table in memory, built to be searched by any of thousands of param names and
kept current by applying only the data files a commit added or removed.

Params and metrics are held as long tables grouped by name (:class:`Grouped`): for each value
kind (number, string and bool params, and metrics), one array of run rows and one of values,
with the rows of each name next to each other and an offset per name. A predicate on
``params.X`` looks up X's offsets and touches only X's entries; memory is one entry per
(run, name) a run actually has, so 20,000 distinct names over a million runs cost what 30 do.
The other columns stay one frame per :class:`Segment`.

A segment is the rows of some data files. Loading the table makes one; every later refresh
appends one for the files the new commits added and marks the rows of removed files dead (a
per-file row range is kept for that), so the first search after one more run costs about what
that run costs. Small segments are merged as they accumulate (each row is copied O(log n)
times) and a segment that is mostly dead is compacted, so searches see a handful of segments.

Everything here is immutable once built: a refresh makes new :class:`RunsIndex` and
:class:`Segment` objects sharing the unchanged arrays, so a search running in another thread
keeps a consistent view.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from btlake_pipelines.metadata.runs_migration import legacy_entries
from btlake_pipelines.metadata.runs_table import LEGACY_COLUMNS
from btlake_pipelines.storage.delta_log import FILE_COLUMN

#: Value kinds of params, in the order an error message names them, and their fields in
#: ``param_values`` and legacy struct columns.
PARAM_KINDS = ("number", "string", "bool")
_PARAM_FIELD = {"number": "num", "string": "str", "bool": "bool"}
_LEGACY_PARAM = {"number": "params_num", "string": "params_str", "bool": "params_bool"}
_DTYPE = {"number": pl.Float64, "string": pl.String, "bool": pl.Boolean, "metric": pl.Float64}
#: Columns of the stored layout that become long tables instead of frame columns.
LAYOUT_COLUMNS = ("param_values", "metric_values", *LEGACY_COLUMNS)

#: Virtual columns a search binds from the long tables (no stored column starts with NUL).
_VIRTUAL = "\x00"
_ROW = "\x00row"

#: A segment at most this many times larger than the next one is merged with it.
_MERGE_RATIO = 2
#: A segment with more dead rows than this share of its rows, or more dead runs of rows than
#: _MAX_DEAD_RANGES, is compacted.
_MAX_DEAD_SHARE = 0.5
_MAX_DEAD_RANGES = 64


class Grouped:
    """Values of one kind grouped by name: ``rows[starts[i]:starts[i + 1]]`` are the
    (segment-local) rows having name ``names[i]``, ascending, and ``values`` the same slice."""

    __slots__ = ("_by_row", "index", "names", "rows", "starts", "values")

    def __init__(self, names: list[str], starts: np.ndarray, rows: np.ndarray,
                 values: pl.Series) -> None:
        self.names = names
        self.index = {n: i for i, n in enumerate(names)}
        self.starts = starts
        self.rows = rows
        self.values = values
        self._by_row: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def build(cls, rows: np.ndarray, names: pl.Series, values: pl.Series) -> Grouped:
        """From long form: ``rows[i]`` has name ``names[i]`` with value ``values[i]``."""
        rows = np.asarray(rows, dtype=np.uint32)
        if rows.size == 0:
            return cls([], np.zeros(1, np.int64), rows, values.clear())
        if rows.size > 1 and not bool(np.all(rows[:-1] <= rows[1:])):
            first = np.argsort(rows, kind="stable")
            rows, names, values = rows[first], names.gather(first), values.gather(first)
        # codes in name order (an Enum over the sorted distinct names), then a stable sort by
        # code: rows stay ascending inside each name; integer sorting, not string sorting
        distinct = names.unique().sort()
        codes = names.cast(pl.Enum(distinct)).to_physical().to_numpy()
        order = np.argsort(codes, kind="stable")
        codes, rows = codes[order], rows[order]
        repeated = np.flatnonzero((codes[1:] == codes[:-1]) & (rows[1:] == rows[:-1])) + 1
        if repeated.size:  # a name twice in one run's list: its first value counts
            keep = np.ones(order.size, bool)
            keep[repeated] = False
            order, codes, rows = order[keep], codes[keep], rows[keep]
        counts = np.bincount(codes, minlength=distinct.len())
        starts = np.zeros(distinct.len() + 1, np.int64)
        np.cumsum(counts, out=starts[1:])
        return cls(distinct.to_list(), starts, rows, values.gather(order))

    def __len__(self) -> int:
        return int(self.rows.size)

    def span(self, name: str) -> tuple[int, int] | None:
        i = self.index.get(name)
        return None if i is None else (int(self.starts[i]), int(self.starts[i + 1]))

    def dense(self, name: str, height: int, dtype: pl.DataType) -> pl.Series:
        """The value of ``name`` for every row ``0 .. height - 1`` (null where absent)."""
        span = self.span(name)
        if span is None:
            return pl.repeat(None, height, dtype=dtype, eager=True)
        a, b = span
        values = self.values.slice(a, b - a)
        if b - a == height:  # every row has it (rows ascending and distinct: 0 .. height-1)
            return values
        out = pl.repeat(None, height, dtype=dtype, eager=True)
        return out.scatter(self.rows[a:b], values)

    def long(self) -> tuple[np.ndarray, pl.Series, pl.Series]:
        """(rows, names, values) of every entry, the inverse of :meth:`build`."""
        counts = np.diff(self.starts)
        codes = np.repeat(np.arange(len(self.names), dtype=np.uint32), counts)
        names = pl.Series(self.names, dtype=pl.String).gather(codes)
        return self.rows, names, self.values

    def entries(self, rows: np.ndarray) -> tuple[np.ndarray, pl.Series, pl.Series]:
        """Every entry of the given rows as (position in ``rows``, name, value), row by row."""
        if self._by_row is None:
            by_row = np.argsort(self.rows, kind="stable").astype(np.uint32)
            self._by_row = (by_row, self.rows[by_row])
        by_row, sorted_rows = self._by_row
        lo = np.searchsorted(sorted_rows, rows, "left")
        hi = np.searchsorted(sorted_rows, rows, "right")
        counts = hi - lo
        owner = np.repeat(np.arange(rows.size, dtype=np.uint32), counts)
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        positions = by_row[np.repeat(lo, counts) + within]
        codes = np.searchsorted(self.starts, positions, "right") - 1
        names = pl.Series(self.names, dtype=pl.String).gather(codes)
        return owner, names, self.values.gather(positions)


@dataclass(frozen=True)
class Segment:
    """Rows of some data files: the frame of plain columns, the long tables of params (by
    kind) and metrics, which file each row range came from, and which rows are still live."""

    frame: pl.DataFrame
    params: dict[str, Grouped]
    metrics: Grouped
    files: dict[str, tuple[int, int]]
    alive: np.ndarray
    dead: int = 0

    @property
    def height(self) -> int:
        return self.frame.height

    @property
    def live(self) -> int:
        return self.height - self.dead

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, files_read: Iterable[str] = ()) -> Segment:
        """A segment from rows as read (:func:`delta_log.read_files`) of ``files_read``: the
        params and metrics of either layout become long tables, each file's rows a range
        (an empty one for a file without rows)."""
        files: dict[str, tuple[int, int]] = {path: (0, 0) for path in files_read}
        if FILE_COLUMN in frame.columns:
            runs = frame.get_column(FILE_COLUMN).rle()
            start = 0
            for length, path in zip(runs.struct.field("len").to_list(),
                                    runs.struct.field("value").to_list(), strict=True):
                files[path] = (start, start + length)
                start += length
        params = {kind: _params_of(frame, kind) for kind in PARAM_KINDS}
        metrics = _metrics_of(frame)
        plain = frame.drop([c for c in (*LAYOUT_COLUMNS, FILE_COLUMN) if c in frame.columns])
        return cls(plain.rechunk(), params, metrics, files, np.ones(frame.height, bool))

    def without(self, paths: Iterable[str]) -> Segment:
        """This segment with the rows of ``paths`` dead (a new object; this one unchanged)."""
        gone = [p for p in paths if p in self.files]
        if not gone:
            return self
        alive = self.alive.copy()
        files = dict(self.files)
        for path in gone:
            a, b = files.pop(path)
            alive[a:b] = False
        dead = self.height - int(alive.sum())
        return Segment(self.frame, self.params, self.metrics, files, alive, dead)

    def has(self, values: Grouped, name: str) -> bool:
        """Whether a live row of this segment has ``name`` in ``values``."""
        span = values.span(name)
        if span is None:
            return False
        return not self.dead or bool(self.alive[values.rows[span[0]:span[1]]].any())

    def dead_ranges(self) -> int:
        if not self.dead:
            return 0
        edges = np.diff(self.alive.astype(np.int8))
        return int((edges == -1).sum()) + int(not self.alive[0])

    def live_frame(self) -> pl.DataFrame:
        """The live rows, as zero-copy slices around the dead ones."""
        if not self.dead:
            return self.frame
        edges = np.flatnonzero(np.diff(np.concatenate(([0], self.alive.view(np.int8), [0]))))
        parts = [self.frame.slice(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2],
                                                                        strict=True)]
        if not parts:
            return self.frame.clear()
        return pl.concat(parts, rechunk=False) if len(parts) > 1 else parts[0]


def merge(parts: list[Segment]) -> Segment:
    """One segment of the live rows of ``parts``, in order (dead rows dropped)."""
    frames, maps, files = [], [], {}
    offset = 0
    for seg in parts:
        row_map = np.full(seg.height, -1, np.int64)
        row_map[seg.alive] = np.arange(seg.live) + offset
        maps.append(row_map)
        frames.append(seg.frame.filter(pl.Series(seg.alive)) if seg.dead else seg.frame)
        for path, (a, b) in seg.files.items():
            files[path] = (int(row_map[a]), int(row_map[b - 1]) + 1) if b > a else (offset,
                                                                                    offset)
        offset += seg.live
    frame = _concat(frames).rechunk()

    def combine(groups: list[Grouped], dtype: pl.DataType) -> Grouped:
        rows, names, values = [], [], []
        for g, row_map in zip(groups, maps, strict=True):
            r, n, v = g.long()
            mapped = row_map[r]
            keep = mapped >= 0
            rows.append(mapped[keep])
            names.append(n.filter(pl.Series(keep)))
            values.append(v.filter(pl.Series(keep)))
        return Grouped.build(np.concatenate(rows) if rows else np.zeros(0, np.uint32),
                             pl.concat(names) if names else pl.Series([], dtype=pl.String),
                             pl.concat(values) if values else pl.Series([], dtype=dtype))

    params = {k: combine([s.params[k] for s in parts], _DTYPE[k]) for k in PARAM_KINDS}
    metrics = combine([s.metrics for s in parts], _DTYPE["metric"])
    return Segment(frame, params, metrics, files, np.ones(frame.height, bool))


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    if len(frames) == 1:
        return frames[0]
    first = frames[0].schema
    if all(f.schema == first for f in frames[1:]):
        return pl.concat(frames, how="vertical", rechunk=False)
    return pl.concat(frames, how="diagonal_relaxed", rechunk=False)


def _params_of(frame: pl.DataFrame, kind: str) -> Grouped:
    parts = []
    if "param_values" in frame.columns:
        entries = _exploded(frame, "param_values")
        if entries is not None:
            field_name = _PARAM_FIELD[kind]
            parts.append(entries.filter(pl.col(field_name).is_not_null()).select(
                _ROW, "name", pl.col(field_name).alias("value")))
    legacy = _LEGACY_PARAM[kind]
    if legacy in frame.columns:  # a table not migrated yet: converted here, in memory
        parts.append(legacy_entries(frame, legacy, _ROW))
    return _grouped(parts, _DTYPE[kind])


def _metrics_of(frame: pl.DataFrame) -> Grouped:
    parts = []
    if "metric_values" in frame.columns:
        entries = _exploded(frame, "metric_values")
        if entries is not None:
            parts.append(entries.filter(pl.col("value").is_not_null()).select(
                _ROW, "name", "value"))
    if "metrics" in frame.columns:
        parts.append(legacy_entries(frame, "metrics", _ROW))
    return _grouped(parts, _DTYPE["metric"])


def _exploded(frame: pl.DataFrame, column: str) -> pl.DataFrame | None:
    if not isinstance(frame.schema[column], pl.List):
        return None
    return (frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias(_ROW), column)
            .explode(column).drop_nulls(column).unnest(column)
            .filter(pl.col("name").is_not_null()))


def _grouped(parts: list[pl.DataFrame], dtype: pl.DataType) -> Grouped:
    parts = [p.select(_ROW, "name", pl.col("value").cast(dtype)) for p in parts
             if "value" in p.columns and p.height]
    if not parts:
        return Grouped.build(np.zeros(0, np.uint32), pl.Series([], dtype=pl.String),
                             pl.Series([], dtype=dtype))
    long = pl.concat(parts) if len(parts) > 1 else parts[0]
    return Grouped.build(long.get_column(_ROW).to_numpy(), long.get_column("name"),
                         long.get_column("value"))


def tidy(segments: list[Segment]) -> list[Segment]:
    """Drop empty segments, compact mostly-dead ones, merge small trailing ones."""
    out = [s for s in segments if s.live or (s.files and not s.height)]
    out = [merge([s]) if s.dead and (s.dead > _MAX_DEAD_SHARE * s.height
                                     or s.dead_ranges() > _MAX_DEAD_RANGES) else s
           for s in out]
    while len(out) > 1 and out[-2].live <= _MERGE_RATIO * out[-1].live:
        out[-2:] = [merge(out[-2:])]
    return out


@dataclass
class RunsIndex:
    """The ``runs`` table at ``version``: its segments and a lazily built search view."""

    version: int
    segments: list[Segment]
    schema: pl.Schema
    _view: RunsView | None = field(default=None, repr=False)
    _frame: pl.DataFrame | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def applied(self, version: int, removed: set[str], added: Segment | None,
                schema: pl.Schema | None = None) -> RunsIndex:
        """This index after a change of files: a new object, this one stays valid."""
        segments = [s.without(removed) if removed else s for s in self.segments]
        if added is not None and (added.height or added.files):
            segments.append(added)
        return RunsIndex(version, tidy(segments), schema or self.schema)

    @property
    def files(self) -> set[str]:
        return {p for s in self.segments for p in s.files}

    def view(self) -> RunsView:
        with self._lock:
            if self._view is None:
                self._view = RunsView(self.segments)
            return self._view

    def frame(self) -> pl.DataFrame:
        """The live rows' plain columns (no params / metrics layout columns)."""
        with self._lock:
            if self._frame is None:
                frames = [s.live_frame() for s in self.segments]
                self._frame = _concat(frames) if frames else pl.DataFrame()
            return self._frame


class RunsView:
    """The segments as one searchable frame (dead rows included, masked by :attr:`alive`),
    and the field source of the ``--where`` language over the long tables: ``params.X`` and
    ``metrics.X`` become virtual columns, filled from X's entries only when a search uses
    them."""

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments
        self.frame = _concat([s.frame for s in segments]) if segments else pl.DataFrame()
        self.offsets = np.cumsum([0, *[s.height for s in segments]])
        self.height = int(self.offsets[-1])
        self.live = sum(s.live for s in segments)
        dead = any(s.dead for s in segments)
        self.alive = pl.Series("alive", np.concatenate([s.alive for s in segments])) \
            if dead else None

    # --- the field source of the --where language ---------------------------------------

    def param_kinds(self, name: str) -> list[str]:
        """Kinds of ``name`` among live runs only: a long-lived reader and a fresh one agree
        on which comparisons are type errors."""
        return [k for k in PARAM_KINDS if any(s.has(s.params[k], name) for s in self.segments)]

    def param(self, name: str, kind: str) -> pl.Expr:
        return pl.col(f"{_VIRTUAL}{kind}:{name}")

    def metric(self, name: str) -> pl.Expr | None:
        if not any(s.has(s.metrics, name) for s in self.segments):
            return None
        return pl.col(f"{_VIRTUAL}metric:{name}")

    # --- evaluation ---------------------------------------------------------------------

    def bind(self, *exprs: pl.Expr) -> pl.DataFrame:
        """The frame with the virtual columns ``exprs`` use."""
        names = {n for e in exprs for n in e.meta.root_names() if n.startswith(_VIRTUAL)}
        if not names:
            return self.frame
        return self.frame.with_columns([self.column(n) for n in sorted(names)])

    def column(self, virtual: str) -> pl.Series:
        kind, _, name = virtual[len(_VIRTUAL):].partition(":")
        dtype = _DTYPE[kind]
        parts = [(s.metrics if kind == "metric" else s.params[kind]).dense(name, s.height, dtype)
                 for s in self.segments]
        out = pl.concat(parts, rechunk=False) if len(parts) > 1 else parts[0]
        return out.alias(virtual)

    def metrics_of(self, rows: pl.Series) -> pl.Series | None:
        """The ``metrics`` struct (one field per name any of them has, sorted) of the given
        global rows, in their order; None when none of them has a metric."""
        picked = rows.to_numpy().astype(np.int64)
        if picked.size == 0 or not self.segments:
            return None
        which = np.searchsorted(self.offsets, picked, "right") - 1
        owners, names, values = [], [], []
        for i, seg in enumerate(self.segments):
            mine = np.flatnonzero(which == i)
            if mine.size == 0 or not len(seg.metrics):
                continue
            owner, n, v = seg.metrics.entries(picked[mine] - self.offsets[i])
            owners.append(mine[owner])
            names.append(n)
            values.append(v)
        if not owners or not sum(o.size for o in owners):
            return None
        key = "\x00row"
        long = pl.DataFrame({key: np.concatenate(owners).astype(np.uint32),
                             "name": pl.concat(names), "value": pl.concat(values)})
        wide = long.pivot(on="name", index=key, values="value")
        fields = sorted(c for c in wide.columns if c != key)
        aligned = pl.DataFrame({key: np.arange(picked.size, dtype=np.uint32)}).join(
            wide, on=key, how="left", maintain_order="left")
        return aligned.select(pl.struct(fields).alias("metrics")).to_series()
