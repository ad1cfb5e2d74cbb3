"""One concurrency pool for everything that writes the lake.

Ingestion batches, partition re-derivations (UI materializations and backfills), catch-up and
maintenance each commit to the same Delta tables. Delta retries conflicting commits, but a
re-derivation that read the archive before an ingestion committed could overwrite that
ingestion's rows in the same partition; one writer at a time rules that out. The limit comes
from the instance (``concurrency.pools.default_limit: 1`` in ``dagster_home/dagster.yaml``).
"""

LAKE_WRITER_POOL = "btlake_lake_writer"
