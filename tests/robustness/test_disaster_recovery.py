"""The disaster-recovery drill (docs/disaster-recovery.md), as a test.

A writer ingests continuously into the primary while ``btlake replicate --follow`` copies it;
both are SIGKILLed at random moments, several times, and after every kill the replica must be
a valid lake at an earlier point of the primary with every run whole. Then the disaster: the
primary is gone for good. The replica is promoted, writers point at it (``BTLAKE_LAKE``),
ingestion and maintenance work there, and every run and table it holds equals the primary's
up to the last replicated version.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from btlake_pipelines import Lake
from btlake_pipelines.replication.objects import Root
from btlake_pipelines.replication.rounds import discover
from btlake_pipelines.replication.tables import latest_version
from tests.core.bundles import backtest, equity, trades
from tests.replication_kit import assert_valid_earlier_point, runs_of, table_frame

REPO = Path(__file__).resolve().parents[2]
BTLAKE = [sys.executable, "-m", "btlake_pipelines.interfaces.cli"]

#: The primary's writer: publish a bundle or two and ingest them, over and over (a replace
#: now and then), until killed.
_WRITER = """
import sys, itertools
from pathlib import Path
from btlake_pipelines import Lake
from tests.core.bundles import backtest, equity, trades
lake, landing, first = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
for n in itertools.count(first):
    backtest(landing, f"drill-{n}", tables={"trades": trades(3 + n % 5, 100.0 + n),
                                            "equity": equity(3)})
    if n % 4 == 3:  # a replace of an earlier run
        backtest(landing, f"drill-{n - 3}", tables={"trades": trades(6, 900.0 + n),
                                                    "equity": equity(2)})
    Lake(lake).ingest(str(landing), isolated=False)
"""


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_drill_kill_promote_ingest_compare(tmp_path: Path) -> None:
    primary, landing, replica = str(tmp_path / "lake"), tmp_path / "landing", \
        str(tmp_path / "replica")
    landing.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "BTLAKE_LAKE": primary,
           "BTLAKE_LANDING": str(landing)}
    rng = random.Random(int(os.environ.get("BTLAKE_TEST_SEED", "8")))
    next_run = 0
    writer_kills = replicator_kills = 0
    for _ in range(3):
        writer = _start([sys.executable, "-c", _WRITER, primary, str(landing),
                         str(next_run)], env)
        replicator = _start([*BTLAKE, "replicate", "--to", replica, "--follow",
                             "--interval", "0.2"], env)
        # kill each at its own random moment
        # (both need a few seconds to start under load: imports, the first commit)
        moments = sorted([(rng.uniform(4.0, 9.0), "writer"),
                          (rng.uniform(4.0, 9.0), "replicator")])
        started = time.monotonic()
        for at, who in moments:
            time.sleep(max(0.0, at - (time.monotonic() - started)))
            proc = writer if who == "writer" else replicator
            assert proc.poll() is None, f"the {who} ended by itself"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            writer_kills += who == "writer"
            replicator_kills += who == "replicator"
        next_run += 40  # fresh run ids for the next writer (killed ones may be half-written)
        assert_valid_earlier_point(primary, replica)
    assert writer_kills == replicator_kills == 3
    versions = assert_valid_earlier_point(primary, replica)
    assert versions.get("runs", -1) >= 1, "the replica never got a run: the drill proved nothing"

    # The disaster: the primary is gone. Every run of the replica equals the primary's run at
    # the replica's version (checked above, table by table); btlake reads there see them all.
    replicated_runs = runs_of(replica)
    assert replicated_runs
    primary_runs = pl.from_arrow(Lake(primary).runs()).filter(
        pl.col("run_id").is_in(list(replicated_runs)))
    for run_id, (content, _) in replicated_runs.items():
        row = primary_runs.filter(pl.col("run_id") == run_id)
        if row.height and row["content_hash"][0] == content:
            cols = ["ts", "price"]
            a = pl.from_arrow(Lake(replica).read("trades", run_id=run_id)).select(cols)
            b = pl.from_arrow(Lake(primary).read("trades", run_id=run_id)).select(cols)
            assert a.sort(cols).equals(b.sort(cols)), run_id
    import shutil

    shutil.rmtree(primary)

    # Promote the replica and point writers at it.
    promoted_env = {**env, "BTLAKE_LAKE": replica, "BTLAKE_LANDING": str(tmp_path / "l2")}
    Path(tmp_path / "l2").mkdir()
    out = subprocess.run([*BTLAKE, "replicate", "--promote"], env=promoted_env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "promoted" in out.stdout, out.stderr
    before = {t: latest_version(Root.of(replica), t) for t in discover(Root.of(replica)).tables}
    backtest(tmp_path / "l2", "after-disaster-1", tables={"trades": trades(4, 7.0),
                                                        "equity": equity(3)})
    old_run = sorted(replicated_runs)[0]
    backtest(tmp_path / "l2", old_run, tables={"trades": trades(5, 8.0), "equity": equity(2)})
    done = subprocess.run([*BTLAKE, "ingest"], env=promoted_env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "after-disaster-1  ingested" in done.stdout
    assert f"{old_run}  replaced" in done.stdout
    found = subprocess.run([*BTLAKE, "runs", "--format", "json"], env=promoted_env,
                           capture_output=True, text=True, timeout=120)
    ids = {r["run_id"] for r in __import__("json").loads(found.stdout)["runs"]}
    assert "after-disaster-1" in ids and set(replicated_runs) <= ids
    assert table_frame(replica, "trades").filter(pl.col("run_id") == old_run).height >= 5
    after = {t: latest_version(Root.of(replica), t) for t in before}
    assert after["runs"] > before["runs"] and after["trades"] > before["trades"]
    maintained = subprocess.run([*BTLAKE, "maintain"], env=promoted_env, capture_output=True,
                                text=True, timeout=300)
    assert maintained.returncode == 0, maintained.stderr
