"""Fixtures for tests of the Dagster orchestration layer."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
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


@pytest.fixture(params=["ephemeral", pytest.param("postgres", marks=pytest.mark.postgres)])
def dagster_instance(request: pytest.FixtureRequest, tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """A throwaway Dagster instance with the lake's markets registered: every test that uses
    it runs twice, on in-memory storage and on the real `dagster_home/postgres/dagster.yaml`
    against a PostgreSQL server (a fresh database per test)."""
    from dagster import DagsterInstance

    if request.param == "ephemeral":
        with DagsterInstance.ephemeral() as instance:
            instance.add_dynamic_partitions("market", [*kit.MARKETS, "TRUEFX"])
            yield instance
        return
    with _postgres_instance(request.getfixturevalue("postgres_env"), tmp_path,
                            monkeypatch) as instance:
        instance.add_dynamic_partitions("market", [*kit.MARKETS, "TRUEFX"])
        yield instance


@contextmanager
def _postgres_instance(settings: dict[str, str], base_dir: Path,
                       monkeypatch: pytest.MonkeyPatch) -> Iterator:
    import uuid

    import psycopg2
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    database = f"dagster_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(host=settings["DAGSTER_PG_HOST"], port=settings["DAGSTER_PG_PORT"],
                             user=settings["DAGSTER_PG_USER"],
                             password=settings["DAGSTER_PG_PASSWORD"],
                             dbname=settings["DAGSTER_PG_DB"])
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{database}"')
    for key, value in {**settings, "DAGSTER_PG_DB": database}.items():
        monkeypatch.setenv(key, value)
    config_dir = Path(__file__).resolve().parents[2] / "dagster_home" / "postgres"
    try:
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(base_dir),
                                                           config_dir=str(config_dir))) as inst:
            assert type(inst.run_storage).__name__ == "PostgresRunStorage"
            yield inst
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()
