"""Fixtures for tests of the Dagster orchestration layer."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

try:  # tests/ as a package (someone added __init__.py files) or as plain rootdir folders
    from . import postgres_server
except ImportError:
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
