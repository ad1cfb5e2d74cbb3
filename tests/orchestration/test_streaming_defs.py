"""Streamed partitions in Dagster: the sensor's ticks report one materialization per catalog
partition and window of commits (never one per batch), and the compaction job compacts a
closed day's streamed partitions without changing a row."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from dagster import AssetKey, DagsterInstance, SensorResult, build_sensor_context

from btlake_pipelines import Lake
from btlake_pipelines.definitions import defs
from btlake_pipelines.defs.partitions import MARKET
from btlake_pipelines.defs.resources import LakeResource
from btlake_pipelines.defs.streaming import compact_streamed_job, streamed_partitions_sensor
from tests.flight.flight_kit import T0, tick_batch


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        yield inst


def _stream(lake: str, seqs, market: str = "XNAS", days: int = 0) -> None:
    writer = Lake(lake).stream_writer()
    for s in seqs:  # each acked before the next is sent: one commit per batch
        meta = json.dumps({"writer": "feed", "seq": s}).encode()
        ack = writer.put("ticks", market, meta, tick_batch(s, start=T0 + timedelta(days=days)))
        assert ack.result(30).status == "accepted"
    writer.close()


def _tick(instance, lake: str, cursor: str | None) -> SensorResult:
    context = build_sensor_context(instance=instance, cursor=cursor,
                                   resources={"lake": LakeResource(uri=lake)})
    result = streamed_partitions_sensor(context)
    assert isinstance(result, SensorResult)
    # what the daemon does with a tick's result
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    return result


def test_streamed_commits_become_one_materialization_per_partition(instance, tmp_path):
    lake = str(tmp_path / "lake")
    assert _tick(instance, lake, None).skip_reason  # nothing streamed yet
    _stream(lake, range(1, 5))  # 4 commits, XNAS, one day
    _stream(lake, range(5, 7), market="XLON", days=1)  # 2 commits, XLON, the next day
    first = _tick(instance, lake, None)
    by_market = {e.partition.keys_by_dimension["market"]: e for e in first.asset_events}
    assert set(by_market) == {"XNAS", "XLON"}  # 6 commits, 2 partitions: 2 events
    xnas = by_market["XNAS"].metadata
    assert xnas["btlake/commits"].value == 4 and xnas["dagster/row_count"].value == 16
    assert by_market["XLON"].partition.keys_by_dimension["date"] == "2024-03-01"
    assert set(instance.get_dynamic_partitions(MARKET)) == {"XNAS", "XLON"}
    latest = instance.get_latest_materialization_event(AssetKey("ticks"))
    assert latest is not None

    again = _tick(instance, lake, first.cursor)
    assert again.skip_reason and not again.asset_events  # the cursor: nothing twice
    _stream(lake, [7, 8])
    later = _tick(instance, lake, again.cursor)
    [event] = later.asset_events
    assert event.metadata["btlake/commits"].value == 2
    assert event.metadata["btlake/writers"].value == {"feed": 8}


def test_the_compaction_job_compacts_a_closed_day_and_keeps_every_row(tmp_path):
    lake = str(tmp_path / "lake")
    _stream(lake, range(1, 7))
    before = Lake(lake).read("ticks").sort_by([("seq", "ascending"), ("ts", "ascending")])
    result = compact_streamed_job.execute_in_process(
        run_config={"ops": {"compact_streamed": {"config": {"day": T0.date().isoformat()}}}},
        resources={"lake": LakeResource(uri=lake)})
    assert result.success
    after = Lake(lake).read("ticks").sort_by([("seq", "ascending"), ("ts", "ascending")])
    assert after.equals(before)
    history = Lake(lake).history("ticks").to_pylist()
    assert history[0]["operation"] == "OPTIMIZE"
    from deltalake import DeltaTable

    assert len(DeltaTable(f"{lake}/ticks").file_uris()) == 1  # six streamed files, now one


def test_sensor_and_schedule_run_by_default():
    sensor = defs.get_sensor_def("streamed_partitions_sensor")
    schedule = defs.get_schedule_def("streamed_compaction")
    assert sensor.default_status.value == "RUNNING"
    assert schedule.default_status.value == "RUNNING"
