"""Dagster glue for btlake, split by concern; ``btlake_pipelines.definitions`` assembles it.

Everything here calls the application layer (:class:`~btlake_pipelines.app.lake.Lake` and the
plain functions of :mod:`btlake_pipelines.app`) and only translates their typed results into
Dagster's vocabulary: materializations, check results, run requests, log lines.
"""
