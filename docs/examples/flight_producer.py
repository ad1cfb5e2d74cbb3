"""A feed handler for ``btlake flight``: streams ticks with exactly-once acknowledgements,
resuming after whatever the lake already holds, then reads them back with DoGet.

    btlake flight &                                  # grpc://127.0.0.1:8815
    python docs/examples/flight_producer.py --batches 5

Each batch carries ``{"writer": ID, "seq": N}``; the server answers ``accepted`` once the batch
is committed, or ``duplicate`` when that seq is already stored (a resend after a reconnect or
a server restart). ``last_seq`` says where to resume. Set ``BTLAKE_API_TOKEN`` when the server
requires a token.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.flight as flight


def ticks(seq: int, rows: int = 1_000) -> pa.RecordBatch:
    start = datetime(2024, 3, 4, 14, 30, tzinfo=UTC) + timedelta(seconds=seq)
    return pa.record_batch({
        "ts": pa.array([start + timedelta(microseconds=i) for i in range(rows)],
                       pa.timestamp("ns", "UTC")),
        "symbol": ["BTCUSDT"] * rows,
        "price": [67_000.0 + (seq * rows + i) % 97 for i in range(rows)],
        "size": [0.01] * rows})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--location", default="grpc://127.0.0.1:8815")
    parser.add_argument("--writer", default="binance-feed-1")
    parser.add_argument("--market", default="BINANCE")
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args()
    token = os.environ.get("BTLAKE_API_TOKEN")
    options = flight.FlightCallOptions(
        headers=[(b"authorization", f"Bearer {token}".encode())] if token else [])
    client = flight.connect(args.location)

    action = flight.Action("last_seq", json.dumps({"writer": args.writer}).encode())
    last = json.loads(next(iter(client.do_action(action, options))).body.to_pybytes())
    first = 1 if last is None else last + 1
    print(f"last_seq of {args.writer}: {last}; sending seq {first}..{first + args.batches - 1}")

    put, acks = client.do_put(flight.FlightDescriptor.for_path("ticks", args.market),
                              ticks(0).schema, options)
    for seq in range(first, first + args.batches):
        put.write_with_metadata(ticks(seq), pa.py_buffer(
            json.dumps({"writer": args.writer, "seq": seq}).encode()))
        print("ack", json.loads(acks.read().to_pybytes()))
    # a resend of the last batch (as after a reconnect) is answered, never stored twice
    put.write_with_metadata(ticks(seq), pa.py_buffer(
        json.dumps({"writer": args.writer, "seq": seq}).encode()))
    print("ack", json.loads(acks.read().to_pybytes()))
    put.done_writing()
    put.close()

    ticket = flight.Ticket(json.dumps({"table": "ticks", "market": args.market,
                                       "columns": ["ts", "symbol", "price"]}).encode())
    table = client.do_get(ticket, options).read_all()
    print(f"DoGet: {table.num_rows} rows of {args.market} ticks")


if __name__ == "__main__":
    main()
