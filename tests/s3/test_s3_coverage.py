"""Coverage on a real S3 API (moto): the summary is written under the lake's prefix, kept
current after ingest and after a plain append, and its gaps follow the calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from btlake_pipelines.app.lake import Lake
from tests.core import bundles as B

from .conftest import S3Lake

pytestmark = pytest.mark.s3


def _day(symbol: str, day: date, n: int = 2) -> pa.Table:
    return B.ticks(n, symbol=symbol, start=datetime(day.year, day.month, day.day, 15,
                                                    tzinfo=UTC))


def test_coverage_on_s3_after_ingest_and_a_plain_append(s3: S3Lake, tmp_path):
    folder = B.market_data(tmp_path, "s3-cov", {"ticks": pa.concat_tables(
        [_day("BTCUSDT", date(2024, 3, 29)), _day("BTCUSDT", date(2024, 3, 31))])},
        market="BINANCE")
    lake = Lake(s3.lake)
    lake.publish(folder)
    assert not lake.ingest().quarantined
    assert any(k.startswith("lake/_coverage/_delta_log/") for k in s3.keys("lake/_coverage"))
    found = lake.coverage()
    assert set(found.gap_frame.iter_rows()) == {("BINANCE", "BTCUSDT", date(2024, 3, 30))}

    # a streaming writer appends the missing Saturday straight into Delta
    dt = DeltaTable(f"{s3.lake}/ticks", storage_options=s3.storage_options)
    schema = pa.schema(dt.schema().to_arrow())
    rows = _day("BTCUSDT", date(2024, 3, 30), 3)
    data = pa.table({f.name: (rows.column(f.name).cast(f.type, safe=False)
                              if f.name in rows.column_names else
                              pa.array(["BINANCE"] * 3) if f.name == "market" else
                              pa.array([date(2024, 3, 30)] * 3, pa.date32()) if f.name == "date"
                              else pa.nulls(3, f.type)) for f in schema})
    write_deltalake(f"{s3.lake}/ticks", data, mode="append", partition_by=["market", "date"],
                    storage_options=s3.storage_options)
    [done] = lake.refresh_coverage(["ticks"])
    assert (done.full, done.partitions) == (False, 1)
    after = lake.coverage()
    assert after.gap_frame.is_empty()
    assert after.rows["rows"].to_list() == [2, 3, 2]
