"""S3LandingZone: the LandingZone interface on an S3 prefix, and the sensor's cursor."""

from __future__ import annotations

import io
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from btlake_pipelines.errors import redact
from btlake_pipelines.ingest.batch import ingest
from btlake_pipelines.landing import open_landing
from btlake_pipelines.landing import s3 as s3_landing
from btlake_pipelines.landing.s3 import S3AccessError, S3LandingZone
from btlake_pipelines.landing.zone import MANIFEST
from btlake_pipelines.storage.delta import open_table

from .conftest import S3Lake
from .helpers import backtest

pytestmark = pytest.mark.s3

#: The zone's clock; tests move it to write arrivals "in the past", then put it back.
REAL_CLOCK = s3_landing._utcnow


class Calls:
    """Counts the S3 requests a zone's boto3 client makes, and the keys listings return."""

    def __init__(self, client) -> None:
        self.ops: Counter[str] = Counter()
        self.listed = 0
        self._client = client
        client.meta.events.register("before-call.s3", self._before)
        client.meta.events.register("after-call.s3.ListObjectsV2", self._after_list)

    def close(self) -> None:
        self._client.meta.events.unregister("before-call.s3", self._before)
        self._client.meta.events.unregister("after-call.s3.ListObjectsV2", self._after_list)

    def _before(self, model, **_) -> None:
        self.ops[model.name] += 1

    def _after_list(self, parsed, **_) -> None:
        self.listed += len(parsed.get("Contents", [])) + len(parsed.get("CommonPrefixes", []))

    def reset(self) -> None:
        self.ops.clear()
        self.listed = 0


def _put(zone: S3LandingZone, name: str, files: dict[str, bytes]) -> None:
    for file_name, data in files.items():
        zone.write_file(name, file_name, io.BytesIO(data))


def test_zone_basics(s3: S3Lake, tmp_path: Path) -> None:
    zone = open_landing(s3.landing)
    assert isinstance(zone, S3LandingZone)
    assert zone.bundle_names() == [] and zone.complete_bundles() == []
    _put(zone, "run-a", {"trades.csv": b"ts,symbol\n", MANIFEST: b"{}"})
    _put(zone, "run-b", {"trades.csv": b"partial"})  # still being written: no manifest
    c = s3.client()
    c.put_object(Bucket=s3.bucket, Key="landing/run-a/sub/x.bin", Body=b"1")
    c.put_object(Bucket=s3.bucket, Key="landing/loose-file.txt", Body=b"not a bundle")

    assert zone.bundle_names() == ["run-a", "run-b"]  # the arrival index is not a bundle
    assert zone.complete_bundles() == ["run-a"]
    assert zone.has_manifest("run-a") and not zone.has_manifest("run-b")
    entries = zone.entries("run-a")
    assert {n: (e.kind, e.size) for n, e in entries.items()} == {
        "trades.csv": ("file", 10), MANIFEST: ("file", 2), "sub": ("dir", 0)}
    assert entries[MANIFEST].mtime_ns > 0
    assert zone.read_bytes("run-a", "trades.csv") == b"ts,symbol\n"
    assert zone.location("run-a") == f"{s3.landing}/run-a"
    assert len(s3.keys("landing/.arrivals/")) == 1  # one per manifest written

    # To S3: copied whole, then landing objects and the arrival key removed.
    zone.move_to("run-a", f"{s3.lake}/_archive/run-a/1")
    assert sorted(s3.keys("lake/_archive/run-a/1/")) == [
        "lake/_archive/run-a/1/manifest.json", "lake/_archive/run-a/1/sub/x.bin",
        "lake/_archive/run-a/1/trades.csv"]
    assert s3.keys("landing/run-a/") == [] and s3.keys("landing/.arrivals/") == []

    # To a local lake: keys that are not safe relative paths keep their name, encoded.
    c.put_object(Bucket=s3.bucket, Key="landing/run-b/../../escape.txt", Body=b"x")
    c.put_object(Bucket=s3.bucket, Key="landing/run-b/deep/ok.txt", Body=b"y")
    target = tmp_path / "lake" / "_quarantine" / "run-b"
    zone.move_to("run-b", str(target))
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) \
        == ["..%2F..%2Fescape.txt", "deep/ok.txt", "trades.csv"]
    assert not (tmp_path / "escape.txt").exists()
    assert not Path(f"{target}.partial").exists()
    assert zone.bundle_names() == []
    with pytest.raises(S3AccessError, match="no longer in landing"):
        zone.move_to("run-b", str(tmp_path / "again"))


def test_s3_landing_into_local_lake(s3: S3Lake, tmp_path: Path) -> None:
    """Landing on S3, lake on disk: the same batch code, archive copied down."""
    from btlake_pipelines import publish

    publish(backtest(tmp_path / "src", "mixed-1"))
    lake = str(tmp_path / "lake")
    result = ingest(lake, open_landing(s3.landing))
    assert [r.status for r in result.results] == ["ingested"]
    assert s3.keys("landing/") == []
    archived = [p for p in (tmp_path / "lake" / "_archive" / "mixed-1").rglob("*") if p.is_file()]
    assert sorted(p.name for p in archived) == ["equity.parquet", "manifest.json",
                                                "trades.parquet"]
    assert open_table(lake, "runs").version() == 0


def test_sensor_tick_costs_what_is_new(s3: S3Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of old keys in landing, a few new bundles: a tick lists and HEADs only those."""
    zone = S3LandingZone(s3.landing, client=s3.client())  # its own client, counted
    calls = Calls(zone.client)
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    monkeypatch.setattr(s3_landing, "_utcnow", lambda: two_days_ago)

    def old_bundle(i: int) -> None:
        files = {"trades.csv": b"x" * 10, "equity.csv": b"y" * 10}
        if i % 4:  # one in four is still incomplete (its engine died mid-write)
            files[MANIFEST] = b"{}"
        _put(zone, f"old-{i:05d}", files)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(old_bundle, range(600)))
    monkeypatch.setattr(s3_landing, "_utcnow", REAL_CLOCK)
    old_keys = len(s3.keys("landing/"))
    assert old_keys == 600 * 2 + 450 * 2  # tables, manifests, arrival keys

    # First tick, no cursor: one sweep offers every complete bundle waiting.
    calls.reset()
    first = zone.list_new(None)
    assert len(first.names) == 450 and all(n.startswith("old-") for n in first.names)
    assert calls.ops["HeadObject"] == 0  # manifests found by listing, not one HEAD per folder

    # Stale index keys were dropped by the sweep; the bundles stay until ingested.
    assert s3.keys("landing/.arrivals/") == []
    assert len(zone.complete_bundles()) == 450

    # Nothing new: one list call, nothing scanned.
    calls.reset()
    idle = zone.list_new(first.cursor)
    assert idle.names == []
    assert calls.ops == Counter({"ListObjectsV2": 1}) and calls.listed == 0

    # Three new bundles among the thousands of old keys.
    new = ["new-b", "new-a", "new-c"]
    for name in new:
        _put(zone, name, {"trades.csv": b"z", MANIFEST: b"{}"})
    calls.reset()
    tick = zone.list_new(idle.cursor)
    assert tick.names == new  # in arrival order
    assert calls.ops == Counter({"ListObjectsV2": 1, "HeadObject": 3})
    assert calls.listed == 3

    # The next tick sees the same three inside the look-back but offers nothing twice.
    calls.reset()
    after = zone.list_new(tick.cursor)
    assert after.names == []
    assert calls.ops == Counter({"ListObjectsV2": 1})
    assert len(json.loads(after.cursor)["seen"]) == 3


def test_sweep_accepts_bundles_written_without_the_index(s3: S3Lake) -> None:
    """An engine writing straight to S3 (contract layout only) is picked up by the sweep."""
    zone = S3LandingZone(s3.landing, sweep_every_seconds=0)
    first = zone.list_new(None)
    assert first.names == []
    c = s3.client()
    c.put_object(Bucket=s3.bucket, Key="landing/direct-1/trades.csv", Body=b"x")
    c.put_object(Bucket=s3.bucket, Key="landing/direct-1/manifest.json", Body=b"{}")
    _put(zone, "indexed-1", {"trades.csv": b"x", MANIFEST: b"{}"})
    tick = zone.list_new(first.cursor)
    assert tick.names == ["indexed-1", "direct-1"]

    lazy = S3LandingZone(s3.landing, sweep_every_seconds=3600)
    state = json.loads(tick.cursor)
    assert lazy.list_new(tick.cursor).names == []  # not due: the fast path only
    state["swept"] = "20000101T000000.000000Z"
    # Due: the sweep offers what the index does not cover (indexed-1 was offered already).
    assert lazy.list_new(json.dumps(state)).names == ["direct-1"]
    assert sorted(lazy.list_new("not a cursor").names) == ["direct-1", "indexed-1"]


def test_sensor_downtime_is_caught_up(s3: S3Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrivals while the sensor was off (longer than the look-back) are still offered once."""
    zone = S3LandingZone(s3.landing, lookback_seconds=60)
    start = datetime.now(UTC) - timedelta(hours=3)
    monkeypatch.setattr(s3_landing, "_utcnow", lambda: start)
    first = zone.list_new(None)
    monkeypatch.setattr(s3_landing, "_utcnow", lambda: start + timedelta(hours=1))
    _put(zone, "during-downtime", {MANIFEST: b"{}"})
    monkeypatch.setattr(s3_landing, "_utcnow", REAL_CLOCK)
    tick = zone.list_new(first.cursor)
    assert tick.names == ["during-downtime"]


def test_errors_name_the_location_not_the_credentials(s3: S3Lake) -> None:
    zone = S3LandingZone(f"s3://{s3.bucket}-missing/landing")
    with pytest.raises(S3AccessError) as err:
        zone.bundle_names()
    assert "NoSuchBucket" in str(err.value) and f"{s3.bucket}-missing" in str(err.value)
    with pytest.raises(S3AccessError):
        zone.write_file("x", MANIFEST, io.BytesIO(b"{}"))
    with pytest.raises(S3AccessError):
        zone.list_new(None)
    assert redact("http://user:pw@host/x?k=" + "AKIABTLAKETESTKEY042") == \
        "http://***@host/x?k=***"


def test_claims_are_leases_taken_by_conditional_put(s3: S3Lake,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    first = S3LandingZone(s3.landing)
    second = S3LandingZone(s3.landing)
    for name in ("c-1", "c-2"):
        _put(first, name, {MANIFEST: b"{}"})
    with first.claim(["c-1", "c-2", "c-gone"]) as mine:
        assert mine == ["c-1", "c-2"]  # a name with no bundle is not claimed
        assert sorted(s3.keys("landing/.claims/")) == ["landing/.claims/c-1",
                                                       "landing/.claims/c-2"]
        assert first.bundle_names() == ["c-1", "c-2"] == first.complete_bundles()
        with second.claim(["c-1", "c-2"]) as theirs:
            assert theirs == []
        first.move_to("c-1", f"{s3.lake}/_archive/c-1")
    assert s3.keys("landing/.claims/") == []  # released
    with second.claim(["c-1", "c-2"]) as theirs:
        assert theirs == ["c-2"]  # c-1 left landing meanwhile

    # A claim left by a process that died expires and is taken over.
    later = datetime.now(UTC) + timedelta(hours=2)
    abandoned: list = []
    with first.claim(["c-2"]) as mine:
        assert mine == ["c-2"]
        assert _claim_now(second, ["c-2"], abandoned) == []
        monkeypatch.setattr(s3_landing, "_utcnow", lambda: later)
        assert _claim_now(second, ["c-2"], abandoned) == ["c-2"]
        monkeypatch.setattr(s3_landing, "_utcnow", REAL_CLOCK)
    # The first holder's release did not delete the new holder's claim (If-Match).
    assert s3.keys("landing/.claims/") == ["landing/.claims/c-2"]


def _claim_now(zone: S3LandingZone, names: list[str], keep: list) -> list[str]:
    """Take claims and never release them, as a process that died would (the context is
    kept referenced: a collected generator would run its release)."""
    context = zone.claim(names)
    keep.append(context)
    return context.__enter__()
