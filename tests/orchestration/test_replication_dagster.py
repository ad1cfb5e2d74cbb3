"""Replication in Dagster: the sensor is off without a replica and starts a run when the
replica lags, the job copies in the lake-writer pool and reports ``replica_lag``, and the
check fails past the lag threshold (real sensor ticks and in-process runs)."""

from __future__ import annotations

import time
from pathlib import Path

from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from btlake_pipelines import Lake
from btlake_pipelines.defs.concurrency import LAKE_WRITER_POOL
from btlake_pipelines.defs.replication import (
    replica_lag_check,
    replicate_lake,
    replication_job,
    replication_sensor,
)
from btlake_pipelines.defs.resources import LakeResource
from tests.replication_kit import assert_valid_earlier_point, build_lake, ingest_round


def _tick(lake: str, instance: DagsterInstance):
    context = build_sensor_context(instance=instance, resources={"lake": LakeResource(uri=lake)})
    return replication_sensor(context)


def test_sensor_job_and_check(tmp_path: Path, monkeypatch) -> None:
    lake, landing, replica = str(tmp_path / "lake"), tmp_path / "landing", str(tmp_path / "r")
    landing.mkdir()
    build_lake(lake, landing, rounds=2)
    monkeypatch.delenv("BTLAKE_REPLICA", raising=False)
    with DagsterInstance.ephemeral() as instance:
        off = _tick(lake, instance)
        assert isinstance(off, SkipReason) and "no replica" in off.skip_message
        assert replica_lag_check(lake=LakeResource(uri=lake)).passed

        monkeypatch.setenv("BTLAKE_REPLICA", replica)
        request = _tick(lake, instance)
        assert isinstance(request, RunRequest) and request.run_key.startswith("replicate:")
        assert replicate_lake.pool == LAKE_WRITER_POOL
        result = replication_job.execute_in_process(
            run_config=request.run_config, resources={"lake": LakeResource(uri=lake)},
            instance=instance)
        assert result.success
        checks = result.get_asset_check_evaluations()
        assert [(c.check_name, c.passed) for c in checks] == [("replica_lag", True)]
        assert checks[0].metadata["lag_versions"].value == 0
        assert_valid_earlier_point(lake, replica)
        level = _tick(lake, instance)
        assert isinstance(level, SkipReason) and "level" in level.skip_message

        time.sleep(1.1)
        ingest_round(lake, landing, 4)
        monkeypatch.setenv("BTLAKE_REPLICA_MAX_LAG", "0")
        lagging = replica_lag_check(lake=LakeResource(uri=lake))
        assert not lagging.passed
        assert lagging.metadata["lag_seconds"].value >= 1.0
        again = _tick(lake, instance)
        assert isinstance(again, RunRequest) and again.run_key != request.run_key
        assert replication_job.execute_in_process(
            run_config=again.run_config, resources={"lake": LakeResource(uri=lake)},
            instance=instance).success
        assert Lake(lake).replication_status(replica).lag_versions == 0
