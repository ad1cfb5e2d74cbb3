"""Arrow Flight (issue 15): sustained DoPut rows/s with 1 and 4 writers and the ack latency
(p50 / p99, from a batch's write to its ack), then the same table read back by DoGet,
``Lake.batches`` and a raw pyarrow dataset read of the live Parquet files (the ceiling)."""

from __future__ import annotations

import json
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.core import CaseResult, Context, Row, Target

BATCH_ROWS = 10_000
T0 = datetime(2024, 3, 4, tzinfo=UTC)


def _batch(writer: int, seq: int, rows: int) -> pa.RecordBatch:
    rng = np.random.default_rng(writer * 1_000_003 + seq)
    first = int((T0 + timedelta(hours=writer)).timestamp() * 1e9) + seq * rows * 1_000_000
    return pa.record_batch({
        "ts": pa.array(first + np.arange(rows, dtype=np.int64) * 1_000_000,
                       pa.timestamp("ns", "UTC")),
        "symbol": pa.array([f"S{writer}{i % 50:02d}" for i in range(rows)]),
        "price": pa.array(100 + rng.random(rows)), "size": pa.array(rng.random(rows) * 10)})


def _produce(location: str, writer: int, batches: int, latencies: list[float], *,
             name: str, rows: int = BATCH_ROWS, pace: float = 0.0) -> None:
    import pyarrow.flight as flight

    client = flight.connect(location)
    sample = _batch(writer, 0, rows)
    put, acks = client.do_put(flight.FlightDescriptor.for_path("ticks", "BENCH"), sample.schema)
    sent: dict[int, float] = {}

    def read_acks() -> None:
        for _ in range(batches):
            ack = json.loads(acks.read().to_pybytes())
            latencies.append(time.perf_counter() - sent[ack["seq"]])

    reader = threading.Thread(target=read_acks)
    reader.start()
    for seq in range(1, batches + 1):
        batch = _batch(writer, seq, rows)
        if pace:
            time.sleep(pace)
        sent[seq] = time.perf_counter()
        put.write_with_metadata(batch, pa.py_buffer(
            json.dumps({"writer": f"{name}-{writer}", "seq": seq}).encode()))
    reader.join()
    put.done_writing()
    put.close()


def _doput(location: str, writers: int, batches: int, **options) -> tuple[float, list[float]]:
    latencies: list[float] = []
    threads = [threading.Thread(target=_produce, args=(location, w, batches, latencies),
                                kwargs=options) for w in range(writers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies


def flight_case(ctx: Context) -> CaseResult:
    import pyarrow.dataset as ds
    import pyarrow.flight as flight

    from btlake_pipelines import Lake
    from tests.flight.flight_kit import FlightProcess

    res = CaseResult("flight", "Arrow Flight: DoPut (1 and 4 writers), DoGet, Lake.batches")
    batches = 20 if ctx.quick else 100
    root = ctx.fresh_dir("flight")
    lake = str(root / "lake")
    server = FlightProcess(lake, BTLAKE_LOG_LEVEL="warning").start()
    try:
        runs = [(f"DoPut, {w} writer(s), {BATCH_ROWS:,}-row batches as fast as acked",
                 w, batches // w, {"name": f"flat-out-{w}"}) for w in (1, 4)]
        runs.append(("DoPut, 1 writer, a feed: 1,000-row batches every 20 ms", 1,
                     batches * 2, {"name": "feed", "rows": 1_000, "pace": 0.02}))
        for label, writers, count, options in runs:
            seconds, lat = _doput(server.location, writers, count, **options)
            rows = writers * count * options.get("rows", BATCH_ROWS)
            lat.sort()
            p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
            res.rows.append(Row(label, value=rows / seconds, value_unit="rows/s",
                                note=f"ack p50 {statistics.median(lat) * 1000:.0f} ms, "
                                     f"p99 {p99 * 1000:.0f} ms", btlake=True))
            if options.get("pace"):  # flat out, an ack waits behind every batch sent before it
                res.targets.append(Target("a paced feed's ack p99 under 2 s", p99, "s",
                                          p99 < 2.0))
        client = flight.connect(server.location)
        api = Lake(lake)
        total = api.read("ticks", columns=["price"]).num_rows

        def timed(fn) -> float:
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                n = fn()
                best = min(best, time.perf_counter() - t0)
                assert n == total, (n, total)
            return best

        def doget() -> int:
            stream = client.do_get(flight.Ticket(b'{"table": "ticks"}'))
            return sum(chunk.data.num_rows for chunk in stream)

        def batches_read() -> int:
            return sum(b.num_rows for b in Lake(lake).batches("ticks"))

        def raw() -> int:
            from deltalake import DeltaTable

            files = DeltaTable(f"{lake}/ticks").file_uris()
            return sum(b.num_rows for b in ds.dataset(files, format="parquet").to_batches())

        got = {"DoGet (whole table, loopback gRPC)": timed(doget),
               "Lake.batches (one shard, in process)": timed(batches_read),
               "pyarrow dataset of the live Parquet files (no btlake)": timed(raw)}
        for label, seconds in got.items():
            res.rows.append(Row(label, value=total / seconds, value_unit="rows/s",
                                note=f"{total:,} rows, best of 3", btlake="pyarrow" not in label))
        ratio = got["pyarrow dataset of the live Parquet files (no btlake)"] / \
            got["DoGet (whole table, loopback gRPC)"]
        res.targets.append(Target("DoGet >= 0.7x a local pyarrow read of the same rows", ratio,
                                  "x", ratio >= 0.7, chart=ratio, chart_label="DoGet / pyarrow"))
    finally:
        server.stop()
    res.notes.append(f"lake at {Path(lake)}; server and clients share this machine's cores")
    return res
