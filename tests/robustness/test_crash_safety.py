"""Crash safety: ``btlake ingest`` SIGKILLed at every named point of the write path, then run again.

The batch holds new runs, a replaced run, an unchanged run, market data and a refused bundle.
After the crash and again after the re-run: no run is visible with only part of its tables, no
run appears twice, every bundle is in exactly one of landing, archive and quarantine, and after
the re-run the lake holds exactly what one uninterrupted ingest would have written.
The kill points are ``btlake_pipelines.ingest.faults`` points (``BTLAKE_FAULT_POINT``).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pytest

try:
    from . import robust_kit as K
except ImportError:
    import robust_kit as K

from btlake_pipelines import Lake
from btlake_pipelines.ingest.batch import ingest
from btlake_pipelines.landing.local import LocalLandingZone

POINTS = [
    "loaded",
    "before_commit:trades",
    "after_commit:trades",
    "after_commit:equity",
    "before_commit:ticks",
    "after_commit:ticks",
    "after_commit:l2",
    "after_commit:events",
    "before_commit:runs",
    "after_commit:runs",
    "after_commit:ingest_log",
    "before_move",
    "after_move",
    "after_move#3",
    "after_move#6",
]

REPLACED, UNCHANGED = "replaced-run", "unchanged-run"
NEW = ("new-run-parquet", "new-run-csv")
MARKET, BAD = "market-drop", "bad-bundle"
BATCH = [REPLACED, UNCHANGED, *NEW, MARKET, BAD]


def _market_bundle(landing: Path) -> None:
    ticks = K.ticks_table(8)
    l2 = pa.table({"ts": K.ts_array(4), "symbol": ["AAPL"] * 4,
                   "side": ["bid", "ask", "bid", "ask"], "level": [0, 0, 1, 1],
                   "price": [10.0, 10.1, 9.9, 10.2], "size": [1.0, 2.0, 3.0, 4.0]})
    events = pa.table({"ts": K.ts_array(2), "event_type": ["halt", "resume"]})
    K.write_raw(landing / MARKET,
                K.market_manifest(MARKET, tables={"ticks": "ticks.parquet", "l2": "l2.parquet",
                                                  "events": "events.parquet"}),
                {"ticks.parquet": K.parquet_bytes(ticks), "l2.parquet": K.parquet_bytes(l2),
                 "events.parquet": K.parquet_bytes(events)})


def _run_bundle(landing: Path, run_id: str, n: int, *, fmt: str = "parquet",
                version: int = 1) -> None:
    events = pa.table({"ts": K.ts_array(3), "event_type": ["start", "signal", "end"],
                       "payload": [json.dumps({"v": version}), "{}", "{}"]})
    ext = "csv" if fmt == "csv" else "parquet"
    tables = {"trades": K.trades_table(n), "equity": K.equity_table(n + version),
              "events": events}
    doc = K.manifest(run_id, tables={t: f"{t}.{ext}" for t in tables},
                     metrics={"sharpe": float(version)})
    from btlake_pipelines.demo import write_bundle

    write_bundle(landing / run_id, doc, tables, file_format=fmt)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A lake holding version 1 of two runs, and a landing with the batch to crash."""
    root = tmp_path_factory.mktemp("crash-template")
    setup = root / "setup-landing"
    _run_bundle(setup, REPLACED, 4)
    _run_bundle(setup, UNCHANGED, 3)
    ingest(str(root / "lake"), LocalLandingZone(str(setup)))
    landing = root / "landing"
    _run_bundle(landing, REPLACED, 6, version=2)
    _run_bundle(landing, UNCHANGED, 3)
    _run_bundle(landing, NEW[0], 5)
    _run_bundle(landing, NEW[1], 2, fmt="csv")
    _market_bundle(landing)
    K.write_raw(landing / BAD, K.manifest(BAD), {"trades.parquet": b"garbage",
                                                 "equity.parquet": b"garbage"})
    return root


def _fresh(template: Path, tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(template / "lake", tmp_path / "lake", symlinks=True)
    shutil.copytree(template / "landing", tmp_path / "landing", symlinks=True)
    return tmp_path / "landing", tmp_path / "lake"


def _check(landing: Path, lake: Path, before) -> dict[str, str]:
    K.assert_runs_whole(lake)
    where = K.assert_each_bundle_once(landing, lake, BATCH, before)
    for name in list(where):  # a handled bundle is logged; a logged one left landing or not
        if where[name] == "quarantine":
            assert name == BAD
    return where


def _check_final(landing: Path, lake: Path, setup_archives) -> None:
    where = _check(landing, lake, setup_archives)
    assert where == {**{n: "archive" for n in BATCH if n != BAD}, BAD: "quarantine"}
    lk = Lake(str(lake))
    runs = K.assert_runs_whole(lake)
    assert {REPLACED, UNCHANGED, *NEW} <= set(runs)
    assert runs[REPLACED]["metrics"]["sharpe"] == 2.0  # the new content won
    assert (runs[REPLACED]["rows"]["trades"], runs[NEW[0]]["rows"]["trades"],
            runs[NEW[1]]["rows"]["trades"]) == (6, 5, 2)
    # raw Delta readers see exactly the same: no leftover or duplicated rows anywhere
    for table in K.RUN_TABLES:
        raw = K.raw_rows(lake, table)
        counts = {}
        for r in raw:
            if r["run_id"] is not None:
                counts[r["run_id"]] = counts.get(r["run_id"], 0) + 1
                assert r["run_hash"] == runs[r["run_id"]]["content_hash"], (table, r["run_id"])
        assert counts == {k: v["rows"][table] for k, v in runs.items() if v["rows"][table]}
    assert len(K.raw_rows(lake, "ticks")) == 8 and len(K.raw_rows(lake, "l2")) == 4
    assert len([r for r in K.raw_rows(lake, "events") if r["run_id"] is None]) == 2
    assert lk.read("ticks").num_rows == 8
    # one archive copy per handling: the setup's, plus exactly one for this batch
    arch = K.archived(lake)
    for name in BATCH:
        if name != BAD:
            assert arch[name] == setup_archives.get(name, 0) + 1, (name, arch[name])
    assert K.quarantined_names(lake)[BAD] == 1
    reason = K.reasons(lake)[BAD]
    assert reason["rule"] == "file_format"


def _crash(landing: Path, lake: Path, point: str):
    return K.run_cli("--lake", str(lake), "--landing", str(landing), "ingest",
                     env={"BTLAKE_FAULT_POINT": point})


@pytest.mark.parametrize("point", POINTS)
def test_killed_at_point_then_rerun(template, tmp_path, point):
    landing, lake = _fresh(template, tmp_path)
    setup_archives = K.archived(lake)
    proc = _crash(landing, lake, point)
    assert proc.returncode == -9, (point, proc.returncode, proc.stdout, proc.stderr)
    _check(landing, lake, setup_archives)  # the state a crash leaves is consistent already

    batch = ingest(str(lake), LocalLandingZone(str(landing)))
    assert {r.bundle for r in batch.results} <= set(BATCH)
    _check_final(landing, lake, setup_archives)
    # the re-run reports what actually changed relative to what the crash left
    statuses = {r.bundle: r.status for r in batch.results}
    assert statuses.get(BAD, "quarantined") == "quarantined"
    assert statuses.get(UNCHANGED, "unchanged") == "unchanged"


def test_killed_twice_in_a_row(template, tmp_path):
    """A crash, then a crash of the recovery itself at another point, then a clean run."""
    landing, lake = _fresh(template, tmp_path)
    setup_archives = K.archived(lake)
    assert _crash(landing, lake, "after_commit:equity").returncode == -9
    _check(landing, lake, setup_archives)
    assert _crash(landing, lake, "after_move#2").returncode == -9
    _check(landing, lake, setup_archives)
    ingest(str(lake), LocalLandingZone(str(landing)))
    _check_final(landing, lake, setup_archives)


def test_killed_at_arbitrary_moments(template, tmp_path):
    """SIGKILL by the clock rather than at a named point: inside Delta writes and moves too."""
    import subprocess

    landing, lake = _fresh(template, tmp_path / "probe")
    started = time.monotonic()
    assert K.run_cli("--lake", str(lake), "--landing", str(landing), "ingest").returncode == 1
    full = time.monotonic() - started
    for i, fraction in enumerate((0.55, 0.7, 0.8, 0.9)):
        landing, lake = _fresh(template, tmp_path / f"round{i}")
        setup_archives = K.archived(lake)
        proc = subprocess.Popen([K.BTLAKE, "--lake", str(lake), "--landing", str(landing),
                                 "ingest"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=K.REPO)
        time.sleep(full * fraction)
        proc.kill()
        proc.wait()
        _wait_for_claims_released(landing)
        _check(landing, lake, setup_archives)
        ingest(str(lake), LocalLandingZone(str(landing)))
        _check_final(landing, lake, setup_archives)


def _wait_for_claims_released(landing: Path, timeout: float = 30.0) -> None:
    """Until the killed command's ingesting child (killed with it by ``PR_SET_PDEATHSIG``,
    a moment later on a loaded machine) has let go of its claims: an ingest started while it
    still holds them rightly leaves those bundles to it."""
    zone = LocalLandingZone(str(landing))
    names = zone.complete_bundles()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with zone.claim(names) as claimed:
            if len(claimed) == len(names):
                return
        time.sleep(0.1)


def test_ingest_log_keeps_one_row_per_handling(template, tmp_path):
    landing, lake = _fresh(template, tmp_path)
    setup = {r["batch_id"] for r in K.ingest_log(lake)}
    assert _crash(landing, lake, "after_move#3").returncode == -9
    ingest(str(lake), LocalLandingZone(str(landing)))
    log = [r for r in K.ingest_log(lake) if r["batch_id"] not in setup]
    # the crashed batch logged all six; the re-run logged the three still in landing
    crashed = {r["batch_id"] for r in log}
    assert len(crashed) == 2
    per_bundle = {}
    for r in sorted(log, key=lambda r: r["handled_at"]):
        per_bundle.setdefault(r["bundle"], []).append(r["status"])
    assert sum(len(v) for v in per_bundle.values()) == 9
    assert sorted(per_bundle[BAD]) == ["quarantined"]  # moved before the crash: never again
    assert per_bundle[REPLACED] == ["replaced", "unchanged"]
    assert all(isinstance(r["tables"], list) for r in log)


def test_half_replaced_run_stays_whole_through_maintenance(template, tmp_path):
    """A crash between the per-table commits of a replace, then maintenance (which adds its
    own commits on top), then readers: the run still reads whole, at its pinned version."""
    from btlake_pipelines.storage.maintenance import maintain

    landing, lake = _fresh(template, tmp_path)
    setup_archives = K.archived(lake)
    assert _crash(landing, lake, "after_commit:equity").returncode == -9
    before = K.assert_runs_whole(lake)
    assert before[REPLACED]["metrics"]["sharpe"] == 1.0
    for _ in range(6):
        maintain(str(lake), retention_hours=168)
        assert K.assert_runs_whole(lake)[REPLACED]["rows"] == before[REPLACED]["rows"]
    ingest(str(lake), LocalLandingZone(str(landing)))
    _check_final(landing, lake, setup_archives)


def test_half_replaced_run_stays_whole_under_later_batches(template, tmp_path):
    """Other batches (another landing zone, a concurrent ingester) finish after the crash and
    commit on top of the unfinished replace: the run still reads whole."""
    landing, lake = _fresh(template, tmp_path)
    setup_archives = K.archived(lake)
    assert _crash(landing, lake, "after_commit:events").returncode == -9
    before = K.assert_runs_whole(lake)[REPLACED]
    other = tmp_path / "other-landing"
    for i in range(3):
        _run_bundle(other, f"later-run-{i}", 2 + i)
        ingest(str(lake), LocalLandingZone(str(other)))
        runs = K.assert_runs_whole(lake)
        assert runs[REPLACED]["content_hash"] == before["content_hash"]
    ingest(str(lake), LocalLandingZone(str(landing)))
    _check_final(landing, lake, setup_archives)
