"""Engine adapters: a backtest engine's own result objects in, a complete btlake bundle out.

- :func:`btlake_pipelines.adapters.backtesting.write_bundle`: backtesting.py's ``Stats``
- :func:`btlake_pipelines.adapters.vectorbt.write_bundle`: a vectorbt ``Portfolio``
- :func:`btlake_pipelines.adapters.backtrader.write_bundle`: a backtrader ``Strategy`` that
  ``Cerebro.run()`` returned
- :func:`write_bundle` picks the adapter by the result's type; :func:`publish_result` writes
  the bundle and publishes it to landing in one call (the use case lives in
  :mod:`btlake_pipelines.app.adapters`; it is re-exported here lazily).

The engines are an optional extra (``pip install 'btlake[adapters]'``): nothing here imports
one until an adapter is called, so btlake works without them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

__all__ = ["ENGINES", "engine_of", "publish_result", "write_bundle"]

#: Engine name -> the adapter module that writes its results.
ENGINES = {
    "backtesting.py": "btlake_pipelines.adapters.backtesting",
    "vectorbt": "btlake_pipelines.adapters.vectorbt",
    "backtrader": "btlake_pipelines.adapters.backtrader",
}


def engine_of(result: Any) -> str:
    """Which engine made ``result``, from its type's module (no engine is imported)."""
    from btlake_pipelines.adapters._common import AdapterError

    root = type(result).__module__.split(".")[0]
    if root == "vectorbt":
        return "vectorbt"
    if hasattr(result, "get") and all(result.get(k) is not None
                                      for k in ("_trades", "_equity_curve", "_strategy")):
        return "backtesting.py"
    if any(cls.__module__.split(".")[0] == "backtrader" for cls in type(result).__mro__):
        return "backtrader"
    raise AdapterError(f"{{param}}: no adapter for a {type(result).__module__}."
                       f"{type(result).__qualname__}; adapters exist for backtesting.py's "
                       "Stats, a vectorbt Portfolio and a backtrader Strategy",
                       param="result")


def write_bundle(result: Any, folder: str | Path, **options: Any) -> Path:
    """Write ``result`` with the adapter of its engine; ``options`` are that adapter's
    keyword arguments (``run_id``, ``strategy_id``, ``markets``, ``params``, ...)."""
    module = importlib.import_module(ENGINES[engine_of(result)])
    return module.write_bundle(result, folder, **options)


def __getattr__(name: str) -> Any:
    if name == "publish_result":
        from btlake_pipelines.app.adapters import publish_result

        return publish_result
    raise AttributeError(name)
