"""Every table's rules, each with a failing example, and what a refusal reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pytest

from btlake_pipelines import Lake
from btlake_pipelines.ingest import ingest
from btlake_pipelines.landing.local import LocalLandingZone
from tests.core import bundles as B


def _with(table: pa.Table, column: str, values: list) -> pa.Table:
    idx = table.column_names.index(column)
    return table.set_column(idx, column, pa.array(values))


def _l2(n: int = 4) -> pa.Table:
    return pa.table({"ts": B.ts_array(n), "symbol": ["AAPL"] * n,
                     "side": ["bid", "ask"] * (n // 2), "level": list(range(n)),
                     "price": [10.0 + i for i in range(n)], "size": [1.0] * n})


def _events(n: int = 3) -> pa.Table:
    return pa.table({"ts": B.ts_array(n), "event_type": ["signal"] * n,
                     "payload": ['{"a": 1}'] * n})


# (case id, table, broken table, expected rule, expected column, expected rows)
CASES = [
    ("trades-side", "trades", _with(B.trades(4), "side", ["buy", "hold", "sell", "buy"]),
     "allowed_values", "side", [1]),
    ("trades-qty-zero", "trades", _with(B.trades(4), "qty", [1.0, 0.0, 2.0, -1.0]),
     "positive", "qty", [1, 3]),
    ("trades-price-neg", "trades", _with(B.trades(4), "price", [1.0, 2.0, -3.0, 4.0]),
     "positive", "price", [2]),
    ("trades-price-inf", "trades", _with(B.trades(4), "price", [1.0, float("inf"), 3, 4]),
     "finite", "price", [1]),
    ("trades-symbol-null", "trades", _with(B.trades(4), "symbol", ["A", None, "B", "C"]),
     "not_null", "symbol", [1]),
    ("trades-missing-col", "trades", B.trades(4).drop_columns(["side"]), "missing_column",
     "side", []),
    ("trades-qty-text", "trades", _with(B.trades(4), "qty", ["1", "x", "2", "3"]), "type",
     "qty", [1]),
    ("equity-nan", "equity", _with(B.equity(3), "equity", [1.0, float("nan"), 2.0]),
     "not_null", "equity", [1]),
    ("equity-inf", "equity", _with(B.equity(3), "equity", [1.0, 2.0, float("-inf")]),
     "finite", "equity", [2]),
    ("ticks-price-zero", "ticks", _with(B.ticks(3), "price", [1.0, 0.0, 1.0]), "positive",
     "price", [1]),
    ("ticks-size-neg", "ticks", _with(B.ticks(3), "size", [1.0, 0.0, -5.0]), "non_negative",
     "size", [2]),
    ("ticks-ts-null", "ticks", B.ticks(3).set_column(
        0, "ts", pa.array([1, None, 3], pa.timestamp("ns", "UTC"))), "not_null", "ts", [1]),
    ("l2-side", "l2", _with(_l2(), "side", ["bid", "buy", "ask", "bid"]), "allowed_values",
     "side", [1]),
    ("l2-level-neg", "l2", _with(_l2(), "level", [0, 1, -1, 2]), "non_negative", "level", [2]),
    ("l2-level-fraction", "l2", _with(_l2(), "level", [0.0, 1.5, 2.0, 3.0]), "type", "level",
     [1]),
    ("l2-price-zero", "l2", _with(_l2(), "price", [1.0, 1.0, 0.0, 1.0]), "positive", "price",
     [2]),
    ("l2-size-neg", "l2", _with(_l2(), "size", [1.0, -1.0, 1.0, 1.0]), "non_negative", "size",
     [1]),
    ("events-payload", "events", _with(_events(), "payload", ['{"a":1}', "{oops", None]),
     "json", "payload", [1]),
    ("events-type-null", "events", _with(_events(), "event_type", ["a", None, "b"]),
     "not_null", "event_type", [1]),
]


@pytest.mark.parametrize(("case", "table", "broken", "rule", "column", "rows"), CASES,
                         ids=[c[0] for c in CASES])
def test_rule_refuses_bundle_with_table_column_rule_and_rows(dirs, case, table, broken, rule,
                                                             column, rows):
    bad_id = f"bad-{case}"
    tables = {table: broken}
    if table in ("trades", "equity", "events"):
        B.backtest(dirs.landing, bad_id, tables=tables)
    else:
        B.market_data(dirs.landing, bad_id, tables)
    B.backtest(dirs.landing, "good-neighbour")
    result = ingest(dirs.lake, LocalLandingZone(dirs.landing))
    by_name = {r.bundle: r for r in result.results}
    assert by_name["good-neighbour"].status == "ingested"
    refused = by_name[bad_id]
    assert refused.status == "quarantined"
    assert (refused.reason["rule"], refused.reason["table"], refused.reason["column"]) == (
        rule, table, column)
    assert refused.reason["rows"][: len(rows)] == rows
    assert table in refused.error and column in refused.error

    reason_file = os.path.join(dirs.lake, "_quarantine", bad_id, "reason.json")
    saved = json.loads(Path(reason_file).read_text())
    assert saved["rule"] == rule and saved["bundle"] == bad_id
    assert Lake(dirs.lake).runs(where=f"run_id = '{bad_id}'").num_rows == 0


MANIFEST_CASES = [
    ("format", {"format": "btlake.bundle/2"}, "format"),
    ("created", {"created_at": "yesterday"}, "created_at"),
    ("table-name", {"tables": {"orders": "orders.parquet"}}, "unknown_table"),
    ("file-path", {"tables": {"trades": "../trades.parquet"}}, "table_file_name"),
    ("missing-file", {"tables": {"trades": "nope.parquet"}}, "missing_file"),
    ("run-id", {"run_id": "someone-else"}, "run_id_folder"),
    ("engine", {"engine": "zipline"}, "required_field"),
    ("param-type", {"params": {"x": [1, 2]}}, "params"),
    ("metric-type", {"metrics": {"sharpe": "high"}}, "metrics"),
]


@pytest.mark.parametrize(("case", "override", "rule"), MANIFEST_CASES,
                         ids=[c[0] for c in MANIFEST_CASES])
def test_manifest_rules(dirs, case, override, rule):
    folder = B.backtest(dirs.landing, f"m-{case}")
    doc = json.loads((folder / "manifest.json").read_text())
    doc.update(override)
    (folder / "manifest.json").write_text(json.dumps(doc))
    result = ingest(dirs.lake, LocalLandingZone(dirs.landing)).results[0]
    assert result.status == "quarantined"
    assert result.reason["rule"] == rule


def test_incomplete_bundle_is_left_alone(dirs):
    folder = dirs.landing_path / "half-done"
    folder.mkdir()
    (folder / "trades.parquet").write_bytes(b"partial")
    result = ingest(dirs.lake, LocalLandingZone(dirs.landing))
    assert result.results == []
    assert folder.exists() and not os.path.exists(os.path.join(dirs.lake, "_quarantine"))


def test_invalid_folder_name_is_quarantined_under_a_made_up_name(dirs):
    folder = dirs.landing_path / "bad name; rm -rf"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    result = ingest(dirs.lake, LocalLandingZone(dirs.landing)).results[0]
    assert result.status == "quarantined" and result.reason["rule"] == "run_id"
    names = os.listdir(os.path.join(dirs.lake, "_quarantine"))
    assert len(names) == 1 and names[0].startswith("invalid-name-")
    saved = json.loads(Path(dirs.lake, "_quarantine", names[0], "reason.json").read_text())
    assert saved["bundle"] == "bad name; rm -rf"


def test_extra_column_type_conflicts_refuse_only_that_bundle(dirs):
    zone = LocalLandingZone(dirs.landing)
    B.backtest(dirs.landing, "note-int", tables={
        "trades": B.trades(2).append_column("note", pa.array([1, 2]))})
    ingest(dirs.lake, zone)
    B.backtest(dirs.landing, "note-float", tables={
        "trades": B.trades(2).append_column("note", pa.array([1.0, 2.0]))})
    B.backtest(dirs.landing, "note-text", tables={
        "trades": B.trades(2).append_column("note", pa.array(["a", "b"]))})
    B.backtest(dirs.landing, "note-none", tables={"trades": B.trades(2)})
    result = {r.bundle: r for r in ingest(dirs.lake, zone).results}
    assert result["note-float"].status == "ingested"  # 1.0 fits an integer column
    assert result["note-none"].status == "ingested"
    assert result["note-text"].status == "quarantined"
    assert (result["note-text"].reason["rule"], result["note-text"].reason["column"]) == (
        "column_type", "note")
    notes = Lake(dirs.lake).read("trades", run_id="note-float").column("note").to_pylist()
    assert notes == [1, 2]
    B.backtest(dirs.landing, "note-half", tables={
        "trades": B.trades(2).append_column("note", pa.array([1.5, 2.0]))})
    half = ingest(dirs.lake, zone).results[0]
    assert half.status == "quarantined" and half.reason["rule"] == "column_type"


def test_a_bundle_the_store_rejects_is_quarantined_and_the_rest_still_land(dirs, monkeypatch):
    """A write failure no rule foresaw (simulated for one run's rows) must not block the
    batch: the bundles are retried one by one and only the culprit is quarantined."""
    from btlake_pipelines.storage import delta

    real_write = delta.write

    def picky_write(lake, table, data, **kwargs):
        if data is not None and "run_id" in data.column_names and \
                "poison-1" in data.column("run_id").to_pylist():
            raise ValueError("simulated: the store refused these rows")
        return real_write(lake, table, data, **kwargs)

    monkeypatch.setattr(delta, "write", picky_write)
    for name in ("fine-1", "poison-1", "fine-2"):
        B.backtest(dirs.landing, name)
    result = {r.bundle: r for r in ingest(dirs.lake, LocalLandingZone(dirs.landing)).results}
    assert result["fine-1"].status == result["fine-2"].status == "ingested"
    assert result["poison-1"].status == "quarantined"
    assert result["poison-1"].reason["rule"] == "write_failed"
    assert Lake(dirs.lake).read("trades").num_rows == 8
    assert not os.listdir(dirs.landing)
