"""Market data at production shapes (contract section 6): a full-market day, an options chain and
a month of many symbols, each in one bundle, ingest; re-ingest unchanged; a one-symbol change
replaces exactly that slice. Sizes are the contract's (20,000 and 200,000 slices), with few rows
per slice so the suite stays fast; before bounded predicates the first of these killed the
process with SIGSEGV."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from btlake_pipelines import Lake
from btlake_pipelines.ingest import ingest
from btlake_pipelines.ingest import market_slices as M
from btlake_pipelines.landing.local import LocalLandingZone
from btlake_pipelines.storage import predicates as P
from tests.core import bundles as B

DAY = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


@pytest.fixture(autouse=True, params=["in-memory", "streamed"])
def path(request, monkeypatch):
    """Every shape through both ingestion paths: in memory, and in pieces (the path of bundles
    larger than ``BTLAKE_STREAM_MB``, forced here with a threshold of 0)."""
    if request.param == "streamed":
        monkeypatch.setenv("BTLAKE_STREAM_MB", "0")
        monkeypatch.setattr("btlake_pipelines.ingest.large.CHUNK_ROWS", 7_000)
    return request.param


def _ticks(symbols: list[str], days: int = 1, per_day: int = 1, price: float = 10.0
           ) -> pa.Table:
    """``per_day`` ticks per symbol on each of ``days`` consecutive days (nanosecond times)."""
    n_sym = len(symbols)
    ts, syms, prices = [], [], []
    base = int(DAY.timestamp() * 1e9)
    for d in range(days):
        for k in range(per_day):
            t = base + d * 86_400_000_000_000 + k * 1_000_000_007
            ts.append(np.full(n_sym, t, dtype=np.int64) + np.arange(n_sym, dtype=np.int64))
            syms.append(np.array(symbols, dtype=object))
            prices.append(np.full(n_sym, price + k))
    return pa.table({
        "ts": pa.array(np.concatenate(ts), pa.timestamp("ns", "UTC")),
        "symbol": pa.array(np.concatenate(syms), pa.string()),
        "price": pa.array(np.concatenate(prices)),
        "size": pa.array(np.ones(sum(len(t) for t in ts))),
    })


def _roundtrip(dirs, symbols: list[str], *, days: int = 1, per_day: int = 1) -> None:
    zone = LocalLandingZone(dirs.landing)
    table = _ticks(symbols, days, per_day)
    B.market_data(dirs.landing, "big", {"ticks": table})
    first = ingest(dirs.lake, zone).results[0]
    assert first.status == "ingested", first.error
    lake = Lake(dirs.lake)
    assert lake.read("ticks", columns=["symbol"]).num_rows == table.num_rows

    B.market_data(dirs.landing, "big", {"ticks": table})
    again = ingest(dirs.lake, zone)
    assert again.results[0].status == "unchanged"
    assert set(again.commits) == {"ingest_log"}  # nothing written to ticks

    # one symbol's rows change on the first day: exactly that slice is replaced
    target = symbols[len(symbols) // 2]
    day_ns = int(DAY.timestamp() * 1e9) + 86_400_000_000_000
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    is_target = np.array(table.column("symbol").to_pylist()) == target
    hit = is_target & (ts < day_ns)
    prices = table.column("price").to_numpy().copy()
    prices[hit] = 999.0
    patched = table.filter(pa.array(hit)).set_column(
        2, "price", pa.array(prices[hit]))
    B.market_data(dirs.landing, "patch", {"ticks": patched})
    before = Lake(dirs.lake).read("ticks")
    result = ingest(dirs.lake, zone)
    assert result.results[0].status == "replaced"
    assert len(result.commits["ticks"]) == 1
    after = Lake(dirs.lake).read("ticks")
    assert after.num_rows == before.num_rows
    changed = after.filter(pa.compute.equal(after.column("price"), 999.0))
    assert changed.num_rows == int(hit.sum())
    assert set(changed.column("symbol").to_pylist()) == {target}
    # every other row is exactly as before
    key = ["symbol", "ts"]
    others_before = before.filter(pa.compute.invert(pa.compute.and_(
        pa.compute.equal(before.column("symbol"), target),
        pa.compute.less(before.column("ts").cast(pa.int64()), day_ns)))).sort_by(
        [(k, "ascending") for k in key])
    others_after = after.filter(pa.compute.not_equal(after.column("price"), 999.0)).sort_by(
        [(k, "ascending") for k in key])
    assert others_after.equals(others_before)
    history = Lake(dirs.lake).history("ticks").to_pylist()[0]
    assert history["rows_removed"] == int(hit.sum()) == history["rows_added"]


def test_a_20000_symbol_day_ingests_reingests_unchanged_and_replaces_one_slice(dirs):
    _roundtrip(dirs, [f"S{i:05d}" for i in range(20_000)])


def test_a_200000_contract_options_chain_day(dirs):
    contracts = [f"SPX 240315{'CP'[i % 2]}{i:06d}" for i in range(200_000)]
    _roundtrip(dirs, contracts)


def test_a_month_of_500_symbols_in_one_bundle(dirs):
    _roundtrip(dirs, [f"M{i:03d}" for i in range(500)], days=30, per_day=2)


def test_replacing_every_symbol_of_a_wide_day_rewrites_the_partition_with_kept_rows(dirs):
    """A wide replacement (more symbols than one IN list) rewrites the partition whole and
    keeps the stored rows outside the bundle's ranges, of its symbols and of others."""
    zone = LocalLandingZone(dirs.landing)
    symbols = [f"W{i:04d}" for i in range(M.IN_LIMIT * 3)]
    full = _ticks(symbols, per_day=3)
    B.market_data(dirs.landing, "wide-full", {"ticks": full})
    B.market_data(dirs.landing, "other", {"ticks": B.ticks(4, symbol="ZZZ", start=DAY)})
    assert {r.status for r in ingest(dirs.lake, zone).results} == {"ingested"}
    middle = _ticks(symbols, per_day=3, price=50.0)
    # only the second tick of every symbol: the first and third stay
    ts = middle.column("ts").cast(pa.int64()).to_numpy()
    second = (ts >= int(DAY.timestamp() * 1e9) + 1_000_000_007) & (
        ts < int(DAY.timestamp() * 1e9) + 2_000_000_014)
    B.market_data(dirs.landing, "wide-patch", {"ticks": middle.filter(pa.array(second))})
    result = ingest(dirs.lake, zone)
    assert result.results[0].status == "replaced"
    stored = Lake(dirs.lake).read("ticks")
    assert stored.num_rows == full.num_rows + 4
    prices = stored.filter(pa.compute.not_equal(stored.column("symbol"), "ZZZ")) \
        .column("price").to_numpy()
    assert (prices == 51.0).sum() == len(symbols)  # the replaced middle ticks
    assert (prices == 10.0).sum() == len(symbols) and (prices == 12.0).sum() == len(symbols)
    assert Lake(dirs.lake).read("ticks", symbol="ZZZ").num_rows == 4


def test_two_bundles_in_one_batch_overlapping_apply_in_order(dirs):
    zone = LocalLandingZone(dirs.landing)
    B.market_data(dirs.landing, "a-first", {"ticks": B.ticks(6, price=1.0)})
    B.market_data(dirs.landing, "b-second", {"ticks": B.ticks(6, price=2.0).slice(2, 2)})
    result = ingest(dirs.lake, zone, ["a-first", "b-second"])
    assert [r.status for r in result.results] == ["ingested", "replaced"]
    prices = Lake(dirs.lake).read("ticks").sort_by("ts").column("price").to_pylist()
    assert [round(p) for p in prices] == [1, 1, 2, 2, 1, 1]


def test_no_predicate_grows_with_the_number_of_slices():
    """Packing keeps every commit's predicate within fixed bounds, whatever the input."""
    units = [M.Unit(P.all_of(P.eq("market", "X"), P.eq("date", datetime(2024, 1, 1).date()
                                                        + timedelta(days=i)),
                             P.is_in("symbol", [f"S{j}" for j in range(M.IN_LIMIT)])),
                    M.IN_LIMIT, [], {"b"}) for i in range(300)]
    commits = M.pack(units)
    assert sum(len(c) for c in commits) == 300
    for c in commits:
        assert len(c) <= M.MAX_CLAUSES and sum(u.items for u in c) <= M.MAX_ITEMS
        text = P.balanced_or([u.clause for u in c])
        depth, deepest = 0, 0
        for ch in text:
            depth += ch == "("
            deepest = max(deepest, depth)
            depth -= ch == ")"
        assert deepest <= 16


@pytest.mark.parametrize("clauses", [5_000])
def test_balanced_or_of_thousands_of_clauses_does_not_crash_deltalake(tmp_path, clauses):
    """The shape that killed the process as a flat OR chain, handed to deltalake balanced, in
    a child process so a crash fails this test instead of the suite."""
    code = f"""
import pyarrow as pa
from deltalake import write_deltalake
from btlake_pipelines.storage import predicates as P
path = {str(tmp_path / 't')!r}
t = pa.table({{"market": ["X"] * 3, "symbol": ["S0", "S1", "S2"], "v": [1, 2, 3]}})
write_deltalake(path, t, partition_by=["market"])
pred = P.balanced_or([P.all_of(P.eq("market", "X"), P.eq("symbol", f"S{{i}}"))
                      for i in range({clauses})])
write_deltalake(path, t, mode="overwrite", predicate=pred)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, (done.returncode, done.stderr[-500:])


def test_the_streamed_path_is_taken_above_the_threshold(dirs, path, monkeypatch):
    """The fixture's threshold really routes bundles through ``ingest.large``."""
    from btlake_pipelines.ingest import batch

    calls = []
    real = batch.ingest_large
    monkeypatch.setattr(batch, "ingest_large", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    B.market_data(dirs.landing, "md-x", {"ticks": B.ticks(5)})
    assert ingest(dirs.lake, LocalLandingZone(dirs.landing)).results[0].status == "ingested"
    assert calls == (["md-x"] if path == "streamed" else [])
    assert Lake(dirs.lake).read("ticks").num_rows == 5


def test_a_streamed_bundle_with_a_bad_row_late_in_the_file_stores_nothing(dirs, monkeypatch):
    """All-or-nothing in pieces: a rule broken in the last piece refuses the whole bundle, with
    the row number counted from the start of the file."""
    monkeypatch.setenv("BTLAKE_STREAM_MB", "0")
    monkeypatch.setattr("btlake_pipelines.ingest.large.CHUNK_ROWS", 1_000)
    table = _ticks([f"S{i:04d}" for i in range(2_500)])
    prices = table.column("price").to_numpy().copy()
    prices[2_345] = -1.0
    B.market_data(dirs.landing, "late-bad", {"ticks": table.set_column(
        2, "price", pa.array(prices))})
    result = ingest(dirs.lake, LocalLandingZone(dirs.landing)).results[0]
    assert result.status == "quarantined"
    assert result.reason["rule"] == "positive" and result.reason["rows"] == [2_345]
    assert result.reason["table"] == "ticks" and result.reason["column"] == "price"
    assert Lake(dirs.lake).read("ticks").num_rows == 0
