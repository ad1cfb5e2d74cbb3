"""Reads over the demo lake: run search with where/order/limit/offset, one run, history,
compare, health, the equity curve (downsampled), and the browser's pages and assets."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from btlake_pipelines.app.lake import Lake
from btlake_pipelines.versions.equity_curve import downsample

try:
    from .http_helpers import DEMO_RUNS
except ImportError:
    from http_helpers import DEMO_RUNS


def all_runs(client) -> list[dict]:
    doc = client.get("/api/v1/runs", params={"limit": 1000}).json()
    assert doc["total"] == len(doc["runs"]) == DEMO_RUNS
    return doc["runs"]


def test_runs_lists_newest_first_with_total(demo_client):
    r = demo_client.get("/api/v1/runs")
    assert r.status_code == 200
    doc = r.json()
    assert set(doc) == {"runs", "total", "limit", "offset"}
    assert doc["total"] == DEMO_RUNS and doc["limit"] == 100 and doc["offset"] == 0
    created = [run["created_at"] for run in doc["runs"]]
    assert created == sorted(created, reverse=True)
    first = doc["runs"][0]
    assert isinstance(first["params"], dict) and isinstance(first["metrics"], dict)
    assert "manifest" not in first


def test_runs_where_over_params_and_metrics(demo_client):
    runs = all_runs(demo_client)
    expected = sorted(r["run_id"] for r in runs
                      if r["params"].get("lookback", 0) >= 20
                      and (r["metrics"].get("sharpe") is not None
                           and r["metrics"]["sharpe"] > -5))
    assert 0 < len(expected) < DEMO_RUNS
    doc = demo_client.get("/api/v1/runs", params={
        "where": "params.lookback >= 20 and metrics.sharpe > -5", "limit": 1000}).json()
    assert sorted(r["run_id"] for r in doc["runs"]) == expected
    assert doc["total"] == len(expected)

    modes = {r["params"]["mode"] for r in runs}
    mode = sorted(modes)[0]
    doc = demo_client.get("/api/v1/runs", params={
        "where": f"params.mode = '{mode}' or metrics.n_trades < 0"}).json()
    assert sorted(r["run_id"] for r in doc["runs"]) == sorted(
        r["run_id"] for r in runs if r["params"]["mode"] == mode)


def test_runs_filters_order_limit_offset(demo_client):
    runs = all_runs(demo_client)
    strategy = runs[0]["strategy_id"]
    doc = demo_client.get("/api/v1/runs", params={"strategy": strategy[:4] + "*"}).json()
    assert {r["strategy_id"] for r in doc["runs"]} == {
        r["strategy_id"] for r in runs if r["strategy_id"].startswith(strategy[:4])}

    market = runs[0]["markets"][0]
    doc = demo_client.get("/api/v1/runs", params={"market": market}).json()
    assert doc["total"] == sum(market in r["markets"] for r in runs)

    middle = sorted(r["created_at"] for r in runs)[DEMO_RUNS // 2]
    doc = demo_client.get("/api/v1/runs", params={"since": middle}).json()
    assert doc["total"] == sum(r["created_at"] >= middle for r in runs)
    doc = demo_client.get("/api/v1/runs", params={"until": middle}).json()
    assert doc["total"] == sum(r["created_at"] < middle for r in runs)

    by_sharpe = sorted((r for r in runs if r["metrics"].get("sharpe") is not None),
                       key=lambda r: r["metrics"]["sharpe"], reverse=True)
    doc = demo_client.get("/api/v1/runs", params={"order_by": "metrics.sharpe", "desc": "true",
                                                  "limit": 3, "offset": 1}).json()
    assert [r["run_id"] for r in doc["runs"]] == [r["run_id"] for r in by_sharpe[1:4]]
    assert doc["total"] == DEMO_RUNS and doc["limit"] == 3 and doc["offset"] == 1

    doc = demo_client.get("/api/v1/runs", params={"limit": 0}).json()
    assert doc["runs"] == [] and doc["total"] == DEMO_RUNS


def test_one_run_snapshot(demo_client, demo_lake):
    run_id = all_runs(demo_client)[0]["run_id"]
    r = demo_client.get(f"/api/v1/runs/{run_id}")
    assert r.status_code == 200
    snap = r.json()
    assert snap == Lake(demo_lake["lake"]).run(run_id)
    for key in ("params", "metrics", "environment", "code_version", "engine_name",
                "engine_version", "source_uri", "content_hash", "ingested_at", "versions",
                "manifest"):
        assert key in snap, key
    assert snap["versions"]["trades"] is not None
    versions = demo_client.get(f"/api/v1/runs/{run_id}/versions").json()
    assert versions["run_id"] == run_id and len(versions["versions"]) == 1
    assert versions["versions"][0]["content_hash"] == snap["content_hash"]


def test_history_and_compare(demo_client, demo_lake):
    history = demo_client.get("/api/v1/tables/trades/history").json()
    assert history["versions"][0]["version"] == 0
    assert len(history["versions"][0]["runs"]) == DEMO_RUNS
    assert demo_client.get("/api/v1/tables/ticks/history").json() == {"versions": []}

    runs = all_runs(demo_client)
    a, b = runs[0]["run_id"], runs[1]["run_id"]
    doc = demo_client.get("/api/v1/compare", params={"a": a, "b": b}).json()
    assert doc["runs"] == [a, b]
    assert doc == {**Lake(demo_lake["lake"]).compare(a, b)}
    assert doc["params"]["lookback"]["a"] == runs[0]["params"]["lookback"]
    assert doc["summary"]["trades"]["a"]["rows"] > 0

    many = demo_client.get("/api/v1/compare/runs",
                           params={"run": [a, b, runs[2]["run_id"]]}).json()
    assert many["runs"] == [a, b, runs[2]["run_id"]]
    lookback = many["params"]["lookback"]
    assert lookback["values"][a] == runs[0]["params"]["lookback"]
    assert lookback["differs"] == (len({r["params"]["lookback"] for r in runs[:3]}) > 1)
    assert many["summary"]["equity.rows"]["values"][b] > 0
    # the metadata fields are those of the two-run compare, served from one place
    assert list(many["metadata"]) == list(doc["metadata"]["a"])
    assert many["metadata"]["strategy_id"]["values"][a] == runs[0]["strategy_id"]


def test_health_shows_the_lake_and_never_credentials(demo_client, demo_lake):
    doc = demo_client.get("/api/v1/health").json()
    assert doc["status"] == "ok" and doc["lake"] == demo_lake["lake"]
    assert doc["auth"] == {"write_token": False, "read_token": False}

    from btlake_pipelines.interfaces.http.routers.health import public_uri

    assert public_uri("s3://KEY:SECRET@bucket/prefix?token=x") == "s3://bucket/prefix"
    assert public_uri("s3://bucket/lake") == "s3://bucket/lake"


def test_equity_curve_endpoint(demo_client, demo_lake):
    run_id = all_runs(demo_client)[0]["run_id"]
    full = Lake(demo_lake["lake"]).read("equity", run_id=run_id)
    doc = demo_client.get(f"/api/v1/runs/{run_id}/equity", params={"points": 10_000}).json()
    assert doc["total_points"] == doc["points"] == full.num_rows and not doc["downsampled"]
    assert doc["ts"] == sorted(doc["ts"])
    assert max(doc["equity"]) == pytest.approx(max(full["equity"].to_pylist()))
    assert all(d <= 0 for d in doc["drawdown"])
    small = demo_client.get(f"/api/v1/runs/{run_id}/equity", params={"points": 90}).json()
    assert small["downsampled"] and small["points"] <= 92
    assert max(small["equity"]) == max(doc["equity"])
    assert min(small["equity"]) == min(doc["equity"])
    assert min(small["drawdown"]) == pytest.approx(min(doc["drawdown"]))


def test_downsample_keeps_extremes_of_a_million_points():
    n = 1_000_000
    rng = np.random.default_rng(5)
    equity = 100_000 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    equity[123_457] = equity.max() * 1.5  # a spike
    equity[765_433] = equity.min() * 0.5  # a crash
    start = datetime(2024, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame({"ts": pl.datetime_range(start, start + timedelta(minutes=n - 1),
                                                  "1m", eager=True, time_zone="UTC"),
                          "equity": equity})
    began = time.perf_counter()
    small = downsample(frame, 2000)
    elapsed = time.perf_counter() - began
    assert small.height <= 2002
    assert elapsed < 2.0, elapsed
    assert small["equity"].max() == equity.max() and small["equity"].min() == equity.min()
    peak = np.maximum.accumulate(equity)
    assert small["drawdown"].min() == pytest.approx((equity / peak - 1).min())
    assert small["ts"].is_sorted()
    assert small["ts"][0] == frame["ts"][0] and small["ts"][-1] == frame["ts"][-1]


def test_pages_and_assets(demo_client):
    for path in ("/", "/compare", "/runs/anything", "/compare?run=a&run=b"):
        r = demo_client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert "cdn" not in r.text.lower()
    run_page = demo_client.get("/runs/%3Cimg%20src=x%20onerror=alert(1)%3E").text
    assert "<img src=x" not in run_page and "&lt;img src=x onerror=alert(1)&gt;" in run_page
    js = demo_client.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert len(js.content) > 1_000_000 and b"plotly" in js.content[:2000].lower()
    assert demo_client.get("/static/app.js").status_code == 200
    assert demo_client.get("/static/app.css").status_code == 200
    assert demo_client.get("/docs").status_code == 200
    missing = demo_client.get("/no/such/page", headers={"accept": "text/html"})
    assert missing.status_code == 404 and "Not found" in missing.text


def test_openapi_documents_every_contract_endpoint(demo_client):
    schema = demo_client.get("/openapi.json").json()
    paths = schema["paths"]
    for path, method in [("/api/v1/bundles", "post"), ("/api/v1/runs", "get"),
                         ("/api/v1/runs/{run_id}", "get"), ("/api/v1/runs/{run_id}/versions",
                                                            "get"),
                         ("/api/v1/tables/{table}", "get"),
                         ("/api/v1/tables/{table}/history", "get"),
                         ("/api/v1/compare", "get"), ("/api/v1/health", "get")]:
        op = paths[path][method]
        assert "4XX" in op["responses"], path
        assert "200" in op["responses"] or "202" in op["responses"], path
    upload = paths["/api/v1/bundles"]["post"]
    assert set(upload["responses"]) >= {"200", "202", "413", "422", "4XX"}
    assert "multipart/form-data" in upload["requestBody"]["content"]
    download = paths["/api/v1/tables/{table}"]["get"]["responses"]["200"]["content"]
    assert "application/vnd.apache.arrow.stream" in download
    assert "HTTPValidationError" not in str(schema)
    assert paths["/api/v1/runs"]["get"]["responses"]["200"]["content"]["application/json"]
