"""A long-lived view of the lake's tables that stays current cheaply.

Opening a Delta table replays its log; searching a million runs needs them in memory. The
catalog keeps both and, before each use, checks only whether the next commit file exists (one
``stat`` locally, one HEAD on S3), so a warm search costs a filter, not a table load.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime

import polars as pl

from btlake_pipelines.contract.tables import RUNS
from btlake_pipelines.errors import NotFoundError, RetentionError
from btlake_pipelines.settings import is_object_store
from btlake_pipelines.storage import lake_files
from btlake_pipelines.storage.delta import open_table, table_uri

#: Files of an old version checked before a time-travel read (one stat or HEAD each).
_MAX_FILES_CHECKED = 1000


class Catalog:
    def __init__(self, lake: str) -> None:
        self.lake = lake
        self._tables: dict[str, object] = {}
        self._runs: tuple[int, pl.DataFrame] | None = None
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
        return None if self._runs is None else self._runs[0]

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
        import json

        log = f"{table_uri(self.lake, name)}/_delta_log/{version:020d}.json"
        try:
            lines = lake_files.read_bytes(log).splitlines()
        except (OSError, FileNotFoundError):
            return False
        for line in lines:
            info = json.loads(line).get("commitInfo") if line.strip() else None
            if info and "timestamp" in info:
                return int(info["timestamp"]) > moment.timestamp() * 1000
        return False

    def _vacuumed(self) -> bool:
        from btlake_pipelines.storage import maintenance_state

        return bool(maintenance_state.load(self.lake).get("last_vacuum"))

    @staticmethod
    def _file_exists(uri: str) -> bool:
        return lake_files.exists(uri) if is_object_store(uri) else os.path.exists(uri)

    def runs_frame(self) -> pl.DataFrame:
        """The whole ``runs`` table in memory, reloaded only when it has a new version."""
        with self._lock:
            dt = self.table(RUNS)
            if dt is None:
                return pl.DataFrame()
            version = dt.version()
            if self._runs is None or self._runs[0] != version:
                # one chunk per column: a filter over a million runs then costs one pass, not
                # one per data file (hundreds of date partitions)
                frame = pl.scan_delta(dt).collect().rechunk()
                self._runs = (version, frame)
            return self._runs[1]

    def _has_newer(self, name: str, version: int) -> bool:
        log = f"{table_uri(self.lake, name)}/_delta_log/{version + 1:020d}.json"
        if is_object_store(self.lake):
            return lake_files.exists(log)
        return os.path.exists(log)
