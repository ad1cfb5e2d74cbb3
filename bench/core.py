"""What every case shares: sizes, the work folder, the peers, and the shape of a result."""

from __future__ import annotations

import cProfile
import io
import pstats
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.timing import Stats

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"
RESULTS = BENCH / "results"


@dataclass(frozen=True)
class Sizes:
    """Every size the issue states (full) and the smoke variant's (quick)."""

    ingest_rows: int = 10_000_000
    ingest_days: int = 5
    markets: tuple[str, ...] = ("XNAS", "XNYS", "BINANCE", "CME")
    symbols_per_market: int = 4
    bundles: int = 2_000
    bundle_trades: int = 500
    bundle_equity: int = 2_500
    batch_size: int = 500
    search_runs: int = 1_000_000
    mlflow_top_runs: int = 10_000
    read_runs: int = 100_000
    read_trades_per_run: int = 100
    slice_days: int = 20
    slice_rows: int = 20_000_000
    sensor_handled: int = 100_000
    sensor_new: int = 10
    appends: int = 1_000
    append_rows: int = 100  # a small append: a few seconds of one feed
    http_runs: int = 1_000_000
    #: one market-data bundle each, ingested by the CLI for its peak memory
    memory_rows: tuple[int, ...] = (5_000_000, 10_000_000, 50_000_000)
    memory_days: int = 5
    memory_symbols: int = 250
    memory_cap_gib: float = 6.0  # an ingest tree past this is killed (a shared machine)
    #: distinct (symbol, date) slices in one bundle, and ticks per slice
    slice_counts: tuple[int, ...] = (1_000, 10_000, 200_000)
    ticks_per_slice: int = 5
    slice_reps: int = 3
    reps: int = 5  # heavy cases (ingest): the minimum
    query_reps: int = 21  # fast queries: more samples are cheap
    mlflow_timeout: float = 120.0


FULL = Sizes()
QUICK = Sizes(
    ingest_rows=60_000, ingest_days=2, bundles=24, bundle_trades=50, bundle_equity=200,
    batch_size=10, search_runs=5_000, mlflow_top_runs=500, read_runs=400, read_trades_per_run=20,
    slice_days=3, slice_rows=120_000, sensor_handled=300, sensor_new=10, appends=20,
    append_rows=200, http_runs=5_000, memory_rows=(20_000, 40_000, 100_000), memory_days=2,
    memory_symbols=20, slice_counts=(100, 400, 2_000), slice_reps=1, reps=2, query_reps=3,
    mlflow_timeout=60.0,
)


@dataclass
class Row:
    """One contender of a case: a timing (``stats``) or a plain value (``value``)."""

    label: str
    stats: Stats | None = None
    per: float | None = None  # items per sample, for throughput
    per_unit: str = "rows"
    value: float | None = None
    value_unit: str = ""
    note: str = ""
    btlake: bool = False

    def throughput(self) -> float | None:
        if self.stats is None or not self.per or not self.stats.samples:
            return None
        return self.per / self.stats.median

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "stats": self.stats.to_json() if self.stats else None,
                "per": self.per, "per_unit": self.per_unit, "throughput": self.throughput(),
                "value": self.value, "value_unit": self.value_unit, "note": self.note,
                "btlake": self.btlake}


@dataclass
class Target:
    """A target of the issue: what was asked, what was measured, and whether it was met."""

    text: str
    measured: float | None
    unit: str  # "x" for ratios, "ms", "s", "B/row", "bundles/s", ...
    met: bool | None
    #: For the chart: a speed ratio btlake / peer (> 1 = btlake faster), when this is one.
    chart: float | None = None
    chart_label: str = ""

    def shown(self) -> str:
        if self.measured is None:
            return "not measured"
        v = self.measured
        if self.unit == "x":
            return f"{v:.2f}x"
        if self.unit == "ms":
            return f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"
        if self.unit == "s":
            return f"{v:.2f} s"
        return f"{v:,.1f} {self.unit}" if v < 1000 else f"{v:,.0f} {self.unit}"

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "measured": self.measured, "unit": self.unit,
                "met": self.met, "chart": self.chart, "chart_label": self.chart_label,
                "shown": self.shown()}


@dataclass
class CaseResult:
    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "rows": [r.to_json() for r in self.rows],
                "targets": [t.to_json() for t in self.targets], "notes": self.notes,
                "profile": self.profile, "error": self.error, "seconds": self.seconds}


class Context:
    def __init__(self, sizes: Sizes, quick: bool, peer_problems: dict[str, str],
                 log: Callable[[str], None], work: Path | None = None) -> None:
        self.sizes = sizes
        self.quick = quick
        self.peer_problems = peer_problems
        self.log = log
        self.work = work or WORK / ("quick" if quick else "full")
        self.work.mkdir(parents=True, exist_ok=True)
        self._worker = None
        self.shared: dict[str, Any] = {}  # data one case leaves for a later one

    def has_peer(self, name: str) -> bool:
        return name not in self.peer_problems

    def peer_note(self, name: str) -> str:
        return f"{name} not available: {self.peer_problems.get(name, '?')}"

    @property
    def worker(self):
        from bench.peers import Worker

        if self._worker is None or self._worker.proc.poll() is not None:
            self._worker = Worker()
        return self._worker

    def restart_worker(self) -> None:
        if self._worker is not None:
            self._worker.kill()
        self._worker = None

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def fresh_dir(self, *parts: str) -> Path:
        path = self.work.joinpath(*parts)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path


def profile_top(fn: Callable[[], Any], limit: int = 14) -> tuple[Any, str]:
    """Run ``fn`` under cProfile; the top functions by cumulative time, as text."""
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    try:
        out = fn()
    finally:
        prof.disable()
    total = time.perf_counter() - t0
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats("cumulative")
    rows = []
    for func, (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        filename, line, name = func
        short = _short_path(filename)
        rows.append((ct, tt, nc, f"{short}:{line}({name})"))
    rows.sort(reverse=True)
    keep = [r for r in rows if "btlake_pipelines" in r[3] or "polars" in r[3]
            or "deltalake" in r[3] or "{" in r[3] or "pyarrow" in r[3] or "pandera" in r[3]]
    lines = [f"cProfile, wall {total:.2f} s; top {limit} by cumulative time",
             f"{'cum s':>8} {'own s':>8} {'calls':>7}  function"]
    for ct, tt, nc, name in keep[:limit]:
        lines.append(f"{ct:8.3f} {tt:8.3f} {nc:7d}  {name}")
    return out, "\n".join(lines)


def _short_path(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename if filename.startswith("{") or filename == "~" else Path(filename).name


def python_exe() -> str:
    return sys.executable
