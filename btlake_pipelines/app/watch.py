"""Deciding, tick by tick, which landed bundles to ingest next: the landing sensor's logic,
without Dagster, so it is tested with plain values. It belongs to the application layer, not
to ingestion: it is the policy of when to ingest what, which a watcher (the Dagster sensor,
:mod:`btlake_pipelines.defs.sensors`) applies to what landing offers
(:mod:`btlake_pipelines.app.landing`).

A tick's work follows what is new, not what was ever landed:

- the zone offers complete bundles through ``LandingZone.list_new(cursor)``: a local folder
  offers what it holds (handled bundles leave landing, so that is what is pending); S3 reads an
  arrival index from its cursor on, so a tick lists only recent arrivals;
- offered bundles wait in ``pending`` until a batch takes them (at most ``batch_size`` per run);
- a new batch starts while fewer than ``max_runs`` ingestion runs are in flight (default 2,
  ``BTLAKE_INGEST_RUNS``): writers commit concurrently under Delta's optimistic concurrency
  (``ingest/batch.py`` re-plans a wave another writer overtook), and whatever landed
  meanwhile goes into the next batch;
- ``requested`` remembers the bundles of earlier batches until they leave landing. Once no
  run is in flight at all, each is checked once (one manifest look-up): gone means handled and
  it is forgotten; still there means its run failed or never started, and it is retried after
  a back-off that doubles per attempt (1 min, 2 min, ... at most 1 h). A requested bundle is
  never put in a second batch while its first may still handle it, and each attempt has its
  own run key, so Dagster never starts two runs for one request. (A bundle that crashes its
  ingesting process does not come back here: the run quarantines it as ``ingest_crashed``
  after one retry, see ``ingest/isolated.py``.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

DEFAULT_BATCH_SIZE = 500
#: Ingestion runs in flight at once (``BTLAKE_INGEST_RUNS``).
DEFAULT_INGEST_RUNS = 2
RETRY_AFTER_SECONDS = 60.0
MAX_RETRY_SECONDS = 3600.0
#: Offered bundles kept in the cursor beyond this are dropped; the zone offers them again
#: (a local folder on the next tick, S3 on its next sweep), so the cursor stays small.
MAX_PENDING = 5000


@dataclass(frozen=True)
class Request:
    attempt: int
    at: float  # epoch seconds of the request


@dataclass
class WatchState:
    """What the sensor's cursor holds."""

    zone_cursor: str | None = None
    pending: list[str] = field(default_factory=list)
    requested: dict[str, Request] = field(default_factory=dict)

    def to_cursor(self) -> str:
        return json.dumps({
            "v": 2, "zone": self.zone_cursor, "pending": self.pending,
            "requested": {n: [r.attempt, round(r.at, 3)]
                          for n, r in sorted(self.requested.items())}},
            separators=(",", ":"))

    @classmethod
    def from_cursor(cls, text: str | None) -> WatchState:
        if not text:
            return cls()
        try:
            doc = json.loads(text)
            return cls(doc.get("zone"), [str(n) for n in doc.get("pending", [])],
                       {str(n): Request(int(a), float(t))
                        for n, (a, t) in doc.get("requested", {}).items()})
        except (ValueError, TypeError, AttributeError):
            return cls()  # an unreadable cursor only costs offering what is pending again


@dataclass
class TickPlan:
    batch: list[str]
    run_key: str | None
    state: WatchState
    waiting: int = 0  # requested earlier, their run in flight or backing off
    retried: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)  # requested, since left landing

    def reason(self, busy: bool = False) -> str:
        """Why no run was requested, for the sensor's skip message."""
        if busy:
            return (f"an ingestion run is in flight; {len(self.state.pending)} bundle(s) wait "
                    "for the next batch")
        if self.waiting:
            return f"{self.waiting} bundle(s) still in landing wait to be retried"
        return "no new complete bundles in landing"


def backoff(attempt: int, retry_after: float = RETRY_AFTER_SECONDS) -> float:
    return min(retry_after * 2 ** max(attempt - 1, 0), MAX_RETRY_SECONDS)


def plan_tick(state: WatchState, offered: Iterable[str], zone_cursor: str | None,
              still_landed: Callable[[str], bool], *, now: float, busy: bool = False,
              running: bool | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
              retry_after: float = RETRY_AFTER_SECONDS) -> TickPlan:
    """The next batch and the new state. ``offered``/``zone_cursor``: this tick's
    ``list_new`` answer; ``still_landed(name)``: whether a complete bundle of that name is in
    landing; ``busy``: as many ingestion runs are in flight as may be (no new batch);
    ``running``: at least one is (earlier requests are not judged yet; default: ``busy``)."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    running = busy if running is None else running or busy
    requested = dict(state.requested)
    pending = [n for n in dict.fromkeys([*state.pending, *offered]) if n not in requested]
    plan = TickPlan([], None, WatchState(zone_cursor, pending[:MAX_PENDING], requested))
    if busy:
        plan.waiting = len(requested)
        return plan

    retry: list[str] = []
    for name, request in sorted(requested.items()):
        if running:  # its run may still be handling it
            plan.waiting += 1
            continue
        if not still_landed(name):
            del requested[name]
            plan.forgotten.append(name)
        elif now - request.at >= backoff(request.attempt, retry_after):
            retry.append(name)
        else:
            plan.waiting += 1
    candidates = [*retry, *pending]
    plan.batch = candidates[:batch_size]
    plan.retried = [n for n in plan.batch if n in requested]
    plan.state.pending = [n for n in pending if n not in set(plan.batch)][:MAX_PENDING]
    plan.waiting += len([n for n in retry if n not in set(plan.batch)])
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
