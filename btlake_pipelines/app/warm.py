"""Starting ingestion's child process ahead of need.

``Lake.ingest`` ingests in a supervised child process (:mod:`btlake_pipelines.ingest.isolated`)
whose interpreter start and imports take about a second. A front end about to ingest calls
:func:`prepare_ingest` before it loads ``Lake`` (Arrow and polars, a few tenths of a second):
the child's start then overlaps the front end's own, and ``Lake.ingest`` takes it over. This
module imports nothing heavy, so calling it first costs nothing.
"""

from __future__ import annotations


def prepare_ingest() -> None:
    """Start the child the next ``Lake.ingest`` of this process will use, with the settings in
    force now (a later ingest under other settings starts its own)."""
    from btlake_pipelines.ingest.isolated import prestart

    prestart()
