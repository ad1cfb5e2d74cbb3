"""End to end: `btlake serve` over a demo lake (built with `btlake demo` + `btlake ingest`),
driven by Debian's headless Chromium through python playwright. Screenshots go to
test-output/http/ (BTLAKE_UPDATE_SCREENSHOTS=1 also copies two of them to docs/img/)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "test-output" / "http"
READ_TOKEN = "e2e-read-token"
QUERY = "params.lookback >= 50 and metrics.sharpe > -10"


def _btlake() -> str:
    beside = Path(sys.executable).parent / "btlake"
    found = str(beside) if beside.exists() else shutil.which("btlake")
    assert found, "the btlake command is not installed (pip install -e .)"
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} not found (apt-get install chromium)"
        if os.environ.get("BTLAKE_E2E_REQUIRED") == "1":
            pytest.fail(f"{message}; BTLAKE_E2E_REQUIRED=1", pytrace=False)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("e2e")
    env = {k: v for k, v in os.environ.items()
           if k not in ("BTLAKE_API_TOKEN", "BTLAKE_API_READ_TOKEN")}
    env.update(BTLAKE_LAKE=str(root / "lake"), BTLAKE_LANDING=str(root / "landing"))
    subprocess.run([_btlake(), "demo", "--runs", "6", "--no-real-data"], env=env, check=True,
                   capture_output=True, timeout=120)
    done = subprocess.run([_btlake(), "ingest"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return env


def _serve(env: dict[str, str], log: Path) -> Iterator[str]:
    port = _free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([_btlake(), "serve", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                urllib.request.urlopen(base + "/api/v1/health", timeout=2).close()
                break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, "btlake serve did not answer\n" + \
                    log.read_text()
                time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(demo_env: dict[str, str]) -> Iterator[str]:
    OUT.mkdir(parents=True, exist_ok=True)
    yield from _serve(demo_env, OUT / "serve.log")


@pytest.fixture(scope="module")
def guarded_server(demo_env: dict[str, str]) -> Iterator[str]:
    OUT.mkdir(parents=True, exist_ok=True)
    yield from _serve({**demo_env, "BTLAKE_API_READ_TOKEN": READ_TOKEN}, OUT / "serve-read.log")


@pytest.fixture
def page(chromium: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1360, "height": 900},
                                      accept_downloads=True)
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.problems = problems  # type: ignore[attr-defined]
        yield page
        context.close()
        browser.close()


def _shot(page, name: str, docs_name: str | None = None) -> None:
    path = OUT / name
    page.screenshot(path=str(path), full_page=False)
    if docs_name and os.environ.get("BTLAKE_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(path, REPO / "docs" / "img" / docs_name)


def test_query_open_run_download_and_compare(server: str, page) -> None:
    api = httpx.Client(base_url=server, timeout=30)
    expected = api.get("/api/v1/runs", params={"where": QUERY, "limit": 50}).json()
    assert 0 < expected["total"] < 6

    # the page with no query lists the most recent runs
    page.goto(server + "/")
    page.wait_for_selector("#runs tbody tr")
    assert page.locator("#runs tbody tr").count() == 6
    assert "6 runs" in page.inner_text("#status")
    _shot(page, "01-runs.png")

    # keyboard: '/' focuses the query box, Enter searches; the query lands in the URL
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type(QUERY)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('#runs tbody tr').length === n "
        "&& document.getElementById('status').innerText.includes('match')",
        arg=len(expected["runs"]))
    shown = page.locator("#runs tbody td.mono a").all_inner_texts()
    assert sorted(shown) == sorted(r["run_id"] for r in expected["runs"])
    assert "q=params.lookback" in page.url
    _shot(page, "02-query.png")

    # a shared link reproduces the query; a header click sorts on the server
    page.goto(page.url)
    page.wait_for_selector("#runs tbody tr")
    assert page.input_value("#q") == QUERY
    page.click("#runs thead button.sort:has-text('sharpe')")
    page.wait_for_function("() => location.search.includes('sort=metrics.sharpe')")
    page.wait_for_selector("#runs th[aria-sort='descending']")
    by_sharpe = api.get("/api/v1/runs", params={"where": QUERY, "order_by": "metrics.sharpe",
                                                "desc": "true"}).json()["runs"]
    assert page.locator("#runs tbody td.mono a").all_inner_texts() == [
        r["run_id"] for r in by_sharpe]

    # open one run: metadata, params and a drawn equity curve
    run_id = by_sharpe[0]["run_id"]
    page.click(f"#runs tbody a:text-is('{run_id}')")
    page.wait_for_selector("#run-body:not([hidden])")
    assert run_id in page.inner_text("#metadata")
    assert "lookback" in page.inner_text("#params")
    assert "sharpe" in page.inner_text("#metrics")
    page.wait_for_function(
        "() => { const p = document.getElementById('equity-plot');"
        " return p && p.data && p.data.length === 2 && p.data[0].x.length > 100; }")
    points = page.evaluate("document.getElementById('equity-plot').data[0].y.length")
    drawdown = page.evaluate("document.getElementById('equity-plot').data[1].y.length")
    assert points > 100 and drawdown == points
    assert page.locator("#equity-plot .scatterlayer path.js-line").count() >= 2
    line = page.get_attribute("#equity-plot .scatterlayer path.js-line", "d")
    assert line and line.count("L") > 50
    assert page.locator("#versions tbody tr").count() == 1
    page.wait_for_timeout(300)
    _shot(page, "03-run.png", "browser-run.png")

    # download the run's trades as Parquet through the page's button
    with page.expect_download() as info:
        page.click("#downloads a[data-table='trades'][data-format='parquet']")
    download = info.value
    target = OUT / download.suggested_filename
    download.save_as(str(target))
    assert download.suggested_filename == f"{run_id}.trades.parquet"
    table = pq.read_table(io.BytesIO(target.read_bytes()))
    snapshot = api.get(f"/api/v1/runs/{run_id}").json()
    assert table.num_rows == snapshot["rows"]["trades"] > 0
    assert set(table.column_names) >= {"ts", "symbol", "side", "qty", "price", "run_id"}

    # compare two runs selected on the runs page
    page.goto(server + "/?q=" + QUERY.replace(" ", "+"))
    page.wait_for_selector("#runs tbody tr")
    boxes = page.locator("#runs tbody input[type=checkbox]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    chosen = page.locator("#runs tbody td.mono a").all_inner_texts()[:2]
    page.click("#compare-selected")
    page.wait_for_selector("#compare-body:not([hidden])")
    page.wait_for_function(
        "() => { const p = document.getElementById('compare-plot');"
        " return p && p.data && p.data.length === 2 && p.data[1].x.length > 100; }")
    header = page.inner_text("#compare-params thead")
    assert all(r in header for r in chosen)
    doc = api.get("/api/v1/compare/runs", params={"run": chosen}).json()
    differing = sum(v["differs"] for v in doc["params"].values())
    assert page.locator("#compare-params tr.differs").count() == differing > 0
    assert sorted(page.evaluate(
        "document.getElementById('compare-plot').data.map(t => t.name)")) == sorted(chosen)
    page.wait_for_timeout(300)
    _shot(page, "04-compare.png", "browser-compare.png")

    # errors are shown, not swallowed
    page.goto(server + "/?q=params.lookback+%3E%3E+1")
    page.wait_for_selector("#status.error")
    # the core's words, passed through unchanged ("bad where", or "bad --where" from a core
    # message not yet naming its parameter neutrally)
    assert "where at character" in page.inner_text("#status")
    page.goto(server + "/runs/no-such-run")
    page.wait_for_selector("#status.empty")
    assert "No run no-such-run" in page.inner_text("#status")
    assert page.problems == [] or all("404" in p or "400" in p for p in page.problems), \
        page.problems


def test_page_asks_for_the_read_token(guarded_server: str, page) -> None:
    page.goto(guarded_server + "/")
    page.wait_for_selector("#token-dialog[open]")
    _shot(page, "05-token.png")
    page.fill("#token-input", "wrong-token")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('token-message').innerText"
                           ".includes('not accepted')")
    page.fill("#token-input", READ_TOKEN)
    page.keyboard.press("Enter")
    page.wait_for_selector("#runs tbody tr")
    assert page.locator("#runs tbody tr").count() == 6
    assert page.evaluate("sessionStorage.getItem('btlake.token')") == READ_TOKEN
