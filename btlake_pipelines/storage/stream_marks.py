"""Which partitions hold streamed rows: one empty marker object per (table, market, date)
under ``<lake>/_streams/``, written by :mod:`btlake_pipelines.streaming.writer` before the
first commit that streams into the partition.

Streamed rows have no archived bundle, so re-deriving a partition from the archive (a Dagster
backfill) would drop them; re-derivation (:mod:`btlake_pipelines.ingest.rederive`) leaves a
marked partition as it is instead. The markers outlive the Delta log's cleanup, which the
streamed commits' own metadata does not. A marker written for a commit that then failed only
makes re-derivation more careful.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from urllib.parse import quote

from btlake_pipelines.storage import lake_files

ROOT = "_streams"


def _folder(lake: str, table: str, market: str) -> str:
    return lake_files.join(lake, ROOT, table, quote(market, safe=""))


def mark(lake: str, table: str, parts: Iterable[tuple[str, str]]) -> None:
    """Record that streamed rows go to each ``(market, "YYYY-MM-DD")`` partition of ``table``."""
    for market, day in parts:
        lake_files.write_bytes(lake_files.join(_folder(lake, table, market), day), b"")


def marked(lake: str, table: str, markets: Iterable[str]) -> set[tuple[str, date]]:
    """The partitions of ``table`` in ``markets`` that streamed rows went to."""
    found = set()
    for market in set(markets):
        for name in lake_files.list_dir(_folder(lake, table, market)):
            try:
                found.add((market, date.fromisoformat(name)))
            except ValueError:
                continue  # a temporary file of a local write
    return found
