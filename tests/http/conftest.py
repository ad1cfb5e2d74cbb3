"""Fixtures for the HTTP API tests: real lakes on disk, the real application, TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from btlake_pipelines.app.lake import Lake
from btlake_pipelines.demo import write_demo_bundles
from btlake_pipelines.interfaces.http import create_app

try:  # tests/ as a package or as plain rootdir folders
    from .http_helpers import DEMO_RUNS, TestClient, client_for
except ImportError:
    from http_helpers import DEMO_RUNS, TestClient, client_for

ENV = ("BTLAKE_API_TOKEN", "BTLAKE_API_READ_TOKEN", "BTLAKE_MAX_UPLOAD_MB",
       "BTLAKE_API_JSON_ROWS", "BTLAKE_UPLOAD_DIR", "BTLAKE_LAKE", "BTLAKE_LANDING")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens and limits come from the environment: start every test without them."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A lake with DEMO_RUNS demo runs, shared by the read-only tests of the session."""
    root = tmp_path_factory.mktemp("demo-lake")
    landing, lake = root / "landing", root / "lake"
    write_demo_bundles(landing, DEMO_RUNS)
    batch = Lake(str(lake)).ingest(str(landing))
    assert not batch.quarantined, batch.summary()
    return {"lake": str(lake), "landing": str(landing), "root": str(root)}


@pytest.fixture(scope="session")
def demo_client(demo_lake: dict[str, str]) -> Iterator[TestClient]:
    """A client of one application over the demo lake (no tokens, default limits)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ENV:
            mp.delenv(name, raising=False)
        app = create_app(demo_lake["lake"], demo_lake["landing"])
    with client_for(app) as client:
        yield client


@pytest.fixture
def fresh(tmp_path: Path) -> dict[str, Path]:
    """Paths of an empty lake, landing and bundle source folder for tests that write."""
    return {"lake": tmp_path / "lake", "landing": tmp_path / "landing",
            "src": tmp_path / "src", "root": tmp_path}


@pytest.fixture
def fresh_client(fresh: dict[str, Path]) -> Iterator[TestClient]:
    with client_for(create_app(str(fresh["lake"]), str(fresh["landing"]))) as client:
        yield client


