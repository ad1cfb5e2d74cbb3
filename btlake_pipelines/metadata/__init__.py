"""Metadata: the ``runs`` table (one row per run, typed params and metrics) and ``ingest_log``."""
