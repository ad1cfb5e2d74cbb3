"""Lake-wide tags: one atomic record of every table's version, kept in a Delta table of
btlake's own (``<lake>/_tags``), so the record of tags is itself versioned and readable by any
Delta reader.

A tag row is ``name``, ``created_at``, ``message`` and ``versions``
(``list<struct<table, version>>``). Creating one is a single commit made against the snapshot
in which the name was found free, with deltalake's conflict retries off: of two concurrent
creates of the same name exactly one commits, the other re-reads the table and finds the name
taken. Tags are immutable; deleting one is one ``DELETE`` commit.

Versions are captured ``runs`` first, then the fact tables, then ``ingest_log``: a run's fact
rows are committed before its ``runs`` row, so every run the tag's ``runs`` version shows has
all its rows in the tag's fact versions. Rows of batches still in flight at that moment may be
there too; reads through btlake at a tag keep only rows of runs that ``runs`` shows at the tag
(:mod:`btlake_pipelines.query.read`), as the latest reads do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pyarrow as pa

from btlake_pipelines.contract.run_ids import NAME_RULE, is_valid_name
from btlake_pipelines.contract.tables import FACT_TABLES, INGEST_LOG, RUNS
from btlake_pipelines.errors import BtlakeError, NotFoundError, QueryError, TagExistsError
from btlake_pipelines.storage import predicates as P
from btlake_pipelines.storage.delta import open_table
from btlake_pipelines.storage.delta_log import table_uri

#: Where the tags live, under the lake root (names starting with ``_`` are btlake's own).
TAGS = "_tags"
#: ``as_of`` values naming a tag: ``tag:NAME``.
PREFIX = "tag:"
#: The order versions are captured in (see the module docstring).
CAPTURE_ORDER: tuple[str, ...] = (RUNS, *FACT_TABLES, INGEST_LOG)
SCHEMA = pa.schema([
    ("name", pa.string()),
    ("created_at", pa.timestamp("us", "UTC")),
    ("message", pa.string()),
    ("versions", pa.list_(pa.struct([("table", pa.string()), ("version", pa.int64())]))),
])
_ATTEMPTS = 20


@dataclass(frozen=True)
class Tag:
    """One tag: its name, when it was made, its message and the version of every table."""

    name: str
    created_at: datetime
    message: str | None
    versions: dict[str, int]

    def record(self) -> dict[str, Any]:
        """The object of ``btlake tag list --format json``:
        ``{"name", "created_at", "message", "versions": {TABLE: N}}``."""
        return {"name": self.name, "created_at": self.created_at.isoformat(),
                "message": self.message, "versions": dict(self.versions)}

    def version_of(self, table: str) -> int:
        """The version this tag recorded for ``table``."""
        if table not in self.versions:
            raise NotFoundError(f"tag '{self.name}' records no version of table '{table}' "
                                "(the table did not exist when it was made)")
        return self.versions[table]


def check_name(name: object) -> str:
    """``name`` when it is a valid tag name, else a :class:`QueryError` naming ``name``."""
    if not is_valid_name(name):
        raise QueryError(f"{{param}} must be {NAME_RULE}, got {str(name)[:60]!r}",
                         param="name")
    return name


def is_tag(value: object) -> bool:
    return isinstance(value, str) and value.strip().startswith(PREFIX)


def tag_name(value: str) -> str:
    """The NAME of an ``as_of`` value ``tag:NAME``."""
    return check_name(value.strip()[len(PREFIX):])


def current_versions(lake: str) -> dict[str, int]:
    """The latest version of every table that exists, read in :data:`CAPTURE_ORDER`."""
    versions: dict[str, int] = {}
    for table in CAPTURE_ORDER:
        dt = open_table(lake, table)
        if dt is not None:
            versions[table] = dt.version()
    return versions


def create_tag(lake: str, name: str, message: str | None = None) -> Tag:
    """Record the current version of every table as ``name``; :class:`TagExistsError` when
    that name is taken, even by a create racing this one."""
    from deltalake import CommitProperties, write_deltalake
    from deltalake.exceptions import CommitFailedError

    check_name(name)
    if message is not None and not isinstance(message, str):
        raise QueryError("{param} must be text", param="message")
    _ensure_table(lake)
    for _ in range(_ATTEMPTS):
        snapshot = open_table(lake, TAGS)
        if _find(snapshot, name) is not None:
            raise TagExistsError(f"tag '{name}' exists already (tags are immutable; delete it "
                                 "first to record it again)")
        tag = Tag(name, datetime.now(UTC), message, current_versions(lake))
        props = CommitProperties(custom_metadata={"btlake.tag": name}, max_commit_retries=0)
        try:
            write_deltalake(snapshot, _rows([tag]), mode="append", commit_properties=props)
            return tag
        except CommitFailedError:
            continue  # another tag landed meanwhile: look again
    raise BtlakeError(f"could not record tag '{name}': the tags table kept changing; retry")


def _ensure_table(lake: str) -> None:
    """Create the empty tags table once. Two racing creators write the same empty version 0
    (on a store without put-if-absent one may overwrite the other's, which is the same);
    tags themselves are only ever added by commits against a snapshot of it."""
    from deltalake import DeltaTable

    from btlake_pipelines.settings import storage_options

    if open_table(lake, TAGS) is not None:
        return
    uri = table_uri(lake, TAGS)
    try:
        DeltaTable.create(uri, SCHEMA, mode="ignore", storage_options=storage_options(uri))
    except Exception:
        if open_table(lake, TAGS) is None:  # not a race lost to another creator
            raise


def delete_tag(lake: str, name: str) -> Tag:
    """Remove tag ``name`` (its versions are then no longer kept by maintenance)."""
    from deltalake import CommitProperties

    check_name(name)
    dt = open_table(lake, TAGS)
    found = None if dt is None else _find(dt, name)
    if found is None:
        raise NotFoundError(f"unknown tag '{name}'")
    dt.delete(P.eq("name", name),
              commit_properties=CommitProperties(custom_metadata={"btlake.untag": name}))
    return found


def list_tags(lake: str, dt=None) -> list[Tag]:
    """Every tag, oldest first (``dt``: the tags table already open, at any version)."""
    dt = dt if dt is not None else open_table(lake, TAGS)
    if dt is None:
        return []
    tags = [_tag(r) for r in pl.scan_delta(dt).collect().iter_rows(named=True)]
    return sorted(tags, key=lambda t: (t.created_at, t.name))


def get_tag(lake: str, name: str, dt=None) -> Tag:
    """Tag ``name``; :class:`NotFoundError` naming ``as_of`` when there is none."""
    check_name(name)
    dt = dt if dt is not None else open_table(lake, TAGS)
    found = None if dt is None else _find(dt, name)
    if found is None:
        raise NotFoundError(f"unknown tag '{name}' in {{param}} (see 'btlake tag list')",
                            param="as_of")
    return found


def cached_tag(catalog, name: str) -> Tag:
    """Tag ``name`` as the tags table's latest version has it, looked up once per version of
    that table (``catalog``: a :class:`~btlake_pipelines.storage.catalog.Catalog`), so one read
    at ``tag:NAME`` resolves it once for every table it opens. Deleting or re-creating a tag
    commits a new version of the tags table, so a cached tag is never stale."""
    dt = catalog.table(TAGS)
    if dt is None:
        return get_tag(catalog.lake, name, dt)
    return catalog.derived((f"tag-record:{name}", dt.version()),
                           lambda: get_tag(catalog.lake, name, dt))


def pinned_versions(lake: str) -> dict[str, set[int]]:
    """Per table, the versions some tag records: what maintenance must keep readable."""
    out: dict[str, set[int]] = {}
    for tag in list_tags(lake):
        for table, version in tag.versions.items():
            out.setdefault(table, set()).add(version)
    return out


def _find(dt, name: str) -> Tag | None:
    rows = pl.scan_delta(dt).filter(pl.col("name") == name).collect()
    return _tag(rows.row(0, named=True)) if rows.height else None


def _tag(row: dict[str, Any]) -> Tag:
    return Tag(row["name"], row["created_at"], row["message"],
               {v["table"]: int(v["version"]) for v in row["versions"] or []})


def _rows(tags: list[Tag]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"name": t.name, "created_at": t.created_at, "message": t.message,
          "versions": [{"table": k, "version": v} for k, v in t.versions.items()]}
         for t in tags], schema=SCHEMA)
