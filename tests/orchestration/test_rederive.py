"""Re-deriving partitions from the archive, without Dagster: the rows come back exactly, only
the named partitions change, and market-data overlaps replay in handling order."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from btlake_pipelines.demo import write_bundle
from btlake_pipelines.ingest import rederive as rederive_module
from btlake_pipelines.ingest.batch import ingest
from btlake_pipelines.ingest.catchup import plan_catch_up
from btlake_pipelines.ingest.rederive import (
    delta_partition_rows,
    partition_predicate,
    rederive,
    rederive_months,
    rederive_runs,
)
from btlake_pipelines.landing.local import LocalLandingZone
from btlake_pipelines.storage import delta
from btlake_pipelines.storage.scan import scan

try:
    from . import orchestration_kit as kit
except ImportError:
    import orchestration_kit as kit

D1, D2 = kit.DAYS


def test_predicate_names_exactly_the_partitions_and_escapes_values():
    text = partition_predicate([("X'Y", D1), ("A", D2), ("A", D2)])
    assert text == ("(market = 'A' AND date = '2024-11-05') OR "
                    "(market = 'X''Y' AND date = '2024-11-04')")
    month = partition_predicate([("A", D2), ("A", D1), ("A", date(2024, 12, 1))])
    assert month == ("(market = 'A' AND date IN ('2024-11-04', '2024-11-05')) OR "
                     "(market = 'A' AND date = '2024-12-01')")


def test_a_long_range_predicate_stays_shallow():
    """A clause per market-month, OR-ed as a balanced tree: 40 markets x 240 months stay a
    few dozen levels deep (a flat chain of thousands of clauses crashes deltalake)."""
    parts = [(f"M{m}", date(2005 + k // 12, k % 12 + 1, 1 + d)) for m in range(40)
             for k in range(240) for d in (0, 1)]
    text = partition_predicate(parts)
    assert text.count("IN (") == 40 * 240
    depth = deepest = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        deepest = max(deepest, depth)
    assert deepest <= 20


@pytest.mark.parametrize(("table", "market", "day"), [
    ("trades", "XNAS", D1),
    ("equity", "BINANCE", D2),
    ("events", "XNYS", D1),
    ("l2", "BINANCE", date(2024, 8, 8)),
    ("ticks", "TRUEFX", date(2013, 1, 1)),
])
def test_rederive_restores_the_same_rows_and_touches_nothing_else(built_lake, table, market,
                                                                    day):
    lake = built_lake.lake
    before_rows = kit.partition_rows(lake, table, market, day)
    before = kit.fingerprint(lake)
    version_before = delta.open_table(lake, table).version()

    [result] = rederive(lake, table, [(market, day)])

    assert result.rows == before_rows.height > 0 and result.sources
    assert result.version == version_before + 1  # one commit
    after_rows = kit.partition_rows(lake, table, market, day)
    assert after_rows.equals(before_rows.select(after_rows.columns))
    kit.assert_untouched(before, kit.fingerprint(lake),
                         {table: {kit.folder_of(table, market, day)}})
    commit = DeltaTable(delta.table_uri(lake, table)).history(1)[0]
    assert commit["operationParameters"]["predicate"].replace("::date", "") == (
        f"market = '{market}' AND date = '{day}'")


def test_a_lost_partition_comes_back_from_the_archive(built_lake):
    lake = built_lake.lake
    expected = kit.partition_rows(lake, "trades", "XNYS", D2)
    DeltaTable(delta.table_uri(lake, "trades")).delete(partition_predicate([("XNYS", D2)]))
    assert ("XNYS", D2) not in delta_partition_rows(lake, "trades")

    plan = plan_catch_up(lake, recorded=lambda table: set())
    assert plan.missing == {"trades": [("XNYS", D2)]}
    assert ("XNAS", D1) in plan.unrecorded["trades"]  # present, never recorded
    assert (None, D1) in plan.unrecorded["runs"]

    rederive(lake, "trades", plan.missing["trades"])
    assert kit.partition_rows(lake, "trades", "XNYS", D2).equals(expected)
    assert plan_catch_up(lake).missing == {}


def test_runs_rows_are_rebuilt_from_the_archived_manifests(built_lake):
    lake = built_lake.lake
    before = kit.partition_rows(lake, "runs", None, D2)
    snapshot = kit.fingerprint(lake)
    [empty, result] = rederive_runs(lake, [D2, date(2024, 1, 1)])
    assert result.rows == before.height == 6 and result.version is not None
    assert empty.rows == 0 and empty.version is None
    assert kit.partition_rows(lake, "runs", None, D2).equals(before)
    kit.assert_untouched(snapshot, kit.fingerprint(lake), {"runs": {("date=2024-11-05",)}})


def test_partitions_without_an_archived_source_are_left_alone(built_lake):
    lake = built_lake.lake
    stray = pa.table({"ts": pa.array([datetime(2024, 11, 4, tzinfo=UTC)], pa.timestamp("us",
                                                                                       "UTC")),
                      "equity": [1.0], "market": ["ELSEWHERE"],
                      "date": pa.array([D1], pa.date32())})
    delta.write(lake, "equity", stray, predicate=None, metadata={})
    version = delta.open_table(lake, "equity").version()
    [kept, nothing] = rederive(lake, "equity", [("ELSEWHERE", D1), ("NOWHERE", D1)])
    assert kept.rows == 1 and kept.version is None and "left unchanged" in kept.note
    assert nothing.rows == 0 and nothing.version is None
    assert delta.open_table(lake, "equity").version() == version  # no commit at all


def _ticks(start: datetime, count: int, price: float) -> pa.Table:
    ts = [start + timedelta(seconds=i) for i in range(count)]
    return pa.table({"ts": pa.array(ts, pa.timestamp("ns", "UTC")),
                     "symbol": ["ABC"] * count, "price": [price + i for i in range(count)],
                     "size": [1.0] * count})


def _market_bundle(landing, name: str, table: pa.Table) -> None:
    write_bundle(landing / name, {"kind": "market_data", "run_id": name, "markets": ["MKT"],
                                  "created_at": "2024-11-06T00:00:00Z"}, {"ticks": table})


def test_overlapping_market_data_replays_in_handling_order(tmp_path):
    lake, landing = str(tmp_path / "lake"), tmp_path / "landing"
    zone = LocalLandingZone(str(landing))
    t0 = datetime(2024, 11, 6, 10, tzinfo=UTC)
    _market_bundle(landing, "mkt-a", _ticks(t0, 10, 100.0))
    ingest(lake, zone)
    # one later batch with two bundles overlapping each other and the first one
    _market_bundle(landing, "mkt-b", _ticks(t0 + timedelta(seconds=3), 4, 200.0))
    _market_bundle(landing, "mkt-c", _ticks(t0 + timedelta(seconds=5), 3, 300.0))
    batch = ingest(lake, zone)
    assert [r.status for r in batch.results] == ["replaced", "replaced"]
    day = t0.date()
    stored = kit.partition_rows(lake, "ticks", "MKT", day)
    assert stored.height == 10 and stored.sort("ts")["price"].to_list()[3:8] == [
        200.0, 201.0, 300.0, 301.0, 302.0]

    [result] = rederive(lake, "ticks", [("MKT", day)])
    assert result.sources == ["mkt-a", "mkt-b", "mkt-c"]
    assert kit.partition_rows(lake, "ticks", "MKT", day).equals(stored)


def test_an_archived_copy_that_changed_is_refused(built_lake):
    lake = built_lake.lake
    runs = scan(lake, "runs").filter(pl.col("date") == D1).collect()
    archive = runs["archive_uri"][0]
    manifest = Path(archive) / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"demo"', '"edited"'))
    market = runs["markets"][0][0]
    with pytest.raises(Exception, match="content hash"):
        rederive(lake, "trades", [(market, D1)])


def _ticks_on(days: list[date], count: int = 5) -> pa.Table:
    return pa.concat_tables([_ticks(datetime.combine(d, datetime.min.time(), UTC)
                                    .replace(hour=9), count, 100.0) for d in days])


def _month_lake(tmp_path: Path) -> str:
    """MKT ticks on both sides of November's edges, and OTHER in November."""
    lake, landing = str(tmp_path / "lake"), tmp_path / "landing"
    days = [date(2024, 10, 31), date(2024, 11, 1), date(2024, 11, 30), date(2024, 12, 1)]
    _market_bundle(landing, "mkt-edges", _ticks_on(days))
    write_bundle(landing / "other-nov", {"kind": "market_data", "run_id": "other-nov",
                                         "markets": ["OTHER"],
                                         "created_at": "2024-12-02T00:00:00Z"},
                 {"ticks": _ticks_on([date(2024, 11, 15)])})
    batch = ingest(lake, LocalLandingZone(str(landing)))
    assert not batch.quarantined, batch.summary()
    return lake


def test_a_month_rederives_exactly_its_days_of_that_market(tmp_path):
    lake = _month_lake(tmp_path)
    nov = [date(2024, 11, 1), date(2024, 11, 30)]
    # a stored day of the month that no archived bundle holds stays as it is
    stray = _ticks_on([date(2024, 11, 20)]).append_column("market", pa.array(["MKT"] * 5))
    stray = stray.append_column("date", pa.array([date(2024, 11, 20)] * 5, pa.date32()))
    delta.write(lake, "ticks", stray, predicate=None, metadata={})
    rows = {d: kit.partition_rows(lake, "ticks", "MKT", d) for d in [*nov, date(2024, 11, 20)]}
    before, version = kit.fingerprint(lake), delta.open_table(lake, "ticks").version()

    results = rederive_months(lake, "ticks", [("MKT", date(2024, 11, 17))])  # any day names it

    assert [r.day for r in results] == [nov[0], date(2024, 11, 20), nov[1]]
    stray_result = results[1]
    assert stray_result.version is None and "left unchanged" in stray_result.note
    assert {r.version for r in (results[0], results[2])} == {version + 1}  # one commit
    assert delta.open_table(lake, "ticks").version() == version + 1
    for d, expected in rows.items():
        assert kit.partition_rows(lake, "ticks", "MKT", d).equals(expected)
    kit.assert_untouched(before, kit.fingerprint(lake),
                         {"ticks": {kit.folder_of("ticks", "MKT", d) for d in nov}})
    commit = DeltaTable(delta.table_uri(lake, "ticks")).history(1)[0]
    predicate = commit["operationParameters"]["predicate"].replace("::date", "")
    assert predicate == "market = 'MKT' AND (date = '2024-11-01' OR date = '2024-11-30')"


def test_a_month_with_nothing_stored_or_archived_writes_nothing(tmp_path):
    lake = _month_lake(tmp_path)
    version = delta.open_table(lake, "ticks").version()
    assert rederive_months(lake, "ticks", [("MKT", date(2024, 9, 1)),
                                           ("NOWHERE", date(2024, 11, 1))]) == []
    assert delta.open_table(lake, "ticks").version() == version


def test_a_long_range_is_written_in_bounded_commits_of_whole_months(tmp_path, monkeypatch):
    lake = _month_lake(tmp_path)
    monkeypatch.setattr(rederive_module, "MAX_DAYS_PER_COMMIT", 2)
    version = delta.open_table(lake, "ticks").version()
    months = [("MKT", date(2024, m, 1)) for m in (10, 11, 12)]
    results = rederive_months(lake, "ticks", months)
    # October (1 day) and December (1 day) would fit together, but commits follow the
    # sorted order: Oct | Nov (2 days) | Dec; November's two days share one commit
    assert [(r.day, r.version) for r in results] == [
        (date(2024, 10, 31), version + 1), (date(2024, 11, 1), version + 2),
        (date(2024, 11, 30), version + 2), (date(2024, 12, 1), version + 3)]
    assert delta.open_table(lake, "ticks").version() == version + 3
