"""Coverage gaps in Dagster: the ``coverage_gaps`` check warns with the gaps, and the sensor
requests a gap-fill run for exactly the partitions the archive can fill, which fills them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
from dagster import AssetSelection, DagsterInstance, SensorResult, build_sensor_context, materialize
from deltalake import DeltaTable

from btlake_pipelines.app.lake import Lake
from btlake_pipelines.defs.assets import all_assets
from btlake_pipelines.defs.coverage import (
    CHECK_NAME,
    coverage_checks,
    coverage_gap_sensor,
    fill_gaps_job,
)
from btlake_pipelines.defs.resources import LakeResource
from tests.core import bundles as B

LOST = date(2024, 3, 27)  # a session whose stored rows are lost (the archive has them)
SATURDAY = date(2024, 3, 30)  # a crypto session no bundle ever carried


def _ticks(symbol: str, days: list[date]) -> pa.Table:
    return pa.concat_tables([B.ticks(2, symbol=symbol, start=datetime(
        d.year, d.month, d.day, 15, tzinfo=UTC)) for d in days])


def _lake(tmp_path) -> str:
    lake, landing = str(tmp_path / "lake"), str(tmp_path / "landing")
    span = [date(2024, 3, 25) + timedelta(days=i) for i in range(9)]
    B.market_data(landing, "md-nyse", {"ticks": _ticks("AAPL", [d for d in span if
                                                                d.weekday() < 5])},
                  market="XNYS")
    B.market_data(landing, "md-btc", {"ticks": _ticks("BTCUSDT", [date(2024, 3, 29),
                                                                   date(2024, 3, 31)])},
                  market="BINANCE")
    assert not Lake(lake).ingest(landing).quarantined
    # the lake loses a partition (a bad manual delete, say): its bundle is still archived
    DeltaTable(f"{lake}/ticks").delete(f"market = 'XNYS' AND date = '{LOST.isoformat()}'")
    return lake


def _check(lake: str, instance: DagsterInstance):
    result = materialize([*all_assets, *coverage_checks],
                         selection=AssetSelection.checks(coverage_checks[0]),
                         instance=instance, resources={"lake": LakeResource(uri=lake)})
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.asset_key.to_user_string() == "ticks"
    assert evaluation.check_name == CHECK_NAME
    return evaluation


def test_gap_check_warns_and_the_sensor_fills_what_the_archive_holds(tmp_path):
    lake = _lake(tmp_path)
    with DagsterInstance.ephemeral() as instance:
        before = _check(lake, instance)
        assert not before.passed and before.severity.value == "WARN"
        assert before.metadata["gaps"].value == 2
        assert before.metadata["fillable_partitions"].value == 1
        assert before.metadata["markets"].value == ["BINANCE", "XNYS"]
        assert "| XNYS | AAPL | 2024-03-27 |" in before.metadata["sample"].value

        context = build_sensor_context(instance=instance,
                                       resources={"lake": LakeResource(uri=lake)})
        tick = coverage_gap_sensor(context)
        assert isinstance(tick, SensorResult)
        [request] = tick.run_requests
        config = request.run_config["ops"]["fill_gaps"]["config"]
        assert config == {"table": "ticks", "partitions": ["XNYS|2024-03-27"]}

        # nothing changed since: the next tick does not ask again
        again = coverage_gap_sensor(build_sensor_context(
            instance=instance, cursor=tick.cursor, resources={"lake": LakeResource(uri=lake)}))
        assert not again.run_requests

        run = fill_gaps_job.execute_in_process(run_config=request.run_config, instance=instance,
                                               resources={"lake": LakeResource(uri=lake)})
        assert run.success
        found = Lake(lake).coverage()
        assert set(found.gap_frame.iter_rows()) == {("BINANCE", "BTCUSDT", SATURDAY)}
        assert found.rows.filter(found.rows["date"] == LOST)["rows"].to_list() == [2]

        after = _check(lake, instance)
        assert after.metadata["gaps"].value == 1
        assert after.metadata["fillable_partitions"].value == 0
