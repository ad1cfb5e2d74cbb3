"""Lake-wide tags (CONTRACT section 7): an atomic record of every table's version, readable
with ``as_of="tag:NAME"`` everywhere, kept by maintenance until deleted."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from btlake_pipelines import Lake
from btlake_pipelines.errors import BtlakeError, NotFoundError, QueryError
from btlake_pipelines.ingest import ingest
from btlake_pipelines.landing.local import LocalLandingZone
from tests.core import bundles as B


def _ingest(dirs) -> None:
    ingest(dirs.lake, LocalLandingZone(dirs.landing))


def _files(lake_dir, table: str) -> set[str]:
    return {p.name for p in (lake_dir / table).rglob("*.parquet")}


def test_tag_records_every_table_and_is_immutable(dirs):
    B.backtest(dirs.landing, "t-1")
    B.market_data(dirs.landing, "md-1", {"ticks": B.ticks(6)})
    _ingest(dirs)
    lake = Lake(dirs.lake)
    tag = lake.tag_create("paper-q3", "as published")
    want = {t: lake.catalog.table(t).version()
            for t in ("runs", "trades", "equity", "ticks", "ingest_log")}
    assert tag.versions == want
    with pytest.raises(BtlakeError, match="exists already"):
        lake.tag_create("paper-q3")
    with pytest.raises(QueryError):
        lake.tag_create(".hidden")
    listed = [t.record() for t in lake.tags()]
    assert listed == [{"name": "paper-q3", "created_at": tag.created_at.isoformat(),
                       "message": "as published", "versions": want}]
    lake.tag_delete("paper-q3")
    assert lake.tags() == []
    with pytest.raises(NotFoundError):
        lake.tag_delete("paper-q3")


def test_concurrent_creates_of_one_name_exactly_one_wins(dirs):
    lake = Lake(dirs.lake)
    lake.tag_create("first")  # the tags table exists: racers commit against one snapshot
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def create(i: int) -> None:
        barrier.wait()
        try:
            Lake(dirs.lake).tag_create("race", f"writer {i}")
            outcomes.append("won")
        except BtlakeError as exc:
            outcomes.append(str(exc))

    workers = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert outcomes.count("won") == 1
    assert all("exists already" in o for o in outcomes if o != "won")
    assert [t.name for t in lake.tags()].count("race") == 1


def test_as_of_tag_reads_runs_and_market_data_as_tagged(dirs):
    B.backtest(dirs.landing, "t-2", tables={"trades": B.trades(4, price=100.0),
                                            "equity": B.equity()})
    B.market_data(dirs.landing, "md-2", {"ticks": B.ticks(6, price=50.0)})
    _ingest(dirs)
    lake = Lake(dirs.lake)
    lake.tag_create("before")
    old_trades = lake.read("trades", run_id="t-2")
    old_ticks = lake.read("ticks")

    B.backtest(dirs.landing, "t-2", tables={"trades": B.trades(3, price=200.0),
                                            "equity": B.equity()}, metrics={"sharpe": 9.0})
    B.backtest(dirs.landing, "t-3")
    B.market_data(dirs.landing, "md-3", {"ticks": B.ticks(6, price=60.0)})
    _ingest(dirs)
    assert lake.read("trades", run_id="t-2").num_rows == 3
    assert lake.read("trades", run_id="t-2", as_of="tag:before").equals(old_trades)
    assert lake.read("ticks", as_of="tag:before").equals(old_ticks)
    assert lake.read("ticks").column("price").to_pylist() != old_ticks.column(
        "price").to_pylist()
    # the catalog as it was: t-3 did not exist, t-2 had its first metrics
    found = lake.find_runs(as_of="tag:before").records()
    assert [r["run_id"] for r in found] == ["t-2"]
    assert found[0]["metrics"]["sharpe"] == 1.2
    assert {r["run_id"] for r in lake.find_runs().records()} == {"t-2", "t-3"}
    with pytest.raises(NotFoundError, match="unknown tag 'nope'"):
        lake.read("ticks", as_of="tag:nope")


def test_tag_survives_maintain_with_zero_retention_until_deleted(dirs):
    B.backtest(dirs.landing, "t-4", tables={"trades": B.trades(4, price=100.0),
                                            "equity": B.equity()})
    B.market_data(dirs.landing, "md-4", {"ticks": B.ticks(6, price=50.0)})
    _ingest(dirs)
    lake = Lake(dirs.lake)
    lake.tag_create("keep")
    old_trades = lake.read("trades", run_id="t-4")
    old_ticks = lake.read("ticks")
    tagged_files = _files(Path(dirs.lake), "ticks") | _files(Path(dirs.lake), "trades")

    # a run and a market-data slice replaced, then compaction and vacuum with retention 0
    B.backtest(dirs.landing, "t-4", tables={"trades": B.trades(2, price=300.0),
                                            "equity": B.equity()}, metrics={"sharpe": 3.0})
    B.market_data(dirs.landing, "md-5", {"ticks": B.ticks(6, price=70.0)})
    B.market_data(dirs.landing, "md-6", {"ticks": B.ticks(3, price=80.0, start=B.later(30))})
    _ingest(dirs)
    lake.maintain(retention_hours=0)
    assert tagged_files <= _files(Path(dirs.lake), "ticks") | _files(Path(dirs.lake), "trades")
    assert lake.read("trades", run_id="t-4", as_of="tag:keep").equals(old_trades)
    assert lake.read("ticks", as_of="tag:keep").equals(old_ticks)

    lake.tag_delete("keep")
    lake.maintain(retention_hours=0)
    left = _files(Path(dirs.lake), "ticks") | _files(Path(dirs.lake), "trades")
    assert not tagged_files & left
    with pytest.raises(NotFoundError):
        lake.read("ticks", as_of="tag:keep")


def test_cli_tag_create_list_and_existing_name_exit_2(dirs):
    from tests.core.test_cli import btlake

    B.backtest(dirs.landing, "cli-t")
    assert btlake("ingest", env_dirs=dirs).returncode == 0
    made = btlake("tag", "create", "v1", "--message", "first", env_dirs=dirs)
    assert made.returncode == 0, made.stderr
    again = btlake("tag", "create", "v1", env_dirs=dirs)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        "btlake: error: tag 'v1' exists already (tags are immutable; delete it first to "
        "record it again)"]
    listed = json.loads(btlake("tag", "list", "--format", "json", env_dirs=dirs).stdout)
    [tag] = listed["tags"]
    assert set(tag) == {"name", "created_at", "message", "versions"}
    assert tag["name"] == "v1" and tag["message"] == "first"
    assert tag["versions"]["runs"] == 0 and tag["versions"]["trades"] == 0
    runs = json.loads(btlake("runs", "--as-of", "tag:v1", "--format", "json",
                             env_dirs=dirs).stdout)
    assert [r["run_id"] for r in runs["runs"]] == ["cli-t"]
    bad = btlake("read", "trades", "--as-of", "tag:missing", env_dirs=dirs)
    assert bad.returncode == 2 and "unknown tag 'missing'" in bad.stderr
    assert btlake("tag", "delete", "v1", env_dirs=dirs).returncode == 0
    assert json.loads(btlake("tag", "list", "--format", "json", env_dirs=dirs).stdout) == {
        "tags": []}


def test_tags_taken_during_concurrent_ingestion_show_every_run_whole(dirs):
    """Tags made while another thread ingests and replaces runs: at every tag, each run the
    tag's ``runs`` shows reads with exactly the rows its ``runs`` row counts."""
    lake = Lake(dirs.lake)
    B.backtest(dirs.landing, "c-0")
    _ingest(dirs)
    done = threading.Event()

    def writer() -> None:
        try:
            for i in range(6):
                B.backtest(dirs.landing, f"c-{i % 3}",
                           tables={"trades": B.trades(2 + i, price=100.0 + i),
                                   "equity": B.equity(3 + i)}, metrics={"sharpe": float(i)})
                _ingest(dirs)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    names = []
    while not done.is_set() and len(names) < 30:
        names.append(f"during-{len(names)}")
        lake.tag_create(names[-1])
    thread.join()
    assert names
    for name in names:
        runs = lake.find_runs(as_of=f"tag:{name}").table
        for run_id, counts in zip(runs.column("run_id").to_pylist(),
                                  runs.column("rows").to_pylist(), strict=True):
            for table in ("trades", "equity"):
                got = lake.read(table, run_id=run_id, as_of=f"tag:{name}").num_rows
                assert got == counts[table], (name, run_id, table)
        # shards at the tag show no run the tag's runs table does not
        sharded = {r for b in lake.batches("trades", as_of=f"tag:{name}")
                   for r in b.column("run_id").to_pylist()}
        assert sharded <= set(runs.column("run_id").to_pylist()), name


def test_batches_accept_a_tag(dirs):
    B.market_data(dirs.landing, "md-b1", {"ticks": B.ticks(6, price=50.0)})
    _ingest(dirs)
    lake = Lake(dirs.lake)
    lake.tag_create("shard-me")
    B.market_data(dirs.landing, "md-b2", {"ticks": B.ticks(6, price=60.0)})
    _ingest(dirs)
    rows = [r for b in lake.batches("ticks", as_of="tag:shard-me") for r in b.to_pylist()]
    assert sorted(r["price"] for r in rows) == sorted(
        lake.read("ticks", as_of="tag:shard-me").column("price").to_pylist())
    assert min(r["price"] for r in rows) == 50.0


def test_a_read_at_a_tag_looks_it_up_once_and_sees_it_recreated(dirs, monkeypatch):
    from btlake_pipelines.versions import tags

    B.backtest(dirs.landing, "t-4", tables={"trades": B.trades(4, price=100.0),
                                            "equity": B.equity()})
    _ingest(dirs)
    lake = Lake(dirs.lake)
    lake.tag_create("moving")
    before = lake.read("trades", as_of="tag:moving").num_rows
    B.backtest(dirs.landing, "t-5")
    _ingest(dirs)
    lookups = []
    find = tags._find
    monkeypatch.setattr(tags, "_find", lambda dt, name: lookups.append(name) or find(dt, name))
    assert lake.read("trades", as_of="tag:moving").num_rows == before
    assert lookups == []  # the tags table has not changed since the first read
    lake.tag_delete("moving")
    lookups.clear()
    with pytest.raises(NotFoundError, match="unknown tag 'moving'"):
        lake.read("trades", as_of="tag:moving")
    lake.tag_create("moving")  # the same lake object: its catalog sees the new tag
    lookups.clear()
    assert lake.read("trades", as_of="tag:moving").num_rows > before
    assert lookups == ["moving"]
