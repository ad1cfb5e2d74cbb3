"""Every case of issues 6, 10 and 11, in the order they run (later ones reuse data of earlier
ones)."""

from __future__ import annotations

from collections.abc import Callable

from bench.cases import bundles, catalog, flight, http, ingest, market_scale, runs, slices
from bench.core import CaseResult, Context

CASES: dict[str, Callable[[Context], CaseResult]] = {
    "bulk_ingest": ingest.bulk_ingest,
    "storage": ingest.storage,
    "ingest_memory": market_scale.ingest_memory,
    "ingest_slices": market_scale.ingest_slices,
    "small_bundles": bundles.small_bundles,
    "run_search": runs.run_search,
    "top_runs": runs.top_runs,
    "catalog_names": catalog.catalog_names,
    "cli_wall": runs.cli_wall,
    "read_run": runs.read_run,
    "time_slice": slices.time_slice,
    "day_slice": slices.day_slice,
    "sensor": bundles.sensor,
    "compaction": bundles.compaction,
    "http": http.http,
    "flight": flight.flight_case,
}
