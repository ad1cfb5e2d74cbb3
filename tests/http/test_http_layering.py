"""The HTTP front end is glue over the application layer: nothing under interfaces/http imports
the core packages or reads the environment (the settings module does that, once)."""

from __future__ import annotations

from pathlib import Path

import btlake_pipelines.interfaces.http as http
from tests.layering import btlake_imports, reads_environment

CORE = ("storage", "query", "versions", "metadata", "bundles", "landing", "ingest", "contract")
HERE = Path(http.__file__).parent


def _modules() -> list[Path]:
    return sorted(HERE.rglob("*.py"))


def test_http_reaches_the_core_only_through_the_application_layer():
    found = [f"{path.relative_to(HERE)}: {'.'.join(parts)}" for path in _modules()
             for parts in btlake_imports(path) if len(parts) > 1 and parts[1] in CORE]
    assert not found, found


def test_http_never_reads_the_environment():
    offenders = [str(p.relative_to(HERE)) for p in _modules() if reads_environment(p)]
    assert not offenders, offenders
