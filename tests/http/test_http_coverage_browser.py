"""The coverage page in headless Chromium over `btlake serve`: one market's heat map with the
missing session drawn as a gap, the exchange holiday and the weekend shaded."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from tests.core import bundles as B

try:
    from .test_http_browser import OUT, _btlake, _serve, chromium, page
except ImportError:
    from test_http_browser import OUT, _btlake, _serve, chromium, page  # noqa: F401

pytestmark = pytest.mark.e2e

FIRST = date(2024, 3, 25)
GAP = date(2024, 3, 27)  # S05 misses this session
HOLIDAY, SATURDAY = date(2024, 3, 29), date(2024, 3, 30)  # Good Friday, a weekend day


@pytest.fixture(scope="module")
def coverage_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("coverage-e2e")
    env = {k: v for k, v in os.environ.items()
           if k not in ("BTLAKE_API_TOKEN", "BTLAKE_API_READ_TOKEN", "BTLAKE_CALENDARS")}
    env.update(BTLAKE_LAKE=str(root / "lake"), BTLAKE_LANDING=str(root / "landing"))
    span = [FIRST + timedelta(days=i) for i in range(9)]
    parts = [B.ticks(1, symbol=f"S{i:02d}", start=datetime(d.year, d.month, d.day, 15,
                                                              tzinfo=UTC))
             for i in range(8) for d in span
             if d.weekday() < 5 and d != HOLIDAY and not (i == 5 and d == GAP)]
    B.market_data(env["BTLAKE_LANDING"], "cov-e2e", {"ticks": pa.concat_tables(parts)},
                  market="XNYS")
    done = subprocess.run([_btlake(), "ingest"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    OUT.mkdir(parents=True, exist_ok=True)
    yield from _serve(env, OUT / "serve-coverage.log")


def _pixel(page, day_index: int, band: int) -> list[int]:
    return page.evaluate(
        """([d, b]) => { const c = document.getElementById('cov-canvas');
             const w = +c.dataset.cellWidth, h = +c.dataset.cellHeight;
             return Array.from(c.getContext('2d').getImageData(
               d * w + Math.floor(w / 2), b * h + Math.floor(h / 2), 1, 1).data).slice(0, 3);
           }""", [day_index, band])


def test_coverage_page_draws_gaps_and_shades_holidays(coverage_server: str, page) -> None:
    page.goto(coverage_server + "/coverage?market=XNYS")
    page.wait_for_selector("body[data-coverage-ready='1']")
    summary = page.inner_text("#cov-summary")
    assert "8 symbols" in summary and "calendar XNYS" in summary and "1 gap(s)" in summary
    assert page.get_attribute("#cov-canvas", "data-bands") == "8"
    index = {(FIRST + timedelta(days=i)): i for i in range(9)}
    red, green, holiday, weekend = [220, 38, 38], [21, 128, 61], [203, 213, 225], [238, 240, 243]
    assert _pixel(page, index[GAP], 5) == red
    assert _pixel(page, index[GAP], 4) == green
    assert _pixel(page, index[HOLIDAY], 5) == holiday
    assert _pixel(page, index[SATURDAY], 0) == weekend
    # hovering a cell names the band's symbol, the day and what is missing
    box = page.locator("#cov-canvas").bounding_box()
    w = int(page.get_attribute("#cov-canvas", "data-cell-width"))
    h = int(page.get_attribute("#cov-canvas", "data-cell-height"))
    page.mouse.move(box["x"] + index[GAP] * w + w / 2, box["y"] + 5 * h + h / 2)
    assert page.inner_text("#cov-hover") == "2024-03-27 (session) S05: 0 with rows, 1 missing"
    page.screenshot(path=str(OUT / "coverage.png"))
    assert not page.problems, page.problems  # type: ignore[attr-defined]
