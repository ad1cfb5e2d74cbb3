"""Demo data for btlake: synthetic backtest bundles and real market-data samples.

``btlake demo`` and the benchmarks use these to fill a landing folder with bundles that look like
what real engines and data vendors hand over; tests use :func:`write_bundle` to build bundles
of any shape, including broken ones.
"""

from btlake_pipelines.demo.bundle_writer import write_bundle
from btlake_pipelines.demo.real_samples import real_sample_bundles, write_real_sample_bundles
from btlake_pipelines.demo.synthetic import (
    compute_metrics,
    periods_per_year,
    synthetic_backtest,
    synthetic_ticks,
    write_demo_bundles,
)

__all__ = [
    "compute_metrics",
    "periods_per_year",
    "real_sample_bundles",
    "synthetic_backtest",
    "synthetic_ticks",
    "write_bundle",
    "write_demo_bundles",
    "write_real_sample_bundles",
]
