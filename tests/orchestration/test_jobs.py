"""The op jobs: an ingestion run records a materialization per partition it touched and the
validation results as asset checks (a refused bundle fails them); the catch-up records what
Dagster missed and re-derives what the lake lost; maintenance and the schedules."""

from __future__ import annotations

from datetime import UTC, datetime

from dagster import AssetKey, build_schedule_context, materialize
from deltalake import DeltaTable

from btlake_pipelines.app.tables import catalog_key
from btlake_pipelines.defs.assets import all_assets
from btlake_pipelines.defs.checks import all_checks
from btlake_pipelines.defs.jobs import catch_up_job, ingest_job, maintenance_job
from btlake_pipelines.defs.resources import LakeResource, LandingZoneResource
from btlake_pipelines.defs.schedules import nightly_catch_up, nightly_maintenance
from btlake_pipelines.ingest.rederive import delta_partition_rows, partition_predicate
from btlake_pipelines.storage import delta

try:
    from . import orchestration_kit as kit
except ImportError:
    import orchestration_kit as kit

D1, D2 = kit.DAYS
NOV = "2024-11-01"  # the month key of both days


def resources(lake, landing=None):
    out = {"lake": LakeResource(uri=str(lake))}
    if landing is not None:
        out["landing"] = LandingZoneResource(uri=str(landing))
    return out


def materializations(result):
    out = {}
    for event in result.get_asset_materialization_events():
        m = event.event_specific_data.materialization
        out.setdefault(m.asset_key.to_user_string(), {})[str(m.partition)] = m
    return out


def test_an_ingestion_run_reports_partitions_and_fails_checks_on_a_bad_bundle(tmp_path):
    from dagster import DagsterInstance

    lake, landing = tmp_path / "lake", tmp_path / "landing"
    names = kit.write_runs(landing, 4)  # XNAS, two dates
    bad = kit.write_bad_run(landing)
    with DagsterInstance.ephemeral() as instance:
        result = ingest_job.execute_in_process(
            run_config={"ops": {"ingest_bundles": {"config": {"bundles": [*names, bad]}}}},
            resources=resources(lake, landing), instance=instance)
        assert result.success  # a refused bundle is a check failure, not a run failure
        assert instance.get_dynamic_partitions("market") == ["XNAS"]

        mats = materializations(result)
        assert set(mats) == {"trades", "equity", "events", "runs"}
        # one event per (month, market) touched, listing the days; runs stay daily
        assert set(mats["trades"]) == {f"{NOV}|XNAS"}
        assert set(mats["runs"]) == {str(D1), str(D2)}
        trades = mats["trades"][f"{NOV}|XNAS"].metadata
        assert trades["dates"].value == [str(D1), str(D2)]
        assert trades["stored_dates"].value == 2
        assert trades["dagster/partition_row_count"].value == 80
        assert trades["dagster/row_count"].value == 80
        assert trades["delta_version"].value == 0
        assert trades["dagster/table_name"].value == "btlake.trades"
        assert [c.name for c in trades["dagster/column_schema"].schema.columns][:3] == [
            "run_id", "strategy_id", "run_hash"]
        assert {r.data["run_id"] for r in trades["runs"].records} == set(trades[
            "source_bundles"].value) == set(names)
        assert "| run_id |" in trades["preview"].value
        assert mats["runs"][str(D1)].metadata["dates"].value == [str(D1)]

        checks = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}
        assert not checks["trades"].passed and not checks["runs"].passed
        assert checks["equity"].passed and checks["events"].passed
        failure = checks["trades"].metadata
        assert failure["bundles_refused"].value == 1 and failure["bundles_accepted"].value == 4
        assert bad in failure["sample_failures"].value and "qty" in failure["sample_failures"].value

        # executing the check on demand recomputes the same verdict from ingest_log
        again = materialize([*all_assets, *all_checks], selection=[AssetKey("trades")],
                            partition_key=f"{NOV}|XNAS", instance=instance,
                            resources=resources(lake))
        [evaluation] = again.get_asset_check_evaluations()
        assert not evaluation.passed and evaluation.metadata["unresolved_refusals"].value == 1

        # a later good batch does not hide the refusal; publishing it fixed resolves it
        more = kit.write_runs(landing, 2, first=4)
        later = ingest_job.execute_in_process(
            run_config={"ops": {"ingest_bundles": {"config": {"bundles": more}}}},
            resources=resources(lake, landing), instance=instance)
        checks = {e.asset_key.to_user_string(): e for e in later.get_asset_check_evaluations()}
        assert not checks["trades"].passed and checks["equity"].passed
        kit.write_bad_run(landing, fixed=True)
        fixed = ingest_job.execute_in_process(
            run_config={"ops": {"ingest_bundles": {"config": {"bundles": [bad]}}}},
            resources=resources(lake, landing), instance=instance)
        checks = {e.asset_key.to_user_string(): e for e in fixed.get_asset_check_evaluations()}
        assert checks["trades"].passed and checks["runs"].passed
        assert set(checks) == {"trades", "equity", "events", "ticks", "l2", "runs"}


def test_catch_up_records_what_dagster_missed_and_restores_lost_partitions(built_lake,
                                                                          dagster_instance):
    lake = built_lake.lake
    config = {"ops": {"catch_up": {"config": {"lookback_days": 0}}}}
    first = catch_up_job.execute_in_process(run_config=config, resources=resources(lake),
                                            instance=dagster_instance)
    recorded = materializations(first)
    expected = {t: {catalog_key(t, *k) for k, n in delta_partition_rows(lake, t).items() if n}
                for t in (*kit.FACT_TABLES, "runs")}
    assert {t: len(v) for t, v in recorded.items()} == {t: len(v) for t, v in expected.items()}
    assert len(recorded["trades"]) == 3 and len(recorded["runs"]) == 2  # 3 markets, 2 days
    assert all(m.tags["btlake/catch_up"] == "recorded" for v in recorded.values()
               for m in v.values())

    # the lake loses a partition: the next catch-up re-derives it and leaves the rest alone
    rows = kit.partition_rows(lake, "equity", "XNYS", D1)
    DeltaTable(delta.table_uri(lake, "equity")).delete(partition_predicate([("XNYS", D1)]))
    before = kit.fingerprint(lake)
    second = catch_up_job.execute_in_process(run_config=config, resources=resources(lake),
                                             instance=dagster_instance)
    again = materializations(second)
    assert list(again) == ["equity"] and list(again["equity"]) == [f"{NOV}|XNYS"]
    event = again["equity"][f"{NOV}|XNYS"]
    assert event.tags["btlake/catch_up"] == "rederived"
    assert event.metadata["dates"].value == [str(D1)]  # only the lost day was rewritten
    assert kit.partition_rows(lake, "equity", "XNYS", D1).equals(rows)
    kit.assert_untouched(before, kit.fingerprint(lake),
                         {"equity": {kit.folder_of("equity", "XNYS", D1)}})
    third = catch_up_job.execute_in_process(run_config=config, resources=resources(lake),
                                            instance=dagster_instance)
    assert materializations(third) == {}


def test_maintenance_compacts_one_day(built_lake):
    lake = built_lake.lake
    version = delta.open_table(lake, "trades").version()
    result = maintenance_job.execute_in_process(
        run_config={"ops": {"maintain_lake": {"config": {"day": str(D2)}}}},
        resources=resources(lake))
    assert result.success
    assert delta.open_table(lake, "trades").version() >= version
    assert kit.partition_rows(lake, "trades", "XNAS", D2).height == 40


def test_schedules_ask_for_yesterday_and_one_catch_up_a_night():
    when = datetime(2024, 11, 6, 3, 15, tzinfo=UTC)
    request = nightly_maintenance(build_schedule_context(scheduled_execution_time=when))
    assert request.run_config["ops"]["maintain_lake"]["config"]["day"] == "2024-11-05"
    assert request.run_key == "maintain-2024-11-05"
    catch_up = nightly_catch_up(build_schedule_context(scheduled_execution_time=when))
    assert catch_up.run_key == "catch-up-2024-11-06"
