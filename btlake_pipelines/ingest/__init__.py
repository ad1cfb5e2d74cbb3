"""Ingestion: a batch of bundles from landing into the lake, one commit per table.

``ingest`` and ``BatchResult`` load on first use: the crash supervisor
(:mod:`btlake_pipelines.ingest.isolated`) lives in this package and must start its child
before its own process pays for Arrow, polars, deltalake and pandera.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["BatchResult", "ingest"]

if TYPE_CHECKING:
    from btlake_pipelines.ingest.batch import BatchResult, ingest


def __getattr__(name: str) -> Any:
    if name in __all__:
        from btlake_pipelines.ingest import batch

        return getattr(batch, name)
    raise AttributeError(name)
