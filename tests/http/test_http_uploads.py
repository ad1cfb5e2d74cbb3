"""Uploads: a bundle sent over HTTP is published, ingested with ingest=now, and reads back
equal through the streamed downloads; re-uploads give unchanged / replaced and new versions."""

from __future__ import annotations

import io
import json

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from btlake_pipelines.app.lake import Lake
from btlake_pipelines.demo import write_bundle
from btlake_pipelines.interfaces.http import create_app

try:
    from .http_helpers import client_for, make_bundle, ns_trades, upload
except ImportError:
    from http_helpers import client_for, make_bundle, ns_trades, upload

SOURCE_COLUMNS = ["ts", "symbol", "side", "qty", "price"]


def _sorted(table: pa.Table, columns: list[str]) -> pl.DataFrame:
    frame = pl.from_arrow(table.select(columns))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col("ts").dt.cast_time_unit("ns")).sort(columns)


def _ns_bundle(fresh, run_id: str = "nanos-run-1"):
    manifest = {
        "format": "btlake.bundle/1", "kind": "backtest", "run_id": run_id,
        "strategy_id": "nanos", "created_at": "2024-03-04T12:00:00Z",
        "engine": {"name": "test", "version": "1"}, "markets": ["BINANCE"],
        "params": {"lookback": 7, "mode": "fast"}, "metrics": {"sharpe": 1.25},
    }
    trades = ns_trades()
    equity = pa.table({"ts": trades["ts"], "equity": pa.array(
        [100_000.0 + i for i in range(trades.num_rows)])})
    return write_bundle(fresh["src"] / run_id, manifest, {"trades": trades, "equity": equity}), \
        trades


def test_upload_ingest_now_reads_back_equal_as_parquet_and_arrow(fresh, fresh_client):
    folder, source = _ns_bundle(fresh)
    r = upload(fresh_client, folder)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ingested"
    assert body["run_id"] == "nanos-run-1"
    assert body["rows"] == {"trades": 30, "equity": 30}
    assert "error" not in body and "reason" not in body  # as `btlake ingest` reports it

    params = {"run_id": "nanos-run-1"}
    r = fresh_client.get("/api/v1/tables/trades", params={**params, "format": "parquet"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.apache.parquet"
    assert 'filename="nanos-run-1.trades.parquet"' in r.headers["content-disposition"]
    from_parquet = pq.read_table(io.BytesIO(r.content))

    r = fresh_client.get("/api/v1/tables/trades", params={**params, "format": "arrow"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.apache.arrow.stream"
    from_arrow = ipc.open_stream(io.BytesIO(r.content)).read_all()

    # exact nanoseconds survive the lake and both encodings
    assert from_parquet.schema.field("ts").type == pa.timestamp("ns", "UTC")
    assert from_arrow.schema.field("ts").type == pa.timestamp("ns", "UTC")
    expected = _sorted(source, SOURCE_COLUMNS)
    assert _sorted(from_parquet, SOURCE_COLUMNS).equals(expected)
    assert _sorted(from_arrow, SOURCE_COLUMNS).equals(expected)
    # and both equal what the Python API reads
    lake_table = Lake(str(fresh["lake"])).read("trades", run_id="nanos-run-1")
    assert _sorted(from_arrow, lake_table.column_names).equals(
        _sorted(lake_table, lake_table.column_names))
    assert from_parquet.column_names == from_arrow.column_names == lake_table.column_names


def test_csv_and_json_downloads(fresh, fresh_client):
    folder, source = _ns_bundle(fresh)
    assert upload(fresh_client, folder).status_code == 200
    r = fresh_client.get("/api/v1/tables/trades", params={"run_id": "nanos-run-1",
                                                          "format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    frame = pl.read_csv(io.BytesIO(r.content))
    assert frame.height == 30
    assert set(SOURCE_COLUMNS) <= set(frame.columns)

    r = fresh_client.get("/api/v1/tables/trades", params={"run_id": "nanos-run-1",
                                                          "format": "json", "limit": 5})
    assert r.status_code == 200
    doc = r.json()
    assert doc["row_count"] == 5 and doc["limit"] == 5 and doc["truncated"] is True
    assert r.headers["x-btlake-truncated"] == "true"
    first_ts = pc.min(source["ts"]).value  # ns since epoch
    assert doc["rows"][0]["ts"].endswith("Z")
    stamps = sorted(row["ts"] for row in doc["rows"])
    assert stamps[0].startswith("2024-03-04T12:00:00.123456789")
    assert first_ts % 1_000_000_000 == 123_456_789

    r = fresh_client.get("/api/v1/tables/trades", params={"run_id": "nanos-run-1",
                                                          "format": "json"})
    assert r.json()["truncated"] is False and r.json()["row_count"] == 30


def test_json_download_of_an_empty_lake(fresh_client):
    doc = fresh_client.get("/api/v1/tables/runs", params={"format": "json"}).json()
    assert doc["rows"] == [] and doc["row_count"] == 0 and doc["truncated"] is False


def test_json_download_is_capped_by_the_server(fresh):
    folder, _ = _ns_bundle(fresh)
    with client_for(create_app(str(fresh["lake"]), str(fresh["landing"]),
                               json_row_limit=7)) as client:
        assert upload(client, folder).status_code == 200
        doc = client.get("/api/v1/tables/trades",
                         params={"format": "json", "limit": 1000}).json()
        assert doc["row_count"] == 7 and doc["limit"] == 7 and doc["truncated"] is True


def test_reupload_unchanged_then_replaced_and_versions(fresh, fresh_client):
    folder = make_bundle(fresh["src"])
    run_id = folder.name
    first = upload(fresh_client, folder)
    assert first.status_code == 200 and first.json()["status"] == "ingested"
    again = upload(fresh_client, folder)
    assert again.status_code == 200 and again.json()["status"] == "unchanged"

    def changed(manifest, tables):
        manifest["params"]["lookback"] = 999
        manifest["metrics"]["sharpe"] = 4.5
        tables["trades"] = tables["trades"].slice(0, 25)

    folder2 = make_bundle(fresh["root"] / "src2", tweak=changed)
    assert folder2.name == run_id
    replaced = upload(fresh_client, folder2)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["status"] == "replaced"

    versions = fresh_client.get(f"/api/v1/runs/{run_id}/versions").json()["versions"]
    assert len(versions) == 2
    assert versions[0]["current"] and not versions[1]["current"]
    assert versions[0]["content_hash"] == replaced.json()["content_hash"]
    assert versions[1]["content_hash"] == first.json()["content_hash"]
    assert versions[0]["ingested_at"] > versions[1]["ingested_at"]
    assert versions[0]["rows"]["trades"] == 25 and versions[1]["rows"]["trades"] == 40

    snapshot = fresh_client.get(f"/api/v1/runs/{run_id}").json()
    assert snapshot["params"]["lookback"] == 999

    diff = fresh_client.get(f"/api/v1/runs/{run_id}/diff").json()
    assert diff["a"]["runs_version"] == versions[1]["versions"]["runs"]
    assert diff["b"]["current"] is True
    assert diff["params"]["lookback"]["a"] != 999 and diff["params"]["lookback"]["b"] == 999
    assert diff["params"]["lookback"]["differs"] is True
    assert diff["metrics"]["sharpe"]["b"] == 4.5
    assert diff["rows"]["trades"] == {"a": 40, "b": 25, "differs": True}
    assert diff["summary"]["trades"]["rows"] == {"a": 40, "b": 25, "differs": True}
    assert "params.lookback" in diff["changed"] and "rows.trades" in diff["changed"]
    assert "params.mode" not in diff["changed"]

    # the old version still reads through time travel at the versions it recorded
    old = versions[1]["versions"]["trades"]
    r = fresh_client.get("/api/v1/tables/trades", params={"run_id": run_id, "as_of": str(old),
                                                          "format": "arrow"})
    assert ipc.open_stream(io.BytesIO(r.content)).read_all().num_rows == 40


def test_upload_without_ingest_is_published_for_the_sensor(fresh, fresh_client):
    folder = make_bundle(fresh["src"])
    r = upload(fresh_client, folder, ingest=False)
    assert r.status_code == 202
    assert r.json() == {"run_id": folder.name, "status": "published",
                        "message": "published to landing; the sensor will ingest it"}
    landed = fresh["landing"] / folder.name
    assert sorted(p.name for p in landed.iterdir()) == sorted(p.name for p in folder.iterdir())
    assert (landed / "manifest.json").read_bytes() == (folder / "manifest.json").read_bytes()
    # the same run id again while it waits: 409, unless replace=true
    again = upload(fresh_client, folder, ingest=False)
    assert again.status_code == 409 and "already waiting" in again.json()["error"]
    assert upload(fresh_client, folder, ingest=False, replace="true").status_code == 202
    batch = Lake(str(fresh["lake"])).ingest(str(fresh["landing"]))
    assert [r.status for r in batch.results] == ["ingested"]


def test_only_a_manifest_in_landing_makes_a_bundle_waiting(fresh, fresh_client):
    """One rule for "already waiting", shared with ``btlake publish``: the manifest is there
    (one HEAD on S3). A folder without it is a copy that never finished and is written over."""
    folder = make_bundle(fresh["src"])
    leftover = fresh["landing"] / folder.name
    leftover.mkdir(parents=True)
    (leftover / "trades.parquet").write_bytes(b"half a file")
    r = upload(fresh_client, folder, ingest=False)
    assert r.status_code == 202, r.text
    assert (leftover / "trades.parquet").read_bytes() == (folder / "trades.parquet").read_bytes()
    again = upload(fresh_client, folder, ingest=False)
    assert again.status_code == 409
    assert again.json()["detail"] == {"type": "conflict", "param": "replace"}


def test_uploads_spool_into_the_upload_dir(fresh, monkeypatch):
    from btlake_pipelines.interfaces.http import uploads

    staging = fresh["root"] / "spool"
    staging.mkdir()
    monkeypatch.setenv("BTLAKE_UPLOAD_DIR", str(staging))
    spooled = []
    real = uploads.SpooledTemporaryFile

    def recording(*args, **kwargs):
        spooled.append(kwargs.get("dir"))
        return real(*args, **kwargs)

    monkeypatch.setattr(uploads, "SpooledTemporaryFile", recording)
    with client_for(create_app(str(fresh["lake"]), str(fresh["landing"]))) as client:
        assert upload(client, make_bundle(fresh["src"]), ingest=False).status_code == 202
    assert spooled == [str(staging)] * 3  # trades, equity and events
    monkeypatch.setenv("BTLAKE_UPLOAD_DIR", str(fresh["root"] / "missing"))
    with pytest.raises(Exception, match=r"BTLAKE_UPLOAD_DIR .* is not a folder"):
        create_app(str(fresh["lake"]), str(fresh["landing"]))


def test_manifest_as_a_file_part(fresh, fresh_client):
    folder = make_bundle(fresh["src"])
    r = upload(fresh_client, folder, manifest_as_file=True)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ingested"


def test_quarantined_upload_answers_422_with_the_result(fresh, fresh_client):
    def negative_qty(manifest, tables):
        trades = tables["trades"]
        i = trades.column_names.index("qty")
        tables["trades"] = trades.set_column(i, "qty", pc.negate(trades["qty"]))

    folder = make_bundle(fresh["src"], tweak=negative_qty)
    r = upload(fresh_client, folder)
    assert r.status_code == 422
    body = r.json()
    assert body["status"] == "quarantined"
    assert body["run_id"] == folder.name
    assert "qty" in body["error"] and body["error"]
    assert body["reason"]["rule"] == "positive"
    assert body["reason"]["table"] == "trades" and body["reason"]["column"] == "qty"
    assert str(fresh["root"]) not in r.text
    quarantined = fresh["lake"] / "_quarantine"
    assert json.loads((next(quarantined.iterdir()) / "reason.json").read_text())["rule"] == \
        "positive"
    assert fresh_client.get(f"/api/v1/runs/{folder.name}").status_code == 404
