"""What the replication tests share: a lake with history, and the checks that a replica is a
valid lake at some earlier point of its primary, with every run whole."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from btlake_pipelines import Lake
from btlake_pipelines.errors import RetentionError
from btlake_pipelines.replication.objects import Root
from btlake_pipelines.replication.rounds import discover
from btlake_pipelines.replication.tables import latest_version
from btlake_pipelines.settings import storage_options
from tests.core.bundles import backtest, equity, later, market_data, ticks, trades


def ingest_round(lake: str, landing: Path, n: int, *, replace: str | None = None) -> None:
    """One ingestion batch: two new runs, a market-data bundle, and optionally a replaced
    run (same run id, other content) and a refused bundle."""
    backtest(landing, f"run-{n}-a", tables={"trades": trades(3 + n, 100.0 + n),
                                            "equity": equity(4)})
    backtest(landing, f"run-{n}-b", strategy_id="breakout",
             tables={"trades": trades(2 + n % 3, 50.0), "equity": equity(3)})
    market_data(landing, f"ticks-{n}", {"ticks": ticks(5, 10.0 + n, start=later(n))})
    if replace:
        backtest(landing, replace, tables={"trades": trades(7, 300.0 + n), "equity": equity(2)})
    if n % 3 == 2:
        bad = landing / f"bad-{n}"
        bad.mkdir()
        (bad / "manifest.json").write_text("{not json")
    Lake(lake).ingest(str(landing), isolated=False)


def build_lake(lake: str, landing: Path, rounds: int = 3) -> None:
    for n in range(rounds):
        ingest_round(lake, landing, n, replace="run-0-a" if n == rounds - 1 and n else None)


def table_frame(root: str, table: str, version: int | None = None) -> pl.DataFrame:
    uri = f"{root}/{table}"
    frame = pl.scan_delta(uri, version=version, storage_options=storage_options(uri)).collect()
    return frame.sort(frame.columns)


def assert_valid_earlier_point(primary: str, replica: str) -> dict[str, int]:
    """Each table of the replica loads, every file its latest version names is there, and
    its rows equal the primary's at that version; every run a btlake read shows there is
    whole. Returns the replica's versions."""
    src, dst = Root.of(primary), Root.of(replica)
    versions: dict[str, int] = {}
    for table in discover(dst).tables:
        version = latest_version(dst, table)
        if version < 0:
            continue
        versions[table] = version
        assert version <= latest_version(src, table)
        mine = table_frame(replica, table)
        assert mine.equals(table_frame(primary, table, version)), table
    assert_runs_whole(primary, replica)
    return versions


def assert_runs_whole(primary: str, replica: str) -> None:
    """Through btlake on the replica, each run's trades are exactly those its runs row
    records: the primary's current rows of the run when the primary's row records the same
    content, else the primary's rows at the trades version the replica's row names."""
    mine = runs_of(replica)
    if not mine:
        return
    mirror, origin = Lake(replica), Lake(primary)
    theirs = runs_of(primary)
    cols = ["ts", "price", "qty"]
    for run_id, (content, version) in mine.items():
        if version is None:
            continue
        got = pl.from_arrow(mirror.read("trades", run_id=run_id))
        if theirs.get(run_id, (None, None))[0] == content:
            want = pl.from_arrow(origin.read("trades", run_id=run_id))
        else:
            try:
                want = pl.from_arrow(origin.read("trades", run_id=run_id, as_of=version))
            except RetentionError:  # vacuumed on the primary since: the replica's copy
                want = pl.from_arrow(mirror.read("trades", run_id=run_id, as_of=version))
        assert got.select(cols).sort(cols).equals(want.select(cols).sort(cols)), run_id


def runs_of(lake: str) -> dict[str, tuple[str, int | None]]:
    """run id -> (content hash, the trades version its runs row names)."""
    runs = Lake(lake).runs()
    if runs.num_rows == 0:
        return {}
    frame = pl.from_arrow(runs)
    return {r: (h, (v or {}).get("trades")) for r, h, v in
            zip(frame["run_id"], frame["content_hash"], frame["versions"], strict=True)}


def plain_files(root: str) -> dict[str, int]:
    """btlake's plain files under a local root (archive, quarantine) and their sizes."""
    out = {}
    for top in ("_archive", "_quarantine"):
        for path in Path(root, top).rglob("*"):
            if path.is_file():
                out[os.path.relpath(path, root)] = path.stat().st_size
    return out
