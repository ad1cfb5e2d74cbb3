"""Market-data bundles of any size, written straight to Parquet a chunk at a time.

``btlake_pipelines.demo.synthetic_ticks`` builds its whole table in memory, which is fine for
10M rows but not for the 50M-tick bundle whose ingestion memory is being measured: the bench's
own process must not need gigabytes to produce it. These bundles are generated with numpy a
chunk (about a million rows) at a time, in time order, as a feed capture would be, and written
through one ``ParquetWriter`` with the row-group size a producer gets from pyarrow by default.

Two shapes:

- :func:`write_feed_bundle`: one market, a few hundred symbols, a few trading days of a
  6.5-hour session, nanosecond timestamps, each symbol's price a random walk;
- :func:`write_slices_bundle`: one day of ``n`` symbols with exactly ``k`` ticks each, so the
  bundle has exactly ``n`` slices (distinct (market, symbol, date)), like an options chain.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

START = date(2024, 6, 3)
SESSION_NS = (int(13.5 * 3600e9), int(20 * 3600e9))  # 13:30-20:00 UTC, a US equities day
NS_PER_DAY = 86_400 * 10**9
#: pyarrow's default largest row group (1 Mi rows): what a producer's file usually has.
ROW_GROUP = 1_048_576
SCHEMA = pa.schema([("ts", pa.timestamp("ns", tz="UTC")), ("symbol", pa.string()),
                    ("market", pa.string()), ("price", pa.float64()), ("size", pa.float64())])


def write_feed_bundle(landing: Path, run_id: str, *, rows: int, days: int, symbols: int,
                      market: str = "XNAS", start: date = START, seed: int = 1,
                      chunk: int = ROW_GROUP) -> Path:
    """A ``rows``-tick market_data bundle over ``days`` sessions and ``symbols`` symbols."""
    rng = np.random.default_rng(seed)
    folder = landing / run_id
    folder.mkdir(parents=True, exist_ok=True)
    names = pa.array([f"{market[:2]}{i:05d}" for i in range(symbols)])
    base = np.log(rng.uniform(5, 500, symbols))
    walk = np.zeros(symbols)
    day0 = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()) * 10**9
    per_day = np.full(days, rows // days)
    per_day[: rows % days] += 1
    last_ts = day0
    with pq.ParquetWriter(folder / "ticks.parquet", SCHEMA, compression="zstd") as writer:
        for d, n_day in enumerate(per_day):
            lo = day0 + d * NS_PER_DAY + SESSION_NS[0]
            span = SESSION_NS[1] - SESSION_NS[0]
            # arrival times of the whole day, cut into chunks: sorted by construction
            edges = np.linspace(0, span, -(-int(n_day) // chunk) + 1).astype(np.int64)
            counts = np.full(len(edges) - 1, int(n_day) // (len(edges) - 1))
            counts[: int(n_day) % (len(edges) - 1)] += 1
            for c, n in enumerate(counts):
                n = int(n)
                gaps = np.cumsum(rng.exponential(size=n))
                width = edges[c + 1] - edges[c]
                ts = lo + edges[c] + (gaps * (width / (gaps[-1] * (1 + 1e-12)))).astype(np.int64)
                sym = rng.integers(0, symbols, n)
                price = np.round(np.exp(base[sym] + _walk(rng, sym, walk, symbols)), 2)
                size = rng.integers(1, 500, n).astype(np.float64)
                writer.write_table(pa.table({
                    "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
                    "symbol": pc.take(names, pa.array(sym)),
                    "market": pa.array(np.full(n, market, dtype=object), pa.string()),
                    "price": price, "size": size}, schema=SCHEMA), row_group_size=ROW_GROUP)
                last_ts = int(ts[-1])
    _manifest(folder, run_id, last_ts)
    return folder


def write_slices_bundle(landing: Path, run_id: str, *, slices: int, per_slice: int,
                        market: str = "OPRA", day: date = START, seed: int = 2,
                        bump: float = 0.0) -> Path:
    """One day of ``slices`` symbols with ``per_slice`` ticks each, interleaved in time order.
    ``bump`` shifts every price, so the same shape sent again replaces every slice."""
    rng = np.random.default_rng(seed)
    folder = landing / run_id
    folder.mkdir(parents=True, exist_ok=True)
    n = slices * per_slice
    lo = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 10**9
    gaps = np.cumsum(rng.exponential(size=n))
    span = SESSION_NS[1] - SESSION_NS[0]
    ts = lo + SESSION_NS[0] + (gaps * (span / (gaps[-1] * (1 + 1e-12)))).astype(np.int64)
    sym = rng.permutation(np.repeat(np.arange(slices, dtype=np.int32), per_slice))
    names = pa.array([f"C{i:07d}" for i in range(slices)])
    price = np.round(rng.uniform(0.05, 50.0, slices)[sym] + bump, 2)
    table = pa.table({"ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
                      "symbol": pc.take(names, pa.array(sym)),
                      "market": pa.array(np.full(n, market, dtype=object), pa.string()),
                      "price": price, "size": rng.integers(1, 50, n).astype(np.float64)},
                     schema=SCHEMA)
    pq.write_table(table, folder / "ticks.parquet", compression="zstd", row_group_size=ROW_GROUP)
    _manifest(folder, run_id, int(ts[-1]))
    return folder


def _walk(rng: np.random.Generator, sym: np.ndarray, state: np.ndarray, symbols: int
          ) -> np.ndarray:
    """Each row's log-price offset: a per-symbol cumulative sum of small steps, continued from
    ``state`` (updated in place), without a Python loop over symbols."""
    n = len(sym)
    order = np.argsort(sym, kind="stable")
    s_sorted = sym[order]
    csum = np.cumsum(rng.normal(0.0, 2e-4, n)[order])
    first = np.searchsorted(s_sorted, np.arange(symbols))
    before = np.concatenate(([0.0], csum))[first]
    walked = csum - before[s_sorted] + state[s_sorted]
    out = np.empty(n)
    out[order] = walked
    last = np.searchsorted(s_sorted, np.arange(symbols), side="right") - 1
    seen = last >= first
    state[seen] = walked[last[seen]]
    return out


def _manifest(folder: Path, run_id: str, last_ns: int) -> None:
    """The manifest goes last, so the bundle is complete the moment it exists."""
    created = datetime.fromtimestamp(last_ns / 1e9, tz=UTC)
    doc = {"format": "btlake.bundle/1", "kind": "market_data", "run_id": run_id,
           "created_at": created.isoformat().replace("+00:00", "Z"), "tags": ["bench"],
           "tables": {"ticks": "ticks.parquet"}}
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(json.dumps(doc))
    tmp.replace(folder / "manifest.json")
