"""Ingestion: a batch of bundles from landing into the lake, one commit per table."""

from btlake_pipelines.ingest.batch import BatchResult, ingest

__all__ = ["BatchResult", "ingest"]
