"""The replica's lag on ``GET /api/v1/health`` and in the browser's footer (real
``btlake serve``, real headless Chromium)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from btlake_pipelines import Lake
from tests.replication_kit import build_lake, ingest_round

try:  # tests/ as a package or as plain rootdir folders (see conftest.py)
    from .test_http_browser import OUT, _serve, chromium, page
except ImportError:
    from test_http_browser import OUT, _serve, chromium, page  # noqa: F401 - fixtures

pytestmark = pytest.mark.e2e


def test_health_and_footer_show_the_replica_lag(tmp_path: Path, chromium, page) -> None:
    lake, landing, replica = str(tmp_path / "lake"), tmp_path / "landing", str(tmp_path / "r")
    landing.mkdir()
    build_lake(lake, landing, rounds=2)
    Lake(lake).replicate(replica)
    time.sleep(1.1)
    ingest_round(lake, landing, 3)
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**{k: v for k, v in os.environ.items()
              if k not in ("BTLAKE_API_TOKEN", "BTLAKE_API_READ_TOKEN")},
           "BTLAKE_LAKE": lake, "BTLAKE_LANDING": str(landing), "BTLAKE_REPLICA": replica}
    server = _serve(env, OUT / "serve-replica.log")
    base = next(server)
    try:
        health = httpx.get(base + "/api/v1/health", timeout=30).json()
        lag = health["replica"]
        assert lag["replica"] == replica and lag["lag_versions"] > 0
        assert lag["lag_seconds"] >= 1.0
        assert lag["tables"]["runs"]["primary_version"] > lag["tables"]["runs"]["replica_version"]

        page.goto(base + "/")
        foot = page.locator("#replica-lag")
        foot.wait_for(state="visible", timeout=15000)
        assert f"{lag['lag_versions']} version(s)" in foot.inner_text()
        assert "behind" in (foot.get_attribute("class") or "")

        Lake(lake).replicate(replica)
        assert httpx.get(base + "/api/v1/health", timeout=30).json()["replica"][
            "lag_versions"] == 0
        page.reload()
        foot.wait_for(state="visible", timeout=15000)
        assert "up to date" in foot.inner_text()
        assert not page.problems  # type: ignore[attr-defined]
    finally:
        server.close()

    without = {k: v for k, v in env.items() if k != "BTLAKE_REPLICA"}
    server = _serve(without, OUT / "serve-no-replica.log")
    base = next(server)
    try:
        assert httpx.get(base + "/api/v1/health", timeout=30).json()["replica"] is None
    finally:
        server.close()
