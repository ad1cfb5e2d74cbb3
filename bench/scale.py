"""``python -m bench scale``: the slopes of the scale model, measured at small size.

A 10-year, 40-market, 10M-run lake cannot be built on one shared machine, but each quantity
that decides whether it fits grows by a rule that can be measured small and checked at two or
three sizes: Delta log bytes per commit, checkpoint bytes per live file and per tombstone,
table open time per live file and per unreplayed commit, bytes per tick after compaction,
Dagster partitions per asset, event-log rows and bytes per ingestion run, catalog memory per
run. This module measures each of them, fits the slope, and extrapolates it with the model's
parameters (:data:`MODEL`). ``docs/SCALE.md`` quotes the figures by their key.

Results: ``bench/results/scale.md`` and ``scale.json``; data under ``bench/work/scale-*``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bench.core import RESULTS, ROOT, WORK

#: The lake the model describes. One ingestion batch per sensor tick (15 s) all day is the
#: worst case of continuous ingestion; every batch is assumed to touch every market.
MODEL: dict[str, float] = {
    "years": 10, "markets": 40, "trading_days_per_year": 252, "runs": 10_000_000,
    "tick_seconds": 15, "dagster_years": 20, "checkpoint_interval": 100,
    "log_retention_days": 30, "tombstone_retention_days": 7,
    "target_file_bytes": 100 * 2**20,
}
COMMITS_PER_DAY = 86_400 / MODEL["tick_seconds"]
PARTITIONS = MODEL["markets"] * MODEL["years"] * MODEL["trading_days_per_year"]
DAY = date(2024, 6, 3)


@dataclass(frozen=True)
class ScaleSizes:
    commits: tuple[int, ...] = (10, 1_000, 10_000)
    rows_per_commit: int = 100
    open_reps: int = 5
    partition_rates: tuple[int, ...] = (250_000, 1_000_000, 4_000_000)
    partition_appends: int = 50
    runs: tuple[int, ...] = (10_000, 100_000)
    runs_ingested: tuple[int, ...] = (2_000, 10_000)  # when bench/data.py cannot build runs
    dagster_runs_pg: int = 20
    postgres: bool = True


FULL = ScaleSizes()
QUICK = ScaleSizes(commits=(10, 40, 120), rows_per_commit=20, open_reps=2,
                   partition_rates=(5_000, 20_000), partition_appends=5, runs=(300, 1_200),
                   runs_ingested=(40, 160), dagster_runs_pg=2, postgres=False)


@dataclass
class Figure:
    """One slope of the model: what was measured, how it grows, and what it gives at scale."""

    key: str
    what: str
    slope: float
    unit: str
    evidence: str
    model: float | None = None
    model_unit: str = ""
    model_how: str = ""


@dataclass
class Section:
    key: str
    title: str
    table: list[list[str]] = field(default_factory=list)  # first row: the header
    notes: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


class Run:
    def __init__(self, sizes: ScaleSizes, quick: bool, work: Path,
                 log: Callable[[str], None]) -> None:
        self.sizes, self.quick, self.work, self.log = sizes, quick, work, log
        work.mkdir(parents=True, exist_ok=True)
        self.shared: dict[str, Any] = {}

    def fresh(self, name: str) -> Path:
        path = self.work / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path


# --- helpers -----------------------------------------------------------------------------------


def ticks_frame(n: int, first_us: int, *, symbols: int = 250, market: str = "XNAS",
                day: date = DAY, seed: int = 0, span_us: int = 15_000_000) -> pa.Table:
    """``n`` ticks in the stored layout of ``ticks`` (ts in microseconds plus ``ts_nanos``,
    ``market`` / ``date`` partition columns), in arrival order over ``span_us``."""
    rng = np.random.default_rng(seed)
    ts = first_us + np.sort(rng.integers(0, span_us, n))
    names = np.array([f"XN{i:05d}" for i in range(symbols)], dtype=object)
    return pa.table({
        "symbol": pa.array(names[rng.integers(0, symbols, n)], pa.string()),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "ts_nanos": pa.array(rng.integers(0, 1000, n), pa.int16()),
        "price": np.round(rng.uniform(10, 500, n), 2),
        "size": rng.integers(1, 500, n).astype(np.float64),
        "market": pa.array(np.full(n, market, dtype=object), pa.string()),
        "date": pa.array(np.full(n, (day - date(1970, 1, 1)).days, np.int32)).cast(pa.date32()),
    })


def commit(lake: str, table: str, data: pa.Table, i: int) -> int:
    """One append through btlake's writer, with the metadata an ingestion batch records."""
    from btlake_pipelines.storage import delta

    return delta.write(lake, table, data, predicate=None, metadata={
        "btlake.batch": f"{datetime(2024, 6, 3, tzinfo=UTC):%Y%m%dT%H%M%S}000000Z-{i:08x}",
        "btlake.runs": [f"feed-{i:06d}"], "btlake.run_count": "1",
        "btlake.rows_removed": "0", "btlake.rows_added": str(data.num_rows)})


def log_dir(table_dir: Path) -> Path:
    return table_dir / "_delta_log"


def commit_file(table_dir: Path, version: int) -> Path:
    return log_dir(table_dir) / f"{version:020d}.json"


def checkpoint_file(table_dir: Path, version: int) -> Path:
    return log_dir(table_dir) / f"{version:020d}.checkpoint.parquet"


def open_seconds(uri: str, reps: int) -> tuple[float, int]:
    """Median time to open a table and list its files (what any reader does first)."""
    from deltalake import DeltaTable

    times, files = [], 0
    for _ in range(reps):
        t0 = time.perf_counter()
        dt = DeltaTable(uri)
        files = len(dt.file_uris())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), files


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope)."""
    if len(xs) < 2:
        return (ys[0] if ys else 0.0), 0.0
    slope, intercept = np.polyfit(np.array(xs, float), np.array(ys, float), 1)
    return float(intercept), float(slope)


def hardlink_tree(src: Path, dst: Path, keep: Callable[[Path], bool] = lambda p: True) -> None:
    """``dst`` as a copy of ``src`` made of hard links, files chosen by ``keep``."""
    for root, _dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            path = Path(root) / name
            if keep(path):
                os.link(path, dst / rel / name)


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def human_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} B"


def line_sizes(path: Path) -> dict[str, list[int]]:
    """Bytes of each action in one commit file, by action (add, remove, commitInfo, ...)."""
    out: dict[str, list[int]] = {}
    for line in path.read_bytes().splitlines():
        if line.strip():
            out.setdefault(next(iter(json.loads(line))), []).append(len(line) + 1)
    return out


# --- sections ----------------------------------------------------------------------------------


def delta_log(run: Run) -> Section:
    """One commit per sensor tick: log bytes per commit, commit latency as the table grows,
    and the commits one real ingestion batch makes, by table."""
    s = run.sizes
    sec = Section("delta_log", "Delta log under one commit per 15 s")
    n_max = max(s.commits)
    root = run.work / "scale-log"
    table_dir = root / "lake" / "ticks"
    times = _built_log(run, root, n_max)
    run.shared["log_table"] = table_dir
    sizes = [commit_file(table_dir, v).stat().st_size for v in range(n_max)]
    points = []
    sec.table.append(["commits", "commit files", "log JSON bytes", "bytes per commit",
                      "checkpoints written by the writer",
                      "median commit latency while building (last 100)"])
    for n in s.commits:
        total = sum(sizes[:n])
        ckpts = sum(1 for v in range(n) if checkpoint_file(table_dir, v).exists())
        lat = statistics.median(times[max(0, n - 100):n])
        points.append((n, total))
        sec.table.append([f"{n:,}", f"{n:,}", f"{total:,}", f"{total / n:,.0f}", str(ckpts),
                          f"{lat * 1000:.0f} ms"])
    _, per_commit = fit([p[0] for p in points], [p[1] for p in points])
    actions: dict[str, list[int]] = {}
    for v in range(max(1, n_max - 100), n_max):
        for k, v_sizes in line_sizes(commit_file(table_dir, v)).items():
            actions.setdefault(k, []).extend(v_sizes)
    info = statistics.median(actions.get("commitInfo", [0]))
    add = statistics.median(actions.get("add", [0]))
    sec.data.update(per_commit=per_commit, commit_info_bytes=info, add_bytes=add,
                    latencies_ms=[round(t * 1000, 2) for t in times[:: max(1, n_max // 200)]])
    ckpt_versions = [v for v in range(n_max) if checkpoint_file(table_dir, v).exists()]
    sec.notes.append(
        f"Each commit appends {s.rows_per_commit} ticks to one (market, date) partition of "
        "`ticks` through `btlake_pipelines.storage.delta.write` (btlake's writer, with the "
        "metadata an ingestion batch records), 15 s of simulated time apart. A commit file "
        f"is a `commitInfo` line ({info:,.0f} B: operation, btlake batch id, run names) plus "
        f"one `add` line per file written ({add:,.0f} B: path, partition values, size, "
        "min/max/null statistics of the 5 data columns); its size does not depend on the "
        "table's age, so log bytes grow linearly with commits. deltalake 1.6.6 writes a "
        f"checkpoint by itself every {int(MODEL['checkpoint_interval'])} commits "
        f"(`delta.checkpointInterval`; versions {', '.join(map(str, ckpt_versions[:3]))}, ... "
        "here), so btlake's tables are checkpointed whether or not maintenance runs.")
    first100 = statistics.median(times[:100])
    last100 = statistics.median(times[-100:])
    build = json.loads((root / "build.json").read_text())
    source = build.get("source", "the time of each `delta.write` call")
    sec.notes.append(
        f"Commit latency while building (from {source}; the machine was shared, so load "
        f"varies along the build): median {first100 * 1000:.0f} ms over the first 100 "
        f"commits, {last100 * 1000:.0f} ms over the last 100 ({n_max:,} files live). Each "
        "write loads the table state (latest checkpoint + up to 99 commits) before "
        "committing; the `open` section measures the latency against the number of live "
        "files with every table timed in turn, under the same load.")

    batch = _real_batch_commits(run)
    sec.data["batch"] = batch
    per_batch = sum(b["bytes"] for b in batch.values())
    adds_day = COMMITS_PER_DAY * MODEL["markets"]
    ticks_day = COMMITS_PER_DAY * (info + MODEL["markets"] * add)
    sec.figures += [
        Figure("log_bytes_per_commit", "Delta log bytes per commit (ticks, one partition)",
               per_commit, "B/commit",
               f"linear fit over {', '.join(f'{n:,}' for n in s.commits)} commits; "
               f"commitInfo {info:,.0f} B + {add:,.0f} B per file added",
               ticks_day, "B/day per market-data table",
               f"{COMMITS_PER_DAY:,.0f} commits/day x ({info:,.0f} + "
               f"{int(MODEL['markets'])} markets x {add:,.0f}) B"),
        Figure("log_files_per_day", "Delta log files per day per table written",
               1.0, "file/commit", "one JSON file per commit, plus one checkpoint per "
               f"{int(MODEL['checkpoint_interval'])} commits",
               COMMITS_PER_DAY * (1 + 1 / MODEL["checkpoint_interval"]), "files/day",
               f"{COMMITS_PER_DAY:,.0f} commits + {COMMITS_PER_DAY / 100:.1f} checkpoints; "
               f"with log cleanup at {int(MODEL['log_retention_days'])} days: at most "
               f"{COMMITS_PER_DAY * MODEL['log_retention_days']:,.0f} commit files held"),
        Figure("data_files_per_day", "data files added per day to a market-data table "
               "before nightly compaction", MODEL["markets"], "files/commit",
               "one file per (market, date) partition written by a commit", adds_day,
               "files/day", f"{COMMITS_PER_DAY:,.0f} commits x {int(MODEL['markets'])} "
               "markets"),
        Figure("log_bytes_per_batch", "Delta log bytes of one real ingestion batch, all "
               "tables", per_batch, "B/batch",
               "btlake ingest of 2 backtest bundles + 1 market-data bundle: "
               + ", ".join(f"{t} {b['commits']} commit(s) {b['bytes']:,} B"
                           for t, b in batch.items()),
               per_batch * COMMITS_PER_DAY, "B/day (one such batch per tick)",
               f"{COMMITS_PER_DAY:,.0f} batches/day"),
    ]
    return sec


def _built_log(run: Run, root: Path, n_max: int) -> list[float]:
    """Build the ``n_max``-commit table under ``root`` (or reuse the one a previous run built
    with the same sizes: each commit costs more as live files accumulate, so 10,000 take half
    an hour to an hour on this machine); the latency of each commit, in seconds."""
    s = run.sizes
    key = {"commits": n_max, "rows": s.rows_per_commit, "v": 1}
    done = root / "build.json"
    if done.exists():
        doc = json.loads(done.read_text())
        if doc.get("key") == key:
            run.log(f"  reusing the {n_max:,}-commit table built {doc['built']}")
            return list(doc["times"])
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    lake = str(root / "lake")
    run.log(f"  {n_max:,} appends through btlake's writer")
    times: list[float] = []
    first_us = int(datetime(2024, 6, 3, tzinfo=UTC).timestamp()) * 10**6
    for i in range(n_max):
        data = ticks_frame(s.rows_per_commit, first_us + i * 15_000_000, seed=i,
                           day=DAY + timedelta(days=int(i // COMMITS_PER_DAY)))
        t0 = time.perf_counter()
        commit(lake, "ticks", data, i)
        times.append(time.perf_counter() - t0)
        if (i + 1) % 2_000 == 0:
            run.log(f"    {i + 1:,} commits")
    done.write_text(json.dumps({"key": key, "times": times, "load": os.getloadavg(),
                                "built": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}))
    return times


def _real_batch_commits(run: Run) -> dict[str, dict[str, int]]:
    """The commits (and their bytes) one small real batch makes in each table: the second of
    two batches, so no table is being created."""
    from bench import market_data
    from btlake_pipelines.demo import synthetic_backtest, write_bundle
    from btlake_pipelines.ingest.batch import ingest
    from btlake_pipelines.landing.local import LocalLandingZone

    root = run.fresh("scale-batch")
    lake, landing = root / "lake", root / "landing"
    out: dict[str, dict[str, int]] = {}
    for b in range(2):
        for i in range(2):
            k = b * 2 + i
            manifest, tables = synthetic_backtest(
                k, seed=4, n_trades=50, n_equity=200,
                created_at=datetime(2024, 6, 3 + b, 21, tzinfo=UTC))
            write_bundle(landing / manifest["run_id"], manifest, tables)
        market_data.write_feed_bundle(landing, f"feed-{b}", rows=2_000, days=1, symbols=50,
                                      start=DAY + timedelta(days=b), seed=b)
        batch = ingest(str(lake), LocalLandingZone(str(landing)))
        if batch.quarantined:
            raise RuntimeError(batch.summary())
        if b == 1:
            for table, versions in sorted(batch.commits.items()):
                out[table] = {"commits": len(versions), "bytes": sum(
                    commit_file(lake / table, v).stat().st_size for v in versions)}
    return out


def log_open(run: Run) -> Section:
    """Open time after N commits without checkpoints, with one, and with one and the older
    commit files cleaned up; checkpoint bytes per live file; after btlake's maintenance."""
    from deltalake import DeltaTable

    s = run.sizes
    sec = Section("open", "Table open time and checkpoint size")
    table_dir: Path = run.shared.get("log_table") or _need(run, "log_table")
    root = run.fresh("scale-open")
    sec.table.append(["commits (= live files)", "open, no checkpoint",
                      "open, checkpoint at the last version",
                      "open, checkpoint + older commit files removed", "checkpoint bytes"])
    ck_points, open_nock, open_ck = [], [], []
    for n in s.commits:
        base = root / f"n{n}"
        nock = base / "nockpt" / "ticks"

        def keep(p: Path, n: int = n) -> bool:
            if p.parent.name != "_delta_log":
                return True
            return p.name.endswith(".json") and int(p.name.split(".")[0]) < n

        hardlink_tree(table_dir, nock, keep)
        ck = base / "ckpt" / "ticks"
        hardlink_tree(nock, ck)
        DeltaTable(str(ck)).create_checkpoint()
        def cleaned(p: Path, n: int = n) -> bool:
            return not (p.parent.name == "_delta_log" and p.name.endswith(".json")
                        and int(p.name.split(".")[0]) < n - 1)

        clean = base / "clean" / "ticks"
        hardlink_tree(ck, clean, cleaned)
        t_nock, files = open_seconds(str(nock), s.open_reps)
        t_ck, _ = open_seconds(str(ck), s.open_reps)
        t_clean, _ = open_seconds(str(clean), s.open_reps)
        ck_bytes = checkpoint_file(ck, n - 1).stat().st_size
        ck_points.append((files, ck_bytes))
        open_nock.append((n, t_nock))
        open_ck.append((files, t_ck))
        sec.table.append([f"{n:,} ({files:,})", f"{t_nock * 1000:,.1f} ms",
                          f"{t_ck * 1000:,.1f} ms", f"{t_clean * 1000:,.1f} ms",
                          f"{ck_bytes:,}"])
    latency = _commit_latency(run, root, s.commits)
    ck0, ck_slope = fit([p[0] for p in ck_points], [p[1] for p in ck_points])
    o0, o_slope = fit([p[0] for p in open_nock], [p[1] for p in open_nock])
    c0, c_slope = fit([p[0] for p in open_ck], [p[1] for p in open_ck])
    sec.data.update(checkpoint_points=ck_points, open_nock=open_nock, open_ck=open_ck)

    # the nightly maintenance of the largest table: compaction leaves tombstones behind
    n = max(s.commits)
    maintained = root / "maintained"
    hardlink_tree(root / f"n{n}" / "ckpt", maintained)
    from btlake_pipelines.storage.maintenance import maintain

    run.log(f"  btlake maintain of the {n:,}-commit table")
    t0 = time.perf_counter()
    maintain(str(maintained), tables=["ticks"])
    t_maintain = time.perf_counter() - t0
    dt = DeltaTable(str(maintained / "ticks"))
    v = dt.version()
    live = len(dt.file_uris())
    after = checkpoint_file(maintained / "ticks", v).stat().st_size
    per_tomb = max(0.0, (after - ck0 - ck_slope * live) / n)
    t_after, _ = open_seconds(str(maintained / "ticks"), s.open_reps)
    open_per_tomb = max(0.0, (t_after - c0 - c_slope * live) / n)
    sec.table.append([f"{n:,} after `btlake maintain` ({live} live, {n:,} tombstones)", "",
                      f"{t_after * 1000:,.1f} ms", "", f"{after:,}"])
    sec.notes.append(
        "Latency of one more append through btlake's writer (median of "
        f"{2 * s.open_reps}, the tables taken in turn): "
        + ", ".join(f"{n:,} live files {t * 1000:,.0f} ms" for n, t in latency) + ".")
    l0, l_slope = fit([p[0] for p in latency], [p[1] for p in latency])
    sec.notes.append(
        "Each variant is the first N commits of the table built above (hard links). Open = "
        "`DeltaTable(path)` and `file_uris()`, what any reader does first; median of "
        f"{s.open_reps}. \"Checkpoint\" = `DeltaTable.create_checkpoint()` at the last "
        "version, the older commit files left in place; \"removed\" = what log cleanup "
        "leaves (the checkpoint and the last commit file). The last row is the largest "
        f"table after `btlake maintain` (Z-order compaction, checkpoint, vacuum, log cleanup; "
        f"{t_maintain:.1f} s): the {n:,} compacted files stay in the checkpoint as "
        "tombstones until `delta.deletedFileRetentionDuration` (7 days) has passed.")
    day_files = COMMITS_PER_DAY * MODEL["markets"]
    live_model = PARTITIONS + day_files  # one file per compacted partition, plus today's
    tombs_model = day_files * MODEL["tombstone_retention_days"]
    ck_model = ck0 + ck_slope * live_model + per_tomb * tombs_model
    open_model = c0 + c_slope * live_model + open_per_tomb * tombs_model
    sec.figures += [
        Figure("checkpoint_bytes_per_file", "checkpoint bytes per live file", ck_slope,
               "B/file", f"linear fit over {', '.join(f'{p[0]:,}' for p in ck_points)} "
               f"live files ({', '.join(f'{p[1]:,}' for p in ck_points)} B)",
               ck_model, "B per checkpoint at the end of a day",
               f"{live_model:,.0f} live files ({PARTITIONS:,.0f} compacted partitions + "
               f"{day_files:,.0f} files of the day) x {ck_slope:,.0f} B + "
               f"{tombs_model:,.0f} tombstones (7 days of compaction) x {per_tomb:,.0f} B"),
        Figure("checkpoint_bytes_per_day", "checkpoint bytes written per day per "
               "market-data table", COMMITS_PER_DAY / MODEL["checkpoint_interval"],
               "checkpoints/day", "one checkpoint per 100 commits, each the whole live state",
               ck_model * COMMITS_PER_DAY / MODEL["checkpoint_interval"], "B/day",
               f"{COMMITS_PER_DAY / 100:.1f} checkpoints x {human_bytes(ck_model)}"),
        Figure("tombstone_bytes", "checkpoint bytes per tombstone (file removed by "
               "compaction, within retention)", per_tomb, "B/tombstone",
               f"checkpoint after maintain of {n:,} files: {after:,} B"),
        Figure("open_per_commit_no_checkpoint", "open time per commit replayed (no "
               "checkpoint)", o_slope * 1000, "ms/commit",
               f"linear fit over {', '.join(f'{n:,}: {t * 1000:,.0f} ms' for n, t in open_nock)}",
               (o0 + o_slope * COMMITS_PER_DAY) * 1000, "ms after one day without a "
               "checkpoint", f"{COMMITS_PER_DAY:,.0f} commits"),
        Figure("open_per_file_checkpoint", "open time per live file (from a checkpoint)",
               c_slope * 1e6, "µs/file",
               f"linear fit over {', '.join(f'{f:,}: {t * 1000:,.1f} ms' for f, t in open_ck)}",
               open_model * 1000, "ms at the end of a day",
               f"{live_model:,.0f} live files x {c_slope * 1e6:.2f} µs + "
               f"{tombs_model:,.0f} tombstones x {open_per_tomb * 1e6:.2f} µs"),
        Figure("commit_per_file", "commit latency per live file (each write loads the "
               "table state first)", l_slope * 1e6, "µs/file",
               f"linear fit over {', '.join(f'{n:,}: {t * 1000:,.0f} ms' for n, t in latency)}",
               (l0 + l_slope * live_model) * 1000, "ms per commit at the end of a day",
               f"{live_model:,.0f} live files (tombstones not counted)"),
        Figure("open_per_tombstone", "open time per tombstone (from a checkpoint)",
               open_per_tomb * 1e6, "µs/tombstone",
               f"{n:,}-commit table after maintain: {t_after * 1000:,.1f} ms with {live} live "
               f"file(s) and {n:,} tombstones"),
    ]
    sec.data.update(maintain_seconds=t_maintain, after_maintain_open=t_after,
                    after_maintain_ckpt=after, tombstone_bytes=per_tomb)
    return sec


def _commit_latency(run: Run, root: Path, commits: tuple[int, ...]
                    ) -> list[tuple[int, float]]:
    """Median latency of one more append to each checkpointed variant (hard-linked copies,
    so the variants measured for open time stay as they were), variants taken in turn."""
    from deltalake import DeltaTable

    lakes = {}
    for n in commits:
        lake = root / f"n{n}" / "append"
        hardlink_tree(root / f"n{n}" / "ckpt", lake)
        lakes[n] = lake
    samples: dict[int, list[float]] = {n: [] for n in commits}
    first_us = int(datetime(2024, 6, 6, tzinfo=UTC).timestamp()) * 10**6
    for rep in range(2 * run.sizes.open_reps):
        for n, lake in lakes.items():
            data = ticks_frame(run.sizes.rows_per_commit, first_us + rep * 15_000_000,
                               seed=rep, day=DAY + timedelta(days=3))
            t0 = time.perf_counter()
            commit(str(lake), "ticks", data, 1_000_000 + rep)
            samples[n].append(time.perf_counter() - t0)
    out = []
    for n, lake in lakes.items():
        out.append((len(DeltaTable(str(lake / "ticks")).file_uris()) - 2 * run.sizes.open_reps,
                    statistics.median(samples[n])))
        shutil.rmtree(lake)
    return out


def _need(run: Run, key: str) -> Any:
    raise RuntimeError(f"section needs '{key}' from an earlier section (run them together)")


def partitions_after_compaction(run: Run) -> Section:
    """Files and bytes of one (market, date) partition of ``ticks`` after ``btlake maintain``,
    for several ticks/day rates, built as a day of appends builds it."""
    from deltalake import DeltaTable

    from btlake_pipelines.storage.delta import writer_properties
    from btlake_pipelines.storage.maintenance import maintain

    s = run.sizes
    sec = Section("partition", "Files and bytes per (market, date) partition after compaction")
    root = run.fresh("scale-partition")
    sec.table.append(["ticks in the partition", "files before", "files after maintain",
                      "bytes after", "bytes/tick", "files at a 1/25 target size (rule check)"])
    points = []
    for rate in s.partition_rates:
        lake = root / f"r{rate}"
        per = rate // s.partition_appends
        start = int(datetime(2024, 6, 3, 13, 30, tzinfo=UTC).timestamp()) * 10**6
        span = int(6.5 * 3600e6) // s.partition_appends
        run.log(f"  partition of {rate:,} ticks in {s.partition_appends} appends")
        for i in range(s.partition_appends):
            commit(str(lake), "ticks", ticks_frame(per, start + i * span, seed=i,
                                                   span_us=span), i)
        before = len(DeltaTable(str(lake / "ticks")).file_uris())
        check = root / f"r{rate}-rule"
        hardlink_tree(lake, check)
        maintain(str(lake), tables=["ticks"], partitions=[("XNAS", DAY)])
        dt = DeltaTable(str(lake / "ticks"))
        adds = dt.get_add_actions(flatten=True)
        sizes = adds.column("size_bytes").to_pylist()
        total = int(sum(sizes))
        # the same compaction with the target size scaled down: files = ceil(bytes / target)
        small_target = max(1, int(MODEL["target_file_bytes"] / 25))
        rule_dt = DeltaTable(str(check / "ticks"))
        schema = pa.schema(rule_dt.schema().to_arrow())
        rule_dt.optimize.z_order(["symbol", "ts"], target_size=small_target,
                                 writer_properties=writer_properties("ticks", schema))
        rule_files = len(DeltaTable(str(check / "ticks")).file_uris())
        shutil.rmtree(check, ignore_errors=True)
        n = per * s.partition_appends
        points.append((n, total))
        sec.table.append([f"{n:,}", str(before), str(len(sizes)), f"{total:,}",
                          f"{total / n:.2f}", f"{rule_files} (expected "
                          f"{math.ceil(total / small_target)})"])
        shutil.rmtree(lake, ignore_errors=True)
    b0, per_tick = fit([p[0] for p in points], [p[1] for p in points])
    sec.notes.append(
        "Each partition is written as a day of ingestion writes it (appends through btlake's "
        "writer, 250 symbols, ticks in arrival order), then compacted by `btlake maintain` "
        "for that (market, date): Z-order by (symbol, ts) into files of deltalake's default "
        "target size (100 MiB, `delta.targetFileSize`). The last column runs the same "
        "Z-order with the target divided by 25, to check that files per partition follow "
        "ceil(bytes / target) at a size this machine can build.")
    rates = [1_000_000, 10_000_000, 100_000_000]
    for r in rates:
        size = b0 + per_tick * r
        files = max(1, math.ceil(size / MODEL["target_file_bytes"]))
        sec.figures.append(Figure(
            f"partition_{r // 1_000_000}m", f"one partition at {r / 1e6:g}M ticks/day after "
            "compaction", per_tick, "B/tick",
            f"linear fit over {', '.join(f'{p[0]:,}' for p in points)} ticks",
            size, "B per partition",
            f"{files} file(s) per partition; {PARTITIONS:,.0f} partitions "
            f"({int(MODEL['markets'])} markets x {int(MODEL['years'])} years x "
            f"{int(MODEL['trading_days_per_year'])} days): {human_bytes(size * PARTITIONS)}, "
            f"{files * PARTITIONS:,.0f} files"))
    sec.data.update(points=points, bytes_per_tick=per_tick, intercept=b0)
    return sec


def dagster_partitions(run: Run) -> Section:
    """Partitions per asset, read from the code location's definitions."""
    from dagster import (
        DynamicPartitionsDefinition,
        MultiPartitionsDefinition,
        StaticPartitionsDefinition,
        TimeWindowPartitionsDefinition,
    )

    from btlake_pipelines.definitions import defs

    sec = Section("dagster_partitions", "Dagster partitions per asset")
    years = int(MODEL["dagster_years"])
    markets = int(MODEL["markets"])
    start, end = f"{2026 - years}-01-01", "2026-01-01"

    def count(pd: Any) -> tuple[int, str]:
        if isinstance(pd, MultiPartitionsDefinition):
            total, parts = 1, []
            for dim in pd.partitions_defs:
                c, how = count(dim.partitions_def)
                total *= c
                parts.append(f"{dim.name}: {how}")
            return total, " x ".join(parts)
        if isinstance(pd, TimeWindowPartitionsDefinition):
            span = TimeWindowPartitionsDefinition(start=start, end=end,
                                                  cron_schedule=pd.cron_schedule, fmt=pd.fmt,
                                                  timezone=pd.timezone)
            c = len(span.get_partition_keys())
            return c, f"{c:,} ({type(pd).__name__.replace('PartitionsDefinition', '')})"
        if isinstance(pd, DynamicPartitionsDefinition):
            return markets, f"{markets} (dynamic)"
        if isinstance(pd, StaticPartitionsDefinition):
            c = len(pd.get_partition_keys())
            return c, f"{c} (static)"
        raise TypeError(type(pd).__name__)

    sec.table.append(["asset", "partitions over 20 years x 40 markets", "dimensions"])
    counts = {}
    for spec in sorted(defs.resolve_all_asset_specs(), key=lambda s: s.key.to_user_string()):
        if spec.partitions_def is None:
            continue
        c, how = count(spec.partitions_def)
        counts[spec.key.to_user_string()] = c
        sec.table.append([spec.key.to_user_string(), f"{c:,}", how])
    worst = max(counts.values())
    sec.data["counts"] = counts
    sec.notes.append(
        f"Read from `btlake_pipelines.definitions` (the code location): each asset's "
        f"partitions definition, its time dimension counted from {start} to {end}, the "
        f"dynamic `market` dimension taken as {markets}. Dagster's UI slows above about "
        "25,000 partitions per asset and freezes near 40,000 (TRAPS.md).")
    sec.figures.append(Figure(
        "dagster_partitions", "Dagster partitions of the largest asset", worst, "partitions",
        f"{', '.join(f'{k} {v:,}' for k, v in counts.items())}",
        worst, "partitions per asset", f"{years} years x {markets} markets; bound 25,000"))
    return sec


def dagster_event_log(run: Run) -> Section:
    """Event-log records of real ingestion runs (ephemeral instance), and rows and bytes per
    run on a real PostgreSQL server when one can be started."""
    from dagster import DagsterInstance

    sec = Section("event_log", "Dagster event log per ingestion run")
    root = run.fresh("scale-dagster")
    shapes = [("1 backtest bundle", 1, 0), ("8 backtest bundles (2 markets, 2 days)", 8, 0),
              ("1 market-data bundle (1 market, 2 days)", 0, 1)]
    sec.table.append(["run", "event-log records", "of which materializations",
                      "asset check evaluations", "log messages", "other events"])
    points = []
    with DagsterInstance.ephemeral() as instance:
        for i, (label, backtests, feeds) in enumerate(shapes):
            records = _one_ingest_run(root / f"run-{i}", instance, backtests, feeds)
            mats = records.get("ASSET_MATERIALIZATION", 0)
            checks = records.get("ASSET_CHECK_EVALUATION", 0)
            logs = records.get("(log message)", 0)
            total = sum(records.values())
            points.append((mats, total))
            sec.table.append([label, str(total), str(mats), str(checks), str(logs),
                              str(total - mats - checks - logs)])
            sec.data.setdefault("records", {})[label] = records
    base, per_mat = fit([p[0] for p in points], [p[1] for p in points])
    sec.notes.append(
        "`ingest_job.execute_in_process` on an ephemeral instance, as "
        "tests/orchestration/test_jobs.py runs it; every record of the run counted by type "
        "(`instance.all_logs`). A run launched by the sensor through the queued run "
        "coordinator adds its queueing events (enqueued, dequeued, starting: 3 records).")
    per_run = base + 3 + per_mat * 4  # a typical batch: 4 tables x 1 partition
    runs_day = COMMITS_PER_DAY
    sec.figures.append(Figure(
        "event_records_per_run", "event-log records per ingestion run", per_mat,
        "records per partition materialized",
        f"fit over {', '.join(f'{m} materializations: {t}' for m, t in points)}: "
        f"{base:.0f} fixed + {per_mat:.1f} per materialization",
        per_run * runs_day, "records/day",
        f"{per_run:.0f} records per run (4 partitions) x {runs_day:,.0f} runs/day (one per "
        "sensor tick)"))
    if run.sizes.postgres:
        try:
            _postgres_bytes(run, root, sec)
        except Exception as exc:  # no server binaries, no permission: say so, go on
            sec.notes.append(f"PostgreSQL measurement skipped: {type(exc).__name__}: {exc}")
    return sec


def _one_ingest_run(root: Path, instance: Any, backtests: int, feeds: int, first: int = 0
                    ) -> dict[str, int]:
    """One ``ingest_job`` run over new bundles (``first``: index of the first backtest, so
    runs into the same lake get new run ids); its event-log records by type."""
    from bench import market_data
    from btlake_pipelines.defs.jobs import ingest_job
    from btlake_pipelines.defs.resources import LakeResource, LandingZoneResource
    from btlake_pipelines.demo import synthetic_backtest, write_bundle

    lake, landing = root / "lake", root / "landing"
    names = []
    for i in range(first, first + backtests):
        # runs 0-3 are one market, 4-7 the next; even runs on the first day
        manifest, tables = synthetic_backtest(
            i, seed=3, n_trades=20, n_equity=60,
            created_at=datetime(2024, 11, 4 + i % 2, 12, tzinfo=UTC))
        write_bundle(landing / manifest["run_id"], manifest, tables)
        names.append(manifest["run_id"])
    for f in range(feeds):
        market_data.write_feed_bundle(landing, f"feed-{f}", rows=5_000, days=2, symbols=20,
                                      start=date(2024, 11, 4))
        names.append(f"feed-{f}")
    result = ingest_job.execute_in_process(
        run_config={"ops": {"ingest_bundles": {"config": {"bundles": names}}},
                    "loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        resources={"lake": LakeResource(uri=str(lake)),
                   "landing": LandingZoneResource(uri=str(landing))}, instance=instance)
    if not result.success:
        raise RuntimeError("ingest_job failed")
    out: dict[str, int] = {}
    for entry in instance.all_logs(result.run_id):
        kind = entry.dagster_event.event_type_value if entry.dagster_event else "(log message)"
        out[kind] = out.get(kind, 0) + 1
    return out


def _postgres_bytes(run: Run, root: Path, sec: Section) -> None:
    """Rows and bytes each table of a PostgreSQL instance gains per ingestion run."""
    sys.path.insert(0, str(ROOT))
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    from tests.orchestration import postgres_server  # a throwaway server, as the tests use

    n = run.sizes.dagster_runs_pg
    run.log(f"  {n} ingestion runs on a PostgreSQL instance")
    with postgres_server.running_postgres() as settings:
        saved = {k: os.environ.get(k) for k in settings}
        os.environ.update(settings)
        try:
            import psycopg2

            conn = psycopg2.connect(host=settings["DAGSTER_PG_HOST"],
                                    port=settings["DAGSTER_PG_PORT"],
                                    user=settings["DAGSTER_PG_USER"],
                                    password=settings["DAGSTER_PG_PASSWORD"],
                                    dbname=settings["DAGSTER_PG_DB"])
            conn.autocommit = True
            ref = InstanceRef.from_dir(str(root / "pg-home"),
                                       config_dir=str(ROOT / "dagster_home" / "postgres"))
            with DagsterInstance.from_ref(ref) as instance:
                # one lake and landing zone, as the code location's resources are: the job
                # snapshot is stored once, as for runs the sensor launches
                _one_ingest_run(root / "pg", instance, 1, 0, first=100)  # tables, markets
                before = _pg_tables(conn)
                for i in range(n):
                    _one_ingest_run(root / "pg", instance, 1, 0, first=101 + i)
                after = _pg_tables(conn)
            conn.close()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    sec.data["postgres"] = {"runs": n, "before": before, "after": after}
    rows = [[t, f"{(after[t][0] - before.get(t, (0, 0))[0]) / n:,.1f}",
             f"{(after[t][1] - before.get(t, (0, 0))[1]) / n:,.0f}"]
            for t in sorted(after) if after[t] != before.get(t)]
    total_bytes = sum(after[t][1] - before.get(t, (0, 0))[1] for t in after) / n
    ev_rows = (after["event_logs"][0] - before["event_logs"][0]) / n
    ev_bytes = (after["event_logs"][1] - before["event_logs"][1]) / n
    sec.data["postgres_rows"] = rows
    sec.notes.append(
        f"On PostgreSQL (dagster_home/postgres/dagster.yaml, a throwaway server), {n} runs "
        "of one backtest bundle each, after one warm-up run; rows and bytes "
        "(`pg_total_relation_size`: table, indexes, TOAST) gained per run:\n\n"
        "| table | rows per run | bytes per run |\n|---|---|---|\n"
        + "\n".join(f"| {r[0]} | {r[1]} | {r[2]} |" for r in rows))
    sec.figures.append(Figure(
        "postgres_bytes_per_run", "PostgreSQL bytes per ingestion run (all tables)",
        total_bytes, "B/run", f"{n} runs: event_logs {ev_rows:,.1f} rows, "
        f"{ev_bytes:,.0f} B per run ({ev_bytes / max(ev_rows, 1):,.0f} B per row)",
        total_bytes * COMMITS_PER_DAY, "B/day",
        f"{COMMITS_PER_DAY:,.0f} runs/day; x 365 x {int(MODEL['years'])} years: "
        f"{human_bytes(total_bytes * COMMITS_PER_DAY * 365 * MODEL['years'])} unless purged"))


def _pg_tables(conn: Any) -> dict[str, tuple[int, int]]:
    with conn.cursor() as cur:
        cur.execute("SELECT relname FROM pg_stat_user_tables")
        names = [r[0] for r in cur.fetchall()]
        out = {}
        for name in names:
            cur.execute(f'SELECT count(*), pg_total_relation_size(\'"{name}"\') FROM "{name}"')
            rows, size = cur.fetchone()
            out[name] = (int(rows), int(size))
    return out


def catalog_memory(run: Run) -> Section:
    """Memory a long-lived catalog holds for the ``runs`` table, per run."""
    sec = Section("catalog", "Catalog memory per run")
    root = run.fresh("scale-catalog")
    s = run.sizes
    how = "generated with bench/data.py's runs generator (the ingested schema)"
    try:
        lakes = _generated_runs_lakes(root, s.runs)
    except Exception as exc:
        run.log(f"  bench/data.py cannot build this runs layout ({type(exc).__name__}); "
                "ingesting small real bundles instead")
        how = (f"ingested from real small backtest bundles (bench/data.py's generator failed: "
               f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]})")
        lakes = _ingested_runs_lakes(run, root, s.runs_ingested)
    sec.table.append(["runs", "resident memory held by the catalog", "load time",
                      "runs table on disk", "process peak"])
    points = []
    warm = str(_warm_lake(run, root))
    for n, lake in lakes:
        doc = _catalog_probe(lake, warm)
        disk = sum(f.stat().st_size for f in (Path(lake) / "runs").rglob("*") if f.is_file())
        points.append((n, doc["held"]))
        sec.table.append([f"{n:,}", mib(doc["held"]), f"{doc['seconds'] * 1000:,.0f} ms",
                          mib(disk), mib(doc["peak"])])
        sec.data.setdefault("points", []).append({"runs": n, **doc, "disk": disk})
    b0, per_run = fit([p[0] for p in points], [p[1] for p in points])
    n_last = lakes[-1][0]
    cols = sorted(doc["columns"].items(), key=lambda kv: -kv[1])
    plain = sum(v for _, v in cols)
    data_per_run = (plain + doc["long"]) / n_last
    sec.notes.append(
        f"Of the {doc['held'] / n_last:,.0f} B per run held at {n_last:,} runs, the plain "
        f"columns (one frame per segment, polars' `estimated_size`) take {plain / n_last:,.0f}"
        " B (" + ", ".join(f"`{k}` {v / n_last:,.0f}" for k, v in cols[:6]) + ", ...) and "
        f"the long tables of params and metrics {doc['long'] / n_last:,.0f} B; the rest is "
        "memory the allocators keep after the load (it stays resident: `malloc_trim` and "
        "Arrow's `release_unused` return under 10% of it).")
    sec.notes.append(
        f"Runs {how}. Measured in a fresh process that first loads a 4-run lake (so lazy "
        "imports and first allocations are not counted): resident memory before and after "
        "`Catalog(lake).runs_index()` (the whole `runs` table in memory, as a long-lived "
        "`Lake` and `btlake serve` hold it). The difference is what the catalog holds, "
        "including memory the allocator keeps from the load's transient copies; peak = the "
        "process's high-water mark (`VmHWM`, the warm-up load included).")
    sec.figures.append(Figure(
        "catalog_bytes_per_run", "catalog memory per run", per_run, "B/run",
        f"linear fit over {', '.join(f'{n:,}: {mib(b)}' for n, b in points)}",
        b0 + per_run * MODEL["runs"], "B at 10M runs", f"{MODEL['runs']:,.0f} runs"))
    sec.figures.append(Figure(
        "catalog_data_bytes_per_run", "catalog data per run (columns + long tables, without "
        "allocator overhead)", data_per_run, "B/run", f"at {n_last:,} runs",
        data_per_run * MODEL["runs"], "B at 10M runs", f"{MODEL['runs']:,.0f} runs"))
    return sec


def _warm_lake(run: Run, root: Path) -> Path:
    """A 4-run lake, ingested from real bundles: loaded first by the catalog probe."""
    from btlake_pipelines.demo import synthetic_backtest, write_bundle
    from btlake_pipelines.ingest.batch import ingest
    from btlake_pipelines.landing.local import LocalLandingZone

    lake, landing = root / "warm", root / "warm-landing"
    for i in range(4):
        manifest, tables = synthetic_backtest(i, seed=1, n_trades=5, n_equity=10,
                                              created_at=datetime(2023, 1, 2, tzinfo=UTC))
        write_bundle(landing / manifest["run_id"], manifest, tables)
    ingest(str(lake), LocalLandingZone(str(landing)))
    return lake


def _generated_runs_lakes(root: Path, sizes: tuple[int, ...]) -> list[tuple[int, str]]:
    from bench import data

    schema = data.real_runs_schema(root)
    out = []
    for n in sizes:
        lake = root / f"runs-{n}"
        data.write_runs_lake(lake, data.runs_frame(n, schema=schema))
        out.append((n, str(lake)))
    return out


def _ingested_runs_lakes(run: Run, root: Path, sizes: tuple[int, ...]
                         ) -> list[tuple[int, str]]:
    from btlake_pipelines.demo import synthetic_backtest, write_bundle
    from btlake_pipelines.ingest.batch import ingest
    from btlake_pipelines.landing.local import LocalLandingZone

    out = []
    lake, landing = root / "runs-ingested", root / "landing"
    done = 0
    for n in sorted(sizes):
        run.log(f"  ingesting backtest bundles up to {n:,} runs")
        while done < n:
            chunk = min(500, n - done)
            for i in range(done, done + chunk):
                manifest, tables = synthetic_backtest(
                    i, seed=12, n_trades=5, n_equity=10,
                    created_at=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=i))
                manifest = {**manifest, "run_id": f"scale-{i:07d}"}
                write_bundle(landing / manifest["run_id"], manifest, tables)
            batch = ingest(str(lake), LocalLandingZone(str(landing)))
            if batch.quarantined:
                raise RuntimeError(batch.summary())
            done += chunk
        snap = root / f"runs-{n}"
        hardlink_tree(lake, snap)
        out.append((n, str(snap)))
    return out


CATALOG_PROBE = """
import json, os, sys, time
import polars, pyarrow, deltalake
from btlake_pipelines.storage.catalog import Catalog
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
Catalog(sys.argv[2]).runs_index()  # every lazy import and first allocation, not counted
before = status("VmRSS")
t0 = time.perf_counter()
index = Catalog(sys.argv[1]).runs_index()
seconds = time.perf_counter() - t0
held = status("VmRSS") - before
columns, long = {}, 0
for seg in getattr(index, "segments", []):
    for name in seg.frame.columns:
        columns[name] = columns.get(name, 0) + seg.frame.get_column(name).estimated_size()
    for grouped in [*seg.params.values(), seg.metrics]:
        for slot in getattr(grouped, "__slots__", ()):
            value = getattr(grouped, slot, None)
            for v in (value if isinstance(value, tuple) else (value,)):
                size = getattr(v, "nbytes", None)
                if size is None and hasattr(v, "estimated_size"):
                    size = v.estimated_size()
                long += size if isinstance(size, int) else 0
sys.stdout.write(json.dumps({"held": held, "seconds": seconds, "peak": status("VmHWM"),
                             "columns": columns, "long": long}))
sys.stdout.flush()
os._exit(0)
"""


def _catalog_probe(lake: str, warm: str) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", CATALOG_PROBE, lake, warm],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-500:])
    return json.loads(proc.stdout)


SECTIONS: dict[str, Callable[[Run], Section]] = {
    "delta_log": delta_log,
    "open": log_open,
    "partition": partitions_after_compaction,
    "dagster_partitions": dagster_partitions,
    "event_log": dagster_event_log,
    "catalog": catalog_memory,
}


# --- the command -------------------------------------------------------------------------------


def run_scale(*, quick: bool, out: str | None = None, work: str | None = None,
              only: str | None = None, log: Callable[[str], None] = print) -> int:
    started = time.time()
    sizes = QUICK if quick else FULL
    run = Run(sizes, quick, Path(work) if work else WORK / ("quick" if quick else "full"), log)
    selected = [c.strip() for c in only.split(",")] if only else list(SECTIONS)
    unknown = [c for c in selected if c not in SECTIONS]
    if unknown:
        log(f"unknown section(s): {', '.join(unknown)}")
        return 2
    if "open" in selected and "delta_log" not in selected:
        selected.insert(selected.index("open"), "delta_log")
    sections = []
    for key in selected:
        log(f"scale {key}")
        t0 = time.perf_counter()
        try:
            sec = SECTIONS[key](run)
        except Exception as exc:
            import traceback

            traceback.print_exc()
            sec = Section(key, key, error=f"{type(exc).__name__}: {exc}")
        sec.seconds = time.perf_counter() - t0
        for f in sec.figures:
            log(f"  {f.key}: {f.slope:,.3g} {f.unit}"
                + (f" -> {f.model:,.4g} {f.model_unit}" if f.model is not None else ""))
        log(f"  {sec.seconds:.0f} s")
        sections.append(sec)
    path = write(Path(out or RESULTS), sections, quick, time.time() - started)
    log(f"wrote {path}")
    return 1 if any(s.error for s in sections) else 0


def write(out: Path, sections: list[Section], quick: bool, seconds: float) -> Path:
    from bench.report import machine, versions

    out.mkdir(parents=True, exist_ok=True)
    mach = machine()
    mode = "quick (smoke sizes: no meaning)" if quick else "full"
    lines = [
        "# btlake scale model: measured slopes",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        f"`.venv/bin/python -m bench scale{' --quick' if quick else ''}` in "
        f"{seconds / 60:.1f} min; mode: **{mode}**. Machine: {mach.get('cpu', '?')}, "
        f"{mach.get('cores')} cores, {mach.get('memory_gib', '?')} GiB (shared); btlake "
        f"commit {mach.get('git', '?')}; deltalake {versions().get('deltalake')}, dagster "
        f"{versions().get('dagster')}.",
        "",
        "Model: " + ", ".join(f"{k.replace('_', ' ')} {v:,g}" for k, v in MODEL.items())
        + f"; so {COMMITS_PER_DAY:,.0f} commits per table per day and {PARTITIONS:,.0f} "
        "(market, date) partitions per market-data table. The prose is in docs/SCALE.md.",
        "",
        "## Figures",
        "",
        "| key | figure | slope | measured | at the model's size | how |",
        "|---|---|---|---|---|---|",
    ]
    for sec in sections:
        for f in sec.figures:
            model = "" if f.model is None else (
                f"{human_bytes(f.model)}{f.model_unit[1:]}" if f.model_unit.startswith("B")
                else f"{_num(f.model)} {f.model_unit}")
            lines.append(f"| `{f.key}` | {f.what} | {_num(f.slope)} {f.unit} | {f.evidence} "
                         f"| {model} | {f.model_how} |")
    for sec in sections:
        lines += ["", f"## {sec.key}: {sec.title}", ""]
        if sec.error:
            lines += [f"**The section failed:** `{sec.error}`", ""]
        if sec.table:
            head, *body = sec.table
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(r) + " |" for r in body]
            lines.append("")
        batch = sec.data.get("batch") if sec.key == "delta_log" else None
        if batch:
            lines += ["Commits of one real ingestion batch (2 backtest bundles + 1 market-data "
                      "bundle, the second batch into the lake):", "",
                      "| table | commits | log bytes |", "|---|---|---|"]
            lines += [f"| {t} | {b['commits']} | {b['bytes']:,} |" for t, b in batch.items()]
            lines.append("")
        for note in sec.notes:
            lines += [note, ""]
        lines += [f"_section time: {sec.seconds:.0f} s_"]
    md = out / "scale.md"
    md.write_text("\n".join(lines) + "\n")
    doc = {"mode": "quick" if quick else "full", "seconds": seconds, "machine": mach,
           "versions": versions(), "model": MODEL,
           "sections": [{**asdict(s), "figures": [asdict(f) for f in s.figures]}
                        for s in sections]}
    (out / "scale.json").write_text(json.dumps(doc, indent=1, default=str))
    return md


def _num(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e12:
        return f"{v / 1e12:,.2f} T"
    if a >= 1e9:
        return f"{v / 1e9:,.2f} G"
    if a >= 1e6:
        return f"{v / 1e6:,.2f} M"
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:,.2f}"
    return f"{v:.3g}"
