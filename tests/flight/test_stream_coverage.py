"""Coverage follows streamed appends: rows committed by the stream writer (no bundle, no
ingest run) show in ``Lake.coverage`` at once, and a session they fill stops being a gap."""

from __future__ import annotations

import json
from datetime import timedelta

from btlake_pipelines import Lake
from tests.flight.flight_kit import T0, tick_batch


def _put(writer, seq: int, day: int, rows: int = 4):
    meta = json.dumps({"writer": "feed", "seq": seq}).encode()
    batch = tick_batch(seq, rows, start=T0 + timedelta(days=day))
    assert writer.put("ticks", "XNAS", meta, batch).result(30).status == "accepted"


def _by_day(lake: Lake) -> tuple[dict[str, int], list[str]]:
    doc = lake.coverage("ticks", market="XNAS").to_json()
    return ({c["date"]: c["rows"] for c in doc["coverage"]},
            [g["date"] for g in doc["gaps"]])


def test_streamed_rows_are_covered_and_fill_a_gap(dirs):
    lake = Lake(dirs.lake)
    writer = lake.stream_writer(max_wait=0.05)
    try:
        _put(writer, 1, day=0)            # Monday 2024-03-04
        _put(writer, 2, day=2, rows=6)    # Wednesday 2024-03-06
        rows, gaps = _by_day(lake)
        assert rows == {"2024-03-04": 4, "2024-03-06": 6}
        assert gaps == ["2024-03-05"]     # Tuesday is an XNAS session with no rows

        _put(writer, 3, day=1, rows=3)    # the stream fills Tuesday
        _put(writer, 4, day=2, rows=2)    # and appends to Wednesday
        rows, gaps = _by_day(lake)
        assert rows == {"2024-03-04": 4, "2024-03-05": 3, "2024-03-06": 8}
        assert gaps == []
    finally:
        writer.close()
    stored = Lake(dirs.lake).read("ticks", market="XNAS").num_rows
    assert stored == sum(rows.values())
