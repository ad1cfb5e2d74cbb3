"""Streaming beside the lake's other writers: compaction, checkpoints and bundle ingestion
commit to the partitions a stream appends to, and nothing is lost, doubled or starved."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta

import polars as pl

from btlake_pipelines import Lake
from tests.core import bundles as B
from tests.flight.flight_kit import T0, tick_batch

DAY = date(2024, 3, 4)


def test_maintenance_and_ingestion_while_a_stream_commits(dirs):
    lake = Lake(dirs.lake)
    writer = lake.stream_writer(max_wait=0.05)
    acks: list = []
    stop = threading.Event()

    def produce() -> None:
        seq = 0
        while (not stop.is_set() or seq < 30) and seq < 400:
            seq += 1
            future = writer.put("ticks", "XNAS", f'{{"writer": "feed", "seq": {seq}}}'.encode(),
                                tick_batch(seq, rows=3))
            acks.append(future.result(60))

    producer = threading.Thread(target=produce)
    producer.start()
    reports = []
    try:
        while len(acks) < 5:
            time.sleep(0.05)
        for _ in range(3):  # compaction of the very partition the stream appends to
            reports += lake.maintain(tables=["ticks"], partitions=[("XNAS", DAY)])
        # a bundle of another symbol into the same partition, ingested meanwhile
        B.market_data(dirs.landing, "md-zzz", {"ticks": B.ticks(6, symbol="ZZZ")})
        batch = lake.ingest(isolated=False)
        assert batch.counts()["ingested"] == 1
        reports += lake.maintain(tables=["ticks"], partitions=[("XNAS", DAY)])
        lake.log_upkeep()
    finally:
        stop.set()
        producer.join(120)
    writer.close()
    assert not producer.is_alive()
    assert {a.status for a in acks} == {"accepted"} and len(acks) >= 30
    assert sum(r.files_removed for r in reports) > 0  # compaction did run on streamed files

    rows = pl.from_arrow(Lake(dirs.lake).read("ticks"))
    streamed = rows.filter(pl.col("symbol") == "AAA").group_by("seq").len()
    assert dict(streamed.iter_rows()) == {a.seq: 3 for a in acks}  # each batch exactly once
    assert rows.filter(pl.col("symbol") == "ZZZ").height == 6
    assert lake.last_seq("feed") == len(acks)
    assert all(r.version_after >= r.version_before for r in reports)
    assert T0.date() == DAY


def test_rederiving_from_the_archive_keeps_partitions_with_streamed_rows(dirs):
    lake = Lake(dirs.lake)
    B.market_data(dirs.landing, "md-day1", {"ticks": B.ticks(6, symbol="ZZZ")})
    B.market_data(dirs.landing, "md-day2", {"ticks": B.ticks(5, symbol="ZZZ",
                                                           start=T0 + timedelta(days=1))})
    assert lake.ingest(isolated=False).counts()["ingested"] == 2
    writer = lake.stream_writer()
    assert writer.put("ticks", "XNAS", b'{"writer": "feed", "seq": 1}',
                      tick_batch(1, rows=3)).result(30).status == "accepted"
    writer.close()
    before = Lake(dirs.lake).read("ticks").num_rows
    assert before == 6 + 5 + 3

    done = {r.day: r for r in lake.rederive_days("ticks", [("XNAS", DAY),
                                                           ("XNAS", DAY + timedelta(days=1))])}
    assert "streamed rows" in (done[DAY].note or "") and done[DAY].version is None
    assert done[DAY + timedelta(days=1)].version is not None  # the other day was re-derived
    rows = pl.from_arrow(Lake(dirs.lake).read("ticks"))
    assert rows.height == before
    assert rows.filter(pl.col("symbol") == "AAA").height == 3
