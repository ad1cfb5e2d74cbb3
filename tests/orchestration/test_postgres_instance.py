"""dagster_home/postgres/dagster.yaml against a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, job, op
from dagster._core.instance.ref import InstanceRef

REPO = Path(__file__).resolve().parents[2]
PG_HOME = REPO / "dagster_home" / "postgres"


@op
def answer() -> int:
    return 42


@job
def tiny():
    answer()


def _instance(base_dir: Path) -> DagsterInstance:
    # The real config file, but run artifacts and compute logs in a temp folder.
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(base_dir), config_dir=str(PG_HOME)))


@pytest.mark.postgres
def test_postgres_instance_stores_runs(postgres_env, monkeypatch, tmp_path):
    for key, value in postgres_env.items():
        monkeypatch.setenv(key, value)

    with _instance(tmp_path) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        result = tiny.execute_in_process(instance=instance)
        assert result.success
        run_id = result.run_id

    # A second instance (new connections) sees the run and its events: they live in Postgres.
    with _instance(tmp_path) as again:
        run = again.get_run_by_id(run_id)
        assert run is not None and run.job_name == "tiny"
        assert run.status == DagsterRunStatus.SUCCESS
        assert run_id in {r.run_id for r in again.get_runs(limit=10)}
        events = {e.dagster_event.event_type for e in again.all_logs(run_id) if e.dagster_event}
        assert {DagsterEventType.RUN_SUCCESS, DagsterEventType.STEP_SUCCESS} <= events
