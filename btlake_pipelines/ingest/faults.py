"""Fault injection for the crash-safety tests.

Two kinds, both named by ``BTLAKE_FAULT_POINT``:

- ``<name>`` (or ``<name>#<n>`` for the n-th time the point is reached) SIGKILLs the whole
  ingest at a named point of the write path: no ``finally``, no flush, exactly what a power cut
  or an operator's ``kill -9`` leaves behind. Under the crash supervisor
  (:mod:`ingest.isolated`) the supervising process is killed too, since that is what "the
  ingest was killed" means to its caller. The points are named in ``ingest/batch.py``
  (``loaded``, ``before_commit:<table>``, ``after_commit:<table>``, ``before_move``,
  ``after_move``).
- ``crash_on:<bundle>`` makes the native write of any commit holding that bundle's rows die
  with a real SIGSEGV inside native code, as a deltalake stack overflow does: the poison
  bundle the supervisor must retry once and then quarantine as ``ingest_crashed``.

A third, ``BTLAKE_FAULT_PAUSE=<folder>``, holds an ingest right after it claimed its
bundles (it creates ``<folder>/claimed`` and waits, at most a minute, for ``<folder>/go``), so
a test can race another ingester against one that holds claims, across processes.

Both are fields of :class:`~btlake_pipelines.settings.Settings` (``fault_point``,
``fault_pause``), so a test that sets the variable is seen at the next point; unset, a point
costs one look at the settings.
"""

from __future__ import annotations

import os
import signal

from btlake_pipelines.settings import current

CRASH_ON = "crash_on:"
_hits: dict[str, int] = {}


def point(name: str) -> None:
    """Kill the ingest here if ``BTLAKE_FAULT_POINT`` names this point (and hit count)."""
    wanted = current().fault_point
    if not wanted:
        return
    target, _, nth = wanted.partition("#")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(nth or 1):
        supervisor = current().supervised_by
        if supervisor is not None and supervisor == os.getppid():
            os.kill(supervisor, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


def native_write(bundles: list[str]) -> None:
    """Die in native code if ``BTLAKE_FAULT_POINT`` is ``crash_on:<one of bundles>``."""
    wanted = current().fault_point
    if not wanted or not wanted.startswith(CRASH_ON):
        return
    if wanted[len(CRASH_ON):] in bundles:
        import ctypes

        ctypes.string_at(0)  # a NULL read in C: SIGSEGV, no Python exception


def pause_after_claim() -> None:
    """Wait for the test's go-ahead if ``BTLAKE_FAULT_PAUSE`` names a folder."""
    folder = current().fault_pause
    if not folder:
        return
    import time
    from pathlib import Path

    Path(folder, "claimed").touch()
    deadline = time.monotonic() + 60
    while not Path(folder, "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
