"""Parsing and checking ``manifest.json``, the contract's description of a bundle.

A manifest is checked completely before any table file is opened: a refused manifest must never
cause a file outside the bundle to be read or a path to be built from an unchecked name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from btlake_pipelines.contract.inputs import InputSpec, parse_inputs
from btlake_pipelines.contract.run_ids import RUN_ID_RULE, is_valid_run_id
from btlake_pipelines.contract.tables import FACT_TABLES, Scope
from btlake_pipelines.contract.values import MARKET_PATTERN, MARKET_RULE, parse_timestamp
from btlake_pipelines.errors import BundleRefused

FORMAT = "btlake.bundle/1"
KINDS = ("backtest", "market_data")
KNOWN_FIELDS = frozenset(
    {"format", "kind", "run_id", "strategy_id", "created_at", "engine", "code_version", "params",
     "metrics", "environment", "markets", "tags", "tables", "inputs"}
)
_FILE_NAME = re.compile(r"[^/\\\x00]+\.(parquet|csv)")


@dataclass(frozen=True)
class Manifest:
    run_id: str
    kind: str
    created_at: datetime
    tables: dict[str, str]
    strategy_id: str | None = None
    engine_name: str | None = None
    engine_version: str | None = None
    code_version: str | None = None
    params: dict[str, str | float | int | bool] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    markets: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    #: what the run read (section 7), as stated; resolved to versions at ingest
    inputs: tuple[InputSpec, ...] = ()

    @property
    def is_backtest(self) -> bool:
        return self.kind == "backtest"

    @property
    def single_market(self) -> str | None:
        return self.markets[0] if len(self.markets) == 1 else None


def parse_manifest(data: bytes, folder_name: str) -> Manifest:
    """Parse and check a manifest against the contract; raise :class:`BundleRefused` naming
    the field and the rule on the first problem."""

    def refuse(rule: str, message: str, column: str | None = None) -> BundleRefused:
        return BundleRefused(folder_name, rule, message, table="manifest", column=column)

    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise refuse("manifest_encoding", f"manifest.json is not UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise refuse("manifest_json", f"manifest.json is not JSON: {exc.msg} at line "
                                      f"{exc.lineno} column {exc.colno}") from None
    if not isinstance(doc, dict):
        raise refuse("manifest_json", "manifest.json must hold a JSON object")

    for name in ("format", "run_id", "created_at", "tables"):
        if name not in doc:
            raise refuse("required_field", f"manifest field '{name}' is required", name)
    if doc["format"] != FORMAT:
        raise refuse("format", f"format must be '{FORMAT}', got {doc['format']!r:.60}", "format")
    kind = doc.get("kind", "backtest")
    if kind not in KINDS:
        raise refuse("kind", f"kind must be one of {', '.join(KINDS)}, got {kind!r:.60}", "kind")

    run_id = doc["run_id"]
    if not is_valid_run_id(run_id):
        raise refuse("run_id", f"run_id must be {RUN_ID_RULE}", "run_id")
    if run_id != folder_name:
        raise refuse("run_id_folder", f"run_id '{run_id}' differs from the bundle folder name",
                     "run_id")

    created_at = _parse_created_at(doc["created_at"], refuse)
    tables = _check_tables(doc["tables"], kind, refuse)

    strategy_id = doc.get("strategy_id")
    engine = doc.get("engine")
    if kind == "backtest":
        if not isinstance(strategy_id, str) or not strategy_id:
            raise refuse("required_field", "strategy_id (a non-empty string) is required for a "
                                           "backtest bundle", "strategy_id")
        if not (isinstance(engine, dict) and isinstance(engine.get("name"), str)
                and isinstance(engine.get("version"), str)):
            raise refuse("required_field", 'engine must be {"name": str, "version": str} for a '
                                           "backtest bundle", "engine")
    elif strategy_id is not None and not isinstance(strategy_id, str):
        raise refuse("field_type", "strategy_id must be a string", "strategy_id")
    if engine is not None and not isinstance(engine, dict):
        raise refuse("field_type", "engine must be an object", "engine")

    code_version = doc.get("code_version")
    if code_version is not None and not isinstance(code_version, str):
        raise refuse("field_type", "code_version must be a string", "code_version")

    return Manifest(
        run_id=run_id,
        kind=kind,
        created_at=created_at,
        tables=tables,
        strategy_id=strategy_id,
        engine_name=(engine or {}).get("name"),
        engine_version=(engine or {}).get("version"),
        code_version=code_version,
        params=_check_params(doc.get("params", {}), refuse),
        metrics=_check_metrics(doc.get("metrics", {}), refuse),
        environment=_check_object(doc.get("environment", {}), "environment", refuse),
        markets=_check_strings(doc.get("markets", []), "markets", refuse, MARKET_PATTERN),
        tags=_check_strings(doc.get("tags", []), "tags", refuse),
        extra={k: v for k, v in doc.items() if k not in KNOWN_FIELDS},
        raw=doc,
        inputs=parse_inputs(doc.get("inputs", []), refuse),
    )


def _parse_created_at(value: Any, refuse) -> datetime:
    if isinstance(value, str):
        try:
            return parse_timestamp(value)
        except ValueError:
            pass
    raise refuse("created_at", f"created_at must be an ISO-8601 timestamp, got {value!r:.60}",
                 "created_at")


def _check_tables(value: Any, kind: str, refuse) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise refuse("tables", "tables must be a non-empty object of table name -> file name",
                     "tables")
    seen: set[str] = set()
    for table, file_name in value.items():
        if table not in FACT_TABLES:
            raise refuse("unknown_table", f"unknown table '{table:.60}'; known tables: "
                                          f"{', '.join(FACT_TABLES)}", "tables")
        if kind == "market_data" and FACT_TABLES[table].scope is Scope.RUN:
            raise refuse("table_kind", f"table '{table}' holds backtest results and cannot be "
                                       "in a market_data bundle", "tables")
        if (not isinstance(file_name, str) or not _FILE_NAME.fullmatch(file_name)
                or file_name in (".", "..") or file_name.startswith("..")
                or file_name == "manifest.json"):
            raise refuse("table_file_name", f"file name for table '{table}' must be a bare name "
                                            "ending in .parquet or .csv (no '/', no '..')",
                         "tables")
        if file_name in seen:
            raise refuse("table_file_name", f"file '{file_name}' is listed for two tables",
                         "tables")
        seen.add(file_name)
    return dict(value)


def _check_params(value: Any, refuse) -> dict[str, str | float | int | bool]:
    obj = _check_object(value, "params", refuse)
    for name, v in obj.items():
        if not isinstance(v, str | int | float | bool) or v is None:
            raise refuse("params", f"param '{name:.60}' must be a string, number or bool",
                         "params")
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            raise refuse("params", f"param '{name:.60}' must be finite", "params")
    return obj


def _check_metrics(value: Any, refuse) -> dict[str, float | None]:
    obj = _check_object(value, "metrics", refuse)
    for name, v in obj.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise refuse("metrics", f"metric '{name:.60}' must be a number or null", "metrics")
    return {k: (None if v is None else float(v)) for k, v in obj.items()}


def _check_object(value: Any, name: str, refuse) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise refuse("field_type", f"{name} must be an object", name)
    for key in value:
        if not key or len(key) > 128 or not key.isprintable():
            raise refuse("field_name", f"{name} keys must be 1 to 128 printable characters", name)
    return value


def _check_strings(value: Any, name: str, refuse, pattern: re.Pattern | None = None
                   ) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise refuse("field_type", f"{name} must be a list of strings", name)
    if pattern is not None:
        for v in value:
            if not pattern.fullmatch(v):
                raise refuse("market_name", f"market {v!r:.60} must be {MARKET_RULE}", name)
    return tuple(value)
