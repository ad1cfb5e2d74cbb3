"""End to end: ``dagster dev`` on the embedded default, bundles published with ``btlake
publish``, the landing sensor ingests them with no further action, ``btlake runs`` returns
them, and a real headless Chromium shows the assets, their partitions and row counts. With
40 markets registered (contract section 6's bound), the partitions page of an asset loads
within ``PARTITIONS_PAGE_LIMIT`` seconds and shows partition keys and their status.

Freshness (seconds from ``btlake publish`` of a bundle to ``btlake runs`` returning it, with
the default sensor interval) is measured on an idle instance and printed; the target is 60 s.
Screenshots go to ``test-output/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from btlake_pipelines.demo import write_demo_bundles

try:
    from . import orchestration_kit as kit
except ImportError:
    import orchestration_kit as kit

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
BIN = Path(sys.executable).parent
FRESHNESS_TARGET = 60.0
#: Seconds the partitions page of an asset may take to show its partitions, 40 markets
#: registered (monthly dates since 2010: about 8,000 partitions per asset).
PARTITIONS_PAGE_LIMIT = 30.0
MARKETS_AT_SCALE = 40
TABLES = ("trades", "equity", "events", "ticks", "l2", "runs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DagsterDev:
    """``dagster dev`` in its own process group, stopped whole at the end."""

    def __init__(self, tmp: Path) -> None:
        home = tmp / "dagster_home"
        home.mkdir()
        shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
        self.lake, self.landing = tmp / "lake", tmp / "landing"
        self.landing.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "DAGSTER_HOME": str(home), "BTLAKE_LAKE": str(self.lake),
                    "BTLAKE_LANDING": str(self.landing)}
        self.log = open(tmp / "dagster.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p",
             str(self.port)], cwd=ROOT, env=self.env, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"dagster dev exited: {self.tail()}"
            try:
                urllib.request.urlopen(f"{self.url}/server_info", timeout=2).close()
                return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"dagster dev did not answer in {timeout}s: {self.tail()}")

    def graphql(self, query: str) -> dict:
        request = urllib.request.Request(f"{self.url}/graphql",
                                         data=json.dumps({"query": query}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["data"]

    def add_markets(self, markets: list[str]) -> None:
        """Register ``market`` partitions through the UI's own API (as a user's "add
        partition" would), so nothing else writes to the instance's SQLite files."""
        for market in markets:
            data = self.graphql(
                'mutation { addDynamicPartition(repositorySelector: {repositoryLocationName: '
                '"btlake", repositoryName: "__repository__"}, partitionsDefName: "market", '
                f'partitionKey: "{market}") {{ __typename }} }}')
            assert data["addDynamicPartition"]["__typename"] in (
                "AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"), data

    def runs(self) -> list[dict]:
        data = self.graphql('{ runsOrError(filter: {pipelineName: "ingest_job"}) '
                            "{ ... on Runs { results { runId status } } } }")
        return data["runsOrError"]["results"]

    def tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGINT)  # dagster dev stops its children cleanly
            self.proc.wait(timeout=30)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left: run workers included
        self.proc.wait(timeout=10)
        self.log.close()


def btlake(dev: DagsterDev, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "btlake"), *args], env=dev.env, capture_output=True,
                          text=True, timeout=120)


def visible_runs(dev: DagsterDev) -> set[str]:
    done = btlake(dev, "runs", "--format", "json", "--limit", "1000")
    if done.returncode != 0 or not done.stdout.strip():
        return set()
    return {r["run_id"] for r in json.loads(done.stdout)["runs"]}


def publish_and_time(dev: DagsterDev, folders: list[Path], expect: set[str],
                     timeout: float = 180) -> dict[str, float]:
    """Publish each folder with ``btlake publish``; seconds until ``btlake runs`` returns
    each run of ``expect``, measured from the end of its own publish."""
    published: dict[str, float] = {}
    for folder in folders:
        done = btlake(dev, "publish", str(folder))
        assert done.returncode == 0, done.stderr
        published[folder.name] = time.monotonic()
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while set(seen) < expect and time.monotonic() < deadline:
        now_visible = visible_runs(dev)
        now = time.monotonic()
        for name in expect & now_visible:
            seen.setdefault(name, now - published[name])
        time.sleep(0.5)
    assert set(seen) == expect, f"not visible in time: {expect - set(seen)}\n{dev.tail()}"
    return seen


def wait_idle(dev: DagsterDev, timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = dev.runs()
        landing_empty = not any(dev.landing.iterdir())
        if landing_empty and runs and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED")
                                          for r in runs):
            return runs
        time.sleep(1)
    raise AssertionError(f"ingestion did not settle: {dev.runs()}\n{dev.tail()}")


@pytest.fixture
def dagster_dev(tmp_path):
    kit.require_or_skip(Path(CHROMIUM).exists(), f"{CHROMIUM} not found (apt-get install "
                                                 "chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        kit.require_or_skip(False, "python playwright is not installed")
    dev = DagsterDev(tmp_path)
    try:
        dev.wait_ready()
        yield dev
    finally:
        dev.stop()


def test_publish_to_asset_browser(dagster_dev, tmp_path):
    dev = dagster_dev
    src = tmp_path / "src"
    runs = write_demo_bundles(src, runs=7)  # XNAS and XNYS, two dates
    samples = [src / n for n in kit.write_samples(src)]
    bad = src / kit.write_bad_run(src)

    # 1. a first wave: backtests, market data and one bundle the contract refuses
    first = publish_and_time(dev, [*runs[:6], *samples, bad], {f.name for f in runs[:6]})
    ingest_runs = wait_idle(dev)
    assert all(r["status"] == "SUCCESS" for r in ingest_runs), ingest_runs
    assert (dev.lake / "_quarantine" / bad.name).is_dir()

    # 2. freshness on an idle instance: one bundle, publish -> visible in `btlake runs`
    [freshness] = publish_and_time(dev, [runs[6]], {runs[6].name}).values()
    print(f"\nfreshness: {freshness:.1f} s from `btlake publish` to `btlake runs` (idle; "
          f"first wave of {len(first)} backtests: median {statistics.median(first.values()):.1f}"
          f" s, max {max(first.values()):.1f} s)")
    assert freshness <= FRESHNESS_TARGET
    wait_idle(dev)

    from btlake_pipelines.ingest.rederive import delta_partition_rows

    trades = delta_partition_rows(str(dev.lake), "trades")
    day, market = max((d, m) for m, d in trades)
    month = day.replace(day=1)
    month_rows = sum(n for (m, d), n in trades.items()
                     if m == market and d.replace(day=1) == month)
    ticks = {(m, d.replace(day=1).isoformat()) for m, d in delta_partition_rows(str(dev.lake),
                                                                                 "ticks")}
    _browse(dev, total=sum(trades.values()), partition=f"{month}|{market}",
            partition_rows=month_rows, day=str(day))
    # the demo registered XNAS, XNYS, BINANCE and TRUEFX; 36 more make 40
    dev.add_markets([f"SCALE{i:02d}" for i in range(MARKETS_AT_SCALE - 4)])
    _partitions_page(dev, "ticks", sorted(ticks))


def _browse(dev: DagsterDev, *, total: int, partition: str, partition_rows: int,
            day: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(60_000)
            # expect() has its own 5 s default, too short for the Dagster UI on a busy machine
            expect.set_options(timeout=60_000)

            page.goto(f"{dev.url}/assets")
            for table in TABLES:
                expect(page.locator(f'a[href="/assets/{table}"]').first).to_be_visible()
            # partition counts appear once the status of every asset has loaded
            expect(page.get_by_text(re.compile(r"\d[\d,]* partitions"))).to_have_count(6)
            page.screenshot(path=OUTPUT / "dagster-assets.png")

            page.goto(f"{dev.url}/assets/trades")
            expect(page.get_by_text("Row count")).to_be_visible()
            expect(page.get_by_text(f"{total:,}").first).to_be_visible()
            page.screenshot(path=OUTPUT / "dagster-trades.png")

            page.set_viewport_size({"width": 1800, "height": 1150})
            page.goto(f"{dev.url}/assets/trades?view=partitions&partition="
                      f"{partition.replace('|', '%7C')}")
            expect(page.get_by_text(partition).first).to_be_visible()
            expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
            for market in ("XNAS", "XNYS"):
                expect(page.get_by_text(market, exact=True).first).to_be_visible()
            expect(page.get_by_text("dagster/partition_row_count")).to_be_visible()
            expect(page.get_by_text(str(partition_rows), exact=True).first).to_be_visible()
            expect(page.get_by_text(day).first).to_be_visible()  # in the `dates` metadata
            page.screenshot(path=OUTPUT / "dagster-trades-partition.png")

            page.goto(f"{dev.url}/assets/trades?view=checks")
            expect(page.get_by_text("bundles_valid").first).to_be_visible()
            expect(page.get_by_text("Failed", exact=True).first).to_be_visible()  # the refusal
            page.screenshot(path=OUTPUT / "dagster-trades-checks.png")
        finally:
            browser.close()


def _partitions_page(dev: DagsterDev, table: str, stored: list[tuple[str, str]]) -> None:
    """The partitions page of ``table`` with 40 markets registered: it must show the
    partition count, stored (month, market) keys and a materialized status in time."""
    from playwright.sync_api import expect, sync_playwright

    markets = {m for m, _ in stored}
    assert len(markets) >= 2, stored
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1800, "height": 1150})
            page.set_default_timeout(PARTITIONS_PAGE_LIMIT * 1000)
            limit = {"timeout": PARTITIONS_PAGE_LIMIT * 1000}
            started = time.monotonic()
            page.goto(f"{dev.url}/assets/{table}?view=partitions")
            # the count comes from the definition, the status counts from the instance
            count = page.get_by_text(re.compile(r"^[\d,]+ Partitions")).first
            expect(count).to_be_visible(**limit)
            expect(page.get_by_text(f"Materialized ({len(stored)})", exact=True)).to_be_visible(
                **limit)
            expect(page.get_by_text(re.compile(r"^Missing \([\d,]+\)$"))).to_be_visible(**limit)
            for market in sorted(markets):
                expect(page.get_by_text(market, exact=True).first).to_be_visible(**limit)
            loaded = time.monotonic() - started
            total = int(re.match(r"[\d,]+", count.inner_text()).group().replace(",", ""))
            print(f"\n{table} partitions page, {total:,} partitions "
                  f"({MARKETS_AT_SCALE} markets): statuses shown in {loaded:.1f} s")
            assert loaded <= PARTITIONS_PAGE_LIMIT
            assert total % MARKETS_AT_SCALE == 0 and total <= 25_000
            page.screenshot(path=OUTPUT / f"dagster-{table}-partitions.png")
            # one stored key opens with its status
            market, month = stored[-1]
            page.goto(f"{dev.url}/assets/{table}?view=partitions&partition="
                      f"{month}%7C{market}")
            expect(page.get_by_text(f"{month}|{market}").first).to_be_visible(**limit)
            expect(page.get_by_text("dates", exact=True).first).to_be_visible(**limit)
        finally:
            browser.close()
