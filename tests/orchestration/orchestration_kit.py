"""Building real lakes for the orchestration tests, and fingerprinting their partitions.

Bundles come from ``btlake_pipelines.demo`` so the tests exercise the same shapes users see:
synthetic backtests spread over two dates and three markets (every run table has all six
(market, date) partitions), plus real market-data samples for ``ticks`` and ``l2``.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from btlake_pipelines.demo import synthetic_backtest, write_bundle, write_real_sample_bundles
from btlake_pipelines.storage.delta import open_table
from tests.system_tools import require_or_skip  # noqa: F401 - re-exported for tests

DAYS = (date(2024, 11, 4), date(2024, 11, 5))
MARKETS = ("XNAS", "XNYS", "BINANCE")  # the order synthetic_backtest cycles through
#: Real samples used: two Binance captures (ticks and l2 over two dates) and TrueFX ticks.
SAMPLES = ("binance-btcusdt-20240808-ws", "binance-ethusdt-20240808-ws",
           "truefx-usdjpy-20130101-ticks")
FACT_TABLES = ("trades", "equity", "events", "ticks", "l2")


def write_runs(landing: Path, count: int = 12, *, first: int = 0, seed: int = 3) -> list[str]:
    """``count`` small backtest bundles; run ``i`` is dated ``DAYS[i % 2]`` and its market is
    ``MARKETS[(i // 4) % 3]``."""
    names = []
    for i in range(first, first + count):
        manifest, tables = synthetic_backtest(
            i, seed=seed, n_trades=20, n_equity=60,
            created_at=datetime.combine(DAYS[i % 2], datetime.min.time(), UTC).replace(hour=12))
        write_bundle(landing / manifest["run_id"], manifest, tables)
        names.append(manifest["run_id"])
    return names


def write_samples(landing: Path, names: tuple[str, ...] = SAMPLES) -> list[str]:
    tmp = landing.parent / "samples-tmp"
    written = []
    for folder in write_real_sample_bundles(tmp):
        if folder.name in names:
            shutil.move(folder, landing / folder.name)
            written.append(folder.name)
    shutil.rmtree(tmp, ignore_errors=True)
    return written


def write_bad_run(landing: Path, index: int = 40, *, fixed: bool = False) -> str:
    """A backtest whose trades have a negative quantity: refused on ``trades.qty``
    (``fixed``: the same run, valid)."""
    manifest, tables = synthetic_backtest(index, seed=3, n_trades=20, n_equity=60,
                                          created_at=datetime(2024, 11, 4, 12, tzinfo=UTC))
    if fixed:
        write_bundle(landing / manifest["run_id"], manifest, tables)
        return manifest["run_id"]
    trades = tables["trades"]
    qty = trades.column("qty")
    tables["trades"] = trades.set_column(trades.schema.get_field_index("qty"), "qty",
                                         pc.multiply(qty, pa.scalar(-1.0)))
    write_bundle(landing / manifest["run_id"], manifest, tables)
    return manifest["run_id"]


def partition_files(lake: str, table: str) -> dict[tuple[str, ...], dict[str, str]]:
    """Every data file on disk under each partition folder, with the SHA-256 of its bytes."""
    root = Path(lake) / table
    out: dict[tuple[str, ...], dict[str, str]] = {}
    if not root.is_dir():
        return out
    for path in sorted(root.rglob("*.parquet")):
        rel = path.relative_to(root)
        out.setdefault(rel.parts[:-1], {})[rel.as_posix()] = hashlib.sha256(
            path.read_bytes()).hexdigest()
    return out


def active_files(lake: str, table: str) -> dict[tuple[str, ...], set[str]]:
    """The data files the table's current version uses, per partition folder."""
    dt = open_table(lake, table)
    if dt is None:
        return {}
    paths = pa.table(dt.get_add_actions(flatten=True)).column("path").to_pylist()
    out: dict[tuple[str, ...], set[str]] = {}
    for p in paths:
        parts = tuple(p.split("/")[:-1])
        out.setdefault(parts, set()).add(p)
    return out


def folder_of(table: str, market: str | None, day: date) -> tuple[str, ...]:
    return (f"date={day}",) if market is None else (f"market={market}", f"date={day}")


def fingerprint(lake: str) -> dict[str, dict]:
    return {t: {"files": partition_files(lake, t), "active": active_files(lake, t)}
            for t in (*FACT_TABLES, "runs")}


def assert_untouched(before: dict, after: dict, touched: dict[str, set[tuple[str, ...]]]):
    """Every partition not in ``touched[table]`` has the same files, byte for byte, and the
    same active files; no new partition folder appeared elsewhere."""
    for table in before:
        changed = touched.get(table, set())
        for kind in ("files", "active"):
            old, new = before[table][kind], after[table][kind]
            assert set(new) - set(old) - changed == set(), (table, kind, "new partitions")
            for folder in old:
                if folder not in changed:
                    assert new.get(folder) == old[folder], (table, kind, folder)


def stored_partitions(lake: str, table: str) -> set[tuple[str | None, date]]:
    """The (market, date) Delta partitions ``table`` holds rows in."""
    from btlake_pipelines.ingest.rederive import delta_partition_rows

    return {k for k, n in delta_partition_rows(lake, table).items() if n}


def partition_rows(lake: str, table: str, market: str | None, day: date) -> pl.DataFrame:
    from btlake_pipelines.storage.scan import scan

    lf = scan(lake, table)
    assert lf is not None
    expr = pl.col("date") == day
    if market is not None:
        expr &= pl.col("market") == market
    df = lf.filter(expr).collect()
    plain = [c for c, t in df.schema.items() if not isinstance(t, pl.Struct | pl.List)]
    return df.select(sorted(plain)).sort(sorted(plain), nulls_last=True)
