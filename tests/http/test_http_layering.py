"""The HTTP front end is glue over the application layer: nothing under interfaces/http imports
the core packages or reads the environment (the settings module does that, once)."""

from __future__ import annotations

import ast
from pathlib import Path

import btlake_pipelines.interfaces.http as http

CORE = ("storage", "query", "versions", "metadata", "bundles", "landing", "ingest", "contract")
HERE = Path(http.__file__).parent


def _modules() -> list[Path]:
    return sorted(HERE.rglob("*.py"))


def test_http_reaches_the_core_only_through_the_application_layer():
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "btlake_pipelines" and len(parts) > 1 and parts[1] in CORE:
                    found.append(f"{path.relative_to(HERE)}: {name}")
    assert not found, found


def test_http_never_reads_the_environment():
    offenders = [str(p.relative_to(HERE)) for p in _modules()
                 if "os.environ" in p.read_text() or "getenv" in p.read_text()]
    assert not offenders, offenders
