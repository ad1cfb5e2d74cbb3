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
