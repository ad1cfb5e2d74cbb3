"""Engine adapters: a backtest engine's own result objects in, a complete btlake bundle out.

- :func:`btlake_pipelines.adapters.backtesting.write_bundle`: backtesting.py's ``Stats``
- :func:`btlake_pipelines.adapters.vectorbt.write_bundle`: a vectorbt ``Portfolio``
- :func:`btlake_pipelines.adapters.backtrader.write_bundle`: a backtrader ``Strategy`` that
  ``Cerebro.run()`` returned
- :func:`write_bundle` picks the adapter by the result's type.

Publishing a result in one call is a use case of the application layer, above this package:
``Lake.publish_result(...)`` or ``btlake_pipelines.publish_result(...)``
(:mod:`btlake_pipelines.app.adapters`). It is not re-exported here: this package stays a leaf
under ``app/`` (it imports the contract and the bundle writer only), so the layers keep
pointing down and no import runs back up.

The engines are an optional extra (``pip install 'btlake[adapters]'``): nothing here imports
one until an adapter is called, so btlake works without them.
"""

from __future__ import annotations

from btlake_pipelines.adapters.dispatch import ENGINES, engine_of, write_bundle

__all__ = ["ENGINES", "engine_of", "write_bundle"]
