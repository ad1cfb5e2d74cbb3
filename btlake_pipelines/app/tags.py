"""What the tag use cases of ``Lake`` return: :class:`TagInfo`, one tag with the version of
every table it pins, which every front end formats (``record()`` is the contract's JSON
object). It is the core's own record, named here so front ends import it from the
application layer."""

from __future__ import annotations

from btlake_pipelines.versions.tags import Tag as TagInfo

__all__ = ["TagInfo"]
