"""``landing_sensor`` through its cursor transitions, with ``build_sensor_context`` and a real
landing folder: nothing new, some new, an incomplete bundle, more than one batch, a run in
flight, and never two runs for the same bundle."""

from __future__ import annotations

import json
import shutil

import pytest
from dagster import DagsterInstance, DagsterRunStatus, SensorResult, build_sensor_context
from dagster._core.storage.dagster_run import DagsterRun

from btlake_pipelines.defs.jobs import INGEST_JOB
from btlake_pipelines.defs.resources import LandingZoneResource
from btlake_pipelines.defs.sensors import landing_sensor

try:
    from . import orchestration_kit as kit
except ImportError:
    import orchestration_kit as kit


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        yield inst


def evaluate(instance, landing, cursor=None, batch_size=500) -> SensorResult:
    context = build_sensor_context(
        instance=instance, cursor=cursor,
        resources={"landing": LandingZoneResource(uri=str(landing), batch_size=batch_size)})
    result = landing_sensor(context)
    assert isinstance(result, SensorResult)
    return result


def batch_of(result: SensorResult) -> list[str]:
    [request] = result.run_requests
    return request.run_config["ops"]["ingest_bundles"]["config"]["bundles"]


def test_empty_landing_skips(instance, tmp_path):
    result = evaluate(instance, tmp_path / "landing")  # the folder does not even exist yet
    assert not result.run_requests and "no new" in result.skip_reason.skip_message
    assert json.loads(result.cursor)["requested"] == {}


def test_new_bundles_start_one_run_and_register_their_markets(instance, tmp_path):
    landing = tmp_path / "landing"
    names = kit.write_runs(landing, 5)  # runs 0-3 on XNAS, run 4 on XNYS
    result = evaluate(instance, landing)
    assert batch_of(result) == sorted(names)
    assert result.run_requests[0].run_key.startswith("landing-")
    [add] = result.dynamic_partitions_requests
    assert add.partitions_def_name == "market" and sorted(add.partition_keys) == ["XNAS", "XNYS"]
    assert sorted(json.loads(result.cursor)["requested"]) == sorted(names)


def test_an_incomplete_bundle_waits_for_its_manifest(instance, tmp_path):
    landing = tmp_path / "landing"
    [name] = kit.write_runs(landing, 1)
    manifest = landing / name / "manifest.json"
    saved = manifest.read_bytes()
    manifest.unlink()  # tables are there, the manifest (written last) is not yet
    first = evaluate(instance, landing)
    assert not first.run_requests
    manifest.write_bytes(saved)
    second = evaluate(instance, landing, first.cursor)
    assert batch_of(second) == [name]


def test_more_bundles_than_a_batch_take_several_runs_one_after_the_other(instance, tmp_path):
    landing = tmp_path / "landing"
    names = sorted(kit.write_runs(landing, 5))
    batches, cursor, keys = [], None, set()
    for _ in range(4):
        result = evaluate(instance, landing, cursor, batch_size=2)
        cursor = result.cursor
        if result.run_requests:
            batches.append(batch_of(result))
            keys.add(result.run_requests[0].run_key)
    assert batches == [names[0:2], names[2:4], names[4:5]]
    assert len(keys) == 3


def test_no_second_run_for_a_bundle_and_handled_bundles_are_forgotten(instance, tmp_path):
    landing = tmp_path / "landing"
    names = kit.write_runs(landing, 2)
    first = evaluate(instance, landing)
    assert len(first.run_requests) == 1
    # evaluating the same tick again gives the same run key (Dagster starts it once) ...
    assert evaluate(instance, landing).run_requests[0].run_key == first.run_requests[0].run_key
    # ... and with the new cursor the same bundles are not requested again
    again = evaluate(instance, landing, first.cursor)
    assert not again.run_requests
    # once the run handled them they leave landing, and the cursor forgets them
    for name in names:
        shutil.rmtree(landing / name)
    later = evaluate(instance, landing, again.cursor)
    assert not later.run_requests and json.loads(later.cursor)["requested"] == {}


def test_no_batch_starts_while_the_most_ingestion_runs_are_in_flight(instance, tmp_path,
                                                                     monkeypatch):
    """Up to BTLAKE_INGEST_RUNS ingestion runs run at once (they commit concurrently); past
    that, what lands waits for the next free slot."""
    monkeypatch.setenv("BTLAKE_INGEST_RUNS", "2")
    landing = tmp_path / "landing"
    first = evaluate(instance, landing)
    instance.add_run(DagsterRun(job_name=INGEST_JOB, run_id="started-run",
                                status=DagsterRunStatus.STARTED))
    names = kit.write_runs(landing, 2)
    one = evaluate(instance, landing, first.cursor)
    assert batch_of(one) == sorted(names)  # one run in flight: a second may start
    instance.add_run(DagsterRun(job_name=INGEST_JOB, run_id="second-run",
                                status=DagsterRunStatus.STARTED))
    more = kit.write_runs(landing, 2, first=10)
    busy = evaluate(instance, landing, one.cursor)
    assert not busy.run_requests and "in flight" in busy.skip_reason.skip_message
    assert sorted(json.loads(busy.cursor)["pending"]) == sorted(more)
    assert set(json.loads(busy.cursor)["requested"]) == set(names)  # not judged while running
    instance.report_run_failed(instance.get_run_by_id("started-run"))
    free = evaluate(instance, landing, busy.cursor)
    assert batch_of(free) == sorted(more)
