"""Validation results as asset checks, so a refused bundle shows on the table it broke.

Each table asset has one check, ``bundles_valid``: it fails while a bundle refused for a rule
of that table in the last 7 days has not been published again in a valid form; ``runs``
carries the same check over every refusal (the manifest's and the folder's included). See
:mod:`btlake_pipelines.app.validation`. Ingestion runs report all six checks after
each batch; executing a check here recomputes it from ``ingest_log``.
"""

from dagster import AssetCheckResult, AssetChecksDefinition, asset_check

from btlake_pipelines.app.tables import PARTITIONED_TABLES
from btlake_pipelines.defs.metadata import CHECK_NAME, check_result
from btlake_pipelines.defs.resources import LakeResource


def bundles_valid_check(table: str) -> AssetChecksDefinition:
    @asset_check(asset=table, name=CHECK_NAME, blocking=False,
                 description=f"No bundle refused for a {table} rule in the last 7 days is "
                             "still waiting for a valid version (counts, sample failures).")
    def _check(lake: LakeResource) -> AssetCheckResult:
        return check_result(lake.get_lake().validation_report()[table])

    return _check


all_checks = [bundles_valid_check(t) for t in PARTITIONED_TABLES]
