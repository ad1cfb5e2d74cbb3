"""Turning user time and version arguments into something Delta understands."""

from __future__ import annotations

from datetime import UTC, date, datetime

from btlake_pipelines.errors import QueryError


def parse_time(value: datetime | date | str, *, what: str = "time") -> datetime:
    """A datetime, date or ISO-8601 text as an aware UTC datetime (no offset means UTC)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            return parse_time(datetime.fromisoformat(text), what=what)
        except ValueError:
            pass
    raise QueryError(f"{what} must be an ISO-8601 timestamp such as 2024-01-31T09:30:00Z, "
                     f"got {str(value)[:60]!r}")


def parse_as_of(value: int | str | datetime | date) -> int | datetime:
    """``--as-of``: all digits (or an int) is a version; anything else a timestamp."""
    if isinstance(value, bool):
        raise QueryError("as_of must be a version number or an ISO-8601 timestamp")
    if isinstance(value, int):
        if value < 0:
            raise QueryError("as_of version must be >= 0")
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return parse_time(value, what="as_of")


def resolve_as_of(catalog, table: str, value: int | str | datetime | date) -> int | datetime:
    """:func:`parse_as_of` for one table of a lake, with ``tag:NAME`` meaning the version tag
    NAME recorded for ``table`` (``catalog``: a :class:`~btlake_pipelines.storage.catalog.
    Catalog`, which looks the tag up once per version of the tags table)."""
    from btlake_pipelines.versions.tags import cached_tag, is_tag, tag_name

    if is_tag(value):
        assert isinstance(value, str)
        return cached_tag(catalog, tag_name(value)).version_of(table)
    return parse_as_of(value)


def catalog_at(catalog, as_of: int | str | datetime | date):
    """A catalog whose ``runs`` table is the one of ``as_of`` (a version, time or
    ``tag:NAME`` of ``runs``): what ``btlake runs --as-of`` searches."""
    from btlake_pipelines.contract.tables import RUNS
    from btlake_pipelines.storage.catalog import Catalog

    version = resolve_as_of(catalog, RUNS, as_of)
    dt = catalog.table_at(RUNS, version)

    class _RunsAt(Catalog):
        """The runs table frozen at one version (the other tables as they are)."""

        def runs_index(self):
            with self._lock:
                if self._runs is None:
                    self._runs = self._load_runs(dt)
                return self._runs

        def runs_version(self) -> int | None:
            return dt.version()

    return _RunsAt(catalog.lake)
