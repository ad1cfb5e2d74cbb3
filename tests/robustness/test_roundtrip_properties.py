"""Round trip: random valid bundles (every table, Parquet and CSV, any timestamp unit and time
zone, nanoseconds, duplicate rows, empty tables, extra columns) are ingested and read back equal:
the same values and the same instants in UTC, to the nanosecond. Ingesting the same bundle
again is ``unchanged`` and writes nothing to the fact tables."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

try:
    from . import robust_kit as K
except ImportError:
    import robust_kit as K

from btlake_pipelines import Lake
from btlake_pipelines.demo import write_bundle
from btlake_pipelines.ingest.batch import ingest
from btlake_pipelines.landing.local import LocalLandingZone

ZONES = [None, "UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
         "Pacific/Chatham", "Europe/London"]
PER_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
LOW_NS = int(datetime(1990, 1, 1, tzinfo=UTC).timestamp()) * 10**9
HIGH_NS = int(datetime(2099, 12, 31, tzinfo=UTC).timestamp()) * 10**9

POSITIVE = st.floats(min_value=1e-12, max_value=1e12, allow_nan=False, allow_infinity=False)
FINITE = st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False)
NON_NEGATIVE = st.one_of(st.just(0.0), POSITIVE)


def text(csv: bool, min_size: int = 0):
    """Printable or not, any script, line breaks included (quoted in CSV); no NUL (never
    allowed in a symbol)."""
    return st.text(alphabet=st.characters(blacklist_characters="\x00",
                                          blacklist_categories=("Cs",)),
                   min_size=min_size, max_size=6)


@st.composite
def timestamps(draw, n: int) -> tuple[pa.Array, list[int]]:
    """A timestamp column of any unit and zone, and the exact UTC instants in nanoseconds."""
    unit = draw(st.sampled_from(sorted(PER_NS)))
    zone = draw(st.sampled_from(ZONES))
    base = draw(st.integers(LOW_NS, HIGH_NS)) // PER_NS[unit]
    spread = draw(st.sampled_from([0, 10, 10**6, 10**12])) // PER_NS[unit] + 1
    raw = [base + draw(st.integers(0, spread)) for _ in range(n)]
    return pa.array(raw, pa.timestamp(unit, zone)), [v * PER_NS[unit] for v in raw]


@st.composite
def table_strategy(draw, name: str, csv: bool, with_market: bool):
    """(arrow table, expected rows as dicts with ``ts`` in UTC nanoseconds)."""
    n = draw(st.integers(0, 6))
    ts, ts_ns = draw(timestamps(n))
    cols: dict[str, Any] = {"ts": ts}
    sym = st.one_of(text(csv, 0), st.sampled_from(["AAPL", "it's", "007", "1.50", "true"]))
    if name == "trades":
        cols |= {"symbol": [draw(sym) for _ in range(n)],
                 "side": [draw(st.sampled_from(["buy", "sell"])) for _ in range(n)],
                 "qty": [draw(POSITIVE) for _ in range(n)],
                 "price": [draw(POSITIVE) for _ in range(n)]}
    elif name == "equity":
        cols |= {"equity": [draw(FINITE) for _ in range(n)]}
    elif name == "ticks":
        cols |= {"symbol": [draw(sym) for _ in range(n)],
                 "price": [draw(POSITIVE) for _ in range(n)],
                 "size": [draw(NON_NEGATIVE) for _ in range(n)]}
    elif name == "l2":
        cols |= {"symbol": [draw(sym) for _ in range(n)],
                 "side": [draw(st.sampled_from(["bid", "ask"])) for _ in range(n)],
                 "level": pa.array([draw(st.integers(0, 40)) for _ in range(n)], pa.int64()),
                 "price": [draw(POSITIVE) for _ in range(n)],
                 "size": [draw(NON_NEGATIVE) for _ in range(n)]}
    elif name == "events":
        cols |= {"event_type": [draw(text(csv, 1)) for _ in range(n)],
                 "payload": [draw(st.one_of(st.none(), st.dictionaries(
                     st.sampled_from("abc"), st.integers(-5, 5), max_size=2).map(json.dumps)))
                     for _ in range(n)]}
    if with_market:
        cols["market"] = [draw(st.sampled_from(["XNAS", "BINANCE"])) for _ in range(n)]
    if not csv and draw(st.booleans()):  # extra columns of several types
        extra_ts, extra_ns = draw(timestamps(n))
        cols |= {"note": [draw(text(False)) for _ in range(n)],
                 "count": pa.array([draw(st.integers(-2**40, 2**40)) for _ in range(n)],
                                   pa.int64()),
                 "flag": pa.array([draw(st.booleans()) for _ in range(n)], pa.bool_()),
                 "t2": extra_ts}
    else:
        extra_ns = None
    table = pa.table(cols)
    if n and draw(st.booleans()):  # identical rows are valid and kept
        table = pa.concat_tables([table, table.slice(0, 1)])
        ts_ns = [*ts_ns, ts_ns[0]]
        extra_ns = [*extra_ns, extra_ns[0]] if extra_ns is not None else None
    rows = table.drop_columns(["ts", *(["t2"] if extra_ns is not None else [])]).to_pylist()
    for i, row in enumerate(rows):
        row["ts"] = ts_ns[i]
        if extra_ns is not None:
            row["t2"] = extra_ns[i]
    return table, rows


@st.composite
def bundle_strategy(draw, index: int, market_ok: bool = True):
    kind = draw(st.sampled_from(["backtest", "market_data"] if market_ok else ["backtest"]))
    csv = draw(st.booleans())
    with_market = draw(st.booleans())
    names = (["trades", "equity"] if kind == "backtest" else ["ticks", "l2"])
    names = [t for t in names if draw(st.booleans())] or names[:1]
    if draw(st.booleans()):
        names.append("events")
    tables = {t: draw(table_strategy(t, csv, with_market)) for t in names}
    run_id = f"rt-{index}-{kind}"
    ext = "csv" if csv else "parquet"
    doc = (K.manifest(run_id, tables={t: f"{t}.{ext}" for t in names}) if kind == "backtest"
           else K.market_manifest(run_id, tables={t: f"{t}.{ext}" for t in names}))
    doc["markets"] = ["XNAS"]
    return run_id, kind, "csv" if csv else "parquet", doc, tables


def _exact(table: pa.Table) -> list[dict]:
    """Rows as read back, timestamps as UTC nanoseconds."""
    out = []
    if table.num_rows == 0:
        return out  # (a table never written reads as empty, with untyped columns)
    # ts always comes back in ns; another timestamp column in ns when its input had
    # sub-microsecond digits, else in us: either way the same instant, in UTC
    assert table.schema.field("ts").type == pa.timestamp("ns", "UTC")
    for column in ("ts", "t2"):
        if column in table.column_names:
            assert table.schema.field(column).type.tz == "UTC", column
            exact = table[column].cast(pa.timestamp("ns", "UTC")).cast(pa.int64())
            table = table.set_column(table.column_names.index(column), column, exact)
    for row in table.to_pylist():
        out.append(row)
    return out


def _key(row: dict) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def _project(rows: list[dict], columns: list[str]) -> list[str]:
    return sorted(_key({c: r.get(c) for c in columns}) for r in rows)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bundles=st.lists(st.integers(0, 10**6), min_size=1, max_size=3, unique=True).flatmap(
    # at most one market-data bundle: two would overlap and replace each other's ranges
    lambda ids: st.tuples(*[bundle_strategy(i, market_ok=k == 0) for k, i in enumerate(ids)])))
def test_random_bundles_read_back_equal(bundles):
    root = Path(tempfile.mkdtemp(prefix="btlake-rt-"))
    try:
        landing, lake, staging = root / "landing", root / "lake", root / "staging"
        market_rows: dict[str, list[dict]] = {}
        for run_id, _kind, fmt, doc, tables in bundles:
            arrow = {t: tbl for t, (tbl, _) in tables.items()}
            write_bundle(staging / run_id, doc, arrow, file_format=fmt)
        shutil.copytree(staging, landing)
        batch = ingest(str(lake), LocalLandingZone(str(landing)))
        assert [r.status for r in batch.results] == ["ingested"] * len(bundles), [
            (r.bundle, r.error) for r in batch.results]
        lk = Lake(str(lake))
        for run_id, kind, _fmt, _doc, tables in bundles:
            for table, (_, rows) in tables.items():
                for row in rows:
                    row.setdefault("market", "XNAS")
                if kind == "market_data":
                    market_rows.setdefault(table, []).extend(rows)
                    continue
                got = _exact(lk.read(table, run_id=run_id))
                columns = sorted({c for r in rows for c in r} | {"ts", "market"})
                assert _project(got, columns) == _project(rows, columns), (run_id, table)
                assert all(r["run_id"] == run_id and r["strategy_id"] == "robust"
                           for r in got)
        for table, rows in market_rows.items():
            got = [r for r in _exact(lk.read(table)) if r.get("run_id") is None]
            columns = sorted({c for r in rows for c in r} | {"ts", "market"})
            assert _project(got, columns) == _project(rows, columns), table
        K.assert_runs_whole(lake)

        # the same bundles again: unchanged, and not one fact-table commit
        shutil.copytree(staging, landing, dirs_exist_ok=True)
        again = ingest(str(lake), LocalLandingZone(str(landing)))
        by_name = {b[0]: b for b in bundles}
        for r in again.results:
            _, kind, _, _, tables = by_name[r.bundle]
            rows = sum(len(t[1]) for t in tables.values())
            # market data with no rows at all has no range to compare: still "ingested"
            assert r.status == ("ingested" if kind == "market_data" and not rows
                                else "unchanged"), (r.bundle, r.status)
        assert set(again.commits) <= {"ingest_log"}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_an_all_null_column_does_not_block_its_name(tmp_path):
    """An empty table from a dataframe library often types an extra column as Null (Delta
    "void"); a later bundle with real values in that column must still land."""
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    K.write_good(landing, "a-empty", equity=K.equity_table(0, note=pa.array([], pa.null())))
    ingest(str(lake), LocalLandingZone(str(landing)))
    K.write_good(landing, "b-text", equity=K.equity_table(2, note=pa.array(["x", "y"])))
    K.write_good(landing, "c-null", equity=K.equity_table(2, note=pa.array([None] * 2,
                                                                          pa.null())))
    batch = ingest(str(lake), LocalLandingZone(str(landing)))
    assert [r.status for r in batch.results] == ["ingested", "ingested"], batch.results[0].error
    got = Lake(str(lake)).read("equity", run_id=["b-text", "c-null"]).to_pylist()
    assert sorted((r["run_id"], r["note"]) for r in got) == [
        ("b-text", "x"), ("b-text", "y"), ("c-null", None), ("c-null", None)]
