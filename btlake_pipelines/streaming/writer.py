"""The micro-batching committer behind a Flight ``DoPut`` (contract section 9).

Batches are validated as they arrive (:mod:`.rows`), buffered per table, and committed as one
Delta append when a table's buffer reaches ``flush_rows`` rows or ``flush_bytes`` bytes, or
its oldest batch has waited ``max_wait`` seconds (1 s by default), or no batch joined it for
``linger`` seconds (50 ms: Kafka's ``linger.ms``): a producer waiting for each ack gets it in
tens of milliseconds, a feed handler's acks come within about a second, and a busy feed makes
few, large commits. Rows are partitioned by
market and date as ingestion writes them (``storage/delta.py``: ZSTD, row groups, btlake
commit metadata), and never replace anything: streamed rows are appended.

Exactly once: each commit carries a Delta ``txn`` action per writer it holds
(``app_id`` = the writer's name, ``version`` = its last ``seq`` in the commit), in the same
atomic commit as the rows. ``DeltaTable.transaction_version(writer)`` therefore tells, after a
reconnect or a server restart, which batches are stored; a batch whose ``seq`` is not above it
is acknowledged ``duplicate`` and not stored again. An in-memory cache, seeded from the table
the first time a (table, writer) is seen, answers without reading the log per batch. A batch is
acknowledged only once the commit holding it (or its twin) succeeded.

One thread commits, so a table's commits are serialised through this writer; other writers
(ingestion of bundles, maintenance) commit beside it through Delta's optimistic concurrency:
a blind append retries its commit after a conflict and loses no row (TRAPS.md: 40 of 40
concurrent appends landed on S3), and compaction rewrites files without touching the
appended ones.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Literal

import polars as pl
import pyarrow as pa

from btlake_pipelines.contract.tables import FACT_TABLES
from btlake_pipelines.errors import BtlakeError, BundleRefused
from btlake_pipelines.ingest.schema_fit import SchemaMismatch, fit_frame
from btlake_pipelines.storage import delta, stream_marks
from btlake_pipelines.storage.scan import scan
from btlake_pipelines.streaming.rows import (
    STREAM_TABLES,
    BatchTag,
    check_target,
    check_writer,
    parse_tag,
    stored_rows,
)

DEFAULT_FLUSH_ROWS = 500_000
DEFAULT_FLUSH_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_WAIT = 1.0
#: A buffer no batch joined for this long is committed without waiting for ``max_wait``: a
#: producer that waits for each ack (one batch in flight) is not held a second per batch,
#: while a busy feed, whose batches keep coming, still makes one commit a second.
DEFAULT_LINGER = 0.05
#: Buffered bytes, in ``flush_bytes``, past which producers wait for the commits to catch up.
BACKLOG_FLUSHES = 4
#: The ``btlake.operation`` of a streamed commit (read back by :mod:`.commits`).
OPERATION = "stream"


@dataclass(frozen=True)
class Ack:
    """The answer to one batch, sent once it is durable."""

    seq: int
    status: Literal["accepted", "duplicate"]
    #: the table version that stored it (None for a duplicate answered from the cache)
    version: int | None = None

    def as_json(self) -> dict[str, object]:
        return {"seq": self.seq, "status": self.status}


@dataclass
class _Buffer:
    """A table's batches waiting for their commit."""

    #: the batches this commit stores: (rows, future, tag), in arrival order
    items: list[tuple[pl.DataFrame, Future, BatchTag]] = field(default_factory=list)
    #: resends of batches buffered or being committed: answered after this commit
    dups: list[tuple[Future, BatchTag]] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    since: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)


class StreamWriter:
    """Appends streamed batches to the lake at ``lake``, exactly once per (writer, seq).

    :meth:`submit` returns a future of the batch's :class:`Ack`; :meth:`close` commits what
    is buffered and stops the committing thread."""

    def __init__(self, lake: str, *, flush_rows: int = DEFAULT_FLUSH_ROWS,
                 flush_bytes: int = DEFAULT_FLUSH_BYTES,
                 max_wait: float = DEFAULT_MAX_WAIT, linger: float = DEFAULT_LINGER) -> None:
        self.lake = lake
        self.flush_rows = flush_rows
        self.flush_bytes = flush_bytes
        self.max_wait = max_wait
        self.linger = min(linger, max_wait)
        self._cond = threading.Condition()
        self._buffers: dict[str, _Buffer] = {}
        #: (table, writer) -> last committed seq (None: none), seeded from the table
        self._committed: dict[tuple[str, str], int | None] = {}
        #: (table, writer) -> highest seq buffered or being committed
        self._pending: dict[tuple[str, str], int] = {}
        #: (table, writer) -> the first seq of a commit that failed: later seqs of that
        #: writer are refused until it sends that one again (else a later commit's ``txn``
        #: would make the lost batches look stored)
        self._gaps: dict[tuple[str, str], int] = {}
        #: table -> the column types it holds (and buffered batches add)
        self._known: dict[str, dict[str, pl.DataType]] = {}
        self._busy = False
        self._committing = 0  # bytes of the buffers being committed
        self._force = False
        self._closing = False
        self.commits = 0
        self._marked: set[tuple[str, str, str]] = set()
        self._thread = threading.Thread(target=self._run, name="btlake-stream-commit",
                                        daemon=True)
        self._thread.start()

    # -- producers ---------------------------------------------------------------------------

    def submit(self, table: str, market: str, tag: BatchTag,
               batch: pa.RecordBatch | pa.Table) -> Future:
        """Take one batch: a future of its :class:`Ack`. A batch breaking a rule raises
        :class:`~btlake_pipelines.errors.BundleRefused` here and nothing of it is kept."""
        future: Future = Future()
        key = (table, tag.writer)
        committed = self._committed_seq(table, tag.writer)
        if committed is not None and tag.seq <= committed:
            future.set_result(Ack(tag.seq, "duplicate"))
            return future
        frame = None
        with self._cond:
            pending = self._pending.get(key)
        if pending is None or tag.seq > pending:
            frame = self._fitted(table, stored_rows(table, market, batch, tag), tag)
        with self._cond:
            # back-pressure: a producer faster than the commits waits here (its DoPut stops
            # reading) instead of filling the server's memory
            while not self._closing and frame is not None \
                    and self._buffered_bytes() >= BACKLOG_FLUSHES * self.flush_bytes:
                self._cond.wait(1.0)
            if self._closing:
                raise BtlakeError("the stream writer is closed")
            gap = self._gaps.get(key)
            if gap is not None and tag.seq > gap:
                raise BtlakeError(_gap_message(tag, gap))
            self._gaps.pop(key, None)  # the writer resends from its gap on
            buffer = self._buffers.setdefault(table, _Buffer())
            pending = self._pending.get(key)
            if frame is None or (pending is not None and tag.seq <= pending):
                # its twin is buffered or being committed: answered by that commit
                buffer.dups.append((future, tag))
            else:
                if not buffer.items:
                    buffer.since = time.monotonic()
                buffer.last = time.monotonic()
                buffer.items.append((frame, future, tag))
                buffer.rows += frame.height
                buffer.bytes += frame.estimated_size()
                self._pending[key] = tag.seq
            self._cond.notify_all()
        return future

    def put(self, table: str, market: str, app_metadata: bytes | None,
            batch: pa.RecordBatch | pa.Table) -> Future:
        """:meth:`submit` of a batch tagged by its ``app_metadata`` bytes (UTF-8 JSON
        ``{"writer": ID, "seq": N}``), as a Flight ``DoPut`` receives it."""
        return self.submit(table, market, parse_tag(app_metadata), batch)

    @staticmethod
    def check_target(table: str, market: str) -> None:
        """Refuse a stream to a table that is not market data or a bad market name."""
        check_target(table, market)

    def _fitted(self, table: str, frame: pl.DataFrame, tag: BatchTag) -> pl.DataFrame:
        """``frame`` in the column types the table (and the batches before) already hold, or
        a refusal naming the column, as for bundles (``ingest/schema_fit.py``): a batch whose
        extra column cannot take the stored type must not fail the commit of the others."""
        with self._cond:
            known = self._known.get(table)
        if known is None:
            lf = scan(self.lake, table)
            known = dict(lf.collect_schema()) if lf is not None else {}
        try:
            frame = fit_frame(frame, known)
        except SchemaMismatch as exc:
            raise BundleRefused(tag.label, "column_type", f"column '{exc.column}' is {exc.got} "
                                f"here but {exc.want} in the lake's '{table}' table",
                                table=table, column=exc.column) from None
        with self._cond:
            merged = self._known.setdefault(table, known)
            for name, dtype in frame.schema.items():
                if dtype != pl.Null:
                    merged.setdefault(name, dtype)
        return frame

    def _buffered_bytes(self) -> int:
        return sum(b.bytes for b in self._buffers.values()) + self._committing

    def last_seq(self, writer: str, table: str | None = None) -> int | None:
        """The writer's last committed ``seq`` in ``table`` (default: its highest in any
        streamed table); None when nothing of it is stored."""
        check_writer(writer)
        tables = [table] if table else list(STREAM_TABLES)
        if table is not None and table not in STREAM_TABLES:
            raise BtlakeError(f"bad {{param}}: streams append to {', '.join(STREAM_TABLES)}",
                              param="table")
        seqs = [s for t in tables if (s := self._committed_seq(t, writer)) is not None]
        return max(seqs) if seqs else None

    def flush(self, timeout: float | None = None) -> None:
        """Commit everything buffered now and wait until it is committed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._force = True
            self._cond.notify_all()
            while self._buffers or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("stream commits did not finish in time")
                self._cond.wait(left)

    def close(self, timeout: float | None = 60.0) -> None:
        """Commit what is buffered, then stop: later :meth:`submit` calls raise."""
        try:
            self.flush(timeout)
        finally:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            self._thread.join(timeout)

    # -- the committing thread ----------------------------------------------------------------

    def _committed_seq(self, table: str, writer: str) -> int | None:
        key = (table, writer)
        with self._cond:
            if key in self._committed:
                return self._committed[key]
        dt = delta.open_table(self.lake, table)
        seq = None if dt is None else dt.transaction_version(writer)
        with self._cond:
            return self._committed.setdefault(key, seq)

    def _due(self, now: float) -> tuple[list[str], float | None]:
        """Tables to commit now, and how long until the next one is due."""
        due, wait = [], None
        for table, b in self._buffers.items():
            if self._force or self._closing or b.rows >= self.flush_rows \
                    or b.bytes >= self.flush_bytes or now - b.since >= self.max_wait \
                    or now - b.last >= self.linger or not b.items:
                due.append(table)
            else:
                left = min(self.max_wait - (now - b.since), self.linger - (now - b.last))
                wait = left if wait is None else min(wait, left)
        return due, wait

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    due, wait = self._due(time.monotonic())
                    if due or (self._closing and not self._buffers):
                        break
                    if not self._buffers:
                        self._force = False
                    self._cond.wait(wait)
                if not due:
                    return
                taken = [(t, self._buffers.pop(t)) for t in due]
                self._busy = True
                self._committing = sum(b.bytes for _, b in taken)
            try:
                for table, buffer in taken:
                    self._commit(table, buffer)
            finally:
                with self._cond:
                    self._busy = False
                    self._committing = 0
                    if not self._buffers:
                        self._force = False
                    self._cond.notify_all()

    def _commit(self, table: str, buffer: _Buffer) -> None:
        with self._cond:  # batches queued behind a failed commit of their writer: refused
            items, refused = [], []
            for item in buffer.items:
                gap = self._gaps.get((table, item[2].writer))
                if gap is not None and item[2].seq > gap:
                    refused.append((item[1], item[2], gap))
                    self._pending.pop((table, item[2].writer), None)
                else:
                    items.append(item)
        for future, tag, gap in refused:
            future.set_exception(BtlakeError(_gap_message(tag, gap)))
        writers: dict[str, int] = {}
        for _, _, tag in items:
            writers[tag.writer] = max(tag.seq, writers.get(tag.writer, tag.seq))
        version = None
        error: BaseException | None = None
        if items:
            try:
                version = self._write(table, [f for f, _, _ in items], writers)
            except Exception as exc:
                error = exc
        with self._cond:
            if error is None:
                for writer, seq in writers.items():
                    self._committed[(table, writer)] = seq
            else:
                # what the table holds decides: the commit may have landed before the error
                for writer in writers:
                    self._committed.pop((table, writer), None)
                    self._pending.pop((table, writer), None)
        if error is not None:
            # one log load answers every writer of the failed commit
            dt = delta.open_table(self.lake, table)
            with self._cond:
                for writer in writers:
                    self._committed.setdefault(
                        (table, writer), None if dt is None else dt.transaction_version(writer))
        answers = [(future, tag, False) for _, future, tag in items] + \
            [(future, tag, True) for future, tag in buffer.dups]
        lost: dict[str, int] = {}
        for future, tag, duplicate in answers:
            stored = self._committed.get((table, tag.writer))
            if error is None and not duplicate:
                future.set_result(Ack(tag.seq, "accepted", version))
            elif stored is not None and tag.seq <= stored:
                future.set_result(Ack(tag.seq, "duplicate" if duplicate else "accepted",
                                      version))
            else:
                lost[tag.writer] = min(tag.seq, lost.get(tag.writer, tag.seq))
                future.set_exception(BtlakeError(
                    f"batch seq {tag.seq} of writer {tag.writer!r} was not stored "
                    f"({error or 'its first copy failed'}); send it again"))
        if lost:
            self._open_gaps(table, lost)
        if error is None:
            self.commits += 1

    def _open_gaps(self, table: str, lost: dict[str, int]) -> None:
        """After a failed commit: each writer's first lost seq becomes its gap, and its
        batches still buffered after that seq are refused now, so nothing of it commits out
        of order; the writer resends from the gap (``last_seq`` + 1)."""
        dropped = []
        with self._cond:
            for writer, seq in lost.items():
                key = (table, writer)
                self._gaps[key] = min(seq, self._gaps.get(key, seq))
                self._pending.pop(key, None)
            buffer = self._buffers.get(table)
            if buffer is not None:
                keep = []
                for item in buffer.items:
                    gap = self._gaps.get((table, item[2].writer))
                    if gap is not None and item[2].seq > gap:
                        dropped.append(item)
                        buffer.rows -= item[0].height
                        buffer.bytes -= item[0].estimated_size()
                    else:
                        keep.append(item)
                buffer.items = keep
        for _, future, tag in dropped:
            future.set_exception(BtlakeError(_gap_message(tag, lost[tag.writer])))

    def _write(self, table: str, frames: list[pl.DataFrame], writers: dict[str, int]) -> int:
        frame = pl.concat(frames, how="diagonal_relaxed")
        order = [c for c in ("market", "date", *FACT_TABLES[table].sort_by)
                 if c in frame.columns]
        frame = frame.sort(order, nulls_last=True, maintain_order=True)
        counts = {f"{m}|{d}": n for m, d, n in frame.group_by("market", "date").len()
                  .sort("market", "date").iter_rows()}
        new = [(m, d) for m, _, d in (k.partition("|") for k in counts)
               if (table, m, d) not in self._marked]
        stream_marks.mark(self.lake, table, new)  # before the commit: see that module
        self._marked.update((table, m, d) for m, d in new)
        return delta.write(self.lake, table, frame.to_arrow(), predicate=None, metadata={
            "btlake.operation": OPERATION, "btlake.partitions": list(counts)[:1000],
            "btlake.partition_rows": dict(list(counts.items())[:1000]),
            "btlake.rows_added": frame.height, "btlake.rows_removed": 0,
            "btlake.writers": writers}, transactions=writers)


def _gap_message(tag: BatchTag, gap: int) -> str:
    return (f"batch seq {tag.seq} of writer {tag.writer!r} comes after seq {gap}, which was "
            f"not stored: send again from seq {gap} (last_seq + 1)")
