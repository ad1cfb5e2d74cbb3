"""The Dagster front end is glue over the application layer: ``defs/`` and ``definitions.py``
import nothing of btlake but the application layer, the settings and the errors, and never
read the environment."""

from __future__ import annotations

from pathlib import Path

import btlake_pipelines.defs as defs
from tests.layering import btlake_imports, reads_environment

HERE = Path(defs.__file__).parent
ALLOWED = ("app", "settings", "errors", "defs")


def _modules() -> list[Path]:
    return [*sorted(HERE.glob("*.py")), HERE.parent / "definitions.py"]


def test_defs_reach_the_core_only_through_the_application_layer():
    found = [f"{path.name}: {'.'.join(parts)}" for path in _modules()
             for parts in btlake_imports(path) if len(parts) < 2 or parts[1] not in ALLOWED]
    assert not found, found


def test_defs_never_read_the_environment():
    offenders = [p.name for p in _modules() if reads_environment(p)]
    assert not offenders, offenders
