"""The ``ingest_log`` table: one append-only row per bundle handled, whatever happened to it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

STATUSES = ("ingested", "unchanged", "replaced", "quarantined")


@dataclass
class BundleResult:
    """What happened to one bundle; the CLI, the API and Dagster all report this."""

    bundle: str  # the folder name as received
    status: str
    run_id: str | None = None
    kind: str | None = None
    content_hash: str | None = None
    error: str | None = None
    reason: dict[str, Any] | None = None
    tables: dict[str, int] = field(default_factory=dict)  # table -> version written
    rows: dict[str, int] = field(default_factory=dict)
    slices: list[dict[str, Any]] = field(default_factory=list)
    source_uri: str | None = None
    destination_uri: str | None = None  # where it went: archive or quarantine

    def to_json(self) -> dict[str, Any]:
        out = {"bundle": self.bundle, "run_id": self.run_id, "status": self.status,
               "kind": self.kind, "content_hash": self.content_hash, "tables": self.tables,
               "rows": self.rows}
        if self.status == "quarantined":
            out.update(error=self.error, reason=self.reason)
        return out


def log_rows(results: list[BundleResult], *, batch_id: str, handled_at: datetime) -> pa.Table:
    def col(fn, typ=None):
        return pa.array([fn(r) for r in results], typ or pa.string())

    return pa.table({
        "batch_id": col(lambda r: batch_id),
        "bundle": col(lambda r: r.bundle),
        "run_id": col(lambda r: r.run_id),
        "kind": col(lambda r: r.kind),
        "status": col(lambda r: r.status),
        "content_hash": col(lambda r: r.content_hash),
        "error": col(lambda r: r.error),
        "reason": col(lambda r: json.dumps(r.reason) if r.reason else None),
        "tables": col(lambda r: json.dumps(r.tables, sort_keys=True)),
        "rows": col(lambda r: json.dumps(r.rows, sort_keys=True)),
        "slices": col(lambda r: json.dumps(r.slices, default=str)),
        "source_uri": col(lambda r: r.source_uri),
        "destination_uri": col(lambda r: r.destination_uri),
        "handled_at": col(lambda r: handled_at, pa.timestamp("us", "UTC")),
    })
