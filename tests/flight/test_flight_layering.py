"""The Flight front end is glue over the application layer: nothing under interfaces/flight
imports the core packages or reads the environment."""

from __future__ import annotations

from pathlib import Path

import btlake_pipelines.interfaces.flight as front
from tests.layering import btlake_imports, reads_environment

CORE = ("storage", "query", "versions", "metadata", "bundles", "landing", "ingest", "contract",
        "streaming")
HERE = Path(front.__file__).parent
CLI = HERE.parent / "cli" / "flight.py"


def test_flight_reaches_the_core_only_through_the_application_layer():
    paths = [*sorted(HERE.rglob("*.py")), CLI]
    found = [f"{path.name}: {'.'.join(parts)}" for path in paths
             for parts in btlake_imports(path) if len(parts) > 1 and parts[1] in CORE]
    assert not found, found
    assert not [p for p in paths if reads_environment(p)]
