"""What the layering tests of each front end share: the btlake modules a source file imports,
and whether it reads the environment (only ``btlake_pipelines/settings.py`` may)."""

from __future__ import annotations

import ast
from pathlib import Path


def btlake_imports(path: Path) -> list[list[str]]:
    """Every ``btlake_pipelines...`` module ``path`` imports, split on dots."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found += [n.split(".") for n in names if n.split(".")[0] == "btlake_pipelines"]
    return found


def reads_environment(path: Path) -> bool:
    text = path.read_text()
    return "os.environ" in text or "getenv" in text
