"""The fast paths of bulk ingestion keep what the slow ones guaranteed: the stored order (sorted
by integer keys instead of strings), all-or-nothing bundles streamed in one pass, and one
listing per bundle when the loader decides which bundles stream."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from btlake_pipelines.ingest import ingest
from btlake_pipelines.ingest.ordering import sort_rows
from btlake_pipelines.landing.local import LocalLandingZone
from btlake_pipelines.storage.delta_log import table_uri
from tests.core import bundles as B

DAY = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def _ticks(n: int, seed: int, markets=("XNAS",), days: int = 2) -> pa.Table:
    """``n`` ticks over ``days`` days and 40 symbols, in time order (as engines write them),
    unique per (market, symbol, ts) so one stored order is the only right one."""
    rng = np.random.default_rng(seed)
    base = int(DAY.timestamp() * 1e9)
    ts = base + np.sort(rng.integers(0, days * 86_400 * 10**9, n)) + np.arange(n)
    return pa.table({
        "ts": pa.array(ts, pa.timestamp("ns", "UTC")),
        "symbol": pa.array([f"S{i:02d}" for i in rng.integers(0, 40, n)]),
        "market": pa.array(rng.choice(list(markets), n)),
        "price": pa.array(rng.uniform(1, 100, n)),
        "size": pa.array(rng.uniform(1, 10, n)),
    })


def _stored(lake: str, table: str = "ticks") -> pl.DataFrame:
    """The table's rows in stored order: partitions by path, files in name order within them
    do not matter here because each partition of these bundles is one file."""
    dt = DeltaTable(table_uri(lake, table))
    files = sorted(dt.file_uris())
    frames = []
    for f in files:
        part = dict(kv.split("=", 1) for kv in f.split("/") if "=" in kv)
        df = pl.from_arrow(pq.read_table(f))
        frames.append(df.with_columns(pl.lit(part["market"]).alias("market"),
                                      pl.lit(part["date"]).alias("date")))
    return pl.concat(frames).select(sorted(frames[0].columns))


@pytest.mark.parametrize("seed", range(6))
def test_sort_rows_is_a_stable_sort_by_the_keys(seed):
    """Integer keys order exactly like polars' stable sort: strings (non-ASCII too), dates,
    times, ints, floats, booleans, ties kept in input order, nulls through polars' own sort."""
    rng = np.random.default_rng(seed)
    n = 500
    df = pl.DataFrame({
        "market": rng.choice(["XNAS", "CME", "é", "Z", ""], n),
        "date": pl.Series(rng.integers(0, 4, n)).cast(pl.Date),
        "symbol": rng.choice(["a", "B", "ab", "b", "zz"], n),
        "ts": pl.Series(rng.integers(0, 30, n)).cast(pl.Datetime("us", "UTC")),
        "level": rng.integers(-3, 3, n).astype(np.int32),
        "flag": rng.integers(0, 2, n).astype(bool),
        "x": rng.normal(size=n),
        "row": np.arange(n),
    })
    if seed % 2:
        df = df.with_columns(pl.when(pl.col("row") % 11 == 0).then(None)
                             .otherwise(pl.col("symbol")).alias("symbol"))
    for order in (["market", "date", "symbol", "ts"], ["symbol", "ts", "flag", "level"],
                  ["x"], ["date", "level", "market"]):
        want = df.sort(order, maintain_order=True)
        assert sort_rows(df, order).equals(want)
        assert sort_rows(want, order).equals(want)
        if not want.select(order).null_count().sum_horizontal().item():
            assert sort_rows(want, order) is want  # in order already: returned, not copied


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_feed_in_time_order_sorts_like_the_full_sort(seed):
    """Rows already in time order (a feed) are sorted by their other keys only; the result is
    still exactly polars' stable sort by every key, ties and many slice keys included."""
    rng = np.random.default_rng(seed)
    n = 5_000
    ts = np.sort(rng.integers(0, 400, n))  # non-decreasing, with many ties
    df = pl.DataFrame({
        "market": rng.choice(["XNAS", "CME", "é"], n),
        "date": pl.Series(ts // 100).cast(pl.Date),
        "symbol": rng.choice([f"S{i}" for i in range(50 if seed < 2 else 3_000)], n),
        "ts": pl.Series(ts).cast(pl.Datetime("us", "UTC")),
        "row": np.arange(n),
    })
    order = ["market", "date", "symbol", "ts"]
    got = sort_rows(df, order)
    assert got.equals(df.sort(order, maintain_order=True))
    assert got.get_column("row").to_list() != list(range(n))  # it did sort


@pytest.mark.parametrize("stream", [False, True])
def test_sorted_and_unsorted_input_are_stored_identically(dirs, tmp_path, monkeypatch, stream):
    """The same rows sent in time order, in stored order and shuffled make the same table, row
    for row, sorted by (symbol, ts) inside each partition, through both paths (streamed: in
    one piece, so the one-pass append sorts the whole partition)."""
    if stream:
        monkeypatch.setenv("BTLAKE_STREAM_MB", "0")
    table = _ticks(6_000, seed=1, markets=("XNAS", "CME"))
    shuffled = table.take(np.random.default_rng(2).permutation(table.num_rows))
    in_order = pl.from_arrow(table).sort("market", "symbol", "ts").to_arrow()
    tables = []
    for i, variant in enumerate((table, shuffled, in_order)):
        lake, landing = tmp_path / f"lake{i}", tmp_path / f"landing{i}"
        B.market_data(landing, "ticks-a", {"ticks": variant}, market="XNAS")
        batch = ingest(str(lake), LocalLandingZone(str(landing)))
        assert batch.results[0].status == "ingested", batch.summary()
        tables.append(_stored(str(lake)))
    assert tables[0].height == table.num_rows
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])
    for (_, _), part in tables[0].group_by("market", "date"):
        assert part.equals(part.sort("symbol", "ts", maintain_order=True))


def test_one_pass_then_unchanged_then_replaced(dirs, monkeypatch):
    """A streamed bundle into empty partitions is appended in one pass; sent again it is
    compared the ordinary way (unchanged, nothing written); with one price changed, only that
    slice is replaced; a bundle for new days streams in one pass again."""
    monkeypatch.setenv("BTLAKE_STREAM_MB", "0")
    monkeypatch.setattr("btlake_pipelines.ingest.large.CHUNK_ROWS", 1_000)
    zone = LocalLandingZone(dirs.landing)
    table = _ticks(5_000, seed=3)
    B.market_data(dirs.landing, "first", {"ticks": table})
    first = ingest(dirs.lake, zone).results[0]
    assert first.status == "ingested" and first.rows == {"ticks": 5_000}
    assert {s["status"] for s in first.slices} == {"ingested"}
    stored = _stored(dirs.lake)
    assert stored.height == 5_000

    B.market_data(dirs.landing, "again", {"ticks": table})
    batch = ingest(dirs.lake, zone)
    assert batch.results[0].status == "unchanged" and not batch.commits.get("ticks")
    assert _stored(dirs.lake).sort("market", "date", "symbol", "ts").equals(
        stored.sort("market", "date", "symbol", "ts"))

    prices = table.column("price").to_numpy().copy()
    prices[123] += 1
    B.market_data(dirs.landing, "fix", {"ticks": table.set_column(
        3, "price", pa.array(prices))})
    fixed = ingest(dirs.lake, zone).results[0]
    assert fixed.status == "replaced"
    changed = [s for s in fixed.slices if s["status"] == "replaced"]
    assert len(changed) == 1 and changed[0]["symbol"] == table.column("symbol")[123].as_py()
    assert _stored(dirs.lake).height == 5_000

    later = _ticks(2_000, seed=4)
    later = later.set_column(0, "ts", pa.array(
        later.column("ts").cast(pa.int64()).to_numpy() + 10 * 86_400 * 10**9,
        pa.timestamp("ns", "UTC")))
    B.market_data(dirs.landing, "later", {"ticks": later})
    new_days = ingest(dirs.lake, zone).results[0]
    assert new_days.status == "ingested" and _stored(dirs.lake).height == 7_000


class CountingZone(LocalLandingZone):
    """A real local landing zone that counts its folder listings."""

    listings: dict[str, int]

    def entries(self, name):
        self.listings[name] = self.listings.get(name, 0) + 1
        return super().entries(name)


def test_one_listing_per_bundle_when_the_loader_picks_the_streamed_path(dirs, monkeypatch):
    """A batch with a large and a small market-data bundle lists each bundle folder once: the
    loader decides which bundle streams from the listing it reads anyway (on S3 a listing is
    a request)."""
    monkeypatch.setenv("BTLAKE_STREAM_MB", "0.05")  # ~52 KB
    B.market_data(dirs.landing, "big", {"ticks": _ticks(20_000, seed=5)})
    B.market_data(dirs.landing, "small", {"ticks": B.ticks(5, symbol="ZZZ")}, market="CME")
    zone = CountingZone(dirs.landing)
    zone.listings = {}
    batch = ingest(dirs.lake, zone)
    assert sorted(r.status for r in batch.results) == ["ingested", "ingested"]
    assert zone.listings == {"big": 1, "small": 1}
    assert _stored(dirs.lake).height == 20_005
