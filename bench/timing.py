"""Timing helpers: wall time with ``time.perf_counter``, medians with min/max."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    samples: list[float] = field(default_factory=list)  # seconds

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def min(self) -> float:
        return min(self.samples) if self.samples else float("nan")

    @property
    def max(self) -> float:
        return max(self.samples) if self.samples else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {"median": self.median, "min": self.min, "max": self.max, "n": len(self.samples),
                "samples": self.samples}


class Measured(float):
    """Seconds a contender measured itself (e.g. inside the peer process)."""


def clock(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def interleave(contenders: dict[str, Callable[[], Any]], reps: int, *,
               setup: Callable[[str, int], None] | None = None,
               warmup: int = 0) -> dict[str, Stats]:
    """Run each contender ``reps`` times, round robin (A B C A B C ...), so a noisy neighbour
    hits them alike. A contender that measures itself returns :class:`Measured` seconds;
    anything else it returns is ignored and the call is timed here. ``setup(name, rep)`` runs
    untimed before each call; what it and the previous call wrote is flushed to disk first
    (``os.sync``), so no contender pays for another's, or its setup's, write-back."""
    stats = {name: Stats() for name in contenders}
    for rep in range(-warmup, reps):
        for name, fn in contenders.items():
            if setup is not None:
                setup(name, rep)
            os.sync()
            t0 = time.perf_counter()
            measured = fn()
            elapsed = time.perf_counter() - t0
            if rep >= 0:
                stats[name].samples.append(float(measured) if isinstance(measured, Measured)
                                           else elapsed)
    return stats
