"""Which adapter writes a result: the engine is told by the result's type, without importing
any engine."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

#: Engine name -> the adapter module that writes its results.
ENGINES = {
    "backtesting.py": "btlake_pipelines.adapters.backtesting",
    "vectorbt": "btlake_pipelines.adapters.vectorbt",
    "backtrader": "btlake_pipelines.adapters.backtrader",
}


def engine_of(result: Any) -> str:
    """Which engine made ``result``, from its type's module (no engine is imported)."""
    from btlake_pipelines.adapters._common import AdapterError

    roots = {cls.__module__.split(".")[0] for cls in type(result).__mro__}
    if "vectorbt" in roots:
        return "vectorbt"
    if "backtrader" in roots:
        return "backtrader"
    # backtesting.py's Stats is a pandas Series holding the run's objects under these keys
    if "pandas" in roots and {"_trades", "_equity_curve", "_strategy"} <= set(
            getattr(result, "index", ())):
        return "backtesting.py"
    raise AdapterError(f"{{param}}: no adapter for a {type(result).__module__}."
                       f"{type(result).__qualname__}; adapters exist for backtesting.py's "
                       "Stats, a vectorbt Portfolio and a backtrader Strategy",
                       param="result")


def write_bundle(result: Any, folder: str | Path, **options: Any) -> Path:
    """Write ``result`` with the adapter of its engine; ``options`` are that adapter's
    keyword arguments (``run_id``, ``strategy_id``, ``markets``, ``params``, ...)."""
    module = importlib.import_module(ENGINES[engine_of(result)])
    return module.write_bundle(result, folder, **options)
