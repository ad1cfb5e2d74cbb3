"""The code location loads, validates with Dagster's own CLI, and has the shape the contract
(section 4) asks for."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dagster import (
    AssetKey,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MultiPartitionsDefinition,
)

from btlake_pipelines.definitions import defs

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("trades", "equity", "ticks", "l2", "events")


def test_dagster_definitions_validate_passes(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "BTLAKE_LAKE": str(tmp_path / "lake"),
           "BTLAKE_LANDING": str(tmp_path / "landing")}
    dagster = Path(sys.executable).with_name("dagster")
    done = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All code locations passed validation" in done.stdout + done.stderr


def test_one_asset_per_table_partitioned_as_stored():
    graph = defs.resolve_asset_graph()
    for table in TABLES:
        partitions = graph.get(AssetKey(table)).partitions_def
        assert isinstance(partitions, MultiPartitionsDefinition)
        assert partitions.partition_dimension_names == ["date", "market"]
    runs = graph.get(AssetKey("runs")).partitions_def
    assert isinstance(runs, DailyPartitionsDefinition)
    assert {c.asset_key.to_user_string() for c in graph.asset_check_keys} == {*TABLES, "runs"}


def test_sensor_and_schedules_run_by_default():
    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def("landing_sensor")
    assert sensor.default_status is DefaultSensorStatus.RUNNING
    assert 15 <= sensor.minimum_interval_seconds <= 30
    for name in ("nightly_maintenance", "nightly_catch_up"):
        assert repo.get_schedule_def(name).default_status is DefaultScheduleStatus.RUNNING
