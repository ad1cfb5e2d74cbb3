"""The code location loads, validates with Dagster's own CLI, and has the shape the contract
(section 4) asks for."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from dagster import (
    AssetKey,
    DagsterInstance,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MonthlyPartitionsDefinition,
    MultiPartitionsDefinition,
)

from btlake_pipelines.definitions import defs

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("trades", "equity", "ticks", "l2", "events")
#: Contract section 6: what the Dagster UI handles per asset.
MAX_PARTITIONS_PER_ASSET = 25_000


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
        dates = partitions.get_partitions_def_for_dimension("date")
        assert isinstance(dates, MonthlyPartitionsDefinition)  # over daily Delta partitions
    runs = graph.get(AssetKey("runs")).partitions_def
    assert isinstance(runs, DailyPartitionsDefinition)
    assert {c.asset_key.to_user_string() for c in graph.asset_check_keys} == {*TABLES, "runs"}


def test_partitions_per_asset_stay_under_the_bound_with_40_markets_over_20_years():
    """Contract section 6: 40 markets over 20 years of daily data fit the Dagster UI. The
    partitions start in 2010; counted as of 2030, with 40 markets registered."""
    graph = defs.resolve_asset_graph()
    twenty_years_on = datetime(2030, 1, 1, tzinfo=UTC)
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("market", [f"MKT{i:02d}" for i in range(40)])
        counts = {}
        for table in (*TABLES, "runs"):
            partitions = graph.get(AssetKey(table)).partitions_def
            counts[table] = len(partitions.get_partition_keys(
                current_time=twenty_years_on, dynamic_partitions_store=instance))
    assert counts == {**dict.fromkeys(TABLES, 241 * 40), "runs": 7306}  # months incl. 2030-01
    assert max(counts.values()) <= MAX_PARTITIONS_PER_ASSET


def test_sensor_and_schedules_run_by_default():
    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def("landing_sensor")
    assert sensor.default_status is DefaultSensorStatus.RUNNING
    assert 15 <= sensor.minimum_interval_seconds <= 30
    for name in ("nightly_maintenance", "nightly_catch_up", "hourly_log_upkeep"):
        assert repo.get_schedule_def(name).default_status is DefaultScheduleStatus.RUNNING
