"""Reading a slice of a 20-day, 4-market tick table: one symbol-hour, and one market-day."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq

from bench import data
from bench.cases.bundles import _cached, _mark
from bench.core import CaseResult, Context, Row, Target, profile_top
from bench.timing import Measured, interleave


def tick_lake(ctx: Context) -> dict:
    """The 20-day table, ingested through btlake in bundles of 5 days (cached), and the same
    rows in ArcticDB: one symbol per market, and one symbol per instrument."""
    from btlake_pipelines.ingest.batch import ingest
    from btlake_pipelines.landing.local import LocalLandingZone

    s = ctx.sizes
    if "ticks20" in ctx.shared:
        return ctx.shared["ticks20"]
    root = ctx.work / "ticks20"
    lake, landing = root / "lake", root / "landing"
    chunk_days = 5 if s.slice_days >= 5 else 1
    stamp = {"rows": s.slice_rows, "days": s.slice_days, "m": list(s.markets),
             "arctic": ctx.has_peer("arcticdb"), "v": 2, "layout": data.layout_key()}
    if not _cached(root, stamp):
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        chunks = s.slice_days // chunk_days
        per_chunk = s.slice_rows // chunks
        for c in range(chunks):
            start = data.TICK_START + timedelta(days=c * chunk_days)
            ctx.log(f"  ingesting ticks, days {c * chunk_days + 1}-{(c + 1) * chunk_days}")
            table = data.ticks(per_chunk, chunk_days, s.markets, s.symbols_per_market,
                               start=start, seed=100 + c)
            data.write_tick_bundle(landing, f"ticks-{c:02d}", table)
            batch = ingest(str(lake), LocalLandingZone(str(landing)))
            assert not batch.quarantined, batch.summary()
            if ctx.has_peer("arcticdb"):
                part = root / "chunk.parquet"
                pq.write_table(table, part)
                for lib, by in (("per_market", ["market"]),
                                ("per_instrument", ["market", "symbol"])):
                    ctx.worker.call("arctic_append_days", path=str(part),
                                    path_lib=str(root / "arctic"), library=lib, by=by)
                part.unlink()
        _mark(root, stamp)
    info = {"lake": lake, "arctic": root / "arctic"}
    ctx.shared["ticks20"] = info
    return info


def _queries(ctx: Context, count: int) -> list[tuple[str, str, datetime]]:
    """(market, symbol, hour start) picks spread over days, markets and symbols, inside each
    market's session (equity venues 13:30-20:00 UTC)."""
    from btlake_pipelines.demo.synthetic import MARKETS

    s = ctx.sizes
    out = []
    for i in range(count):
        market = s.markets[i % len(s.markets)]
        spec = MARKETS.get(market)
        sym_i = (i // len(s.markets)) % s.symbols_per_market
        symbol = (spec.symbols[sym_i][0] if spec and sym_i < len(spec.symbols)
                  else f"{market}_{sym_i:04d}")
        day = data.TICK_START + timedelta(days=(i * 7) % s.slice_days)
        hour = 15 if spec and spec.session_utc[0] > 0 else (i * 5) % 24
        out.append((market, symbol, datetime(day.year, day.month, day.day, hour,
                                              tzinfo=UTC)))
    return out


def time_slice(ctx: Context) -> CaseResult:
    from btlake_pipelines.app.lake import Lake

    s = ctx.sizes
    res = CaseResult("time_slice", f"Time slice: one symbol, one hour, 3 columns, from "
                     f"{s.slice_rows:,} ticks over {s.slice_days} days and {len(s.markets)} "
                     "markets")
    info = tick_lake(ctx)
    lake = Lake(str(info["lake"]))
    queries = _queries(ctx, s.query_reps + 1)
    cols = ["ts", "price", "size"]
    it = iter(range(10**9))
    counts: dict[str, list[int]] = {"btlake": [], "arctic": []}

    def pick():
        return queries[next(it) % len(queries)]

    state = {}

    def bt() -> None:
        market, symbol, start = state["q"] = pick()
        t = lake.read("ticks", market=market, symbol=symbol, start=start,
                      end=start + timedelta(hours=1), columns=cols)
        counts["btlake"].append(t.num_rows)

    contenders = {"btlake Lake.read(ticks, market, symbol, start, end, columns)": bt}
    arctic = ctx.has_peer("arcticdb")
    if arctic:
        def arc_market() -> float:
            market, symbol, start = state["q"]
            out = ctx.worker.call("arctic_read", path=str(info["arctic"]), library="per_market",
                                  symbol=market, start=start.isoformat(),
                                  end=(start + timedelta(hours=1)).isoformat(),
                                  columns=["price", "size"], filter_symbol=symbol)
            counts["arctic"].append(out["rows"])
            return Measured(out["seconds"])

        def arc_instrument() -> float:
            market, symbol, start = state["q"]
            out = ctx.worker.call("arctic_read", path=str(info["arctic"]),
                                  library="per_instrument", symbol=f"{market}.{symbol}",
                                  start=start.isoformat(),
                                  end=(start + timedelta(hours=1)).isoformat(),
                                  columns=["price", "size"])
            return Measured(out["seconds"])

        contenders["ArcticDB read, one symbol per market + QueryBuilder on symbol"] = arc_market
        contenders["ArcticDB read, one symbol per instrument (for information)"] = arc_instrument
    stats = interleave(contenders, s.query_reps, warmup=1)
    names = list(contenders)
    res.rows.append(Row(names[0], stats[names[0]], btlake=True,
                        note=f"median {_median(counts['btlake'])} rows"))
    for name in names[1:]:
        res.rows.append(Row(name, stats[name]))
    b = stats[names[0]].median
    res.targets.append(Target("<= 5 ms median", b * 1000, "ms", b <= 0.005))
    if arctic:
        a = stats[names[1]].median
        res.targets.append(Target("no slower than ArcticDB (one symbol per market)", a / b, "x",
                                  a / b >= 1.0, a / b, "time slice vs ArcticDB"))
        if counts["arctic"][-s.query_reps:] != counts["btlake"][-s.query_reps:]:
            res.notes.append(f"row counts differ: btlake {counts['btlake'][:5]} vs ArcticDB "
                             f"{counts['arctic'][:5]}")
    else:
        res.targets.append(Target("no slower than ArcticDB", None, "x", None))
        res.notes.append(ctx.peer_note("arcticdb"))
    from btlake_pipelines.storage.delta import ROW_GROUP_ROWS

    rg = ROW_GROUP_ROWS["ticks"]
    res.notes.append(
        "Each rep reads a different (market, symbol, hour); btlake and ArcticDB read the same "
        "one in turn. btlake prunes to one (market, date) partition, skips row groups by "
        f"symbol and ts statistics (rows sorted by (symbol, ts), {rg:,}-row groups) and "
        "returns "
        "ts with its exact nanoseconds. The table was built by ingesting bundles of 5 days.")
    if b > 0.005 or (arctic and stats[names[1]].median < b):
        def loop():
            for _ in range(30):
                bt()
        _, res.profile = profile_top(loop, 16)
    return res


def day_slice(ctx: Context) -> CaseResult:
    from btlake_pipelines.app.lake import Lake

    s = ctx.sizes
    res = CaseResult("day_slice", "Day slice: one market, one day, every column")
    info = tick_lake(ctx)
    lake = Lake(str(info["lake"]))
    days = [data.TICK_START + timedelta(days=(i * 3) % s.slice_days)
            for i in range(s.query_reps + 1)]
    it = iter(range(10**9))
    state = {}
    rows: dict[str, list[int]] = {"btlake": [], "arctic": []}

    def bt() -> None:
        i = next(it)
        market = s.markets[i % len(s.markets)]
        day = days[i % len(days)]
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        state["q"] = (market, start)
        rows["btlake"].append(lake.read("ticks", market=market, start=start,
                                        end=start + timedelta(days=1)).num_rows)

    contenders = {"btlake Lake.read(ticks, market, start, end)": bt}
    arctic = ctx.has_peer("arcticdb")
    if arctic:
        def arc() -> float:
            market, start = state["q"]
            out = ctx.worker.call("arctic_read", path=str(info["arctic"]), library="per_market",
                                  symbol=market, start=start.isoformat(),
                                  end=(start + timedelta(days=1)).isoformat())
            rows["arctic"].append(out["rows"])
            return Measured(out["seconds"])

        contenders["ArcticDB read, one symbol per market, date_range"] = arc
    stats = interleave(contenders, s.query_reps, warmup=1)
    names = list(contenders)
    res.rows.append(Row(names[0], stats[names[0]], btlake=True,
                        per=_median(rows["btlake"]), note=f"median {_median(rows['btlake']):,} "
                        "rows"))
    b = stats[names[0]].median
    if arctic:
        res.rows.append(Row(names[1], stats[names[1]], per=_median(rows["arctic"])))
        a = stats[names[1]].median
        res.targets.append(Target("no slower than ArcticDB", a / b, "x", a / b >= 1.0, a / b,
                                  "day slice vs ArcticDB"))
    else:
        res.targets.append(Target("no slower than ArcticDB", None, "x", None))
        res.notes.append(ctx.peer_note("arcticdb"))
    res.notes.append("btlake returns an Arrow table with ts restored to exact nanoseconds; "
                     "ArcticDB a pandas DataFrame.")
    if arctic and stats[names[1]].median < b:
        def loop():
            for _ in range(5):
                bt()
        _, res.profile = profile_top(loop, 16)
    return res


def _median(values: list[int]) -> int:
    if not values:
        return 0
    return sorted(values)[len(values) // 2]

