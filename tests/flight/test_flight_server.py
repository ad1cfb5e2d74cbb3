"""``btlake flight`` as a feed handler and a training job meet it: a real server process, a
real ``pyarrow.flight`` client, a real Delta lake on disk."""

from __future__ import annotations

import json
import signal
import time

import polars as pl
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from btlake_pipelines import Lake
from tests.flight.flight_kit import (
    T0,
    FlightProcess,
    Producer,
    last_seq,
    options,
    tag,
    tick_batch,
    wait_until,
)


@pytest.fixture
def server(tmp_path):
    proc = FlightProcess(str(tmp_path / "lake")).start()
    yield proc
    proc.stop()


def _seq_counts(lake: str) -> dict[int, int]:
    table = Lake(lake).read("ticks", columns=["seq"])
    counts = pl.from_arrow(table).group_by("seq").len()
    return dict(counts.iter_rows())


def test_exactly_once_across_resend_reconnect_and_sigkill(server):
    client = server.client()
    producer = Producer(client)
    acks = [producer.send("feed-1", s, tick_batch(s)) for s in (1, 2, 3)]
    assert acks == [{"seq": s, "status": "accepted"} for s in (1, 2, 3)]
    assert producer.send("feed-1", 2, tick_batch(2)) == {"seq": 2, "status": "duplicate"}
    producer.close()

    # a client reconnect: resend what may have been lost, then go on
    client = server.client()
    producer = Producer(client)
    assert last_seq(client, "feed-1") == 3
    assert [producer.send("feed-1", s, tick_batch(s))["status"] for s in (3, 4)] == \
        ["duplicate", "accepted"]
    # pipelined: four batches in flight, then the server is killed mid-stream
    for s in (5, 6, 7, 8):
        producer.write("feed-1", s, tick_batch(s))
    first = producer.ack()
    assert first == {"seq": 5, "status": "accepted"}
    server.stop(signal.SIGKILL)

    server.start()  # same lake; the writer's state comes back from the Delta log
    client = server.client()
    resume = last_seq(client, "feed-1")
    assert resume is not None and 5 <= resume <= 8
    producer = Producer(client)
    answers = {s: producer.send("feed-1", s, tick_batch(s))["status"] for s in range(1, 10)}
    producer.close()
    assert all(answers[s] == "duplicate" for s in range(1, resume + 1))
    assert all(answers[s] == "accepted" for s in range(resume + 1, 10))
    # every batch stored exactly once: 4 rows per seq, no seq missing or doubled
    assert _seq_counts(server.lake) == {s: 4 for s in range(1, 10)}
    assert last_seq(client, "feed-1") == 9
    assert last_seq(client, "nobody") is None


def test_bad_batch_is_refused_with_its_rule_and_stores_nothing(server):
    client = server.client()
    producer = Producer(client)
    assert producer.send("feed-2", 1, tick_batch(1))["status"] == "accepted"
    with pytest.raises(flight.FlightServerError) as err:
        producer.send("feed-2", 2, tick_batch(2, price=-5.0))
    message = str(err.value)
    assert "positive [ticks.price]" in message and "must be > 0" in message
    assert "Traceback" not in message
    assert json.loads(err.value.extra_info)["rule"] == "positive"

    client = server.client()
    assert last_seq(client, "feed-2") == 1
    assert _seq_counts(server.lake) == {1: 4}

    # l2 rules too, and a market column that contradicts the descriptor
    l2 = pa.record_batch({"ts": pa.array([T0], pa.timestamp("ns", "UTC")), "symbol": ["AAA"],
                          "side": ["middle"], "level": [0], "price": [1.0], "size": [1.0]})
    producer = Producer(client, table="l2", schema=l2.schema)
    with pytest.raises(flight.FlightServerError, match=r"allowed_values \[l2\.side\]"):
        producer.send("feed-2", 3, l2)
    wrong = tick_batch(4).append_column("market", pa.array(["XLON"] * 4))
    producer = Producer(client, schema=wrong.schema)
    with pytest.raises(flight.FlightServerError, match=r"market_mismatch \[ticks\.market\]"):
        producer.send("feed-2", 4, wrong)
    with pytest.raises(flight.FlightServerError, match="streams append to"):
        Producer(client, table="trades").send("feed-2", 5, tick_batch(5))
    assert Lake(server.lake).read("ticks").num_rows == 4
    assert last_seq(client, "feed-2") == 1


def test_acknowledged_rows_are_readable_within_two_seconds(server):
    reader = Lake(server.lake)  # a long-lived reader, as a research notebook holds one
    client = server.client()
    producer = Producer(client)
    producer.send("feed-3", 1, tick_batch(1))
    assert reader.read("ticks").num_rows == 4
    for s in (2, 3):
        sent = time.monotonic()
        assert producer.send("feed-3", s, tick_batch(s))["status"] == "accepted"
        acked = time.monotonic() - sent
        seen = wait_until(lambda want=4 * s: reader.read("ticks").num_rows == want,
                          timeout=2.0)
        assert acked < 2.0 and seen < 2.0, (acked, seen)
    producer.close()


def test_do_get_streams_exactly_what_lake_read_returns(server):
    client = server.client()
    producer = Producer(client)
    for s in range(1, 6):
        producer.send("feed-4", s, tick_batch(s, symbol="AAA" if s % 2 else "BBB"))
    producer.close()
    lake = Lake(server.lake)
    cases = [
        {"table": "ticks"},
        {"table": "ticks", "market": "XNAS", "symbol": ["BBB"]},
        {"table": "ticks", "start": "2024-03-04T14:32:00Z", "end": "2024-03-04T14:34:01Z",
         "columns": ["ts", "price", "seq"]},
        {"table": "ticks", "as_of": 0},
    ]
    for ticket in cases:
        stream = client.do_get(flight.Ticket(json.dumps(ticket).encode()))
        got = pl.from_arrow(stream.read_all())
        filters = {k: v for k, v in ticket.items() if k != "table"}
        want = pl.from_arrow(lake.read("ticks", **filters))
        assert got.height > 0
        assert got.columns == want.columns
        assert got.sort(got.columns).equals(want.sort(want.columns)), ticket
    with pytest.raises(flight.FlightServerError, match="unknown table"):
        client.do_get(flight.Ticket(b'{"table": "nope"}')).read_all()
    with pytest.raises(flight.FlightServerError, match="unknown key"):
        client.do_get(flight.Ticket(b'{"table": "ticks", "colums": ["x"]}')).read_all()


def test_tokens_are_those_of_the_http_api(tmp_path):
    server = FlightProcess(str(tmp_path / "lake"), BTLAKE_API_TOKEN="write-secret-1",
                           BTLAKE_API_READ_TOKEN="read-secret-1").start()
    try:
        client = server.client()
        ticket = flight.Ticket(b'{"table": "ticks"}')
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.do_get(ticket).read_all()
        with pytest.raises(flight.FlightUnauthenticatedError):
            Producer(client).send("feed-5", 1, tick_batch(1))
        with pytest.raises(flight.FlightUnauthorizedError):
            Producer(client, token="read-secret-1").send("feed-5", 1, tick_batch(1))
        with pytest.raises(flight.FlightUnauthorizedError):
            last_seq(client, "feed-5", token="wrong")
        producer = Producer(client, token="write-secret-1")
        assert producer.send("feed-5", 1, tick_batch(1))["status"] == "accepted"
        producer.close()
        for token in ("read-secret-1", "write-secret-1"):
            assert client.do_get(ticket, options(token)).read_all().num_rows == 4
            assert last_seq(client, "feed-5", token=token) == 1
    finally:
        server.stop()


def test_metadata_without_writer_and_seq_is_refused(server):
    client = server.client()
    producer = Producer(client)
    producer.writer.write_with_metadata(tick_batch(1), pa.py_buffer(b"not json"))
    with pytest.raises(flight.FlightServerError, match="app_metadata"):
        producer.ack()
    producer = Producer(client)
    producer.writer.write_with_metadata(tick_batch(1), tag("feed-6", -1))
    with pytest.raises(flight.FlightServerError, match="seq must be an integer"):
        producer.ack()
    assert Lake(server.lake).read("ticks").num_rows == 0
