"""Run lineage (CONTRACT section 7): inputs resolved at ingest, ``Lake.inputs`` returning the
rows the run saw, exactly the runs whose input slices changed reported stale, table diffs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from btlake_pipelines import Lake
from btlake_pipelines.ingest import ingest
from btlake_pipelines.landing.local import LocalLandingZone
from tests.core import bundles as B

DAY = B.T0.replace(hour=0, minute=0)


def _ingest(dirs):
    return ingest(dirs.lake, LocalLandingZone(dirs.landing))


def _ticks(symbols: dict[str, float], start: datetime = B.T0) -> pa.Table:
    return pa.concat_tables([B.ticks(6, price=p, symbol=s, start=start)
                             for s, p in symbols.items()])


def _input(symbols=None, day: datetime = DAY, **extra):
    item = {"table": "ticks", "market": "XNAS", "start": day.isoformat(),
            "end": (day + timedelta(days=1)).isoformat(), **extra}
    if symbols is not None:
        item["symbols"] = symbols
    return item


def _run(dirs, run_id: str, inputs: list[dict]) -> None:
    B.backtest(dirs.landing, run_id, created_at=datetime.now(UTC).isoformat(), inputs=inputs)


@pytest.fixture
def lineage_lake(dirs):
    """Ticks of AAPL and MSFT on one day; runs reading AAPL (by time, by version, by tag),
    MSFT, and another day; then AAPL's slice is replaced and a later run reads the new one."""
    B.market_data(dirs.landing, "md-1", {"ticks": _ticks({"AAPL": 50.0, "MSFT": 300.0})})
    B.market_data(dirs.landing, "md-other-day",
                  {"ticks": _ticks({"AAPL": 51.0}, start=B.T0 + timedelta(days=1))})
    _ingest(dirs)
    lake = Lake(dirs.lake)
    v1 = lake.catalog.table("ticks").version()
    lake.tag_create("ticks-v1")
    _run(dirs, "r-aapl", [_input(["AAPL"])])
    _run(dirs, "r-all", [_input()])
    _run(dirs, "r-version", [_input(["AAPL"], version=v1)])
    _run(dirs, "r-tag", [_input(["AAPL"], tag="ticks-v1")])
    _run(dirs, "r-msft", [_input(["MSFT"])])
    _run(dirs, "r-other-day", [_input(["AAPL"], day=DAY + timedelta(days=1))])
    _run(dirs, "r-none", [])
    _ingest(dirs)
    old_aapl = lake.read("ticks", symbol="AAPL", start=DAY, end=DAY + timedelta(days=1))
    B.market_data(dirs.landing, "md-2", {"ticks": _ticks({"AAPL": 55.0})})
    assert [r.status for r in _ingest(dirs).results] == ["replaced"]
    _run(dirs, "r-later", [_input(["AAPL"])])
    _ingest(dirs)
    return lake, v1, old_aapl


def test_inputs_resolve_and_return_the_rows_the_run_saw(lineage_lake):
    lake, v1, old_aapl = lineage_lake
    doc = lake.lineage("r-aapl")
    assert doc["run_id"] == "r-aapl"
    [item] = doc["inputs"]
    assert {k: item[k] for k in ("table", "market", "symbols", "version", "stale")} == {
        "table": "ticks", "market": "XNAS", "symbols": ["AAPL"], "version": v1, "stale": True}
    assert item["start"] == DAY.isoformat()
    assert lake.lineage("r-tag")["inputs"][0]["version"] == v1
    assert lake.lineage("r-later")["inputs"][0]["version"] > v1
    got = lake.inputs("r-aapl")
    assert list(got) == ["ticks:XNAS"]
    assert got["ticks:XNAS"].equals(old_aapl)
    assert lake.inputs("r-later")["ticks:XNAS"].column("price").to_pylist()[0] == 55.0
    assert lake.lineage("r-none")["inputs"] == []


def test_exactly_the_runs_whose_slices_changed_are_stale(lineage_lake):
    lake, _, old_aapl = lineage_lake
    want = ["r-aapl", "r-all", "r-tag", "r-version"]
    assert lake.stale_runs() == want
    assert sorted(r["run_id"] for r in lake.find_runs(stale=True).records()) == want
    assert lake.find_runs(stale=True, where="run_id = 'r-all'").total == 1
    # compaction rewrites files without changing rows; vacuum at 0 keeps the input versions
    lake.maintain(retention_hours=0)
    fresh = Lake(lake.uri)
    assert fresh.stale_runs() == want
    assert fresh.inputs("r-aapl")["ticks:XNAS"].equals(old_aapl)


def test_bad_inputs_refuse_the_bundle_naming_the_field(dirs):
    _run(dirs, "r-bad", [_input(["AAPL"]), {"table": "ticks", "market": "XNAS"}])
    _run(dirs, "r-no-tag", [_input(tag="nope")])
    results = {r.bundle: r for r in _ingest(dirs).results}
    assert results["r-bad"].status == "quarantined"
    assert "inputs[1]" in results["r-bad"].error and "'start' is required" in \
        results["r-bad"].error
    assert results["r-no-tag"].status == "quarantined"
    assert "unknown tag 'nope'" in results["r-no-tag"].error


def test_diff_counts_rows_added_and_removed_per_partition(lineage_lake):
    lake, v1, _ = lineage_lake
    latest = lake.catalog.table("ticks").version()
    doc = lake.table_diff("ticks", "tag:ticks-v1", str(latest))
    assert doc["a"] == v1 and doc["b"] == latest
    assert doc["partitions"] == [{"market": "XNAS", "date": DAY.date().isoformat(),
                                  "added": 6, "removed": 6}]
    assert lake.table_diff("ticks", latest, latest)["partitions"] == []


def test_staleness_stays_known_after_vacuum_and_log_cleanup(lineage_lake):
    lake, _, old_aapl = lineage_lake
    want = lake.stale_runs()
    lake.maintain(retention_hours=0)
    assert Lake(lake.uri).inputs("r-aapl")["ticks:XNAS"].equals(old_aapl)
    ticks = lake.catalog.table("ticks")
    latest = ticks.version()
    ticks.create_checkpoint()
    log = Path(lake.uri) / "ticks" / "_delta_log"
    for version in range(latest):  # what log cleanup leaves: a checkpoint, no old commits
        (log / f"{version:020d}.json").unlink()
    fresh = Lake(lake.uri)
    assert fresh.stale_runs() == want == ["r-aapl", "r-all", "r-tag", "r-version"]
    assert [i["stale"] for i in fresh.lineage("r-msft")["inputs"]] == [False]
    inputs = Path(lake.uri) / "_run_inputs"
    assert len(list(inputs.glob("*.parquet"))) == 1  # maintain compacted btlake's own table
