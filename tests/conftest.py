"""Shared fixtures: a real lake and landing zone on disk for each test."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class LakeDirs:
    lake: str
    landing: str

    @property
    def landing_path(self) -> Path:
        return Path(self.landing)


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LakeDirs:
    """A fresh lake and landing folder; the environment points btlake at them."""
    lake, landing = tmp_path / "lake", tmp_path / "landing"
    landing.mkdir()
    monkeypatch.setenv("BTLAKE_LAKE", str(lake))
    monkeypatch.setenv("BTLAKE_LANDING", str(landing))
    return LakeDirs(str(lake), str(landing))


def require_or_skip(condition: bool, reason: str) -> None:
    """Skip when a system tool is missing, unless CI demands every end-to-end test runs."""
    if condition:
        return
    if os.environ.get("BTLAKE_E2E_REQUIRED") == "1":
        pytest.fail(f"required for CI: {reason}")
    pytest.skip(reason)
