"""The lake browser's tag list and a run's inputs (stale flag, the diff that made it stale),
served by `btlake serve` and driven by headless Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from btlake_pipelines.app.lake import Lake
from tests.core import bundles as B

try:
    from .test_http_browser import OUT, _serve, chromium, page
except ImportError:
    from test_http_browser import OUT, _serve, chromium, page  # noqa: F401

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lineage_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("e2e-lineage")
    lake_dir, landing = str(root / "lake"), str(root / "landing")
    lake = Lake(lake_dir)
    B.market_data(landing, "md-1", {"ticks": B.ticks(6, price=50.0)})
    lake.ingest(landing, isolated=False)
    lake.tag_create("paper-q3", "as published")
    day = B.T0.replace(hour=0, minute=0)
    B.backtest(landing, "lin-1", created_at=datetime.now(UTC).isoformat(), inputs=[{
        "table": "ticks", "market": "XNAS", "symbols": ["AAPL"], "start": day.isoformat(),
        "end": (day + timedelta(days=1)).isoformat()}])
    lake.ingest(landing, isolated=False)
    B.market_data(landing, "md-2", {"ticks": B.ticks(6, price=70.0)})
    lake.ingest(landing, isolated=False)
    env = {k: v for k, v in os.environ.items()
           if k not in ("BTLAKE_API_TOKEN", "BTLAKE_API_READ_TOKEN")}
    env.update(BTLAKE_LAKE=lake_dir, BTLAKE_LANDING=landing)
    OUT.mkdir(parents=True, exist_ok=True)
    yield from _serve(env, OUT / "serve-lineage.log")


def test_tag_list_and_run_inputs_with_stale_flag_and_diff(lineage_server: str, page) -> None:
    page.goto(lineage_server + "/tags")
    row = page.locator("#tags tr[data-tag='paper-q3']")
    row.wait_for()
    assert "ticks@0" in row.inner_text() and "as published" in row.inner_text()
    page.screenshot(path=str(OUT / "tags.png"))

    page.goto(lineage_server + "/runs/lin-1")
    stale = page.locator("#inputs tr.stale")
    stale.wait_for()
    text = stale.inner_text()
    assert "ticks" in text and "AAPL" in text and "stale" in text
    stale.get_by_role("button", name="what changed").click()
    diff = page.locator("#inputs-diff-table tbody tr")
    diff.first.wait_for()
    assert [c.strip() for c in diff.first.inner_text().split("\t")] == [
        "XNAS", "2024-03-04", "6", "6"]
    page.screenshot(path=str(OUT / "run-inputs.png"), full_page=True)
    assert page.problems == []  # type: ignore[attr-defined]
