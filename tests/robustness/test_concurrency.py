"""Concurrency: several ingesters on one landing zone and one lake at the same time.

Two ``btlake ingest`` processes loop while bundles keep arriving; in-process ``ingest()`` calls
race from threads; the Dagster sensor's ingestion run races a ``btlake ingest``. Every bundle is
handled exactly once (one ``ingest_log`` row, one archive copy, its run once in ``runs`` and its
rows once in every table), and Delta commit conflicts are retried, never surfaced.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

try:
    from . import robust_kit as K
except ImportError:
    import robust_kit as K

from btlake_pipelines import Lake, publish
from btlake_pipelines.ingest.batch import ingest
from btlake_pipelines.landing.local import LocalLandingZone

WORKER = r"""
import subprocess, sys, time
from pathlib import Path
btlake, lake, landing, stop = sys.argv[1:5]
out = []
while True:
    stopping = Path(stop).exists()
    proc = subprocess.run([btlake, "--lake", lake, "--landing", landing, "ingest"],
                          capture_output=True, text=True)
    out.append(proc.stdout)
    if proc.returncode not in (0, 1) or proc.stderr.strip():
        print("FAILED", proc.returncode, proc.stderr, file=sys.stderr)
        sys.exit(2)
    if stopping:
        break
    time.sleep(0.05)
print("".join(out), end="")
"""


def _stage(root: Path, count: int) -> list[Path]:
    """``count`` backtest bundles (parquet and CSV, three run dates), two market-data bundles
    for distinct symbols and one bad bundle, written outside landing."""
    folders = []
    for i in range(count):
        run_id = K.write_synthetic(root, i, fmt="csv" if i % 4 == 3 else "parquet",
                                   n_trades=6, n_equity=12)
        folders.append(root / run_id)
    for symbol in ("AAPL", "MSFT"):
        name = f"ticks-{symbol.lower()}"
        K.write_raw(root / name, K.market_manifest(name),
                    {"ticks.parquet": K.parquet_bytes(K.ticks_table(7, symbol=symbol))})
        folders.append(root / name)
    K.write_raw(root / "broken", K.manifest("broken"), {"trades.parquet": b"x",
                                                        "equity.parquet": b"y"})
    folders.append(root / "broken")
    return folders


def _assert_exactly_once(lake: Path, landing: Path, names: list[str]) -> None:
    assert not [p for p in landing.iterdir() if not p.name.startswith(".")], "landing not empty"
    log = Counter(r["bundle"] for r in K.ingest_log(lake))
    assert {n: log[n] for n in names} == dict.fromkeys(names, 1), log
    statuses = {r["bundle"]: r["status"] for r in K.ingest_log(lake)}
    assert statuses["broken"] == "quarantined"
    assert all(s == "ingested" for n, s in statuses.items() if n != "broken"), statuses
    arch = K.archived(lake)
    assert {n: arch[n] for n in names if n != "broken"} == {n: 1 for n in names
                                                             if n != "broken"}
    assert K.quarantined_names(lake)["broken"] == 1
    runs = K.assert_runs_whole(lake)
    assert set(runs) == {n for n in names if n != "broken" and not n.startswith("ticks-")}
    for table in K.RUN_TABLES:  # raw Delta rows: no duplicates behind btlake's back
        raw = Counter(r["run_id"] for r in K.raw_rows(lake, table) if r["run_id"])
        assert raw == Counter({k: v["rows"][table] for k, v in runs.items()
                               if v["rows"][table]}), table
    ticks = K.raw_rows(lake, "ticks")
    assert Counter(r["symbol"] for r in ticks) == {"AAPL": 7, "MSFT": 7}


def test_two_cli_processes_while_bundles_arrive(tmp_path):
    staged = _stage(tmp_path / "staging", 20)
    landing, lake, stop = tmp_path / "landing", tmp_path / "lake", tmp_path / "stop"
    landing.mkdir()
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, K.BTLAKE, str(lake),
                                 str(landing), str(stop)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=K.REPO)
               for _ in range(2)]
    for i in range(0, len(staged), 6):  # arrivals in waves, while both ingest
        for folder in staged[i:i + 6]:
            publish(folder, str(landing))
        time.sleep(0.6)
    deadline = time.monotonic() + 60
    while any(landing.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.touch()
    outputs = [w.communicate(timeout=120) for w in workers]
    for w, (_, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err
        assert "Traceback" not in err
    names = [f.name for f in staged]
    _assert_exactly_once(lake, landing, names)
    # each bundle was reported by exactly one of the two processes, once
    reported = Counter(line.split("  ")[0] for out, _ in outputs for line in out.splitlines()
                       if "  " in line)
    assert reported == Counter(dict.fromkeys(names, 1))
    print("bundles per process:", [len([ln for ln in out.splitlines() if "  " in ln])
                                   for out, _ in outputs])


def test_threads_racing_on_one_landing_and_one_lake(tmp_path, monkeypatch):
    """Four in-process ingesters start together on one landing zone full of bundles; each
    claims what the others have not; conflicting Delta commits are retried."""
    import deltalake
    from deltalake.exceptions import CommitFailedError

    staged = _stage(tmp_path / "staging", 16)
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    for folder in staged:
        publish(folder, str(landing))
    real = deltalake.write_deltalake
    conflicts = Counter()

    def counting(*args, **kwargs):
        try:
            return real(*args, **kwargs)
        except CommitFailedError:
            conflicts[Path(str(args[0])).name] += 1
            raise

    monkeypatch.setattr(deltalake, "write_deltalake", counting)
    barrier = threading.Barrier(4)
    results, errors = [], []

    everything = sorted(p.name for p in landing.iterdir())
    size = len(everything)

    def worker(i: int) -> None:
        # overlapping windows: each bundle is offered to two ingesters, none offered all
        zone = LocalLandingZone(str(landing))
        names = [everything[(i * size // 4 + k) % size] for k in range(size // 2)]
        barrier.wait()
        try:
            results.append(ingest(str(lake), zone, names))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    ingest(str(lake), LocalLandingZone(str(landing)))  # a sweep finds nothing left over
    handled = Counter(r.bundle for b in results for r in b.results)
    names = [f.name for f in staged]
    assert handled == Counter(dict.fromkeys(names, 1))
    assert sum(1 for b in results if b.results) >= 2, "the ingesters did not overlap"
    _assert_exactly_once(lake, landing, names)
    print(f"commit conflicts retried: {dict(conflicts)}")


def test_commit_conflicts_are_retried(tmp_path, monkeypatch):
    """Every Delta commit of a batch first loses a race (CommitFailedError): each is retried,
    and the batch lands once."""
    import deltalake
    from deltalake.exceptions import CommitFailedError

    landing, lake = tmp_path / "landing", tmp_path / "lake"
    K.write_good(landing, "first")
    ingest(str(lake), LocalLandingZone(str(landing)))
    K.write_good(landing, "second")
    K.write_raw(landing / "ticks-x", K.market_manifest("ticks-x"),
                {"ticks.parquet": K.parquet_bytes(K.ticks_table())})
    real = deltalake.write_deltalake
    failed: Counter = Counter()

    def flaky(uri, *args, **kwargs):
        table = Path(str(uri)).name
        if failed[table] < 2:
            failed[table] += 1
            raise CommitFailedError(f"simulated concurrent commit to {table}")
        return real(uri, *args, **kwargs)

    monkeypatch.setattr(deltalake, "write_deltalake", flaky)
    batch = ingest(str(lake), LocalLandingZone(str(landing)))
    assert [r.status for r in batch.results] == ["ingested", "ingested"]
    assert set(failed) >= {"trades", "equity", "ticks", "runs", "ingest_log"}
    assert all(v == 2 for v in failed.values())
    K.assert_runs_whole(lake)
    assert Counter(r["run_id"] for r in K.raw_rows(lake, "trades")) == {"first": 4,
                                                                        "second": 4}
    assert len(K.raw_rows(lake, "ticks")) == 6


def test_a_claimed_bundle_is_left_to_its_claimant(tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    K.write_good(landing, "held")
    K.write_good(landing, "free")
    zone = LocalLandingZone(str(landing))
    with zone.claim(["held"]) as claimed:
        assert claimed == ["held"]
        proc = K.run_cli("--lake", str(lake), "--landing", str(landing), "ingest")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[0] == "free  ingested"
        assert (landing / "held").is_dir()
        with zone.claim(["held", "free"]) as again:  # another claim, even in this process
            assert again == []
    proc = K.run_cli("--lake", str(lake), "--landing", str(landing), "ingest")
    assert proc.stdout.splitlines()[0] == "held  ingested"
    assert set(Lake(str(lake)).runs().column("run_id").to_pylist()) == {"held", "free"}


def test_a_killed_claimant_releases_its_bundles(tmp_path):
    landing = tmp_path / "landing"
    K.write_good(landing, "orphan")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from btlake_pipelines.landing.local import LocalLandingZone\n"
        "with LocalLandingZone(sys.argv[1]).claim(['orphan']) as c:\n"
        "    print(c, flush=True); time.sleep(60)\n"), str(landing)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "['orphan']"
    zone = LocalLandingZone(str(landing))
    with zone.claim(["orphan"]) as claimed:
        assert claimed == []
    holder.kill()
    holder.wait()
    with zone.claim(["orphan"]) as claimed:
        assert claimed == ["orphan"]


def test_sensor_run_races_a_cli_ingest(tmp_path, monkeypatch):
    """The Dagster sensor asks for a batch and its ingestion run claims it; a ``btlake ingest``
    started meanwhile takes only the rest, and both write at the same time."""
    dagster = pytest.importorskip("dagster")
    from btlake_pipelines.defs.jobs import ingest_job
    from btlake_pipelines.defs.resources import LakeResource, LandingZoneResource
    from btlake_pipelines.defs.sensors import landing_sensor

    staged = _stage(tmp_path / "staging", 10)
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    for folder in staged:
        publish(folder, str(landing))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    instance = dagster.DagsterInstance.ephemeral()
    resources = {"landing": LandingZoneResource(uri=str(landing), batch_size=5)}
    context = dagster.build_sensor_context(instance=instance, resources=resources)
    requests = landing_sensor(context).run_requests
    assert len(requests) == 1
    run_config = requests[0].run_config
    sensor_batch = run_config["ops"]["ingest_bundles"]["config"]["bundles"]
    assert len(sensor_batch) == 5

    # the run holds its claims (in its ingesting child) while the CLI starts
    pause = tmp_path / "pause"
    pause.mkdir()
    monkeypatch.setenv("BTLAKE_FAULT_PAUSE", str(pause))
    outcome = {}
    def run() -> None:
        outcome["run"] = ingest_job.execute_in_process(
            run_config=run_config, instance=instance,
            resources={"lake": LakeResource(uri=str(lake)), **resources})

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 60
    while not (pause / "claimed").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    env = {k: v for k, v in os.environ.items() if k != "BTLAKE_FAULT_PAUSE"}
    cli = subprocess.Popen([K.BTLAKE, "--lake", str(lake), "--landing", str(landing),
                            "ingest"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=K.REPO, env=env)
    time.sleep(1.5)  # the CLI imports, claims the other bundles and starts writing
    (pause / "go").touch()
    out, err = cli.communicate(timeout=120)
    runner.join(120)
    assert outcome["run"].success
    assert cli.returncode == (0 if "broken" in sensor_batch else 1), err
    assert "Traceback" not in err
    by_cli = {line.split("  ")[0] for line in out.splitlines()[:-1]}
    assert by_cli == {f.name for f in staged} - set(sensor_batch)
    _assert_exactly_once(lake, landing, [f.name for f in staged])
