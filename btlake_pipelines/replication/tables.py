"""One Delta table copied from the primary to the replica, a version at a time.

For each version after the replica's latest, in order: the objects its ``add`` / ``cdc``
actions name (verified copies, skipped when already there), then its commit file, then the
checkpoint of that version if the primary has one. ``_last_checkpoint`` is written last, and
only when it points to a version the replica holds. The replica's own ``_delta_log`` is the
state: its latest version is how far the table is, so a killed run resumes there, and a data
file copied for an entry the run did not get to is found whole (same size and digest) and not
copied again.

When the primary's log no longer holds the commits after the replica's version (log cleanup
removed them), the table restarts from the newest primary checkpoint: its live files, then the
checkpoint, then the commits after it; versions in between are ones the primary cannot load
either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from btlake_pipelines.replication.objects import (
    Counts,
    ReplicationError,
    Root,
    copy_object,
    diverged,
    pool,
    put,
    write_new,
)
from btlake_pipelines.storage import delta_log

LOG = delta_log.LOG
LAST_CHECKPOINT = "_last_checkpoint"


@dataclass
class LogListing:
    """A table's ``_delta_log`` as listed: commit versions and each version's other files."""

    commits: set[int] = field(default_factory=set)
    checkpoints: dict[int, list[str]] = field(default_factory=dict)
    last_checkpoint: bool = False

    @property
    def version(self) -> int:
        """The latest version a reader can load (-1: none)."""
        return max([*self.commits, *self.checkpoints], default=-1)


def list_log(root: Root, table: str) -> LogListing:
    out = LogListing()
    for name in root.listing(f"{table}/{LOG}"):
        version = delta_log.log_file_version(name)
        if "/" in name:
            continue
        if version is None:
            out.last_checkpoint |= name == LAST_CHECKPOINT
        elif name.endswith(".json") and name[20:] == ".json":
            out.commits.add(version)
        elif ".checkpoint." in name:
            out.checkpoints.setdefault(version, []).append(name)
    return out


def latest_version(root: Root, table: str) -> int:
    return list_log(root, table).version


def commit_name(version: int) -> str:
    return f"{version:020d}.json"


def replicate_table(src: Root, dst: Root, table: str, upto: int,
                    pause: Callable[[str], None] | None = None,
                    src_log: LogListing | None = None) -> Counts:
    """Bring ``table`` of ``dst`` to version ``upto`` of ``src``; see the module docstring.
    ``pause(point)`` is called between steps (the crash tests' fault points). ``src_log``:
    the primary's log as the round listed it when it fixed ``upto`` (listed here if not)."""
    counts = Counts()
    have_log = list_log(dst, table)
    have = have_log.version
    src_log = src_log if src_log is not None else list_log(src, table)
    if have > src_log.version:  # another round may have copied past this round's listing
        src_log = list_log(src, table)
    if have > src_log.version:
        raise ReplicationError(f"the replica's table '{table}' is at version {have}, past the "
                               f"primary's {src_log.version}: something other than replicate "
                               "committed to it (was it promoted?)")
    last = f"{table}/{LOG}/{commit_name(have)}"
    # the entry both hold must be the same: one read of a small file per table and round
    if have >= 0 and have in src_log.commits and have in have_log.commits and \
            src.read(last) != dst.read(last):
        raise diverged(last)
    start = have + 1
    if start <= upto and start not in src_log.commits:
        start = _restart_from_checkpoint(src, dst, table, src_log, start, upto, counts, pause)
    removals = _LaterRemovals(src, table, start, max(upto, src_log.version))
    for version in range(start, upto + 1):
        _copy_version(src, dst, table, version, removals, counts, pause)
        for name in src_log.checkpoints.get(version, []):
            _count(counts, copy_object(src, dst, f"{table}/{LOG}/{name}"))
    _copy_older_checkpoints(src, dst, table, src_log, have_log, min(have, upto), counts)
    _copy_last_checkpoint(src, dst, table, max(have, upto),
                          set(src_log.checkpoints) | set(have_log.checkpoints))
    return counts


def _copy_version(src: Root, dst: Root, table: str, version: int, removals: _LaterRemovals,
                  counts: Counts, pause: Callable[[str], None] | None) -> None:
    rel = f"{table}/{LOG}/{commit_name(version)}"
    try:
        raw = src.read(rel)
    except OSError as exc:
        raise ReplicationError(f"the primary's table '{table}' lost commit {version} while it "
                               "was copied (log cleanup?); run replicate again") from exc
    actions = delta_log.parse_actions(raw)
    files = delta_log.referenced_files(actions)
    missing = _copy_files(src, dst, table, files, counts, pause)
    if missing and not removals.all_removed_after(version, missing):
        raise ReplicationError(f"the primary's table '{table}' lacks {len(missing)} data "
                               f"file(s) that version {version} still needs, e.g. "
                               f"'{sorted(missing)[0]}'")
    if pause:
        pause("before_log_entry")
    if write_new(dst, rel, raw):
        counts.log_entries += 1
    if pause:
        pause("after_log_entry")


def _copy_files(src: Root, dst: Root, table: str, files: list[str], counts: Counts,
                pause: Callable[[str], None] | None) -> set[str]:
    """Copy ``files`` of ``table``; the ones the primary no longer has."""
    missing: set[str] = set()

    def one(path: str) -> tuple[str, int | None]:
        got = copy_object(src, dst, f"{table}/{path}")
        if pause:
            pause("after_data_file")
        return path, got

    results = [one(p) for p in files] if len(files) <= 1 else list(pool().map(one, files))
    for path, got in results:
        if got is None:
            missing.add(path)
        else:
            _count(counts, got)
    return missing


class _LaterRemovals:
    """Which of the primary's commits after version ``after`` (up to ``last``) remove each
    file. The commits are read forward, once per table and round and only as far as the
    questions need: a table vacuumed at many versions asks about the same later commits for
    each of them."""

    def __init__(self, src: Root, table: str, after: int, last: int) -> None:
        self._src, self._table, self._last = src, table, last
        self._next = after + 1
        #: file -> the versions of the commits read that remove it
        self._removed_at: dict[str, list[int]] = {}
        #: versions read whose commit file could not be read (log cleanup)
        self._unreadable: list[int] = []

    def all_removed_after(self, version: int, missing: set[str]) -> bool:
        """Whether commits after ``version`` (up to ``last``, and before any that cannot be
        read) remove every file in ``missing``: files the primary vacuumed because no version
        it keeps needs them. The replica's version ``version`` then lacks them as the
        primary's does."""
        gap = min((v for v in self._unreadable if v > version), default=None)
        end = self._last + 1 if gap is None else gap
        left = {path for path in missing
                if not any(version < v < end for v in self._removed_at.get(path, ()))}
        while left and gap is None and self._next <= self._last:
            later = self._next
            removed = self._read_next()
            if later > version:
                if removed is None:
                    return False
                left -= removed
        return not left

    def _read_next(self) -> set[str] | None:
        """The files the next commit removes, recorded (None: its file cannot be read)."""
        version = self._next
        self._next += 1
        try:
            raw = self._src.read(f"{self._table}/{LOG}/{commit_name(version)}")
        except OSError:
            self._unreadable.append(version)
            return None
        removed = delta_log.removed_files(delta_log.parse_actions(raw))
        for path in removed:
            self._removed_at.setdefault(path, []).append(version)
        return removed


def _restart_from_checkpoint(src: Root, dst: Root, table: str, src_log: LogListing,
                             start: int, upto: int, counts: Counts,
                             pause: Callable[[str], None] | None) -> int:
    """Copy the newest primary checkpoint ``c`` in ``start..upto`` after whose commits the
    log is whole, with the files live at ``c``; returns ``c + 1``."""
    candidates = [c for c in src_log.checkpoints if start <= c <= upto
                  and all(v in src_log.commits for v in range(c + 1, upto + 1))]
    if not candidates:
        raise ReplicationError(f"the primary's table '{table}' no longer holds commit {start} "
                               "nor a checkpoint to start from after it")
    checkpoint = max(candidates)
    from btlake_pipelines.storage.delta import open_table

    dt = open_table(src.uri, table, checkpoint)
    from urllib.parse import unquote

    files = [unquote(f.path) for f in delta_log.live_files(dt)]
    missing = _copy_files(src, dst, table, files, counts, pause)
    if missing:
        raise ReplicationError(f"the primary's table '{table}' lacks {len(missing)} data "
                               f"file(s) of its version {checkpoint}")
    for name in src_log.checkpoints[checkpoint]:
        _count(counts, copy_object(src, dst, f"{table}/{LOG}/{name}"))
    counts.log_entries += 1
    if checkpoint in src_log.commits:
        write_new(dst, f"{table}/{LOG}/{commit_name(checkpoint)}",
                  src.read(f"{table}/{LOG}/{commit_name(checkpoint)}"))
    return checkpoint + 1


def _copy_older_checkpoints(src: Root, dst: Root, table: str, src_log: LogListing,
                            have_log: LogListing, have: int, counts: Counts) -> None:
    """Checkpoints the primary wrote (hourly upkeep) for versions the replica already had."""
    for version, names in src_log.checkpoints.items():
        if version <= have and version not in have_log.checkpoints:
            for name in names:
                _count(counts, copy_object(src, dst, f"{table}/{LOG}/{name}"))


def _copy_last_checkpoint(src: Root, dst: Root, table: str, replica_version: int,
                          held: set[int]) -> None:
    """The primary's ``_last_checkpoint`` when it points to a version the replica holds and
    to a checkpoint in ``held`` (the ones the listings showed: copied by now), never to a
    checkpoint written after the round listed the log."""
    rel = f"{table}/{LOG}/{LAST_CHECKPOINT}"
    try:
        raw = src.read(rel)
        pointed = int(json.loads(raw)["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if pointed > replica_version or pointed not in held:
        return
    try:
        if dst.read(rel) == raw:
            return
    except OSError:
        pass
    put(dst, rel, raw)


def _count(counts: Counts, got: int | None) -> None:
    if got is None:
        return
    if got:
        counts.files_copied += 1
        counts.bytes_copied += got
    else:
        counts.files_skipped += 1
