"""``Lake.batches``: version-pinned, disjoint shards whose union is exactly ``Lake.read``,
shuffled reproducibly by seed, and the PyTorch example that feeds on it."""

from __future__ import annotations

import runpy
from collections import Counter
from datetime import timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from btlake_pipelines import Lake
from btlake_pipelines.errors import QueryError
from tests.core import bundles as B
from tests.flight.flight_kit import T0, tick_batch

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "torch_batches.py"


@pytest.fixture
def lake(dirs) -> Lake:
    """Ticks in 12 files over two markets and two days (one commit per batch), and three
    ingested backtest runs."""
    api = Lake(dirs.lake)
    writer = api.stream_writer()
    for s in range(12):  # each acked before the next is sent: one commit (file) per batch
        market = "XNAS" if s % 3 else "XLON"
        start = T0 + timedelta(days=s % 2)
        ack = writer.put("ticks", market, f'{{"writer": "w", "seq": {s}}}'.encode(),
                         tick_batch(s, rows=5 + s, symbol="AB"[s % 2], start=start))
        assert ack.result(30).status == "accepted"
    writer.close()
    for i in range(3):
        B.backtest(dirs.landing, f"run-{i}")
    api.ingest(isolated=False)
    return Lake(dirs.lake)


def _rows(table: pa.Table | list[pa.RecordBatch]) -> Counter:
    if isinstance(table, list):
        table = pa.Table.from_batches(table) if table else None
    if table is None:
        return Counter()
    frame = pl.from_arrow(table)
    return Counter(frame.iter_rows())


@pytest.mark.parametrize("filters", [{}, {"market": "XNAS"},
                                     {"symbol": "A", "columns": ["ts", "price", "seq"]},
                                     {"start": T0 + timedelta(minutes=3),
                                      "end": T0 + timedelta(days=1, minutes=8)}])
def test_shards_are_disjoint_and_their_union_is_the_read(lake, filters):
    want = _rows(lake.read("ticks", **filters))
    assert sum(want.values()) > 0
    for n in (1, 2, 3, 7):
        shards = [_rows(list(lake.batches("ticks", shard=(i, n), batch_rows=4, **filters)))
                  for i in range(n)]
        union = sum(shards, Counter())
        assert union == want, n  # as a multiset: no row lost, none twice
        assert sum(sum(s.values()) for s in shards) == sum(want.values())


def test_run_tables_shard_too(lake):
    want = _rows(lake.read("trades", run_id=["run-0", "run-2"]))
    got = sum((_rows(list(lake.batches("trades", shard=(i, 2), run_id=["run-0", "run-2"])))
               for i in range(2)), Counter())
    assert got == want and sum(want.values()) == 8


def test_a_seed_shuffles_reproducibly_and_batches_are_bounded(lake):
    def order(seed):
        return [b.column("seq")[0].as_py() for b in lake.batches("ticks", shuffle_seed=seed)]

    plain = order(None)
    assert order(1) == order(1)
    assert sorted(order(1)) == sorted(plain)
    assert order(1) != order(2) or order(2) != plain
    assert max(b.num_rows for b in lake.batches("ticks", batch_rows=3)) == 3


def test_shards_stay_on_the_version_they_pinned(lake, dirs):
    before = _rows(lake.read("ticks"))
    version = int(lake.history("ticks").column("version")[0].as_py())
    pinned = lake.batches("ticks", as_of=version)
    writer = lake.stream_writer()
    writer.put("ticks", "XNAS", b'{"writer": "late", "seq": 1}', tick_batch(99)).result(30)
    writer.close()
    assert _rows(list(pinned)) == before
    assert sum(_rows(list(lake.batches("ticks"))).values()) == sum(before.values()) + 4


def test_bad_shards_are_refused(lake):
    with pytest.raises(QueryError, match="shard"):
        lake.batches("ticks", shard=(3, 3))
    with pytest.raises(QueryError, match="batch_rows"):
        lake.batches("ticks", batch_rows=0)


def test_the_pytorch_example_reads_every_row_once(lake, dirs):
    pytest.importorskip("torch")
    example = runpy.run_path(str(EXAMPLE))
    version = example["pinned_version"](dirs.lake)
    dataset = example["TickDataset"](dirs.lake, version=version, seed=3, batch_rows=4)
    rows = sum(t.shape[0] for t in dataset)
    assert rows == lake.read("ticks").num_rows
