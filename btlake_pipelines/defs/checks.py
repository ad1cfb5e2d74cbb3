"""Validation results as asset checks, so a refused bundle shows on the table it broke.

Each table asset has one check, ``bundles_valid``: did every bundle of the latest batch that
concerned this table pass the contract? ``runs`` carries the same check over whole batches
(a refusal about the manifest or the folder lands there). Ingestion runs report these checks
as soon as a batch is handled; executing a check here recomputes it from ``ingest_log``.
"""

from dagster import AssetCheckResult, AssetChecksDefinition, MetadataValue, asset_check

from btlake_pipelines.contract.tables import FACT_TABLES, RUNS
from btlake_pipelines.defs.metadata import CHECK_NAME, check_result
from btlake_pipelines.defs.resources import LakeResource
from btlake_pipelines.ingest.report import latest_validation


def bundles_valid_check(table: str) -> AssetChecksDefinition:
    @asset_check(asset=table, name=CHECK_NAME, blocking=False,
                 description=f"Every bundle of the latest batch that carried {table} rows "
                             "passed validation (pass/fail, counts, sample failures).")
    def _check(lake: LakeResource) -> AssetCheckResult:
        summary = latest_validation(lake.root, table)
        if summary is None:
            return AssetCheckResult(passed=True, description="no batch has concerned this "
                                    "table yet", metadata={"bundles_checked":
                                                           MetadataValue.int(0)})
        return check_result(summary)

    return _check


all_checks = [bundles_valid_check(t) for t in (*FACT_TABLES, RUNS)]
