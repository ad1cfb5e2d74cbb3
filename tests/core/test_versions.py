"""Re-ingesting: unchanged content writes nothing, changed content is one new version per table
and the old content stays readable by time travel."""

from __future__ import annotations

import shutil

from btlake_pipelines import Lake
from btlake_pipelines.ingest import ingest
from btlake_pipelines.landing.local import LocalLandingZone
from tests.core import bundles as B


def _versions(lake: Lake) -> dict[str, int]:
    out = {}
    for t in ("trades", "equity", "runs"):
        dt = lake.catalog.table(t)
        out[t] = dt.version() if dt is not None else None
    return out


def test_reingest_unchanged_writes_no_new_version(dirs, tmp_path):
    folder = B.backtest(dirs.landing, "v-1")
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    zone = LocalLandingZone(dirs.landing)
    ingest(dirs.lake, zone)
    lake = Lake(dirs.lake)
    before = _versions(lake)

    shutil.copytree(copy, dirs.landing_path / "v-1")
    result = ingest(dirs.lake, zone)
    assert [r.status for r in result.results] == ["unchanged"]
    assert _versions(lake) == before
    assert set(result.commits) == {"ingest_log"}
    log = lake.read("ingest_log").to_pylist()
    assert [r["status"] for r in log if r["run_id"] == "v-1"].count("unchanged") == 1
    assert not (dirs.landing_path / "v-1").exists()


def test_reingest_changed_is_one_new_version_and_old_stays_readable(dirs):
    zone = LocalLandingZone(dirs.landing)
    B.backtest(dirs.landing, "v-2", tables={"trades": B.trades(4, price=100.0),
                                            "equity": B.equity()})
    ingest(dirs.lake, zone)
    lake = Lake(dirs.lake)
    before = _versions(lake)
    old_trades = lake.read("trades", run_id="v-2")

    B.backtest(dirs.landing, "v-2", tables={"trades": B.trades(3, price=200.0),
                                            "equity": B.equity()},
               metrics={"sharpe": 2.5})
    result = ingest(dirs.lake, zone)
    assert [r.status for r in result.results] == ["replaced"]
    after = _versions(lake)
    assert after == {t: v + 1 for t, v in before.items()}

    new = lake.read("trades", run_id="v-2")
    assert new.num_rows == 3 and set(new.column("price").to_pylist()) >= {200.0}
    assert lake.read("trades").num_rows == 3  # never twice
    runs = lake.runs().to_pylist()
    assert len(runs) == 1 and runs[0]["metrics"]["sharpe"] == 2.5

    as_of = lake.read("trades", run_id="v-2", as_of=before["trades"])
    assert as_of.column("price").to_pylist() == old_trades.column("price").to_pylist()
    assert lake.read("trades", run_id="v-2", as_of=str(before["trades"])).num_rows == 4
    versions = lake.run_versions("v-2")
    assert [v["current"] for v in versions] == [True, False]
    assert versions[0]["content_hash"] != versions[1]["content_hash"]


def test_history_lists_versions_newest_first_with_runs(dirs):
    zone = LocalLandingZone(dirs.landing)
    B.backtest(dirs.landing, "h-1")
    ingest(dirs.lake, zone)
    B.backtest(dirs.landing, "h-2")
    ingest(dirs.lake, zone)
    history = Lake(dirs.lake).history("trades").to_pylist()
    assert [h["version"] for h in history] == [1, 0]
    assert history[0]["runs"] == ["h-2"] and history[1]["runs"] == ["h-1"]
    assert history[0]["rows_added"] == 4 and history[0]["operation"] == "WRITE"


def test_as_of_timestamp_and_bad_as_of(dirs):
    import datetime as dt

    import pytest

    from btlake_pipelines.errors import BtlakeError

    zone = LocalLandingZone(dirs.landing)
    B.backtest(dirs.landing, "t-1")
    ingest(dirs.lake, zone)
    lake = Lake(dirs.lake)
    now = dt.datetime.now(dt.UTC)
    assert lake.read("trades", as_of=now.isoformat()).num_rows == 4
    with pytest.raises(BtlakeError):
        lake.read("trades", as_of="not-a-time")
    with pytest.raises(BtlakeError, match="no version 99"):
        lake.read("trades", as_of=99)


def test_many_bundles_cost_one_commit_per_table(dirs):
    for i in range(25):
        B.backtest(dirs.landing, f"batch-{i:02d}",
                   tables={"trades": B.trades(3), "equity": B.equity(),
                           "ticks": B.ticks(4, symbol=f"S{i}")})
    result = ingest(dirs.lake, LocalLandingZone(dirs.landing))
    assert all(r.status == "ingested" for r in result.results)
    assert {t: len(v) for t, v in result.commits.items()} == {
        "trades": 1, "equity": 1, "ticks": 1, "runs": 1, "ingest_log": 1}
    assert Lake(dirs.lake).runs().num_rows == 25


def test_a_run_caught_mid_replace_is_read_whole_at_its_pinned_version(dirs, monkeypatch):
    """Kill a replace after the trades commit and before the runs commit: btlake readers keep
    seeing the previous content of that run, never the new trades with the old metadata."""
    import pytest

    from btlake_pipelines.ingest import batch as batch_module

    zone = LocalLandingZone(dirs.landing)
    B.backtest(dirs.landing, "mid-1", tables={"trades": B.trades(4, price=100.0)})
    B.backtest(dirs.landing, "other-1", tables={"trades": B.trades(2, price=5.0)})
    ingest(dirs.lake, zone)

    B.backtest(dirs.landing, "mid-1", tables={"trades": B.trades(3, price=300.0)})
    real_run_rows = batch_module.run_rows

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("simulated crash before the runs commit")

    monkeypatch.setattr(batch_module, "run_rows", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest(dirs.lake, zone)
    lake = Lake(dirs.lake)
    raw = lake.catalog.table("trades")
    assert raw.version() == 1  # the new trades are committed...
    seen = lake.read("trades", run_id="mid-1")
    assert seen.num_rows == 4 and set(seen.column("price").to_pylist()) >= {100.0}
    assert lake.read("trades").num_rows == 6  # ...yet every run is read whole

    monkeypatch.setattr(batch_module, "run_rows", real_run_rows)
    assert [r.status for r in ingest(dirs.lake, zone).results] == ["replaced"]
    fresh = Lake(dirs.lake).read("trades", run_id="mid-1")
    assert fresh.num_rows == 3 and set(fresh.column("price").to_pylist()) >= {300.0}
