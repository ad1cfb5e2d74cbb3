"""Replication throughput and lag: ``python -m bench.replication [--quick] [--s3]``.

Writes ``bench/results/replication.md``:

- throughput of a first ``btlake replicate`` of a demo lake (MB/s, files/s), against a plain
  recursive copy of the same root with ``pyarrow.fs.copy_files`` (what ``aws s3 sync`` or
  ``cp -r`` do: no order, no verification), local -> local and, with ``--s3``, local -> S3 on
  a moto server on loopback (a CPU-bound stand-in for S3: the ratio matters, not the MB/s);
- the cost of a round with nothing to copy;
- the lag under continuous ingestion: a writer ingests a batch every second while
  ``btlake replicate --follow --interval 1`` runs; ``--status`` is sampled every second.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BTLAKE = [sys.executable, "-m", "btlake_pipelines.interfaces.cli"]

_WRITER = """
import sys, time
from btlake_pipelines import Lake
lake, landing = sys.argv[1], sys.argv[2]
seed = 100
while True:
    Lake(lake).write_demo(2, seed=seed, real_data=False, landing=landing)
    Lake(lake).ingest(landing, isolated=False)
    seed += 1
    time.sleep(1.0)
"""


def build(root: Path, runs: int) -> str:
    from btlake_pipelines import Lake

    lake, landing = str(root / "lake"), str(root / "landing")
    Lake(lake).write_demo(runs, seed=7, real_data=True, landing=landing)
    Lake(lake).ingest(landing, isolated=False)
    return lake


def tree_size(root: str) -> tuple[int, int]:
    files = [p for p in Path(root).rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def time_replicate(lake: str, target: str) -> dict:
    from btlake_pipelines import Lake

    started = time.perf_counter()
    report = Lake(lake).replicate(target)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    again = Lake(lake).replicate(target)
    idle = time.perf_counter() - started
    assert again.files_copied == 0
    return {"seconds": seconds, "files": report.files_copied, "bytes": report.bytes_copied,
            "idle_round_s": idle}


def time_raw_copy(lake: str, target: str) -> float:
    from pyarrow import fs

    from btlake_pipelines.storage.lake_files import filesystem

    src_fs, src = filesystem(lake)
    dst_fs, dst = filesystem(target)
    started = time.perf_counter()
    fs.copy_files(src, dst, source_filesystem=src_fs, destination_filesystem=dst_fs,
                  use_threads=True)
    return time.perf_counter() - started


def lag_under_ingestion(root: Path, seconds: float) -> dict:
    from btlake_pipelines import Lake

    lake, landing, replica = str(root / "lake"), str(root / "landing"), str(root / "lagrep")
    env = {**os.environ, "BTLAKE_LAKE": lake, "BTLAKE_LANDING": landing}
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, lake, landing], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    follower = subprocess.Popen([*BTLAKE, "replicate", "--to", replica, "--follow",
                                 "--interval", "1"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    lags, versions = [], []
    try:
        time.sleep(5)  # both started
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            status = Lake(lake).replication_status(replica)
            lags.append(status.lag_seconds)
            versions.append(status.lag_versions)
            time.sleep(1)
    finally:
        for proc in (writer, follower):
            proc.terminate()
            proc.wait()
    return {"samples": len(lags), "median_lag_s": statistics.median(lags),
            "max_lag_s": max(lags), "median_lag_versions": statistics.median(versions),
            "max_lag_versions": max(versions)}


def start_moto() -> tuple[subprocess.Popen, str]:
    code = ("import sys\nfrom moto.server import ThreadedMotoServer\n"
            "s = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)\n"
            "s.start()\nprint(s.get_host_and_port()[1], flush=True)\nsys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline())}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replication", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small lake, a short lag run")
    parser.add_argument("--s3", action="store_true", help="also local -> S3 (moto)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    runs, lag_s = (12, 10) if args.quick else (120, 40)
    work = Path(tempfile.mkdtemp(prefix="btlake-bench-repl-"))
    rows: dict = {"runs": runs}
    try:
        lake = build(work, runs)
        rows["lake_files"], rows["lake_bytes"] = tree_size(lake)
        rows["local"] = time_replicate(lake, str(work / "replica"))
        rows["local"]["raw_copy_s"] = time_raw_copy(lake, str(work / "raw"))
        if args.s3:
            proc, endpoint = start_moto()
            os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true",
                              AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                              AWS_REGION="us-east-1")
            try:
                from btlake_pipelines.storage.object_store import s3_client

                for bucket in ("bench-replica", "bench-raw"):
                    s3_client().create_bucket(Bucket=bucket)
                rows["s3"] = time_replicate(lake, "s3://bench-replica/lake")
                rows["s3"]["raw_copy_s"] = time_raw_copy(lake, "s3://bench-raw/lake")
            finally:
                proc.stdin.close()
                proc.wait()
        rows["lag"] = lag_under_ingestion(work, lag_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "replication.json").write_text(json.dumps(rows, indent=2))
    (out / "replication.md").write_text(report(rows))
    print(report(rows))


def report(rows: dict) -> str:
    mb = rows["lake_bytes"] / 1e6
    lines = ["# Replication bench", "",
             f"Demo lake: {rows['runs']} runs and the real market-data samples, "
             f"{rows['lake_files']} files, {mb:.1f} MB. First replication of the whole root, "
             "then a round with nothing new; the raw copy is `pyarrow.fs.copy_files` of the "
             "same root (no order, no verification).", "",
             "| target | btlake replicate | files/s | MB/s | raw copy | btlake / raw | "
             "round with nothing new |", "|---|---|---|---|---|---|---|"]
    for name in ("local", "s3"):
        if name not in rows:
            continue
        r = rows[name]
        lines.append(f"| {name} | {r['seconds']:.2f} s | {r['files'] / r['seconds']:.0f} | "
                     f"{r['bytes'] / 1e6 / r['seconds']:.1f} | {r['raw_copy_s']:.2f} s | "
                     f"{r['seconds'] / r['raw_copy_s']:.1f}x | {r['idle_round_s'] * 1000:.0f} ms |")
    lag = rows["lag"]
    lines += ["", "Lag under continuous ingestion (a batch of 2 runs about every second, "
              f"`--follow --interval 1`, {lag['samples']} samples of `--status`): median "
              f"{lag['median_lag_s']:.1f} s / {lag['median_lag_versions']:g} versions, max "
              f"{lag['max_lag_s']:.1f} s / {lag['max_lag_versions']} versions.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
