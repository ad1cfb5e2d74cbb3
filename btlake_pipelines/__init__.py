"""btlake: a backtest data lake on Delta Lake.

The public Python API is ``Lake`` and ``publish``. Importing this package is cheap: it loads
neither Dagster nor pandas nor pandera, so queries start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Lake", "publish", "publish_result"]

if TYPE_CHECKING:
    from btlake_pipelines.app.adapters import publish_result
    from btlake_pipelines.app.lake import Lake
    from btlake_pipelines.interfaces.publish import publish


def __getattr__(name: str) -> Any:
    if name == "Lake":
        from btlake_pipelines.app.lake import Lake

        return Lake
    if name == "publish":
        from btlake_pipelines.interfaces.publish import publish

        return publish
    if name == "publish_result":
        from btlake_pipelines.app.adapters import publish_result

        return publish_result
    raise AttributeError(name)
