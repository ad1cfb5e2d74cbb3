"""Tags and lineage over HTTP (CONTRACT section 7): create (write token, 409 when it exists),
list, as_of=tag:NAME on runs and table reads, a run's lineage, stale runs and table diffs."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq

from btlake_pipelines.app.lake import Lake
from btlake_pipelines.interfaces.http import create_app
from tests.core import bundles as B

try:
    from .http_helpers import client_for
except ImportError:
    from http_helpers import client_for

WRITE = "w-secret-token"


def test_tags_lineage_and_stale_over_http(fresh, monkeypatch):
    lake_dir, landing = str(fresh["lake"]), str(fresh["landing"])
    lake = Lake(lake_dir)
    B.market_data(landing, "md-1", {"ticks": B.ticks(6, price=50.0)})
    lake.ingest(landing, isolated=False)
    day = B.T0.replace(hour=0, minute=0)
    item = {"table": "ticks", "market": "XNAS", "symbols": ["AAPL"], "start": day.isoformat(),
            "end": (day + timedelta(days=1)).isoformat()}
    B.backtest(landing, "h-1", created_at=datetime.now(UTC).isoformat(), inputs=[item])
    lake.ingest(landing, isolated=False)
    monkeypatch.setenv("BTLAKE_API_TOKEN", WRITE)
    with client_for(create_app(lake_dir, landing)) as client:
        assert client.post("/api/v1/tags", json={"name": "t1"}).status_code == 401
        auth = {"Authorization": f"Bearer {WRITE}"}
        made = client.post("/api/v1/tags", json={"name": "t1", "message": "m"}, headers=auth)
        assert made.status_code == 201, made.text
        assert made.json()["versions"]["ticks"] == 0
        again = client.post("/api/v1/tags", json={"name": "t1"}, headers=auth)
        assert again.status_code == 409 and "exists already" in again.json()["error"]
        assert [t["name"] for t in client.get("/api/v1/tags").json()["tags"]] == ["t1"]

        B.market_data(landing, "md-2", {"ticks": B.ticks(6, price=70.0)})
        B.backtest(landing, "h-2")
        lake.ingest(landing, isolated=False)

        at_tag = client.get("/api/v1/runs", params={"as_of": "tag:t1"}).json()
        assert [r["run_id"] for r in at_tag["runs"]] == ["h-1"]
        assert client.get("/api/v1/runs").json()["total"] == 2
        old = client.get("/api/v1/tables/ticks", params={"as_of": "tag:t1"})
        assert old.status_code == 200
        assert set(pq.read_table(io.BytesIO(old.content)).column("price").to_pylist()) == {
            50.0 + 0.01 * i for i in range(6)}
        assert client.get("/api/v1/tables/ticks",
                          params={"as_of": "tag:nope"}).status_code == 404

        lineage = client.get("/api/v1/runs/h-1/lineage").json()
        assert lineage["run_id"] == "h-1"
        assert [(i["version"], i["stale"]) for i in lineage["inputs"]] == [(0, True)]
        assert client.get("/api/v1/runs/nope/lineage").status_code == 404
        stale = client.get("/api/v1/runs", params={"stale": "true"}).json()
        assert [r["run_id"] for r in stale["runs"]] == ["h-1"] and stale["total"] == 1

        diff = client.get("/api/v1/tables/ticks/diff", params={"a": "tag:t1", "b": "1"})
        assert diff.status_code == 200
        assert diff.json()["partitions"] == [{"market": "XNAS", "date": "2024-03-04",
                                              "added": 6, "removed": 6}]
