"""A real ``btlake flight`` server process and a real ``pyarrow.flight`` client for the tests:
the server listens on a free port it prints at start; stop it with SIGTERM or kill it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.flight as flight

BTLAKE = [sys.executable, "-m", "btlake_pipelines.interfaces.cli"]
T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


class FlightProcess:
    def __init__(self, lake: str, **env: str) -> None:
        self.lake = lake
        self.env = {**os.environ, **env}
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    def start(self) -> FlightProcess:
        self.proc = subprocess.Popen([*BTLAKE, "--lake", self.lake, "flight", "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=self.env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"grpc://127\.0\.0\.1:(\d+)", line)
        assert found, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.port = int(found.group(1))
        return self

    @property
    def location(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def client(self) -> flight.FlightClient:
        return flight.connect(self.location)  # listening once it printed its address

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.proc = None


def options(token: str | None) -> flight.FlightCallOptions:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return flight.FlightCallOptions(headers=headers, timeout=30)


def tick_batch(seq: int, rows: int = 4, *, price: float = 10.0, symbol: str = "AAA",
               start: datetime = T0) -> pa.RecordBatch:
    """``rows`` ticks whose ``seq`` column names the batch, one second apart from
    ``start + seq minutes``."""
    first = start + timedelta(minutes=seq)
    return pa.record_batch({
        "ts": pa.array([first + timedelta(seconds=i) for i in range(rows)],
                       pa.timestamp("ns", "UTC")),
        "symbol": [symbol] * rows, "price": [price + i for i in range(rows)],
        "size": [1.0] * rows, "seq": pa.array([seq] * rows, pa.int64())})


def tag(writer: str, seq: int) -> pa.Buffer:
    return pa.py_buffer(json.dumps({"writer": writer, "seq": seq}).encode())


class Producer:
    """One DoPut stream: ``send`` writes a batch and waits for its ack."""

    def __init__(self, client: flight.FlightClient, table: str = "ticks",
                 market: str = "XNAS", token: str | None = None,
                 schema: pa.Schema | None = None) -> None:
        schema = schema or tick_batch(0).schema
        self.writer, self.reader = client.do_put(
            flight.FlightDescriptor.for_path(table, market), schema, options(token))

    def write(self, writer: str, seq: int, batch: pa.RecordBatch) -> None:
        self.writer.write_with_metadata(batch, tag(writer, seq))

    def ack(self) -> dict:
        buf = self.reader.read()
        if buf is None:  # the call ended: its status (an error) comes with closing
            self.writer.close()
            raise AssertionError("the server closed the stream without an ack")
        return json.loads(buf.to_pybytes())

    def send(self, writer: str, seq: int, batch: pa.RecordBatch) -> dict:
        self.write(writer, seq, batch)
        return self.ack()

    def close(self) -> None:
        self.writer.done_writing()
        self.writer.close()


def last_seq(client: flight.FlightClient, writer: str, token: str | None = None):
    results = list(client.do_action(flight.Action("last_seq",
                                                  json.dumps({"writer": writer}).encode()),
                                    options(token)))
    return json.loads(results[0].body.to_pybytes())


def wait_until(predicate, timeout: float = 10.0, step: float = 0.05) -> float:
    """Seconds until ``predicate()`` held (AssertionError after ``timeout``)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(step)
    return time.monotonic() - start
