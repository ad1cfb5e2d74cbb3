"""Stale runs in Dagster: the ``runs`` check ``inputs_current`` (executed by Dagster) and
``stale_runs_sensor`` (a real tick) report a run whose input slice was replaced."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetCheckSeverity,
    AssetSelection,
    DagsterInstance,
    SensorResult,
    build_sensor_context,
    materialize,
)

from btlake_pipelines.app.lake import Lake
from btlake_pipelines.defs.assets import all_assets
from btlake_pipelines.defs.lineage import CHECK, inputs_current, stale_runs_sensor
from btlake_pipelines.defs.resources import LakeResource
from tests.core import bundles as B


def _tick(instance, lake: str, cursor: str | None) -> SensorResult:
    context = build_sensor_context(instance=instance, cursor=cursor,
                                   resources={"lake": LakeResource(uri=lake)})
    result = stale_runs_sensor(context)
    assert isinstance(result, SensorResult)
    return result


def test_stale_runs_are_reported_after_market_data_is_replaced(tmp_path):
    lake_dir, landing = str(tmp_path / "lake"), str(tmp_path / "landing")
    lake = Lake(lake_dir)
    B.market_data(landing, "md-1", {"ticks": B.ticks(6, price=50.0)})
    lake.ingest(landing, isolated=False)
    day = B.T0.replace(hour=0, minute=0)
    B.backtest(landing, "d-1", created_at=datetime.now(UTC).isoformat(), inputs=[{
        "table": "ticks", "market": "XNAS", "symbols": ["AAPL"], "start": day.isoformat(),
        "end": (day + timedelta(days=1)).isoformat()}])
    lake.ingest(landing, isolated=False)

    with DagsterInstance.ephemeral() as instance:
        first = _tick(instance, lake_dir, None)
        [evaluation] = first.asset_events
        assert evaluation.check_name == CHECK and evaluation.passed
        assert _tick(instance, lake_dir, first.cursor).skip_reason is not None

        B.market_data(landing, "md-2", {"ticks": B.ticks(6, price=70.0)})
        lake.ingest(landing, isolated=False)
        after = _tick(instance, lake_dir, first.cursor)
        [evaluation] = after.asset_events
        assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.WARN
        assert evaluation.metadata["stale_runs"].value == 1
        assert evaluation.metadata["sample"].value == "d-1"
        assert json.loads(after.cursor)["ticks"] == 1

        result = materialize([*all_assets, inputs_current], instance=instance,
                             selection=AssetSelection.checks(inputs_current),
                             resources={"lake": LakeResource(uri=lake_dir)})
        [check] = result.get_asset_check_evaluations()
        assert check.asset_key.to_user_string() == "runs" and not check.passed
        assert check.metadata["sample"].value == "d-1"
