"""``ingest_log`` with typed columns, and the move of a JSON-text log to them.

- A log written by the code before (``tables``, ``rows``, ``slices``, ``reason`` as JSON text,
  reproduced below exactly as that code wrote it) answers every reader the same before its
  migration, after it (by ingestion, in one commit, or by ``maintain``), and when several
  writers migrate at once; time travel still reads the old layout.
- New rows are typed, and filtering by table written, slice touched or refusal rule is a
  column expression, no text matched.
- A bundle of 20,000 slices is one small log row (its slices summed per partition).
"""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from btlake_pipelines import Lake
from btlake_pipelines.ingest import ingest
from btlake_pipelines.ingest.catchup import expected_partitions
from btlake_pipelines.ingest.rederive import sources_for
from btlake_pipelines.landing.local import LocalLandingZone
from btlake_pipelines.metadata import ingest_log as L
from btlake_pipelines.metadata import ingest_log_migration
from btlake_pipelines.metadata.ingest_log import BundleResult
from btlake_pipelines.storage import delta
from btlake_pipelines.storage.maintenance import maintain
from tests.core import bundles as B

MARKET_PARTS = [("XNAS", date(2024, 3, 4)), ("XNAS", date(2024, 3, 5))]


def old_log_rows(results: list[BundleResult], *, batch_id: str, handled_at: datetime
                 ) -> pa.Table:
    """``log_rows`` as the code before typed columns wrote it (verbatim)."""
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


def bad_trades() -> pa.Table:
    t = B.trades()
    return t.set_column(t.schema.get_field_index("qty"), "qty", pa.array([-5.0, 1, 2, 3]))


def answers(lake: str, *, batches: bool = True) -> dict:
    """What every reader of ingest_log says about the lake; ``batches``: with the counts of
    the latest batch per table (a new batch changes them)."""
    lk = Lake(lake)
    report = lk.validation_report()
    return {
        "validation": {t: (s.checked, s.accepted, s.refused) if batches else None
                       for t, s in report.items()},
        "unresolved": {t: s.unresolved for t, s in report.items()},
        "versions": [{k: v for k, v in r.items()} for r in lk.run_versions("bt-a")],
        "sources": {p: [s.bundle for s in found] for p, found in
                    sources_for(lake, "ticks", MARKET_PARTS).items()},
        "expected": {t: sorted(k, key=str) for t, k in expected_partitions(lake).items()},
    }


@pytest.fixture
def legacy(dirs):
    """A lake whose ingest_log the old code wrote, in two commits; returns (lake, the
    readers' answers from the typed log, the results, the legacy version)."""
    zone = LocalLandingZone(dirs.landing)
    B.backtest(dirs.landing, "bt-a")
    B.backtest(dirs.landing, "bt-bad", tables={"trades": bad_trades(), "equity": B.equity()})
    B.market_data(dirs.landing, "md-1", {"ticks": B.ticks(start=B.T0)})
    first = ingest(dirs.lake, zone)
    B.backtest(dirs.landing, "bt-a", code_version="v2")
    B.market_data(dirs.landing, "md-2", {"ticks": B.ticks(symbol="MSFT", start=B.later(
        24 * 60))})
    second = ingest(dirs.lake, zone)
    typed = answers(dirs.lake)
    assert typed["sources"][MARKET_PARTS[0]] == ["md-1"]  # the fixture shows what it should
    assert typed["unresolved"]["trades"][0]["rule"] == "positive"

    handled = dict(pl.read_delta(f"{dirs.lake}/ingest_log").select(
        "batch_id", "handled_at").unique().iter_rows())
    uri = f"{dirs.lake}/ingest_log"
    from deltalake import write_deltalake

    shutil.rmtree(uri)  # as the old code made it: no table properties, JSON text
    write_deltalake(uri, old_log_rows(first.results, batch_id=first.batch_id,
                                      handled_at=handled[first.batch_id]))
    write_deltalake(uri, old_log_rows(second.results, batch_id=second.batch_id,
                                      handled_at=handled[second.batch_id]), mode="append")
    return dirs.lake, typed, first.results + second.results, delta.open_table(
        dirs.lake, "ingest_log").version()


def schema(lake: str) -> pa.Schema:
    return pa.schema(delta.open_table(lake, "ingest_log").schema().to_arrow())


def migrations(lake: str) -> list[int]:
    history = delta.open_table(lake, "ingest_log").history()
    return sorted(h["version"] for h in history
                  if h.get("btlake.maintenance") == ingest_log_migration.OPERATION)


def test_a_json_text_log_answers_the_same_before_migration(legacy):
    lake, typed, _, _ = legacy
    assert L.is_legacy(schema(lake))
    assert answers(lake) == typed


def test_first_ingest_migrates_in_one_commit_then_appends_typed_rows(legacy, dirs):
    lake, typed, results, legacy_version = legacy
    B.backtest(dirs.landing, "bt-new")
    ingest(lake, LocalLandingZone(dirs.landing))
    assert schema(lake) == L.SCHEMA
    # the table's properties (a metadata commit), one rewrite, then the new rows
    history = {h["version"]: h for h in delta.open_table(lake, "ingest_log").history()}
    assert history[legacy_version + 1]["operation"] == "SET TBLPROPERTIES"
    assert migrations(lake) == [legacy_version + 2]
    assert delta.open_table(lake, "ingest_log").version() == legacy_version + 3
    now = answers(lake, batches=False)
    assert now == {**typed, "validation": now["validation"]}
    rows = Lake(lake).read("ingest_log").to_pylist()
    assert max(rows, key=lambda r: r["handled_at"])["bundle"] == "bt-new"
    assert {r["bundle"] for r in rows} == {r.bundle for r in results} | {"bt-new"}
    # every migrated row holds what its result said, typed
    by_bundle = {(r.bundle, r.status): r for r in results}
    for row in (r for r in rows if r["bundle"] != "bt-new"):
        result = by_bundle[(row["bundle"], row["status"])]
        assert L.as_mapping(row["tables"], "version") == result.tables
        assert L.as_mapping(row["rows"], "rows") == result.rows
        assert L.reason_record(row["reason"]) == result.reason
        assert [(s["table"], s["market"], s["symbol"], s["date"].isoformat(), s["rows"])
                for s in row["slices"]] == [(s["table"], s["market"], s["symbol"], s["date"],
                                             s["rows"]) for s in result.slices]
    # time travel still reads the JSON-text layout
    old = Lake(lake).read("ingest_log", as_of=str(legacy_version))
    assert old.schema.field("slices").type in (pa.string(), pa.large_string())
    assert ingest_log_migration.migrate(lake) is None  # nothing left to do


def test_maintain_migrates_and_answers_the_same(legacy):
    lake, typed, _, _ = legacy
    maintain(lake)
    assert not L.is_legacy(schema(lake)) and len(migrations(lake)) == 1
    assert answers(lake) == typed


def test_writers_migrating_at_once_make_one_migration(legacy):
    lake, typed, results, _ = legacy
    barrier = threading.Barrier(4)
    outcomes: list[int | None] = []

    def race() -> None:
        barrier.wait()
        outcomes.append(ingest_log_migration.migrate(lake))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 4  # no writer failed
    assert len(migrations(lake)) == 1
    assert sum(v is not None for v in outcomes) == 1
    assert pl.read_delta(f"{lake}/ingest_log").height == len(results)
    assert answers(lake) == typed


def test_a_new_log_is_typed_and_migrating_it_does_nothing(dirs):
    B.backtest(dirs.landing, "cur-a")
    ingest(dirs.lake, LocalLandingZone(dirs.landing))
    dt = delta.open_table(dirs.lake, "ingest_log")
    assert schema(dirs.lake) == L.SCHEMA
    assert dt.metadata().configuration == L.TABLE_PROPERTIES
    assert ingest_log_migration.migrate(dirs.lake) is None
    assert delta.open_table(dirs.lake, "ingest_log").version() == dt.version()


def test_typed_rows_filter_by_table_slice_and_rule_as_columns(legacy):
    lake, _, results, _ = legacy
    maintain(lake)
    log = L.scan_log(lake)
    assert log is not None

    def bundles(expr: pl.Expr) -> list[str]:
        return sorted(log.filter(expr).select("bundle").collect().get_column("bundle"))

    assert bundles(L.wrote("trades")) == sorted(r.bundle for r in results if "trades" in
                                                r.tables)
    assert bundles(L.wrote("ticks")) == ["md-1", "md-2"]
    assert bundles(L.touches("ticks", lambda d: d == date(2024, 3, 5))) == ["md-2"]
    assert bundles(L.refused_by("positive")) == ["bt-bad"]
    assert bundles(L.refused_by("positiv")) == []  # a prefix is not a match
    assert log.filter(L.wrote("tick")).collect().height == 0
    # nested types, no text: the filter never reads a string column
    types = log.collect_schema()
    assert isinstance(types["slices"], pl.List) and isinstance(types["reason"], pl.Struct)


def test_a_bundle_of_20000_slices_is_one_small_log_row(dirs):
    symbols = [f"S{i:05d}" for i in range(20_000)]
    n = len(symbols)
    base = int(B.T0.timestamp() * 1e9)
    ticks = pa.table({"ts": pa.array(base + np.arange(n, dtype=np.int64),
                                     pa.timestamp("ns", "UTC")),
                      "symbol": symbols, "price": np.full(n, 10.0), "size": np.ones(n)})
    B.market_data(dirs.landing, "chain", {"ticks": ticks})
    result = ingest(dirs.lake, LocalLandingZone(dirs.landing)).results[0]
    assert result.status == "ingested", result.error
    row = Lake(dirs.lake).read("ingest_log").to_pylist()[0]
    assert len(row["slices"]) == 1
    entry = row["slices"][0]
    assert entry["symbols"] == n and entry["symbol"] is None and entry["rows"] == n
    assert entry["first_ts"] == datetime.fromtimestamp(base // 1000 / 1e6, UTC)
    assert len(json.dumps(row, default=str)) < 2_000  # bounded, whatever the slice count
    assert [s.bundle for s in sources_for(dirs.lake, "ticks", [("XNAS", date(2024, 3, 4))])[
        ("XNAS", date(2024, 3, 4))]] == ["chain"]
