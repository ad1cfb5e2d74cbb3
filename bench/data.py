"""The bench's data: tick bundles from ``btlake_pipelines.demo``, and lake tables built directly
in the lake's format where ingesting bundles one by one would take hours.

How the large lakes are built (this is the documented shortcut of the bench):

- ``runs`` with 1,000,000 rows: a few real bundles are ingested first, so the table's schema
  (typed params in ``param_values``, metrics in ``metric_values``, counts, versions) is the
  one ingestion writes; then the million rows are generated with that
  exact schema (strategies, parameter grids, markets and engines of ``btlake_pipelines.demo``,
  metrics drawn at random, manifest / environment JSON of realistic length) and written with
  ``btlake_pipelines.storage.delta.write``, btlake's own writer, in batches as ingestion would.
- ``trades`` of 100,000 runs: rows in the stored layout (run id, strategy, run hash, ts split
  into microseconds + ``ts_nanos``, market / date partitions, sorted by run and time) written
  with the same writer, with the matching ``runs`` rows, so btlake's read path (run dates from
  ``runs``, row-group skipping, the visible-runs check) works exactly as on an ingested lake.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from btlake_pipelines.demo import synthetic_backtest, synthetic_ticks, write_bundle
from btlake_pipelines.demo.synthetic import ENGINES, MARKETS, STRATEGIES

TICK_START = date(2024, 3, 4)
RUN_BASE = datetime(2024, 1, 1, tzinfo=UTC)
RUN_MARKETS = ("XNAS", "XNYS", "BINANCE")


def layout_key() -> str:
    """What the stored layout depends on (the writer and the table specs, by source text):
    cached lakes under bench/work are rebuilt when it changes."""
    from btlake_pipelines.contract import tables
    from btlake_pipelines.metadata import runs_table
    from btlake_pipelines.storage import delta

    digest = hashlib.sha256()
    for module in (delta, tables, runs_table):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def ticks(n_rows: int, days: int, markets: tuple[str, ...], symbols: int, *,
          start: date = TICK_START, seed: int = 1) -> pa.Table:
    return synthetic_ticks(n_rows, markets=list(markets), symbols_per_market=symbols,
                           days=days, start=start, seed=seed)


def market_manifest(run_id: str, table: pa.Table) -> dict:
    last = table["ts"].cast(pa.int64()).to_numpy().max() if table.num_rows else 0
    created = datetime.fromtimestamp(int(last) / 1e9, tz=UTC)
    return {"format": "btlake.bundle/1", "kind": "market_data", "run_id": run_id,
            "created_at": created.isoformat().replace("+00:00", "Z"), "tags": ["bench"]}


def write_tick_bundle(landing: Path, run_id: str, table: pa.Table) -> Path:
    return write_bundle(landing / run_id, market_manifest(run_id, table), {"ticks": table})


def copy_bundles(template: Path, landing: Path) -> None:
    """Hard-link a template landing into ``landing`` (cheap, and ingestion moves folders, so
    the template's files stay where they are)."""
    if landing.exists():
        shutil.rmtree(landing)
    shutil.copytree(template, landing, copy_function=_link)


def _link(src: str, dst: str) -> None:
    import os

    os.link(src, dst)


def backtest_bundles(landing: Path, n: int, n_trades: int, n_equity: int, *,
                     seed: int = 11) -> list[str]:
    """``n`` synthetic backtest bundles of fixed size (Parquet), named ``bench-NNNNNN``."""
    names = []
    for i in range(n):
        manifest, tables = synthetic_backtest(
            i, seed=seed, n_trades=n_trades, n_equity=n_equity,
            created_at=RUN_BASE + timedelta(hours=i))
        manifest = {**manifest, "run_id": f"bench-{i:06d}"}
        write_bundle(landing / manifest["run_id"], manifest, tables)
        names.append(manifest["run_id"])
    return names


# --- a runs table of any size ------------------------------------------------------------------


def runs_frame(n: int, *, seed: int = 5, span_days: int = 365,
               schema: pa.Schema | None = None) -> pl.DataFrame:
    """``n`` runs rows shaped like ingested ones (see the module docstring)."""
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    strategies = list(STRATEGIES)
    strat = idx % len(strategies)
    market = (idx // len(strategies)) % len(RUN_MARKETS)
    created_us = (int(RUN_BASE.timestamp()) * 10**6
                  + (idx * (span_days * 86_400 * 10**6 // max(n, 1))))

    def grid(name: str, values_per_strategy: list[tuple]) -> np.ndarray:
        pick = rng.integers(0, 3, n)
        table = np.array([list(v) for v in values_per_strategy], dtype=object)
        return table[strat, pick % table.shape[1]]

    lookback = grid("lookback", [STRATEGIES[s]["lookback"] for s in strategies]).astype(float)
    threshold = grid("threshold", [STRATEGIES[s]["threshold"] for s in strategies]).astype(float)
    mode = grid("mode", [STRATEGIES[s]["mode"] + STRATEGIES[s]["mode"][:1]
                         for s in strategies]).astype(str)
    flag = rng.integers(0, 2, n).astype(bool)
    flag_name = [next(k for k, v in STRATEGIES[s].items() if isinstance(v[0], bool))
                 for s in strategies]
    timeframe = np.array(["1m", "5m", "15m", "1h"])[rng.integers(0, 4, n)]
    fee = np.array([0.1, 0.2, 0.5, 1.0])[rng.integers(0, 4, n)]
    symbols = np.array([[s for s, _, _ in MARKETS[m].symbols] for m in RUN_MARKETS])
    symbol = symbols[market, rng.integers(0, 4, n)]
    sharpe = rng.normal(0.3, 1.0, n)
    total_return = rng.normal(0.02, 0.15, n)
    max_dd = -np.abs(rng.normal(0.08, 0.05, n))
    vol = np.abs(rng.normal(0.2, 0.05, n))
    n_trades = rng.integers(0, 800, n).astype(float)
    win = rng.uniform(0.3, 0.7, n)
    final = 100_000.0 * (1 + total_return)
    engine = rng.integers(0, len(ENGINES), n)
    engine_names = np.array([e for e, _ in ENGINES])[engine]
    engine_versions = np.array([v for _, v in ENGINES])[engine]
    strat_names = np.array(strategies)[strat]
    market_names = np.array(RUN_MARKETS)[market]
    width = len(str(n))
    run_ids = [f"{s}-{m}-lb{int(lb)}-th{th:g}-{i:0{width}d}"
               for i, s, m, lb, th in zip(idx, strat_names, market_names, lookback, threshold,
                                          strict=True)]
    hashes = [hashlib.sha256(r.encode()).hexdigest() for r in run_ids]

    df = pl.DataFrame({
        "run_id": run_ids,
        "strategy_id": strat_names,
        "created_at": pl.Series(created_us).cast(pl.Datetime("us", "UTC")),
        "market": market_names,
        "engine_name": engine_names,
        "engine_version": engine_versions,
        "lookback": lookback, "threshold": threshold, "mode": mode, "flag": flag,
        "flag_name": np.array(flag_name)[strat], "timeframe": timeframe, "fee_bps": fee,
        "symbol": symbol,
        "sharpe": sharpe, "total_return": total_return, "max_drawdown": max_dd,
        "volatility": vol, "n_trades": n_trades, "win_rate": win, "final_equity": final,
        "content_hash": hashes,
    })
    created_text = pl.col("created_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    params_json = pl.format(
        '{{"{}": {}, "fee_bps": {}, "initial_cash": 100000.0, "lookback": {}, "mode": "{}", '
        '"symbol": "{}", "threshold": {}, "timeframe": "{}"}}',
        pl.col("flag_name"), pl.when(pl.col("flag")).then(pl.lit("true")).otherwise(
            pl.lit("false")), pl.col("fee_bps"), pl.col("lookback").cast(pl.Int64),
        pl.col("mode"), pl.col("symbol"), pl.col("threshold"), pl.col("timeframe"))
    metrics_json = pl.format(
        '{{"final_equity": {}, "max_drawdown": {}, "n_trades": {}, "sharpe": {}, '
        '"total_return": {}, "volatility": {}, "win_rate": {}}}',
        pl.col("final_equity"), pl.col("max_drawdown"), pl.col("n_trades").cast(pl.Int64),
        pl.col("sharpe"), pl.col("total_return"), pl.col("volatility"), pl.col("win_rate"))
    env_json = pl.format(
        '{{"host": "research-0{}", "os": "Linux-6.8.0-x86_64", "packages": {{"{}": "{}", '
        '"numpy": "1.26.4", "polars": "1.9.0"}}, "python": "3.11.9"}}',
        (pl.int_range(pl.len()) % 8 + 1), pl.col("engine_name"), pl.col("engine_version"))
    code_version = pl.col("strategy_id").hash(3).cast(pl.String).str.pad_start(40, "0")
    manifest_json = pl.format(
        '{{"code_version": "{}", "created_at": "{}", "engine": {{"name": "{}", "version": "{}"}}, '
        '"environment": {}, "format": "btlake.bundle/1", "kind": "backtest", "markets": ["{}"], '
        '"metrics": {}, "params": {}, "run_id": "{}", "strategy_id": "{}", "tables": '
        '{{"equity": "equity.parquet", "events": "events.parquet", "trades": "trades.parquet"}}, '
        '"tags": ["demo", "{}", "{}", "{}"]}}',
        code_version, created_text, pl.col("engine_name"), pl.col("engine_version"), env_json,
        pl.col("market"), metrics_json, params_json, pl.col("run_id"), pl.col("strategy_id"),
        pl.col("strategy_id"), pl.col("market"), pl.col("timeframe"))
    n_equity = (pl.col("n_trades") * 4 + 1000).cast(pl.Int64)

    def param(name: pl.Expr | str, num=None, text=None, flag=None) -> pl.Expr:
        return pl.struct(
            (pl.lit(name) if isinstance(name, str) else name).alias("name"),
            (num if num is not None else pl.lit(None)).cast(pl.Float64).alias("num"),
            (text if text is not None else pl.lit(None)).cast(pl.String).alias("str"),
            (flag if flag is not None else pl.lit(None)).cast(pl.Boolean).alias("bool"))

    param_values = pl.concat_list(
        param(pl.col("flag_name"), flag=pl.col("flag")), param("fee_bps", num=pl.col("fee_bps")),
        param("initial_cash", num=pl.lit(100_000.0)), param("lookback", num=pl.col("lookback")),
        param("mode", text=pl.col("mode")), param("symbol", text=pl.col("symbol")),
        param("threshold", num=pl.col("threshold")),
        param("timeframe", text=pl.col("timeframe"))).list.sort()  # by name, as ingestion
    metric_names = ("final_equity", "max_drawdown", "n_trades", "sharpe", "total_return",
                    "volatility", "win_rate")
    metric_values = pl.concat_list([
        pl.struct(pl.lit(m).alias("name"), pl.col(m).cast(pl.Float64).alias("value"))
        for m in metric_names])
    out = df.select(
        "run_id", "strategy_id", "created_at",
        pl.lit("backtest").alias("kind"), "engine_name", "engine_version",
        code_version.alias("code_version"),
        pl.concat_list(pl.col("market")).alias("markets"),
        pl.concat_list(pl.lit("demo"), pl.col("strategy_id"), pl.col("market"),
                       pl.col("timeframe")).alias("tags"),
        params_json.alias("params"), param_values.alias("param_values"),
        metric_values.alias("metric_values"), env_json.alias("environment"),
        pl.lit("{}").alias("extra"), manifest_json.alias("manifest"),
        pl.concat_list(pl.lit("equity"), pl.lit("events"), pl.lit("trades")).alias("tables"),
        pl.struct(pl.col("n_trades").cast(pl.Int64).alias("trades"), n_equity.alias("equity"),
                  (pl.col("n_trades").cast(pl.Int64) * 2).alias("events"),
                  pl.lit(None, pl.Int64).alias("ticks"), pl.lit(None, pl.Int64).alias("l2")
                  ).alias("rows"),
        pl.struct(pl.lit(0, pl.Int64).alias("trades"), pl.lit(0, pl.Int64).alias("equity"),
                  pl.lit(0, pl.Int64).alias("events"), pl.lit(None, pl.Int64).alias("ticks"),
                  pl.lit(None, pl.Int64).alias("l2")).alias("versions"),
        pl.format("/landing/{}", pl.col("run_id")).alias("source_uri"),
        pl.format("/lake/_archive/{}/20250101T000000000000Z-{}", pl.col("run_id"),
                  pl.col("content_hash").str.slice(0, 12)).alias("archive_uri"),
        "content_hash",
        (pl.col("created_at") + pl.duration(minutes=5)).alias("ingested_at"),
        pl.format("batch-{}", (pl.int_range(pl.len()) // 500)).alias("batch_id"),
        pl.col("created_at").dt.date().alias("date"),
    )
    if schema is not None:
        out = pl.from_arrow(out.to_arrow().select(schema.names).cast(schema))  # type: ignore
    return out


def entry(column: str, name: str, field: str) -> pl.Expr:
    """The ``field`` of the entry called ``name`` in a list column of (name, ...) entries."""
    return pl.col(column).list.eval(pl.element().filter(
        pl.element().struct.field("name") == name).struct.field(field)).list.first()


def peer_runs_frame(runs: pl.DataFrame) -> pl.DataFrame:
    """The same runs, flattened for the peers: one column per param and metric."""
    return runs.select(
        "run_id", "strategy_id", pl.col("markets").list.first().alias("market"),
        (pl.col("created_at").dt.epoch("ms")).alias("created_ms"),
        entry("param_values", "lookback", "num").cast(pl.Int64).alias("p_lookback"),
        entry("param_values", "threshold", "num").alias("p_threshold"),
        entry("param_values", "fee_bps", "num").alias("p_fee_bps"),
        entry("param_values", "mode", "str").alias("p_mode"),
        entry("param_values", "timeframe", "str").alias("p_timeframe"),
        entry("param_values", "symbol", "str").alias("p_symbol"),
        entry("metric_values", "sharpe", "value").alias("m_sharpe"),
        entry("metric_values", "total_return", "value").alias("m_total_return"),
        entry("metric_values", "max_drawdown", "value").alias("m_max_drawdown"),
    )


def trades_for_runs(runs: pl.DataFrame, per_run: int, *, seed: int = 9) -> pl.DataFrame:
    """``per_run`` trades of each run, in the stored layout of ``trades``: rows come out in the
    order a batch commit writes them, (market, date, run_id, ts), without sorting 10M rows by
    strings (the runs are put in that order first, and each run's trades are in time order)."""
    rng = np.random.default_rng(seed)
    runs = runs.with_columns(pl.col("markets").list.first().alias("__m")).sort(
        ["__m", "date", "run_id"]).drop("__m")
    n_runs = runs.height
    n = n_runs * per_run
    run_index = np.repeat(np.arange(n_runs), per_run)
    created = runs.get_column("created_at").cast(pl.Int64).to_numpy()
    step = rng.integers(1, 3_600_000_000, n)  # up to an hour between trades, in us
    within = np.cumsum(step)
    starts = np.repeat(within[::per_run] - step[::per_run], per_run)
    ts_us = created[run_index] - 86_400_000_000 * 30 + (within - starts)
    symbol = runs.select(entry("param_values", "symbol", "str")).to_series().to_numpy()[
        run_index]
    frame = pl.DataFrame({
        "run_id": runs.get_column("run_id").gather(run_index),
        "strategy_id": runs.get_column("strategy_id").gather(run_index),
        "run_hash": runs.get_column("content_hash").gather(run_index),
        "symbol": symbol,
        "ts": pl.Series(ts_us).cast(pl.Datetime("us", "UTC")),
        "ts_nanos": pl.Series(rng.integers(0, 1000, n).astype(np.int16)),
        "side": np.where(rng.random(n) < 0.5, "buy", "sell"),
        "qty": np.round(rng.exponential(10, n) + 1, 0),
        "price": np.round(rng.lognormal(5, 1, n), 2),
        "fee": np.round(rng.exponential(0.5, n), 4),
        "order_id": np.arange(n, dtype=np.int64),
        "market": runs.get_column("markets").list.first().gather(run_index),
        "date": runs.get_column("date").gather(run_index),
    })
    return frame


def write_runs_lake(lake: Path, runs: pl.DataFrame, *, batch: int = 100_000,
                    trades: pl.DataFrame | None = None) -> None:
    """Write ``runs`` (and ``trades``) into ``lake`` with btlake's own writer, in batches."""
    from btlake_pipelines.storage import delta

    if trades is not None:
        run_ids = runs.get_column("run_id")
        for start in range(0, runs.height, batch):
            ids = run_ids.slice(start, batch)
            part = trades.filter(pl.col("run_id").is_in(ids.implode()))
            delta.write(str(lake), "trades", part.to_arrow(), predicate=None,
                        metadata={"btlake.batch": f"bench-{start}"})
    for start in range(0, runs.height, batch):
        part = runs.slice(start, batch)
        delta.write(str(lake), "runs", part.to_arrow(), predicate=None,
                    metadata={"btlake.batch": f"bench-{start}"})


def real_runs_schema(work: Path) -> pa.Schema:
    """The ``runs`` schema ingestion writes, from a few real bundles ingested into a scratch
    lake (one per strategy)."""
    from btlake_pipelines.ingest.batch import ingest
    from btlake_pipelines.landing.local import LocalLandingZone

    root = work / "schema-lake"
    if root.exists():
        shutil.rmtree(root)
    landing = root / "landing"
    for i in range(len(STRATEGIES)):
        manifest, tables = synthetic_backtest(i, seed=3, n_trades=20, n_equity=50,
                                              created_at=RUN_BASE)
        write_bundle(landing / manifest["run_id"], manifest, tables)
    ingest(str(root / "lake"), LocalLandingZone(str(landing)))
    import deltalake

    schema = pa.schema(deltalake.DeltaTable(str(root / "lake" / "runs")).schema().to_arrow())
    return schema
