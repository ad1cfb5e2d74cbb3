"""One concurrency pool for the lake's whole-partition writers.

Partition re-derivations (UI materializations and backfills), catch-up and maintenance rewrite
whole partitions; one of them at a time keeps two backfills from redoing each other's work.
Ingestion runs are not in the pool: they commit concurrently with each other and with these,
under Delta's optimistic concurrency (an ingestion wave another writer overtook is planned
again; a re-derivation waits until every batch that committed to its table is logged, and
commits against the snapshot it read, so an ingestion that lands meanwhile makes it start
over). The limit comes from the instance (``concurrency.pools.default_limit: 1`` in
``dagster_home/dagster.yaml``).
"""

LAKE_WRITER_POOL = "btlake_lake_writer"
