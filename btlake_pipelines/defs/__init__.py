"""Dagster glue for btlake, split by concern; ``btlake_pipelines.definitions`` assembles it.

Everything here calls plain functions (``ingest``, ``rederive``, ``watch``, ``report``,
``maintenance``) and only translates their results into Dagster's vocabulary.
"""
