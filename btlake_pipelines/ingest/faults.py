"""Fault injection for the crash-safety tests: a process killed at a named point of the write path.

``BTLAKE_FAULT_POINT=<name>`` (or ``<name>#<n>`` for the n-th time the point is reached) makes
the ingesting process SIGKILL itself there: no ``finally``, no flush, exactly what a power cut or
an OOM kill leaves behind. The points are named in ``ingest/batch.py`` (``loaded``,
``before_commit:<table>``, ``after_commit:<table>``, ``before_move``, ``after_move``).
Unset, a point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "BTLAKE_FAULT_POINT"
_hits: dict[str, int] = {}


def point(name: str) -> None:
    """Kill this process here if ``BTLAKE_FAULT_POINT`` names this point (and hit count)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    target, _, nth = wanted.partition("#")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
