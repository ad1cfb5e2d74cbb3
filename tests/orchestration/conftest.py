"""Fixtures for tests of the Dagster orchestration layer."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

try:  # tests/ as a package (someone added __init__.py files) or as plain rootdir folders
    from . import orchestration_kit as kit
    from . import postgres_server
except ImportError:
    import orchestration_kit as kit
    import postgres_server


@pytest.fixture(scope="session")
def postgres_env() -> Iterator[dict[str, str]]:
    """DAGSTER_PG_* settings of a throwaway PostgreSQL server, shared by the session.

    Skips when Debian's server binaries are missing (`apt-get install postgresql`), except
    with BTLAKE_E2E_REQUIRED=1 (CI), where a missing server must fail, not pass silently.
    """
    if postgres_server.find_bin_dir() is None:
        msg = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if os.environ.get("BTLAKE_E2E_REQUIRED") == "1":
            pytest.fail(f"{msg}; BTLAKE_E2E_REQUIRED=1", pytrace=False)
        pytest.skip(msg)
    with postgres_server.running_postgres() as settings:
        yield settings


# --- lakes for the orchestration tests (landing sensor, assets, jobs) ---------------------


@dataclass
class BuiltLake:
    lake: str
    landing: Path


@pytest.fixture(scope="session")
def lake_template(tmp_path_factory: pytest.TempPathFactory) -> BuiltLake:
    """A lake ingested once per session (12 runs over 2 dates x 3 markets, and market data);
    tests get copies of it."""
    from btlake_pipelines.ingest.batch import ingest
    from btlake_pipelines.landing.local import LocalLandingZone

    root = tmp_path_factory.mktemp("lake-template")
    landing = root / "landing"
    landing.mkdir()
    kit.write_runs(landing)
    kit.write_samples(landing)
    batch = ingest(str(root / "lake"), LocalLandingZone(str(landing)))
    assert not batch.quarantined, batch.summary()
    return BuiltLake(str(root / "lake"), landing)


@pytest.fixture
def built_lake(lake_template: BuiltLake, tmp_path: Path) -> BuiltLake:
    """A private copy of the session's lake, with an empty landing zone."""
    shutil.copytree(lake_template.lake, tmp_path / "lake", symlinks=True)
    (tmp_path / "landing").mkdir()
    return BuiltLake(str(tmp_path / "lake"), tmp_path / "landing")


@pytest.fixture
def dagster_instance() -> Iterator:
    """A throwaway Dagster instance (in-memory storage) with the lake's markets registered."""
    from dagster import DagsterInstance

    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("market", [*kit.MARKETS, "TRUEFX"])
        yield instance
