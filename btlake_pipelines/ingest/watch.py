"""Deciding, tick by tick, which landed bundles to ingest next: the landing sensor's logic,
without Dagster, so it is tested with plain values.

The cursor remembers only the bundles already requested that are still in landing (handled
bundles leave landing, and are then forgotten), so its size and a tick's work follow what is
pending, never what was ever landed:

- one listing of landing (which holds only pending bundles);
- a manifest check only for names not already requested, and only until a batch is full;
- nothing at all while an ingestion run is in flight: batches run one after the other, so
  Delta writers never race and everything that landed meanwhile goes into the next batch.

A requested bundle is never requested again while it may still be handled. If it is still in
landing once no ingestion run is in flight (its run failed or was never launched), it is
retried after a back-off that doubles each attempt (1 min, 2 min, ... at most 1 h); each
attempt has its own run key, so Dagster never starts two runs for one request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

DEFAULT_BATCH_SIZE = 500
RETRY_AFTER_SECONDS = 60.0
MAX_RETRY_SECONDS = 3600.0


@dataclass(frozen=True)
class Request:
    attempt: int
    at: float  # epoch seconds of the request


@dataclass
class WatchState:
    """What the sensor's cursor holds: requested bundles still in landing."""

    requested: dict[str, Request] = field(default_factory=dict)

    def to_cursor(self) -> str:
        return json.dumps({"v": 1, "requested": {
            n: [r.attempt, round(r.at, 3)] for n, r in sorted(self.requested.items())}},
            separators=(",", ":"))

    @classmethod
    def from_cursor(cls, text: str | None) -> WatchState:
        if not text:
            return cls()
        try:
            doc = json.loads(text)
            return cls({str(n): Request(int(a), float(t))
                        for n, (a, t) in doc.get("requested", {}).items()})
        except (ValueError, TypeError, AttributeError):
            return cls()  # an unreadable cursor only costs a re-check of what is pending


@dataclass
class TickPlan:
    batch: list[str]
    run_key: str | None
    state: WatchState
    incomplete: list[str] = field(default_factory=list)
    waiting: int = 0  # requested earlier, still in landing
    retried: list[str] = field(default_factory=list)

    def reason(self) -> str:
        """Why no run was requested, for the sensor's skip message."""
        parts = []
        if self.waiting:
            parts.append(f"{self.waiting} bundle(s) already requested")
        if self.incomplete:
            parts.append(f"{len(self.incomplete)} incomplete (no manifest yet)")
        return "; ".join(parts) or "no new bundles in landing"


def backoff(attempt: int, retry_after: float = RETRY_AFTER_SECONDS) -> float:
    return min(retry_after * 2 ** max(attempt - 1, 0), MAX_RETRY_SECONDS)


def plan_tick(state: WatchState, listed: Iterable[str], is_complete: Callable[[str], bool], *,
              now: float, busy: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
              retry_after: float = RETRY_AFTER_SECONDS) -> TickPlan:
    """The next batch (at most ``batch_size`` complete bundles, in name order) and the new
    state. ``busy``: an ingestion run is in flight, so nothing new starts."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    names = sorted(set(listed))
    requested = {n: r for n, r in state.requested.items() if n in set(names)}
    plan = TickPlan([], None, WatchState(requested))
    if busy:
        plan.waiting = len(requested)
        return plan
    for name in names:
        if len(plan.batch) >= batch_size:
            break
        previous = requested.get(name)
        if previous is not None and now - previous.at < backoff(previous.attempt, retry_after):
            plan.waiting += 1
            continue
        if not is_complete(name):
            plan.incomplete.append(name)
            continue
        plan.batch.append(name)
        if previous is not None:
            plan.retried.append(name)
    for name in plan.batch:
        previous = requested.get(name)
        requested[name] = Request(previous.attempt + 1 if previous else 1, now)
    if plan.batch:
        plan.run_key = run_key([(n, requested[n].attempt) for n in plan.batch])
    return plan


def run_key(items: list[tuple[str, int]]) -> str:
    """Deterministic per (bundle, attempt) set: a re-evaluated tick cannot start a second run
    for the same request."""
    digest = hashlib.sha256(json.dumps(sorted(items)).encode()).hexdigest()[:24]
    return f"landing-{digest}"
