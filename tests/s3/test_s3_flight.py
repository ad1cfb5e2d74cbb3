"""Arrow Flight over a lake on a real S3 API (moto on loopback): exactly once across a server
kill, DoGet and ``Lake.batches`` as on local folders."""

from __future__ import annotations

import json
import signal
from collections import Counter

import polars as pl
import pyarrow as pa
import pyarrow.flight as flight

from btlake_pipelines import Lake
from tests.flight.flight_kit import FlightProcess, Producer, last_seq, tick_batch


def test_flight_on_s3_is_exactly_once_and_reads_like_lake_read(s3):
    server = FlightProcess(s3.lake).start()
    try:
        producer = Producer(server.client())
        assert [producer.send("s3-feed", s, tick_batch(s))["status"] for s in (1, 2, 3)] == \
            ["accepted"] * 3
        server.stop(signal.SIGKILL)
        server.start()
        client = server.client()
        assert last_seq(client, "s3-feed") == 3
        producer = Producer(client)
        answers = [producer.send("s3-feed", s, tick_batch(s))["status"] for s in (1, 2, 3, 4)]
        producer.close()
        assert answers == ["duplicate", "duplicate", "duplicate", "accepted"]

        lake = Lake(s3.lake)
        want = pl.from_arrow(lake.read("ticks"))
        assert dict(want.group_by("seq").len().iter_rows()) == {s: 4 for s in (1, 2, 3, 4)}
        got = pl.from_arrow(client.do_get(flight.Ticket(json.dumps(
            {"table": "ticks"}).encode())).read_all())
        assert got.sort(got.columns).equals(want.sort(want.columns))
        shards = [Counter(pl.from_arrow(pa.Table.from_batches(list(
            lake.batches("ticks", shard=(i, 2))))).iter_rows()) for i in range(2)]
        assert shards[0] + shards[1] == Counter(want.iter_rows())
    finally:
        server.stop()
