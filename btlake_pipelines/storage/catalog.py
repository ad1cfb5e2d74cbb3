"""A long-lived view of the lake's tables that stays current cheaply.

Opening a Delta table replays its log; searching a million runs needs them in memory. The
catalog keeps both and, before each use, checks only whether the next commit file exists (one
``stat`` locally, one HEAD on S3), so a warm search costs a filter, not a table load. When the
``runs`` table has new commits, only they are read: the rows of the data files they added are
loaded and the rows of the files they removed dropped (:mod:`btlake_pipelines.storage.runs_index`),
so the first search after one more run costs about what that run costs. A commit that cannot
be followed that way (its file cleaned up, a new schema) makes it load the table again.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime

import polars as pl

from btlake_pipelines.contract.tables import RUNS
from btlake_pipelines.errors import NotFoundError, RetentionError
from btlake_pipelines.settings import is_object_store
from btlake_pipelines.storage import delta_log, lake_files
from btlake_pipelines.storage.delta import PARTITIONS, open_table
from btlake_pipelines.storage.runs_index import RunsIndex, RunsView, Segment

#: Files of an old version checked before a time-travel read (one stat or HEAD each).
_MAX_FILES_CHECKED = 1000


class Catalog:
    def __init__(self, lake: str) -> None:
        self.lake = lake
        self._tables: dict[str, object] = {}
        self._runs: RunsIndex | None = None
        #: how the runs table was kept current: full loads, incremental refreshes, and the
        #: data files read by either (what a refresh cost, for tests and the bench)
        self.stats = {"runs_loads": 0, "runs_refreshes": 0, "runs_files_read": 0}
        self._derived: dict[str, tuple[tuple, object]] = {}
        self._lock = threading.RLock()

    def derived(self, key: tuple, compute):
        """``compute()`` once per ``key``, whose first item names the value and whose other
        items are the table versions it depends on; only the latest key of a name is kept."""
        with self._lock:
            hit = self._derived.get(key[0])
            if hit is not None and hit[0] == key:
                return hit[1]
        value = compute()
        with self._lock:
            self._derived[key[0]] = (key, value)
        return value

    def runs_version(self) -> int | None:
        """The version of the ``runs`` frame :meth:`runs_frame` returned last."""
        return None if self._runs is None else self._runs.version

    def table(self, name: str):
        """The latest ``DeltaTable`` of ``name`` (None when the table does not exist yet)."""
        with self._lock:
            dt = self._tables.get(name)
            if dt is None:
                dt = open_table(self.lake, name)
                if dt is not None:
                    self._tables[name] = dt
                return dt
            if self._has_newer(name, dt.version()):
                dt.update_incremental()
            return dt

    def table_at(self, name: str, as_of: int | datetime):
        """A fresh ``DeltaTable`` of ``name`` loaded at a version or a point in time."""
        from deltalake.exceptions import DeltaError

        dt = open_table(self.lake, name)
        if dt is None:
            raise NotFoundError(f"table '{name}' has no data yet")
        latest = dt.version()
        if isinstance(as_of, int) and as_of > latest:
            raise NotFoundError(f"table '{name}' has no version {as_of} (latest is {latest})")
        gone = RetentionError(
            f"version {as_of} of table '{name}' is no longer readable: its files or log "
            "were removed by maintenance (vacuum) after the retention period")
        current = set(dt.file_uris()) if self._vacuumed() else None
        try:
            dt.load_as_version(as_of)
        except (DeltaError, OSError, ValueError) as exc:
            text = str(exc)
            if isinstance(as_of, datetime) and ("earliest" in text or "before" in text
                                                or "No commit" in text):
                raise NotFoundError(f"table '{name}' did not exist at {as_of.isoformat()}"
                                    ) from None
            raise gone from None
        if isinstance(as_of, datetime) and self._committed_after(name, dt.version(), as_of):
            # Delta resolves a time before the first commit to the first version
            raise NotFoundError(f"table '{name}' did not exist at {as_of.isoformat()}")
        # The log outlives the data files: a vacuumed version still loads, then fails on its
        # first missing file. Its files that the latest version no longer has are checked.
        if current is not None:
            old = [uri for uri in dt.file_uris() if uri not in current]
            if not all(self._file_exists(uri) for uri in old[:_MAX_FILES_CHECKED]):
                raise gone
        return dt

    def _committed_after(self, name: str, version: int, moment: datetime) -> bool:
        """Whether ``version`` of ``name`` was committed after ``moment`` (False when its
        commit file is gone: the log was cleaned up, so nothing can be said)."""
        commit = delta_log.commit(self.lake, name, version)
        return commit is not None and commit.timestamp is not None and commit.timestamp > moment

    def _vacuumed(self) -> bool:
        from btlake_pipelines.storage import maintenance_state

        return bool(maintenance_state.load(self.lake).get("last_vacuum"))

    @staticmethod
    def _file_exists(uri: str) -> bool:
        return lake_files.exists(uri) if is_object_store(uri) else os.path.exists(uri)

    def runs_frame(self) -> pl.DataFrame:
        """The ``runs`` table's live rows in memory, without the params / metrics layout
        columns (:meth:`runs_view` has those); current as of the latest commit."""
        index = self.runs_index()
        return pl.DataFrame() if index is None else index.frame()

    def runs_view(self) -> RunsView | None:
        """The ``runs`` table as searches see it (None when the table does not exist)."""
        index = self.runs_index()
        return None if index is None else index.view()

    def runs_index(self) -> RunsIndex | None:
        """The ``runs`` table in memory at its latest version: loaded once, then brought up
        to date by the commits since (see the module docstring)."""
        with self._lock:
            dt = self.table(RUNS)
            if dt is None:
                return None
            version = dt.version()
            current = self._runs
            if current is not None and current.version == version:
                return current
            refreshed = self._refreshed(current, version) if current is not None else None
            if refreshed is None:
                refreshed = self._load_runs(dt)
                self.stats["runs_loads"] += 1
            else:
                self.stats["runs_refreshes"] += 1
            self._runs = refreshed
            return refreshed

    def _load_runs(self, dt) -> RunsIndex:
        files = delta_log.live_files(dt)
        schema = delta_log.table_schema(dt)
        frame = delta_log.read_files(self.lake, RUNS, files, schema, PARTITIONS[RUNS])
        self.stats["runs_files_read"] += len(files)
        segment = Segment.from_frame(frame, [f.path for f in files])
        return RunsIndex(dt.version(), [segment], schema)

    def _refreshed(self, current: RunsIndex, version: int) -> RunsIndex | None:
        """``current`` brought to ``version`` from the commits in between, or None when they
        cannot be applied as file changes (then the table is loaded again)."""
        change = delta_log.changes(self.lake, RUNS, current.version, version)
        if change is None:
            return None
        if change.partition_columns is not None and \
                change.partition_columns != PARTITIONS[RUNS]:
            return None
        if change.schema is not None and change.schema != current.schema:
            return None  # columns changed (a layout migration): rows are read again
        held = current.files
        if not change.removed <= held or any(f.path in held for f in change.added):
            return None  # the log and what is held disagree: trust neither
        frame = delta_log.read_files(self.lake, RUNS, change.added, current.schema,
                                     PARTITIONS[RUNS])
        self.stats["runs_files_read"] += len(change.added)
        added = Segment.from_frame(frame, [f.path for f in change.added])
        return current.applied(version, change.removed, added)

    def _has_newer(self, name: str, version: int) -> bool:
        return delta_log.has_commit(self.lake, name, version + 1)
