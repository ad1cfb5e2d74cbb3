"""Where an ingesting process is, told to whoever watches it.

A process that dies in native code leaves no traceback. The crash supervisor
(:mod:`ingest.isolated`) reads its child's messages as they are written; before each commit
the child sends here which table it is writing and for which bundles, so a crash's quarantine
reason can name the table. With no watcher (an ingest in this process) a call costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

Sink = Callable[[dict], None]
_sink: Sink | None = None


def report_to(sink: Sink | None) -> None:
    """Send this process's breadcrumbs to ``sink`` (None: nowhere)."""
    global _sink
    _sink = sink


def writing(table: str, bundles: list[str]) -> None:
    """Record that a commit of ``table`` holding ``bundles``' rows starts now."""
    if _sink is not None:
        _sink({"stage": "commit", "table": table, "bundles": bundles[:100]})
