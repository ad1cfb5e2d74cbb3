"""The btlake command line against an S3 landing prefix and an S3 lake (moto on loopback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from btlake_pipelines import publish

from .conftest import S3Lake
from .helpers import backtest, broken, btlake, market_data

pytestmark = pytest.mark.s3

#: A reader that knows Delta Lake and S3, and nothing of btlake: polars alone, own process.
_OUTSIDE_READER = """
import json, sys
import polars as pl
root, options = sys.argv[1], json.loads(sys.argv[2])
out = {}
for table in ("trades", "equity", "ticks", "runs", "ingest_log"):
    df = pl.scan_delta(f"{root}/{table}", storage_options=options).collect()
    out[table] = {"rows": df.height, "columns": df.columns,
                  "run_ids": sorted(df["run_id"].drop_nulls().unique().to_list())
                  if "run_id" in df.columns else []}
trades = pl.scan_delta(f"{root}/trades", storage_options=options).filter(
    pl.col("run_id") == "s3-run-1").select("price").collect()
out["s3-run-1 prices"] = sorted(trades["price"].to_list())
print(json.dumps(out))
"""


def test_cli_ingest_runs_read_history_on_s3(s3: S3Lake, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for folder in (backtest(src, "s3-run-1"), backtest(src, "s3-run-2", 6, file_format="csv"),
                   backtest(src, "s3-run-3", strategy_id="breakout"),
                   market_data(src, "s3-ticks-1"), broken(src, "s3-bad-1")):
        publish(folder)
    assert sorted(k.split("/")[1] for k in s3.keys("landing/") if "/.arrivals/" not in k) == \
        sorted(["s3-run-1"] * 3 + ["s3-run-2"] * 3 + ["s3-run-3"] * 3 + ["s3-ticks-1"] * 2
               + ["s3-bad-1"] * 3)

    done = btlake("ingest")
    assert done.returncode == 1, done.stderr  # one bundle quarantined
    lines = done.stdout.splitlines()
    status = {line.split()[0]: line.split()[1] for line in lines[:-1]}
    assert status == {"s3-bad-1": "quarantined:", "s3-run-1": "ingested",
                      "s3-run-2": "ingested", "s3-run-3": "ingested",
                      "s3-ticks-1": "ingested"}, done.stdout
    assert "4 ingested" in lines[-1] and "1 quarantined" in lines[-1]

    # Landing holds only what is not handled yet: nothing, index keys included.
    assert s3.keys("landing/") == []
    archived = {k.split("/")[2] for k in s3.keys("lake/_archive/")}
    assert archived == {"s3-run-1", "s3-run-2", "s3-run-3", "s3-ticks-1"}
    reason = json.loads(s3.client().get_object(
        Bucket=s3.bucket, Key="lake/_quarantine/s3-bad-1/reason.json")["Body"].read())
    assert reason["table"] == "trades" and reason["column"] == "price"

    runs = btlake("runs", "--format", "json", "--where", "params.lookback = 20")
    assert runs.returncode == 0, runs.stderr
    doc = json.loads(runs.stdout)
    assert doc["total"] == 3
    assert sorted(r["run_id"] for r in doc["runs"]) == ["s3-run-1", "s3-run-2", "s3-run-3"]
    assert all(r["source_uri"].startswith(f"s3://{s3.bucket}/landing/")
               for r in doc["runs"] if "source_uri" in r)

    out = tmp_path / "trades.parquet"
    read = btlake("read", "trades", "--run-id", "s3-run-2", "--out", str(out))
    assert read.returncode == 0, read.stderr
    assert pq.read_table(out).num_rows == 6
    preview = btlake("read", "ticks", "--market", "XNAS")
    assert preview.returncode == 0 and "5" in preview.stdout, preview.stderr

    # Same content again: unchanged; new content: replaced, old content still reachable.
    publish(backtest(tmp_path / "again", "s3-run-1"))
    publish(backtest(tmp_path / "changed", "s3-run-3", 2, price=200.0, strategy_id="breakout"))
    again = btlake("ingest")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "s3-run-1  unchanged" in again.stdout and "s3-run-3  replaced" in again.stdout

    history = btlake("history", "trades", "--format", "json")
    assert history.returncode == 0, history.stderr
    versions = json.loads(history.stdout)["versions"]
    assert [v["version"] for v in versions] == [1, 0]
    assert "s3-run-3" in versions[0]["runs"]
    old = tmp_path / "old.parquet"
    assert btlake("read", "trades", "--run-id", "s3-run-3", "--as-of", "0",
                  "--out", str(old)).returncode == 0
    assert pq.read_table(old).num_rows == 4
    new = tmp_path / "new.parquet"
    assert btlake("read", "trades", "--run-id", "s3-run-3", "--out", str(new)).returncode == 0
    assert sorted(pq.read_table(new)["price"].to_pylist()) == [200.0, 201.0]

    # A second, independent reader: polars in its own process, no btlake import.
    reader = subprocess.run([sys.executable, "-c", _OUTSIDE_READER, s3.lake,
                             json.dumps(s3.storage_options)],
                            capture_output=True, text=True, timeout=120)
    assert reader.returncode == 0, reader.stderr
    seen = json.loads(reader.stdout)
    assert seen["trades"]["rows"] == 4 + 6 + 2
    assert seen["trades"]["run_ids"] == ["s3-run-1", "s3-run-2", "s3-run-3"]
    assert seen["equity"]["rows"] == 9
    assert seen["ticks"]["rows"] == 5
    assert seen["runs"]["rows"] == 3
    assert seen["ingest_log"]["rows"] == 7
    assert {"market", "date", "run_id", "strategy_id"} <= set(seen["trades"]["columns"])
    assert seen["s3-run-1 prices"] == [100.0, 101.0, 102.0, 103.0]
