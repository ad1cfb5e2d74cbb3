"""The landing sensor's decisions as plain functions: batching, waiting for the run in flight,
forgetting handled bundles, retrying with back-off, and a cursor that survives round trips."""

from __future__ import annotations

from btlake_pipelines.app.watch import (
    MAX_PENDING,
    Request,
    WatchState,
    backoff,
    plan_tick,
    run_key,
)


def tick(state, offered, landed, *, now=1000.0, busy=False, batch_size=3):
    return plan_tick(state, offered, "zc", lambda n: n in landed, now=now, busy=busy,
                     batch_size=batch_size)


def test_nothing_new_starts_nothing():
    plan = tick(WatchState(), [], set())
    assert plan.batch == [] and plan.run_key is None
    assert plan.reason() == "no new complete bundles in landing"


def test_batches_are_capped_and_the_rest_waits_in_pending():
    names = [f"run-{i}" for i in range(7)]
    plan = tick(WatchState(), names, set(names))
    assert plan.batch == names[:3]
    assert plan.state.pending == names[3:]
    assert set(plan.state.requested) == set(names[:3])
    # the zone offers nothing new next tick (S3 offers each arrival once): pending carries on
    plan2 = tick(plan.state, [], set(names), busy=True)  # the first batch's run is in flight
    assert plan2.batch == [] and plan2.state.pending == names[3:]
    plan3 = tick(plan.state, [], set(names[3:]))  # first batch handled: it left landing
    assert plan3.batch == names[3:6] and sorted(plan3.forgotten) == names[:3]


def test_nothing_starts_while_a_run_is_in_flight_and_offers_are_kept():
    first = tick(WatchState(), ["a", "b"], {"a", "b"})
    busy = tick(first.state, ["c"], {"a", "b", "c"}, busy=True)
    assert busy.batch == [] and busy.state.pending == ["c"]
    assert set(busy.state.requested) == {"a", "b"}
    assert "in flight" in busy.reason(busy=True)


def test_a_requested_bundle_is_never_offered_twice_while_it_may_be_handled():
    first = tick(WatchState(), ["a"], {"a"})
    # a zone that offers everything each tick (a local folder) offers "a" again
    again = tick(first.state, ["a"], {"a"}, now=1001.0)
    assert again.batch == [] and again.waiting == 1


def test_a_bundle_left_behind_by_a_failed_run_is_retried_with_backoff():
    first = tick(WatchState(), ["a"], {"a"}, now=0.0)
    early = tick(first.state, [], {"a"}, now=backoff(1) - 1)
    assert early.batch == []
    retry = tick(first.state, [], {"a"}, now=backoff(1))
    assert retry.batch == ["a"] and retry.retried == ["a"]
    assert retry.state.requested["a"].attempt == 2
    assert retry.run_key != first.run_key  # a new attempt, a new run key
    assert backoff(2) == 2 * backoff(1) and backoff(30) == 3600


def test_run_keys_are_deterministic_per_request():
    assert run_key([("a", 1), ("b", 1)]) == run_key([("b", 1), ("a", 1)])
    assert run_key([("a", 1)]) != run_key([("a", 2)])


def test_cursor_round_trip_and_corrupt_cursor():
    state = WatchState("zone", ["p"], {"a": Request(2, 12.5)})
    assert WatchState.from_cursor(state.to_cursor()) == state
    assert WatchState.from_cursor("not json") == WatchState()
    assert WatchState.from_cursor(None) == WatchState()


def test_pending_is_bounded():
    names = [f"r{i:05d}" for i in range(MAX_PENDING + 10)]
    plan = tick(WatchState(), names, set(names), batch_size=1)
    assert len(plan.state.pending) == MAX_PENDING
