"""Validation outcomes per table, as a front end shows them: the summaries of
:mod:`btlake_pipelines.ingest.validation_report` (a table's check fails while a bundle refused
for one of its rules in the last :data:`WINDOW` is not published again in a valid form) and a
sample of their failures as a Markdown table."""

from __future__ import annotations

import polars as pl

from btlake_pipelines.ingest.report import markdown_table
from btlake_pipelines.ingest.validation_report import WINDOW, ValidationSummary

__all__ = ["WINDOW", "ValidationSummary", "failure_sample"]

_FAILURE_COLUMNS = ("bundle", "rule", "table", "column", "rows", "values", "message")


def failure_sample(summary: ValidationSummary, limit: int = 10) -> str | None:
    """The first ``limit`` unresolved refusals (else the batch's refusals) as a Markdown table,
    each with its first offending rows and values; None when there are none."""
    failures = summary.unresolved or summary.refused
    if not failures:
        return None
    sample = pl.DataFrame([{**f, "rows": ", ".join(map(str, f["rows"][:5])),
                            "values": ", ".join(map(str, f["values"][:5]))}
                           for f in failures[:limit]],
                          schema=dict.fromkeys(_FAILURE_COLUMNS, pl.String))
    return markdown_table(sample, width=80)
