"""Stale runs in Dagster (CONTRACT section 7): runs are not partitions, so lineage is not drawn
in the asset graph; instead the ``runs`` asset carries a check, ``inputs_current``, that warns
while some run read market data that has since been replaced, and ``stale_runs_sensor``
re-evaluates that check whenever a market-data table gets a new version (its cursor holds the
versions it last saw, so an idle lake costs one version look-up per table and tick).
"""

import json

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    asset_check,
    sensor,
)

from btlake_pipelines.app.lake import Lake
from btlake_pipelines.defs.resources import LakeResource

CHECK = "inputs_current"
#: The tables whose new versions can make a run stale (what runs read as inputs).
WATCHED = ("ticks", "l2", "events", "trades", "equity")
SAMPLE = 50


def _evaluation(lake: Lake) -> tuple[bool, dict]:
    stale = lake.stale_runs()
    return not stale, {"stale_runs": len(stale), "sample": ", ".join(stale[:SAMPLE]),
                       "see": "btlake runs --stale; btlake lineage RUN_ID"}


@asset_check(asset="runs", name=CHECK, blocking=False,
             description="No run read a slice of data that a later version changed "
                         "(btlake runs --stale lists them; btlake lineage RUN shows which input).")
def inputs_current(lake: LakeResource) -> AssetCheckResult:
    passed, metadata = _evaluation(lake.get_lake())
    return AssetCheckResult(passed=passed, metadata=metadata,
                            severity=AssetCheckSeverity.WARN)


@sensor(minimum_interval_seconds=120, default_status=DefaultSensorStatus.RUNNING,
        description="Reports stale runs (the runs check inputs_current) after a data table "
                    "gets a new version, e.g. market data replaced.")
def stale_runs_sensor(context: SensorEvaluationContext, lake: LakeResource):
    api = lake.get_lake()
    versions = {t: v for t, v in api.table_versions().items() if t in WATCHED}
    seen = json.loads(context.cursor) if context.cursor else None
    cursor = json.dumps(versions, sort_keys=True)
    if seen == versions:
        return SensorResult(skip_reason="no new version of a data table", cursor=cursor)
    passed, metadata = _evaluation(api)
    return SensorResult(cursor=cursor, asset_events=[AssetCheckEvaluation(
        asset_key=AssetKey("runs"), check_name=CHECK, passed=passed, metadata=metadata,
        severity=AssetCheckSeverity.WARN)])
