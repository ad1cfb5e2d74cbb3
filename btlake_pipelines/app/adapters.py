"""Publishing an engine's result in one call: the adapter writes a bundle into a temporary
folder, and :func:`btlake_pipelines.app.publish.publish` copies it to landing (tables first,
manifest last, the one waiting-bundle rule), where the sensor or ``btlake ingest`` picks it up.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def publish_result(result: Any, *, run_id: str, strategy_id: str,
                   markets: str | Sequence[str], params: Mapping[str, Any] | None = None,
                   created_at: dt.datetime | str | None = None, landing: str | None = None,
                   replace: bool = False, **options: Any) -> str:
    """Turn ``result`` (backtesting.py ``Stats``, a vectorbt ``Portfolio`` or a backtrader
    ``Strategy``) into a bundle and publish it to ``landing`` (None: the settings'); returns
    its landing location. ``options`` go to the engine's adapter (``symbol``,
    ``code_version``, ``tags``). A bundle of this run id still waiting needs ``replace``."""
    from btlake_pipelines.adapters.dispatch import write_bundle
    from btlake_pipelines.app.publish import publish

    with tempfile.TemporaryDirectory(prefix="btlake-adapter-") as tmp:
        folder = write_bundle(result, Path(tmp), run_id=run_id, strategy_id=strategy_id,
                              markets=markets, params=params, created_at=created_at, **options)
        return publish(folder, landing, replace=replace)
