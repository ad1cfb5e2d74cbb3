"""Parallel writers (issue: market data at any shape, item 5): ingestion of different markets,
and of the same markets, may commit concurrently; Delta's optimistic concurrency decides, and
every row is stored exactly once. Two Dagster ingestion runs and a ``btlake ingest`` race, each
with its own landing zone, on one lake."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pyarrow as pa
import pytest
from dagster import DagsterInstance

from btlake_pipelines import Lake
from btlake_pipelines.defs.jobs import ingest_job
from btlake_pipelines.defs.resources import LakeResource, LandingZoneResource

try:
    from . import robust_kit as K
except ImportError:
    import robust_kit as K


def _drops(landing: Path, tag: str, markets: list[str], symbols: list[str]) -> list[str]:
    """One market-data bundle per (market, symbol): 50 ticks on one day."""
    names = []
    for market in markets:
        for symbol in symbols:
            name = f"{tag}-{market}-{symbol}".lower()
            K.write_raw(landing / name, K.market_manifest(name, markets=[market]),
                        {"ticks.parquet": K.parquet_bytes(K.ticks_table(50, symbol=symbol))})
            names.append(name)
    return names


def _race(tmp_path: Path, plans: dict[str, tuple[list[str], list[str]]]) -> tuple[Path, dict]:
    lake = tmp_path / "lake"
    lands = {who: tmp_path / f"landing-{who}" for who in plans}
    names = {who: _drops(lands[who], who, *plans[who]) for who in plans}
    outcome: dict[str, object] = {}

    def dagster_run(who: str) -> None:
        with DagsterInstance.ephemeral() as instance:
            result = ingest_job.execute_in_process(
                run_config={"ops": {"ingest_bundles": {"config": {"bundles": names[who]}}}},
                resources={"lake": LakeResource(uri=str(lake)),
                           "landing": LandingZoneResource(uri=str(lands[who]))},
                instance=instance)
            outcome[who] = result.success

    threads = [threading.Thread(target=dagster_run, args=(w,)) for w in ("run1", "run2")]
    cli = subprocess.Popen([K.BTLAKE, "--lake", str(lake), "--landing", str(lands["cli"]),
                            "ingest"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=K.REPO)
    for t in threads:
        t.start()
    out, err = cli.communicate(timeout=300)
    for t in threads:
        t.join(300)
    assert cli.returncode == 0, (out, err)
    assert outcome == {"run1": True, "run2": True}
    for who in plans:
        assert not any(lands[who].iterdir()), who  # every bundle handled
    return lake, names


def _assert_exactly_once(lake: Path, names: dict, plans: dict) -> None:
    ticks = Lake(str(lake)).read("ticks")
    expected = sum(len(m) * len(s) * 50 for m, s in plans.values())
    assert ticks.num_rows == expected
    keys = pa.table({"m": ticks.column("market"), "s": ticks.column("symbol"),
                     "t": ticks.column("ts")}).group_by(["m", "s", "t"]).aggregate([])
    assert keys.num_rows == expected  # no row twice
    log = K.ingest_log(lake)
    handled = sorted(r["bundle"] for r in log)
    assert handled == sorted(n for group in names.values() for n in group)
    assert {r["status"] for r in log} == {"ingested"}


@pytest.mark.parametrize("overlap", [False, True], ids=["disjoint-markets", "same-markets"])
def test_two_dagster_runs_and_a_cli_ingest_race(tmp_path, overlap):
    if overlap:  # the same partitions, different symbols: commits really collide
        plans = {"run1": (["XNAS", "XNYS"], ["A1", "A2", "A3"]),
                 "run2": (["XNAS", "XNYS"], ["B1", "B2", "B3"]),
                 "cli": (["XNAS", "XNYS"], ["C1", "C2", "C3"])}
    else:
        plans = {"run1": (["XNAS"], ["A1", "A2", "A3"]),
                 "run2": (["XNYS"], ["B1", "B2", "B3"]),
                 "cli": (["XLON"], ["C1", "C2", "C3"])}
    lake, names = _race(tmp_path, plans)
    _assert_exactly_once(lake, names, plans)


def test_a_rederivation_waits_for_a_batch_that_committed_but_has_not_logged(tmp_path):
    """Rows committed by a batch not yet in ``ingest_log`` (still running, or crashed) are not
    in the archive yet: a re-derivation waits for that batch before it reads its snapshot."""
    from btlake_pipelines.ingest.rederive import _unlogged_batches, wait_for_logged_batches
    from btlake_pipelines.storage import delta

    lake, landing = tmp_path / "lake", tmp_path / "landing"
    _drops(landing, "held", ["XNAS"], ["A1"])
    proc = K.run_cli("--lake", str(lake), "--landing", str(landing), "ingest",
                     env={"BTLAKE_FAULT_POINT": "after_commit:ticks"})
    assert proc.returncode == -9
    dt = delta.open_table(str(lake), "ticks")
    assert len(_unlogged_batches(str(lake), dt)) == 1
    import time

    started = time.monotonic()
    assert wait_for_logged_batches(str(lake), "ticks", timeout=1.5) is not None
    assert time.monotonic() - started >= 1.5  # it waited for the batch, then gave up on it
    assert K.run_cli("--lake", str(lake), "--landing", str(landing), "ingest").returncode == 0
    dt = delta.open_table(str(lake), "ticks")
    assert not _unlogged_batches(str(lake), dt)  # the re-run logged its batch
