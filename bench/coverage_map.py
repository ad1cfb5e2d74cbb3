"""Coverage at scale: a ticks table of SYMBOLS x DAYS (one market, XNYS sessions, a few rows a
symbol-day), its coverage summarised in full, refreshed after a one-day append, and the
coverage page's map of the market (JSON size and time).

    python -m bench.coverage_map --symbols 20000 --days 250 [--rows 2] [--work DIR]

The ticks are written straight into Delta (as a streaming writer would) so that building the
shape takes seconds; the summary and the map are btlake's own code paths. Prints one JSON
document with the figures (docs/SCALE.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl


def build_ticks(lake: str, symbols: int, days: int, rows: int) -> list[date]:
    """``symbols`` x ``days`` XNYS sessions of 2023-2024 with ``rows`` ticks each; symbol
    ``i`` with ``i % 100 == 0`` misses the middle session (gaps to find)."""
    from deltalake import write_deltalake

    from btlake_pipelines.query.calendars import market_days

    sessions = market_days("XNYS", date(2023, 1, 3), date(2024, 12, 31)).sessions[-days:]
    names = pl.DataFrame({"symbol": [f"S{i:05d}" for i in range(symbols)]})
    for i in range(0, len(sessions), 25):  # 25 days a commit: bounded memory
        chunk = pl.DataFrame({"date": sessions[i:i + 25]})
        frame = (names.join(chunk, how="cross")
                 .join(pl.DataFrame({"k": list(range(rows))}), how="cross")
                 .filter(~((pl.col("symbol").str.slice(1).cast(pl.Int64) % 100 == 0)
                           & (pl.col("date") == sessions[len(sessions) // 2])))
                 .with_columns(
                     pl.col("date").cast(pl.Datetime("us", "UTC")).dt.offset_by("14h30m")
                     .alias("ts") + pl.duration(seconds=pl.col("k")),
                     pl.lit(100.0).alias("price"), pl.lit(1.0).alias("size"),
                     pl.lit("XNYS").alias("market"))
                 .select("ts", "symbol", "price", "size", "market", "date"))
        write_deltalake(f"{lake}/ticks", frame.to_arrow(), mode="append",
                        partition_by=["market", "date"])
    return sessions


def run(symbols: int, days: int, rows: int, work: Path) -> dict[str, Any]:
    from btlake_pipelines.app.lake import Lake

    lake = str(work / "lake")
    shutil.rmtree(lake, ignore_errors=True)
    t = time.perf_counter()
    sessions = build_ticks(lake, symbols, days, rows)
    built = time.perf_counter() - t
    api = Lake(lake)
    t = time.perf_counter()
    [full] = api.refresh_coverage(["ticks"])
    full_s = time.perf_counter() - t
    # one more day of every symbol, appended: the refresh re-reads that partition only
    from deltalake import write_deltalake

    last = pl.read_delta(f"{lake}/ticks").filter(pl.col("date") == sessions[-1])
    write_deltalake(f"{lake}/ticks", last.with_columns(
        pl.col("ts") + pl.duration(hours=1)).to_arrow(), mode="append",
        partition_by=["market", "date"])
    t = time.perf_counter()
    [step] = api.refresh_coverage(["ticks"])
    step_s = time.perf_counter() - t
    t = time.perf_counter()
    doc = api.coverage_map("XNYS", start=sessions[0], end=sessions[-1]).to_json()
    text = json.dumps(doc)
    map_s = time.perf_counter() - t
    return {"symbols": symbols, "days": days, "tick_rows": symbols * days * rows,
            "build_s": round(built, 2),
            "full_refresh": {"seconds": round(full_s, 2), "partitions": full.partitions,
                             "coverage_rows": full.rows},
            "one_day_refresh": {"seconds": round(step_s, 2), "partitions": step.partitions},
            "map": {"seconds": round(map_s, 2), "json_bytes": len(text),
                    "bands": len(doc["bands"]), "map_days": len(doc["days"]),
                    "gaps": doc["gap_count"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=250)
    parser.add_argument("--rows", type=int, default=2, help="ticks per symbol-day")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="btlake-coverage-"))
    print(json.dumps(run(args.symbols, args.days, args.rows, work), indent=2))


if __name__ == "__main__":
    main()
