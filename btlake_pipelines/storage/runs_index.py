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
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
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
#: Rows from which a segment builds its params and metrics in two threads.
_PARALLEL_ROWS = 100_000
#: Virtual columns a view keeps filled (one value per run each).
_KEPT_COLUMNS = 8


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
    def build(cls, rows: np.ndarray, codes: np.ndarray, dictionary: list[str],
              values: pl.Series) -> Grouped:
        """From long form: ``rows[i]`` has name ``dictionary[codes[i]]`` with ``values[i]``.

        Names are grouped by their integer codes (renumbered in name order), with a stable
        counting sort, so rows stay ascending inside each name and no string is compared."""
        rows = np.asarray(rows, dtype=np.uint32)
        codes = np.asarray(codes, dtype=np.int32)
        if rows.size == 0:
            return cls([], np.zeros(1, np.int64), rows, values.clear())
        if rows.size > 1 and not bool(np.all(rows[:-1] <= rows[1:])):
            first = np.argsort(rows, kind="stable")
            rows, codes, values = rows[first], codes[first], values.gather(first)
        used = np.flatnonzero(np.bincount(codes, minlength=len(dictionary)))
        names = sorted(dictionary[i] for i in used)
        rank = {n: r for r, n in enumerate(names)}
        renumber = np.zeros(len(dictionary), np.uint16 if len(names) < 2**16 else np.uint32)
        renumber[used] = [rank[dictionary[i]] for i in used]
        codes = renumber[codes]
        order = np.argsort(codes, kind="stable")  # a radix sort for 16-bit codes
        codes, rows = codes[order], rows[order]
        repeated = np.flatnonzero((codes[1:] == codes[:-1]) & (rows[1:] == rows[:-1])) + 1
        if repeated.size:  # a name twice in one run's list: its first value counts
            keep = np.ones(order.size, bool)
            keep[repeated] = False
            order, codes, rows = order[keep], codes[keep], rows[keep]
        starts = np.zeros(len(names) + 1, np.int64)
        np.cumsum(np.bincount(codes, minlength=len(names)), out=starts[1:])
        return cls(names, starts, rows, values.gather(order))

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

    def long(self) -> tuple[np.ndarray, np.ndarray, pl.Series]:
        """(rows, codes into :attr:`names`, values) of every entry, as :meth:`build` takes."""
        codes = np.repeat(np.arange(len(self.names), dtype=np.int32), np.diff(self.starts))
        return self.rows, codes, self.values

    def entries(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every entry of the given rows, row by row: (position in ``rows``, code into
        :attr:`names`, position in :attr:`values`)."""
        if self._by_row is None:  # built on first use: only metrics are read row by row
            by_row = np.argsort(self.rows, kind="stable").astype(np.uint32)
            offsets = np.zeros(int(self.rows.max()) + 2, np.int64)
            np.cumsum(np.bincount(self.rows), out=offsets[1:])
            self._by_row = (by_row, offsets)
        by_row, offsets = self._by_row
        last = offsets.size - 1  # rows past the last one with an entry have none
        lo = offsets[np.minimum(rows, last)]
        hi = offsets[np.minimum(rows + 1, last)]
        counts = hi - lo
        owner = np.repeat(np.arange(rows.size, dtype=np.int64), counts)
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        positions = by_row[np.repeat(lo, counts) + within].astype(np.int64)
        codes = np.searchsorted(self.starts, positions, "right") - 1
        return owner, codes, positions


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
        if frame.height >= _PARALLEL_ROWS:  # numpy, Arrow and polars release the GIL
            with ThreadPoolExecutor(2) as pool:
                later = pool.submit(_metrics_of, frame)
                params = _params_of(frame)
                metrics = later.result()
        else:
            params, metrics = _params_of(frame), _metrics_of(frame)
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
        rows, codes, values = [], [], []
        dictionary: dict[str, int] = {}
        for g, row_map in zip(groups, maps, strict=True):
            r, c, v = g.long()
            mapped = row_map[r]
            keep = mapped >= 0
            shared = np.array([dictionary.setdefault(n, len(dictionary)) for n in g.names],
                              np.int32)
            rows.append(mapped[keep])
            codes.append(shared[c[keep]] if len(g.names) else c[keep])
            values.append(v.filter(pl.Series(keep)))
        return Grouped.build(np.concatenate(rows), np.concatenate(codes), list(dictionary),
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


def _params_of(frame: pl.DataFrame) -> dict[str, Grouped]:
    """The params of either layout (or both: a table written by both) by kind."""
    parts = []
    if "param_values" in frame.columns:
        parts.append(_exploded(frame, "param_values"))
    for kind, column in _LEGACY_PARAM.items():
        if column in frame.columns:  # a table not migrated yet: converted here, in memory
            parts.append(legacy_entries(frame, column, _ROW).rename(
                {"value": _PARAM_FIELD[kind]}))
    long = _long(parts)
    rows, codes, dictionary = _encoded(long)
    out = {}
    for kind in PARAM_KINDS:
        field_name = _PARAM_FIELD[kind]
        if long is None or field_name not in long.columns:
            out[kind] = _empty(kind)
            continue
        values = long.get_column(field_name)
        keep = values.is_not_null()
        mask = keep.to_numpy()
        out[kind] = Grouped.build(rows[mask], codes[mask], dictionary,
                                  values.filter(keep).cast(_DTYPE[kind]))
    return out


def _metrics_of(frame: pl.DataFrame) -> Grouped:
    parts = []
    if "metric_values" in frame.columns:
        parts.append(_exploded(frame, "metric_values"))
    if "metrics" in frame.columns:
        parts.append(legacy_entries(frame, "metrics", _ROW))
    long = _long(parts)
    if long is None or "value" not in long.columns:
        return _empty("metric")
    long = long.filter(pl.col("value").is_not_null())
    rows, codes, dictionary = _encoded(long)
    return Grouped.build(rows, codes, dictionary,
                         long.get_column("value").cast(_DTYPE["metric"]))


def _exploded(frame: pl.DataFrame, column: str) -> pl.DataFrame | None:
    """The entries of a list column, one per row, with the row each came from."""
    if not isinstance(frame.schema[column], pl.List):
        return None
    lists = frame.get_column(column)
    lengths = lists.list.len().fill_null(0).to_numpy()
    rows = np.repeat(np.arange(lists.len(), dtype=np.uint32), lengths)
    entries = lists.explode(empty_as_null=False, keep_nulls=False).struct.unnest()
    return entries.with_columns(pl.Series(_ROW, rows)).filter(pl.col("name").is_not_null())


def _long(parts: list[pl.DataFrame | None]) -> pl.DataFrame | None:
    frames = [p for p in parts if p is not None and p.height]
    if not frames:
        return None
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]


def _encoded(long: pl.DataFrame | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(rows, name codes, dictionary) of long entries: names hashed once, by polars (not
    ``pyarrow.compute``, whose every call imports pandas to check its arguments: 0.3-0.4 s of
    a CLI call)."""
    if long is None or not long.height:
        return np.zeros(0, np.uint32), np.zeros(0, np.int32), []
    names = long.get_column("name")
    dictionary = names.unique(maintain_order=True)
    codes = names.cast(pl.Enum(dictionary)).to_physical().to_numpy().astype(np.int32)
    return long.get_column(_ROW).to_numpy(), codes, dictionary.to_list()


def _empty(kind: str) -> Grouped:
    return Grouped.build(np.zeros(0, np.uint32), np.zeros(0, np.int32), [],
                         pl.Series([], dtype=_DTYPE[kind]))


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
        self._columns: OrderedDict[str, pl.Series] = OrderedDict()
        self._lock = threading.Lock()

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
        """The columns ``exprs`` use (and ``run_id``), virtual ones filled: a narrow frame,
        so nothing is done to the columns a search does not read."""
        names = {n for e in exprs for n in e.meta.root_names()}
        stored = ["run_id", *sorted(n for n in names - {"run_id"}
                                    if not n.startswith(_VIRTUAL))]
        frame = self.frame.select(stored)
        virtual = sorted(n for n in names if n.startswith(_VIRTUAL))
        return frame.with_columns([self.column(n) for n in virtual]) if virtual else frame

    def column(self, virtual: str) -> pl.Series:
        """A virtual column, filled from the long tables; the last few are kept, so the
        searches a user repeats or refines do not fill them again."""
        with self._lock:
            hit = self._columns.get(virtual)
            if hit is not None:
                self._columns.move_to_end(virtual)
                return hit
        out = self._fill(virtual)
        with self._lock:
            self._columns[virtual] = out
            while len(self._columns) > _KEPT_COLUMNS:
                self._columns.popitem(last=False)
        return out

    def _fill(self, virtual: str) -> pl.Series:
        kind, _, name = virtual[len(_VIRTUAL):].partition(":")
        dtype = _DTYPE[kind]
        parts = [(s.metrics if kind == "metric" else s.params[kind]).dense(name, s.height, dtype)
                 for s in self.segments]
        out = pl.concat(parts, rechunk=False) if len(parts) > 1 else parts[0]
        return out.alias(virtual)

    def gather(self, rows: pl.Series, columns: list[str]) -> pl.DataFrame:
        """``columns`` of the given global rows, in their order. Taken segment by segment:
        polars gathers from a column of several chunks by joining its nested columns (lists,
        structs) into one first, which costs the whole table."""
        if len(self.segments) == 1:
            return self.frame.select(pl.col(columns).gather(rows))
        picked = rows.to_numpy().astype(np.int64)
        which = np.searchsorted(self.offsets, picked, "right") - 1
        parts, positions = [], []
        for i, seg in enumerate(self.segments):
            mine = np.flatnonzero(which == i)
            if mine.size:
                local = pl.Series(picked[mine] - self.offsets[i], dtype=pl.UInt32)
                parts.append(seg.frame.select(pl.col(columns).gather(local)))
                positions.append(mine)
        if not parts:
            return self.frame.select(columns).clear()
        if len(parts) == 1:
            return parts[0]
        found = _concat(parts)
        where = np.empty(picked.size, np.int64)
        where[np.concatenate(positions)] = np.arange(picked.size)
        return found.select(pl.all().gather(pl.Series(where, dtype=pl.UInt32)))

    def metrics_of(self, rows: pl.Series) -> pl.Series | None:
        """The ``metrics`` struct (one field per name any of them has, sorted) of the given
        global rows, in their order; None when none of them has a metric."""
        picked = rows.to_numpy().astype(np.int64)
        if picked.size == 0 or not self.segments:
            return None
        which = np.searchsorted(self.offsets, picked, "right") - 1
        fields: dict[str, int] = {}
        owners, codes, values = [], [], []
        for i, seg in enumerate(self.segments):
            mine = np.flatnonzero(which == i)
            if mine.size == 0 or not len(seg.metrics):
                continue
            owner, code, positions = seg.metrics.entries(picked[mine] - self.offsets[i])
            used = np.flatnonzero(np.bincount(code, minlength=len(seg.metrics.names)))
            shared = np.zeros(len(seg.metrics.names), np.int64)
            shared[used] = [fields.setdefault(seg.metrics.names[c], len(fields)) for c in used]
            owners.append(mine[owner])
            codes.append(shared[code])
            values.append(seg.metrics.values.gather(positions).to_numpy())
        if not fields:
            return None
        names = sorted(fields)
        rank = np.zeros(len(fields), np.int64)
        rank[[fields[n] for n in names]] = np.arange(len(names))
        # one row of values per field: the struct's size is its fields times the runs
        # returned, so it is built directly rather than through a pivot
        grid = np.zeros((len(names), picked.size))
        present = np.zeros((len(names), picked.size), bool)
        at = (rank[np.concatenate(codes)], np.concatenate(owners))
        grid[at] = np.concatenate(values)
        present[at] = True
        # built in polars: ``pa.array`` on numpy asks pandas first (an import of 0.3 s)
        children = [pl.Series(name, grid[i]).set(pl.Series(~present[i]), None)
                    for i, name in enumerate(names)]
        return pl.DataFrame(children).to_struct("metrics")
