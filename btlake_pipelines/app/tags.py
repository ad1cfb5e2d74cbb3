"""What the tag and lineage use cases of ``Lake`` return: typed results every front end
formats (the CLI's table and JSON, the HTTP models, the browser)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from btlake_pipelines.versions.tags import Tag


@dataclass(frozen=True)
class TagInfo:
    """One tag: ``versions`` maps each table to the version the tag pins."""

    name: str
    created_at: datetime
    message: str | None
    versions: dict[str, int]

    def record(self) -> dict[str, Any]:
        """The object of ``btlake tag list --format json``:
        ``{"name", "created_at", "message", "versions": {TABLE: N}}``."""
        return {"name": self.name, "created_at": self.created_at.isoformat(),
                "message": self.message, "versions": dict(self.versions)}


def tag_info(tag: Tag) -> TagInfo:
    return TagInfo(tag.name, tag.created_at, tag.message, dict(tag.versions))
