"""docker/compose.yaml is a valid Compose file wired for the S3 lake (no image is built)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.s3

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def _compose_config(tmp_path: Path) -> str:
    """``docker compose config`` (v2), else ``docker-compose config`` (v1), else skip.

    Compose v1 does not know the top-level ``name:`` of the Compose Specification, so it
    checks a copy without it (same folder for relative paths)."""
    compose = DOCKER / "compose.yaml"
    if shutil.which("docker"):
        v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if v2.returncode == 0:
            done = subprocess.run(["docker", "compose", "-f", str(compose), "config"],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout
    if shutil.which("docker-compose"):
        doc = yaml.safe_load(compose.read_text())
        doc.pop("name", None)
        copy = tmp_path / "compose.yaml"
        copy.write_text(yaml.safe_dump(doc))
        done = subprocess.run(["docker-compose", "--project-directory", str(DOCKER), "-f",
                               str(copy), "config"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout
    pytest.skip("no docker compose client")


def test_compose_file_is_valid_and_configured_for_s3(tmp_path: Path) -> None:
    config = yaml.safe_load(_compose_config(tmp_path))
    services = config["services"]
    assert {"postgres", "s3", "code-location", "dagster-webserver", "dagster-daemon"} <= \
        set(services)
    for name in ("code-location", "dagster-webserver", "dagster-daemon", "btlake-api"):
        env = services[name]["environment"]
        assert env["BTLAKE_LAKE"].startswith("s3://"), name
        assert env["BTLAKE_LANDING"].startswith("s3://"), name
        assert env["AWS_ENDPOINT_URL"] == "http://s3:5000" and env["AWS_ALLOW_HTTP"] == "true"
        assert {"DAGSTER_PG_HOST", "AWS_REGION", "AWS_ACCESS_KEY_ID"} <= set(env), name
    instance = yaml.safe_load((DOCKER / "dagster.yaml").read_text())
    assert "postgres" in instance["storage"]
    assert instance["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
