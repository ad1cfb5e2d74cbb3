"""The HTTP API's three figures, through uvicorn on loopback, measured with httpx."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench import data
from bench.cases.runs import WHERE, runs_lake, trades_lake
from bench.core import CaseResult, Context, Row, Target, profile_top
from bench.timing import Stats, interleave


def available() -> bool:
    try:
        import httpx  # noqa: F401

        from btlake_pipelines.interfaces.http.app import create_app  # noqa: F401
    except Exception:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``btlake serve`` on a free loopback port, over one lake."""

    def __init__(self, lake: Path, landing: Path, log: Path) -> None:
        self.port = _free_port()
        exe = str(Path(sys.executable).parent / "btlake")
        env = {**os.environ, "BTLAKE_LOG_LEVEL": "warning"}
        for k in ("BTLAKE_API_TOKEN", "BTLAKE_API_READ_TOKEN"):
            env.pop(k, None)
        with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [exe, "--lake", str(lake), "--landing", str(landing), "serve", "--host",
                 "127.0.0.1", "--port", str(self.port)], env=env, stdout=out,
                stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"btlake serve exited (see {log})")
            try:
                httpx.get(f"{self.base}/api/v1/health", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("btlake serve did not answer in 120 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _hardlink_copy(src: Path, dst: Path) -> None:
    """A copy of a lake that costs nothing: Delta never rewrites a file in place."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, copy_function=os.link)


def http(ctx: Context) -> CaseResult:
    import httpx

    s = ctx.sizes
    res = CaseResult("http", "HTTP API (uvicorn on loopback, httpx client)")
    if not available():
        res.error = "btlake_pipelines.interfaces.http (or httpx) is not available"
        return res
    root = ctx.fresh_dir("http")
    runs_info = runs_lake(ctx, s.http_runs)
    trades_info = trades_lake(ctx)
    lake_b = root / "lake-100k"
    _hardlink_copy(trades_info["lake"], lake_b)
    landing_a, landing_b = root / "landing-a", root / "landing-b"
    landing_a.mkdir()
    landing_b.mkdir()
    servers = []
    try:
        a = Server(runs_info["lake"], landing_a, root / "serve-a.log")
        servers.append(a)
        b = Server(lake_b, landing_b, root / "serve-b.log")
        servers.append(b)
        client = httpx.Client(timeout=120)
        t0 = time.perf_counter()
        first = client.get(f"{a.base}/api/v1/runs", params={"where": WHERE})
        cold = time.perf_counter() - t0
        assert first.status_code == 200, first.text[:300]
        total = first.json()["total"]
        run_ids = trades_info["sample_ids"]
        it = iter(range(10**9))
        client.get(f"{b.base}/api/v1/tables/trades",
                   params={"run_id": run_ids[0], "format": "arrow"}).raise_for_status()
        uploads = _upload_bundles(root / "uploads", s.query_reps + 2)
        up_it = iter(uploads)

        def runs_get() -> None:
            r = client.get(f"{a.base}/api/v1/runs", params={"where": WHERE})
            assert r.status_code == 200

        def download() -> None:
            rid = run_ids[next(it) % len(run_ids)]
            r = client.get(f"{b.base}/api/v1/tables/trades",
                           params={"run_id": rid, "format": "arrow"})
            assert r.status_code == 200 and len(r.content) > 0

        def upload() -> None:
            folder = next(up_it)
            manifest = (folder / "manifest.json").read_bytes()
            files = [("files", (p.name, p.read_bytes(), "application/octet-stream"))
                     for p in sorted(folder.iterdir()) if p.name != "manifest.json"]
            r = client.post(f"{b.base}/api/v1/bundles", params={"ingest": "now"},
                            data={"manifest": manifest.decode()}, files=files)
            assert r.status_code == 200, r.text[:300]

        contenders = {
            f"GET /api/v1/runs?where=... over {s.http_runs:,} runs (first page of 100)": runs_get,
            f"GET /api/v1/tables/trades?run_id=...&format=arrow, {s.read_runs:,} runs":
                download,
        }
        stats = interleave(contenders, s.query_reps, warmup=1)
        # uploads after the reads: each ingest is a new version of trades and runs, which the
        # next read must reload (measured on its own row below)
        contenders["POST /api/v1/bundles?ingest=now, one small bundle"] = upload
        stats.update(interleave({"POST /api/v1/bundles?ingest=now, one small bundle": upload},
                                s.query_reps, warmup=1))
        t0 = time.perf_counter()
        download()
        after_write = time.perf_counter() - t0
        names = list(contenders)
        res.rows.append(Row("first GET /api/v1/runs after start (loads the runs table)",
                            Stats([cold]), note="one sample"))
        for name in names:
            res.rows.append(Row(name, stats[name], btlake=True))
        res.rows.append(Row("the same download right after an upload (runs table reloaded)",
                            Stats([after_write]), note="one sample"))
        g, d, u = (stats[n].median for n in names)
        res.targets.append(Target("GET /runs over 1M runs <= 150 ms median", g * 1000, "ms",
                                  g <= 0.150))
        res.targets.append(Target("download one run's trades as Arrow <= 100 ms median",
                                  d * 1000, "ms", d <= 0.100))
        res.targets.append(Target("upload + ingest=now of a small bundle <= 1 s median", u, "s",
                                  u <= 1.0))
        res.notes.append(
            f"`btlake serve` processes (uvicorn, one worker) on 127.0.0.1: one over the "
            f"{s.http_runs:,}-run lake ({total:,} runs match `{WHERE}`; the page returns 100 "
            f"as JSON), one over a hard-linked copy of the {s.read_runs:,}-run trades lake, "
            "which also receives the uploads (bundles of 50 trades / 200 equity rows, "
            "multipart, ingested before the answer). A persistent httpx client; each sample "
            "is one request, timed from send to the last byte received.")
        if u > 1.0:
            _, res.profile = profile_top(lambda: None, 1)
            res.profile = ("the upload is measured in another process; see the ingest "
                           "profile of small_bundles")
        client.close()
    finally:
        for srv in servers:
            srv.stop()
    return res


def _upload_bundles(folder: Path, count: int) -> list[Path]:
    from btlake_pipelines.demo import synthetic_backtest, write_bundle

    out = []
    stamp = int(time.time())
    for i in range(count):
        manifest, tables = synthetic_backtest(
            i, seed=stamp % 1000, n_trades=50, n_equity=200,
            created_at=data.RUN_BASE + timedelta(days=400, hours=i))
        run_id = f"http-upload-{stamp}-{i:03d}"
        manifest = {**manifest, "run_id": run_id}
        out.append(write_bundle(folder / run_id, manifest, tables))
    return out

