"""A replication round over the whole lake root, and the replica's lag.

What is copied is found, not listed in code: every folder with a ``_delta_log`` under the root
is a table (the section-1 tables, ``runs``, ``ingest_log``, and any btlake table under a
``_name`` folder: tags, coverage, lineage), and every other file under a ``_name`` folder
(``_archive``, ``_quarantine``, ...) is a plain file. Left out: the replicator's own
``_replication``, and what each lake keeps of its own: the ``_maintenance`` record and the
``_coverage`` summary (see :data:`SKIPPED`).

Runs stay whole on the replica. On the primary a run's ``runs`` row is written after its fact
tables, and btlake's reads keep a run's rows only where its ``runs`` row records that content
(pinning the version it names while a replace is under way: ``query/read.py``). A round
therefore fixes the versions to copy first for btlake's bookkeeping tables (``_name`` tables,
then ``runs`` and ``ingest_log``), then for the other tables, and copies in the reverse order:
every version a copied ``runs`` row names is on the replica before that row is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from btlake_pipelines.metadata.coverage_table import COVERAGE
from btlake_pipelines.replication.objects import (
    STATE_DIR,
    Counts,
    ReplicationError,
    Root,
    copy_object,
    pool,
    put,
)
from btlake_pipelines.replication.tables import (
    LOG,
    LogListing,
    commit_name,
    latest_version,
    list_log,
    replicate_table,
)
from btlake_pipelines.storage import delta_log
from btlake_pipelines.storage.replica import MARKER

#: Top-level names a round never copies: the replicator's state, per-lake upkeep records, and
#: the coverage summary, which every lake keeps of its own tables and refreshes when read (on
#: a replica, from the replicated logs): copied, the replica's refresh would commit to a copy
#: of the primary's log and the two would diverge.
SKIPPED = {STATE_DIR, "_maintenance", COVERAGE}
#: btlake's bookkeeping tables that name versions of the others (copied after them).
BOOKKEEPING = ("runs", "ingest_log")


@dataclass
class Layout:
    """What a lake root holds: tables (paths relative to the root) and plain files (-> size)."""

    tables: list[str] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)


def discover(root: Root) -> Layout:
    """Tables and btlake's plain files under ``root`` (see the module docstring)."""
    out = Layout()
    for name, is_dir in root.names(""):
        if name in SKIPPED or name.startswith("."):
            continue
        if not name.startswith("_"):
            if is_dir and root.is_dir(f"{name}/{LOG}"):
                out.tables.append(name)
            continue
        if not is_dir:
            out.files[name] = int(root.info(name).size or 0)
            continue
        listed = root.listing(name, recursive=True)
        tables = _table_roots(listed)
        if "" in tables:  # the folder itself is a table
            out.tables.append(name)
            continue
        out.tables.extend(f"{name}/{t}" for t in sorted(tables))
        for rel, size in listed.items():
            if not any(rel.startswith(f"{t}/") for t in tables):
                out.files[f"{name}/{rel}"] = size
    return out


def _table_roots(listed: dict[str, int]) -> set[str]:
    """The folders (relative, "" for the listed folder itself) holding a ``_delta_log``."""
    roots = set()
    for rel in listed:
        parts = rel.split("/")
        if LOG in parts[:-1]:
            roots.add("/".join(parts[:parts.index(LOG)]))
    return roots


def copy_order(tables: list[str]) -> list[str]:
    """Tables in the order a round copies them: the others, then ``runs`` / ``ingest_log``,
    then btlake's ``_name`` tables."""
    def rank(table: str) -> tuple[int, str]:
        return (2 if table.startswith("_") else 1 if table in BOOKKEEPING else 0, table)

    return sorted(tables, key=rank)


@dataclass
class RoundResult:
    """One round: the version each table was brought to, and what was copied."""

    versions: dict[str, int] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)
    seconds: float = 0.0


def replicate_once(primary: str, replica: str,
                   pause: Callable[[str], None] | None = None) -> RoundResult:
    """Copy what the primary holds and the replica lacks (module docstring); idempotent."""
    started = time.monotonic()
    pause = pause or _fault_point
    src, dst = Root.of(primary), Root.of(replica)
    if src.uri == dst.uri or _inside(src.uri, dst.uri) or _inside(dst.uri, src.uri):
        raise ReplicationError("{param} is the lake itself, or inside it, or holds it; "
                               "name a location apart from the lake", param="to")
    _mark(dst, src)
    _tidy(dst)
    layout = discover(src)
    order = copy_order(layout.tables)
    listed: dict[str, LogListing] = {}
    for table in reversed(order):  # versions fixed bookkeeping first, copied last
        listed[table] = list_log(src, table)  # once per round: the copy works from it
    targets = {table: log.version for table, log in listed.items()}
    result = RoundResult()
    result.counts.add(_copy_plain(src, dst, layout.files, pause))
    for table in order:
        if targets[table] >= 0:
            result.counts.add(replicate_table(src, dst, table, targets[table], pause,
                                              listed[table]))
        result.versions[table] = max(targets[table], latest_version(dst, table))
    result.seconds = time.monotonic() - started
    return result


def _inside(outer: str, inner: str) -> bool:
    return inner.startswith(outer.rstrip("/") + "/")


#: Temporary files older than this are left by a killed run (a live copy renames its own
#: within seconds), and removed at the start of a round.
STALE_TMP_SECONDS = 3600


def _tidy(dst: Root) -> None:
    """Remove what killed runs left in a local replica's ``_replication/tmp``."""
    if not dst.local:
        return  # an S3 upload a killed run left incomplete is no object (see the docs)
    import os

    folder = os.path.join(dst.path, STATE_DIR, "tmp")
    cutoff = time.time() - STALE_TMP_SECONDS
    for entry in os.scandir(folder) if os.path.isdir(folder) else ():
        try:
            if entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
        except OSError:
            continue


def _fault_point(name: str) -> None:
    """The crash tests' named points (``BTLAKE_FAULT_POINT=replicate:<name>[#n]``)."""
    from btlake_pipelines.ingest.faults import point

    point(f"replicate:{name}")


def _copy_plain(src: Root, dst: Root, files: dict[str, int],
                pause: Callable[[str], None]) -> Counts:
    """btlake's plain files: copied when the replica lacks them or holds another size. They
    are written once (an archive copy per handling, a quarantined folder per refusal), so a
    file of the same size is the same file."""
    counts = Counts()
    there: dict[str, int] = {}
    for top in sorted({rel.split("/")[0] for rel in files}):
        if any(rel.startswith(f"{top}/") for rel in files):
            there.update({f"{top}/{k}": v for k, v in dst.listing(top, recursive=True).items()})
        elif dst.exists(top):
            there[top] = int(dst.info(top).size or 0)
    todo = sorted(rel for rel, size in files.items() if there.get(rel) != size)
    counts.files_skipped = len(files) - len(todo)

    def one(rel: str) -> int | None:
        got = copy_object(src, dst, rel, size=files[rel], check_existing=False)
        pause("after_plain_file")
        return got

    for got in pool().map(one, todo):
        if got:
            counts.files_copied += 1
            counts.bytes_copied += got
    return counts


def _mark(dst: Root, src: Root) -> None:
    """Record in the replica that it is one (maintenance there then never rewrites files)."""
    if not dst.exists(MARKER):
        if discover(dst).tables:
            raise ReplicationError("{param} holds a lake that is not a replica of this one "
                                   "(or one promoted since); name a new location",
                                   param="to")
        put(dst, MARKER, json.dumps({"primary": _public(src.uri),
                                     "since": datetime.now(UTC).isoformat()}).encode())


def promote(lake: str) -> bool:
    """Make a replica a primary: maintenance there compacts again, replicate into it
    refuses. True when it was a replica."""
    root = Root.of(lake)
    if not root.exists(MARKER):
        return False
    root.fs.delete_file(root.full(MARKER))
    return True


def _public(uri: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))


@dataclass
class TableLag:
    """A table's latest version on each side and the time of that commit (ms, None: none)."""

    primary_version: int | None
    replica_version: int | None
    primary_millis: int | None = None
    replica_millis: int | None = None


def lag(primary: str, replica: str) -> dict[str, TableLag]:
    """Per table of the primary: its latest version and the replica's (None: none yet), with
    the times of those commits (one small read each; one when both sides are level)."""
    src, dst = Root.of(primary), Root.of(replica)
    out: dict[str, TableLag] = {}
    for table in copy_order(discover(src).tables):
        p = latest_version(src, table)
        r = list_log(dst, table).version
        entry = TableLag(p if p >= 0 else None, r if r >= 0 else None)
        if p >= 0:
            entry.primary_millis = _commit_time(src, src, table, p)
        if r >= 0:
            entry.replica_millis = entry.primary_millis if r == p else \
                _commit_time(dst, src, table, r)
        out[table] = entry
    return out


def lag_seconds(primary: str, lags: dict[str, TableLag]) -> float:
    """How much older the replica's newest commit (over all tables) is than the primary's;
    0 when every table is level. A replica holding nothing yet counts from the primary's
    first commit."""
    if all(t.primary_version == t.replica_version for t in lags.values()):
        return 0.0
    newest = max((t.primary_millis for t in lags.values() if t.primary_millis), default=None)
    theirs = max((t.replica_millis for t in lags.values() if t.replica_millis), default=None)
    if theirs is None:
        src = Root.of(primary)
        firsts = [_first_commit_time(src, table) for table in lags]
        theirs = min((f for f in firsts if f is not None), default=None)
    if newest is None or theirs is None:
        return 0.0
    return max(0.0, (newest - theirs) / 1000)


def _commit_time(root: Root, fallback: Root, table: str, version: int) -> int | None:
    for r in (root, fallback):
        try:
            actions = delta_log.parse_actions(r.read(f"{table}/{LOG}/{commit_name(version)}"))
        except OSError:
            continue
        millis = delta_log.commit_millis(actions)
        if millis is not None:
            return millis
    return None


def _first_commit_time(root: Root, table: str) -> int | None:
    commits = list_log(root, table).commits
    return _commit_time(root, root, table, min(commits)) if commits else None
