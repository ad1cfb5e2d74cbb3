"""``GET /api/v1/coverage`` and the coverage page's data over a real lake."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from btlake_pipelines.app.lake import Lake
from btlake_pipelines.interfaces.http import create_app
from tests.core import bundles as B

try:
    from .http_helpers import client_for
except ImportError:
    from http_helpers import client_for


def _lake(tmp_path) -> tuple[str, str]:
    lake, landing = str(tmp_path / "lake"), str(tmp_path / "landing")
    first = date(2024, 3, 25)
    parts = [B.ticks(2, symbol="AAPL", start=datetime(d.year, d.month, d.day, 15, tzinfo=UTC))
             for d in (first + timedelta(days=i) for i in range(9))
             if d.weekday() < 5 and d.day not in (27, 29)]
    B.market_data(landing, "http-cov", {"ticks": pa.concat_tables(parts)}, market="XNYS")
    assert not Lake(lake).ingest(landing).quarantined
    return lake, landing


def test_coverage_endpoint_answers_the_cli_json(tmp_path):
    lake, landing = _lake(tmp_path)
    with client_for(create_app(lake, landing)) as client:
        answer = client.get("/api/v1/coverage", params={"market": "XNYS"})
        assert answer.status_code == 200, answer.text
        doc = answer.json()
        assert doc == Lake(lake).coverage(market="XNYS").to_json()
        assert doc["gaps"] == [{"market": "XNYS", "symbol": "AAPL", "date": "2024-03-27"}]
        assert len(doc["coverage"]) == 5
        windowed = client.get("/api/v1/coverage", params={"start": "2024-03-28",
                                                          "end": "2024-04-01"}).json()
        assert [r["date"] for r in windowed["coverage"]] == ["2024-03-28", "2024-04-01"]
        bad = client.get("/api/v1/coverage", params={"table": "trades"})
        assert bad.status_code == 400 and "table" in bad.json()["error"]
        bad = client.get("/api/v1/coverage", params={"start": "soon"})
        assert bad.status_code == 400 and "start" in bad.json()["error"]
        themap = client.get("/api/v1/coverage/map", params={"market": "XNYS"}).json()
        assert themap["kinds"][themap["days"].index("2024-03-29")] == "holiday"
        assert themap["gap_count"] == 1
        page = client.get("/coverage")
        assert page.status_code == 200 and "coverage.js" in page.text
