"""Shared fixtures: a real lake and landing zone on disk for each test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.system_tools import require_or_skip  # noqa: F401 - re-exported for tests


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
