"""Tags and lineage on an S3 lake (moto on loopback) work as on local folders: two processes
creating one tag, a tag surviving vacuum at retention 0, stale runs."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from btlake_pipelines import Lake, publish
from tests.core import bundles as B

from .conftest import S3Lake

pytestmark = pytest.mark.s3


def _ingest(lake: Lake, s3: S3Lake, src: Path, *folders: Path) -> None:
    for folder in folders:
        publish(folder, s3.landing)
    batch = lake.ingest(s3.landing, isolated=False)
    assert not batch.quarantined, batch.summary()


def test_tags_and_lineage_on_s3(s3: S3Lake, tmp_path: Path) -> None:
    import sys

    src = tmp_path / "src"
    lake = Lake(s3.lake)
    _ingest(lake, s3, src, B.market_data(src, "md-1", {"ticks": B.ticks(6, price=50.0)}))
    day = B.T0.replace(hour=0, minute=0)
    item = {"table": "ticks", "market": "XNAS", "symbols": ["AAPL"],
            "start": day.isoformat(), "end": (day + timedelta(days=1)).isoformat()}
    _ingest(lake, s3, src, B.backtest(src, "s3-r1", created_at=datetime.now(UTC).isoformat(),
                                      inputs=[item]))

    # two processes create the same tag at once: exactly one wins, the other exits 2
    cmd = [sys.executable, "-m", "btlake_pipelines.interfaces.cli", "tag", "create", "q3"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    codes = sorted(p.wait(timeout=120) for p in procs)
    assert codes == [0, 2], [p.stderr.read() for p in procs]
    assert [t.name for t in lake.tags()] == ["q3"]
    old_ticks = lake.read("ticks", as_of="tag:q3")
    assert old_ticks.num_rows == 6

    _ingest(lake, s3, src, B.market_data(src, "md-2", {"ticks": B.ticks(6, price=70.0)}))
    lake.maintain(retention_hours=0)
    assert Lake(s3.lake).read("ticks", as_of="tag:q3").equals(old_ticks)
    assert lake.stale_runs() == ["s3-r1"]
    assert lake.inputs("s3-r1")["ticks:XNAS"].equals(old_ticks)
    assert lake.lineage("s3-r1")["inputs"][0]["stale"] is True
