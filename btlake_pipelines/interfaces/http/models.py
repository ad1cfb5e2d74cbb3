"""Response models: what each endpoint answers, so ``/openapi.json`` documents it.

Runs carry whatever columns their manifests brought (params, metrics, extra fields), so the run
models name the fields every run has and allow more (``extra="allow"``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Scalar = str | float | int | bool | None


class ErrorBody(BaseModel):
    error: str = Field(description="What went wrong and what to fix, in one line.")
    detail: Any = Field(None, description="Structured detail: for btlake's own errors `type` "
                        "(not_found, conflict, gone, bad_request, ...) and, when the error is "
                        "about one input, `param` (its name); the list of validation "
                        "problems; or null.")


class Run(BaseModel):
    """One run: its ``runs`` row with params, metrics and environment as objects."""

    model_config = ConfigDict(extra="allow")
    run_id: str
    strategy_id: str | None = None
    created_at: str | None = None
    params: dict[str, Scalar] = Field(default_factory=dict)
    metrics: dict[str, float | None] = Field(default_factory=dict)


class RunsPage(BaseModel):
    runs: list[Run]
    total: int = Field(description="Runs matching the filters before limit and offset.")
    limit: int
    offset: int


class RunSnapshot(Run):
    """The metadata snapshot of one run (``btlake`` keeps the manifest too)."""

    engine_name: str | None = None
    engine_version: str | None = None
    code_version: str | None = None
    markets: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    environment: dict[str, Any] = Field(default_factory=dict)
    manifest: dict[str, Any] = Field(default_factory=dict)
    tables: list[str] = Field(default_factory=list)
    rows: dict[str, int | None] = Field(default_factory=dict)
    versions: dict[str, int | None] = Field(
        default_factory=dict, description="table -> the Delta version holding this run's rows")
    source_uri: str | None = None
    archive_uri: str | None = None
    content_hash: str | None = None
    ingested_at: str | None = None


class RunVersion(BaseModel):
    model_config = ConfigDict(extra="allow")
    run_id: str
    content_hash: str | None
    ingested_at: str | None
    status: str
    current: bool
    versions: dict[str, int] = Field(description="table -> Delta version written (incl. runs)")
    rows: dict[str, int | None]


class RunVersions(BaseModel):
    run_id: str
    versions: list[RunVersion] = Field(description="Newest first.")


class TableVersion(BaseModel):
    model_config = ConfigDict(extra="allow")
    version: int
    timestamp: str | None
    operation: str | None
    rows_added: int | None = None
    rows_removed: int | None = None
    runs: list[str] = Field(default_factory=list)


class TableHistory(BaseModel):
    versions: list[TableVersion] = Field(description="Newest first.")


class SideBySide(BaseModel):
    a: Any = None
    b: Any = None
    differs: bool


class Comparison(BaseModel):
    """As ``btlake compare --format json``."""

    model_config = ConfigDict(extra="allow")
    runs: list[str]
    params: dict[str, SideBySide]
    metrics: dict[str, SideBySide]
    summary: dict[str, Any]


class ManyValues(BaseModel):
    values: dict[str, Any] = Field(description="run id -> value (null when the run lacks it)")
    differs: bool = Field(description="Not all runs have the same value.")


class ManyComparison(BaseModel):
    """Every section as name -> values by run, so a client renders them all alike."""

    runs: list[str]
    metadata: dict[str, ManyValues] = Field(description="The fields of `/compare`'s metadata.")
    params: dict[str, ManyValues]
    metrics: dict[str, ManyValues]
    summary: dict[str, ManyValues] = Field(
        description="Trade and equity summaries, named trades.NAME and equity.NAME.")


class EquityCurve(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    run_id: str
    total_points: int = Field(description="Rows of the run's equity table.")
    points: int = Field(description="Points returned (after downsampling).")
    downsampled: bool
    ts: list[datetime]
    equity: list[float | None]
    drawdown: list[float | None] = Field(description="equity / running peak - 1 (<= 0).")


class VersionSide(BaseModel):
    model_config = ConfigDict(extra="allow")
    runs_version: int
    content_hash: str | None
    ingested_at: str | None
    current: bool


class VersionDiff(BaseModel):
    run_id: str
    a: VersionSide
    b: VersionSide
    params: dict[str, SideBySide]
    metrics: dict[str, SideBySide]
    rows: dict[str, SideBySide]
    summary: dict[str, dict[str, SideBySide]]
    changed: list[str] = Field(description="Every field that differs, as section.name.")


class BundleResult(BaseModel):
    """The per-bundle result of ``btlake ingest``."""

    model_config = ConfigDict(extra="allow")
    bundle: str
    run_id: str | None
    status: Literal["ingested", "unchanged", "replaced", "quarantined"]
    kind: str | None = None
    content_hash: str | None = None
    tables: dict[str, int] = Field(default_factory=dict)
    rows: dict[str, int] = Field(default_factory=dict)
    error: str | None = Field(None, description="Quarantined only: why, in one line.")
    reason: dict[str, Any] | None = Field(None, description="Quarantined only: the rule, "
                                          "table, column and sample rows.")


class BundleAccepted(BaseModel):
    run_id: str
    status: Literal["published"]
    message: str


class ReplicaLag(BaseModel):
    """How far the configured replica (``BTLAKE_REPLICA``) lags: ``btlake replicate --status``."""

    replica: str = Field(description="The replica's URI (never credentials).")
    tables: dict[str, dict[str, int | None]] = Field(
        default_factory=dict, description="Per table: primary_version, replica_version.")
    lag_versions: int | None = None
    lag_seconds: float | None = None
    error: str | None = Field(default=None, description="Why the lag could not be read.")


class Health(BaseModel):
    status: Literal["ok"]
    lake: str = Field(description="The lake URI served (never credentials).")
    landing: str
    version: str
    auth: dict[str, bool] = Field(description="Which tokens the server requires.")
    replica: ReplicaLag | None = Field(default=None,
                                       description="The replica's lag, when one is configured.")


class TableRows(BaseModel):
    """``format=json``: rows as objects, capped."""

    table: str
    columns: list[str]
    rows: list[dict[str, Any]]
    row_count: int = Field(description="Rows returned.")
    limit: int = Field(description="The row cap that applied.")
    truncated: bool = Field(description="True when more rows matched than were returned; use "
                            "format=parquet, arrow or csv for the whole slice.")
