"""The Dagster front end is glue over the application layer: ``defs/`` and ``definitions.py``
import nothing of btlake but the application layer, the settings and the errors, and never
read the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import btlake_pipelines.defs as defs

HERE = Path(defs.__file__).parent
ALLOWED = ("app", "settings", "errors", "defs")


def _modules() -> list[Path]:
    return [*sorted(HERE.glob("*.py")), HERE.parent / "definitions.py"]


def test_defs_reach_the_core_only_through_the_application_layer():
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
                if parts[0] == "btlake_pipelines" and (len(parts) < 2 or parts[1] not in ALLOWED):
                    found.append(f"{path.name}: {name}")
    assert not found, found


def test_defs_never_read_the_environment():
    offenders = [p.name for p in _modules()
                 if "os.environ" in p.read_text() or "getenv" in p.read_text()]
    assert not offenders, offenders
