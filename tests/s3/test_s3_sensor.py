"""The Dagster landing sensor over an S3 landing prefix (the same code as for a folder)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from btlake_pipelines import publish
from btlake_pipelines.ingest.batch import ingest
from btlake_pipelines.landing import open_landing
from btlake_pipelines.landing import s3 as s3_landing
from btlake_pipelines.storage.object_store import s3_client

from .conftest import S3Lake
from .helpers import backtest
from .test_s3_landing import Calls

pytestmark = pytest.mark.s3

#: The zone's clock; tests move it to write arrivals "in the past", then put it back.
REAL_CLOCK = s3_landing._utcnow


def test_landing_sensor_on_s3_reads_only_what_is_new(s3: S3Lake, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster import DagsterInstance, SensorResult, build_sensor_context

    from btlake_pipelines.defs.resources import LandingZoneResource
    from btlake_pipelines.defs.sensors import landing_sensor

    src = tmp_path / "src"
    old = [f"old-{i:03d}" for i in range(30)]
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    monkeypatch.setattr(s3_landing, "_utcnow", lambda: two_days_ago)
    for name in old:
        publish(backtest(src, name, 2))
    monkeypatch.setattr(s3_landing, "_utcnow", REAL_CLOCK)

    calls = Calls(s3_client())  # the client every zone of this env shares
    try:
        with DagsterInstance.ephemeral() as instance:
            def tick(cursor: str | None) -> SensorResult:
                context = build_sensor_context(
                    instance=instance, cursor=cursor,
                    resources={"landing": LandingZoneResource(uri=s3.landing)})
                result = landing_sensor(context)
                assert isinstance(result, SensorResult)
                return result

            first = tick(None)  # first tick: one sweep of what waits
            [request] = first.run_requests
            assert request.run_config["ops"]["ingest_bundles"]["config"]["bundles"] == old
            # The run it asked for: ingest those bundles (they leave landing).
            done = ingest(s3.lake, open_landing(s3.landing), old)
            assert {r.status for r in done.results} == {"ingested"}

            for name in ("new-2", "new-1"):
                publish(backtest(src, name, 2))
            calls.reset()
            second = tick(first.cursor)
            [request] = second.run_requests
            assert request.run_config["ops"]["ingest_bundles"]["config"]["bundles"] == [
                "new-2", "new-1"]
            assert calls.ops["ListObjectsV2"] == 1 and calls.listed == 2
            # HEADs: the two new manifests, and each earlier request checked once (gone now).
            assert calls.ops["HeadObject"] == 2 + len(old)

            calls.reset()
            third = tick(second.cursor)
            assert not third.run_requests
            assert calls.ops["ListObjectsV2"] == 1 and calls.listed == 2
            assert calls.ops["HeadObject"] <= 2  # the two requested, still waiting for a run
            zone_cursor = json.loads(json.loads(third.cursor)["zone"])
            assert len(zone_cursor["seen"]) == 2
    finally:
        calls.close()
