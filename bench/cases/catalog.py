"""The run catalog across many distinct names (issue 11): the same number of runs with 30 param
and metric names, and with 20,000 param and 2,000 metric names (20 params and 10 metrics per
run), searched and ordered by a param and a metric. Target: time and memory within 2x.

Each lake is searched in a fresh process, so its peak memory is the catalog's and nothing
else's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl

from bench.core import CaseResult, Context, Row, Target
from bench.timing import Stats

WIDE_PARAMS, WIDE_METRICS = 20_000, 2_000
PER_RUN_PARAMS, PER_RUN_METRICS = 20, 10

_PROBE = r"""
import json, resource, sys, time
from btlake_pipelines.app.lake import Lake
lake, where, order = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
lk = Lake(lake)
first = lk.runs(where=where, limit=100)
cold = time.perf_counter() - t0
times = []
for _ in range(int(sys.argv[4])):
    t0 = time.perf_counter()
    lk.runs(where=where, order_by=order, desc=True, limit=100)
    times.append(time.perf_counter() - t0)
print(json.dumps({"cold": cold, "search": times, "matched": first.num_rows,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _wide(runs: pl.DataFrame, seed: int = 11) -> pl.DataFrame:
    """``runs`` with params and metrics drawn from 20,000 and 2,000 names; every run also has
    ``p_common`` and ``m_common`` so one predicate and one order apply to all lakes."""
    rng = np.random.default_rng(seed)
    n = runs.height
    pnames = rng.integers(0, WIDE_PARAMS, (n, PER_RUN_PARAMS - 1))
    mnames = rng.integers(0, WIDE_METRICS, (n, PER_RUN_METRICS - 1))
    pvals = rng.normal(0, 1, (n, PER_RUN_PARAMS))
    mvals = rng.normal(0, 1, (n, PER_RUN_METRICS))
    params = pl.DataFrame({
        "i": np.repeat(np.arange(n), PER_RUN_PARAMS),
        "name": np.column_stack([np.full(n, "p_common", dtype=object),
                                 np.char.add("p_", pnames.astype(str)).astype(object)]).ravel(),
        "num": pvals.ravel()}).with_columns(
        pl.lit(None, pl.String).alias("str"), pl.lit(None, pl.Boolean).alias("bool"))
    metrics = pl.DataFrame({
        "i": np.repeat(np.arange(n), PER_RUN_METRICS),
        "name": np.column_stack([np.full(n, "m_common", dtype=object),
                                 np.char.add("m_", mnames.astype(str)).astype(object)]).ravel(),
        "value": mvals.ravel()})
    pv = (params.unique(["i", "name"], keep="first").sort("i", "name")
          .group_by("i", maintain_order=True)
          .agg(pl.struct("name", "num", "str", "bool").alias("param_values")))
    mv = (metrics.unique(["i", "name"], keep="first").sort("i", "name")
          .group_by("i", maintain_order=True)
          .agg(pl.struct("name", "value").alias("metric_values")))
    base = runs.drop("param_values", "metric_values").with_row_index("i").with_columns(
        pl.col("i").cast(pl.Int64))
    out = base.join(pv.with_columns(pl.col("i").cast(pl.Int64)), on="i").join(
        mv.with_columns(pl.col("i").cast(pl.Int64)), on="i")
    return out.select(runs.columns)


def _narrow(runs: pl.DataFrame, seed: int = 12) -> pl.DataFrame:
    """``runs`` (about 30 names in all) with ``p_common`` / ``m_common`` added."""
    rng = np.random.default_rng(seed)
    n = runs.height
    extra_p = pl.Series(rng.normal(0, 1, n))
    extra_m = pl.Series(rng.normal(0, 1, n))
    return runs.with_columns(
        pl.col("param_values").list.concat(pl.concat_list(pl.struct(
            pl.lit("p_common").alias("name"), pl.lit(extra_p).alias("num"),
            pl.lit(None, pl.String).alias("str"), pl.lit(None, pl.Boolean).alias("bool"))))
        .list.sort(),
        pl.col("metric_values").list.concat(pl.concat_list(pl.struct(
            pl.lit("m_common").alias("name"), pl.lit(extra_m).alias("value")))).list.sort())


def _probe(lake: Path, reps: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(lake), "params.p_common > 1.5",
         "metrics.m_common", str(reps)], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-800:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def catalog_names(ctx: Context) -> CaseResult:
    from bench.data import runs_frame, write_runs_lake

    n = ctx.sizes.search_runs
    res = CaseResult("catalog_names", f"Run catalog, {n:,} runs: 30 names vs "
                     f"{WIDE_PARAMS:,} param and {WIDE_METRICS:,} metric names")
    root = ctx.work / "catalog-names"
    base = runs_frame(n)
    found = {}
    for label, make in (("30 names", _narrow), ("20,000 + 2,000 names", _wide)):
        lake = root / label.split()[0].replace(",", "")
        if not (lake / "runs").exists():
            write_runs_lake(lake, make(base))
        found[label] = _probe(lake, ctx.sizes.query_reps)
        stats = Stats(found[label]["search"])
        res.rows.append(Row(f"btlake, {label}: params.p_common > 1.5, order by "
                            "metrics.m_common, limit 100", stats, btlake=True,
                            note=f"cold load and first search {found[label]['cold']:.2f} s; "
                                 f"peak RSS {found[label]['rss_mb']:.0f} MB"))
    narrow, wide = found["30 names"], found["20,000 + 2,000 names"]
    t = Stats(wide["search"]).median / Stats(narrow["search"]).median
    m = wide["rss_mb"] / narrow["rss_mb"]
    res.targets.append(Target("search time, many names vs 30 names, within 2x", t, "x", t <= 2))
    res.targets.append(Target("peak memory, many names vs 30 names, within 2x", m, "x", m <= 2))
    return res
