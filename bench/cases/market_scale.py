"""Market data at scale: peak memory of ``btlake ingest`` as one bundle grows, and ingest time
as the number of slices in one bundle grows.

Both run the ingester in a separate process: memory is a property of the ingesting process
tree (``bench/procmem.py``), and a bundle that crashes or exhausts its ingester must end one
measurement, not the bench.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

from bench import data, market_data
from bench.cases.bundles import _cached, _mark
from bench.core import CaseResult, Context, Row, Target
from bench.procmem import Usage, run_measured
from bench.timing import Stats

GIB = 2**30
MIB = 2**20


def _btlake_exe() -> str:
    return str(Path(sys.executable).parent / "btlake")


def feed_bundle(ctx: Context, rows: int) -> Path:
    """The template landing holding one ``rows``-tick bundle (cached under the work folder)."""
    s = ctx.sizes
    root = ctx.work / "feeds" / str(rows)
    key = {"rows": rows, "days": s.memory_days, "symbols": s.memory_symbols, "v": 1}
    if not _cached(root, key):
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        ctx.log(f"  generating a {rows:,}-tick bundle")
        market_data.write_feed_bundle(root / "template", f"feed-{rows}", rows=rows,
                                      days=s.memory_days, symbols=s.memory_symbols)
        _mark(root, key)
    return root / "template"


def ingest_memory(ctx: Context) -> CaseResult:
    s = ctx.sizes
    sizes = s.memory_rows
    res = CaseResult("ingest_memory", "Peak memory of `btlake ingest`: one market-data bundle of "
                     + ", ".join(f"{n / 1e6:g}M" for n in sizes) + " ticks")
    cap = int(s.memory_cap_gib * GIB)
    root = ctx.fresh_dir("memory")
    usage: dict[int, Usage] = {}
    for rows in sizes:
        template = feed_bundle(ctx, rows)
        landing, lake = root / "landing", root / "lake"
        shutil.rmtree(lake, ignore_errors=True)
        data.copy_bundles(template, landing)
        size_mb = (template / f"feed-{rows}" / "ticks.parquet").stat().st_size / 1e6
        ctx.log(f"  btlake ingest of {rows:,} ticks ({size_mb:,.0f} MB Parquet)")
        u = run_measured([_btlake_exe(), "--lake", str(lake), "--landing", str(landing),
                          "ingest"], cap_bytes=cap)
        usage[rows] = u
        ok = u.returncode == 0 and not u.stopped
        note = (f"{size_mb:,.0f} MB Parquet; wall {u.seconds:.1f} s"
                + (f" ({rows / u.seconds / 1e6:.2f} M rows/s)" if ok else "")
                + f"; largest process {u.max_rss_one / MIB:,.0f} MiB, tree sum sampled "
                f"{u.peak_tree / MIB:,.0f} MiB")
        if u.stopped:
            note += f"; **stopped: {u.stopped} after {u.seconds:.0f} s**"
        elif u.returncode != 0:
            note += f"; **exit {u.returncode}**: {' '.join(u.stderr.split())[-200:]}"
        res.rows.append(Row(f"btlake ingest (CLI), {rows:,} ticks: peak resident memory",
                            value=u.peak / MIB, value_unit="MiB", note=note, btlake=True))
        shutil.rmtree(lake, ignore_errors=True)
        shutil.rmtree(landing, ignore_errors=True)
    large = usage[sizes[-1]]
    peaks = [u.peak for u in usage.values()]
    spread = max(peaks) / min(peaks)
    all_ok = all(u.returncode == 0 and not u.stopped for u in usage.values())
    res.targets.append(Target(
        "flat: highest peak / lowest peak over "
        + ", ".join(f"{n / 1e6:g}M" for n in sizes) + " ticks <= 1.25x", spread, "x",
        spread <= 1.25 and all_ok))
    gib = large.peak / GIB
    res.targets.append(Target(f"{sizes[-1] / 1e6:g}M ticks within 2 GiB resident"
                              + (" (stopped at the cap: at least this)" if large.stopped else ""),
                              gib, "GiB", gib <= 2.0 and not large.stopped
                              and large.returncode == 0))
    res.notes.append(
        f"Each bundle: one market, {s.memory_symbols} symbols, {s.memory_days} sessions of 6.5 h, "
        "nanosecond timestamps in time order, each symbol's price a random walk, one Parquet "
        f"file in {market_data.ROW_GROUP:,}-row row groups (`bench/market_data.py`, generated a "
        "chunk at a time). Memory is that of the whole `btlake ingest` process tree (the CLI "
        "supervises a child that ingests): the peak shown is the larger of the kernel's "
        "`ru_maxrss` of the largest process (exact) and the sum of resident memory over the "
        "tree sampled every 20 ms. Whichever path btlake takes for a bundle of a given "
        "size (loaded whole, or streamed in pieces) is part of what is measured. A tree that "
        "passes "
        f"{s.memory_cap_gib:g} GiB is killed so that it cannot push other work on this shared "
        "machine into the OOM killer; its figure is then a lower bound.")
    return res


def slices_bundles(ctx: Context, n: int) -> Path:
    """Template landings for ``n`` slices: the bundle, and the same slices with new prices."""
    s = ctx.sizes
    root = ctx.work / "slices" / str(n)
    key = {"n": n, "per": s.ticks_per_slice, "v": 1}
    if not _cached(root, key):
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        market_data.write_slices_bundle(root / "first", f"chain-{n}", slices=n,
                                        per_slice=s.ticks_per_slice)
        market_data.write_slices_bundle(root / "changed", f"chain-{n}-v2", slices=n,
                                        per_slice=s.ticks_per_slice, bump=0.01)
        _mark(root, key)
    return root


#: Each rep sends the bundle into an empty lake, then again unchanged, then with every price
#: changed: three paths of the slice planner (append, compare only, replace every slice).
PHASES = (("new", "first", "into an empty lake"),
          ("unchanged", "first", "sent again: every slice compared, nothing written"),
          ("replaced", "changed", "every slice changed: every slice replaced"))


def ingest_slices(ctx: Context) -> CaseResult:
    s = ctx.sizes
    counts = s.slice_counts
    res = CaseResult("ingest_slices", "Ingest time by slices per bundle: one day of "
                     + ", ".join(f"{n:,}" for n in counts) + " symbols x "
                     f"{s.ticks_per_slice} ticks")
    root = ctx.fresh_dir("slices-run")
    samples: dict[tuple[int, str], list[float]] = {}
    peaks: dict[tuple[int, str], int] = {}
    for n in counts:
        templates = slices_bundles(ctx, n)
        ctx.log(f"  {n:,} slices x {s.slice_reps} reps")
        for _rep in range(s.slice_reps):
            lake = root / "lake"
            shutil.rmtree(lake, ignore_errors=True)
            for phase, source, _what in PHASES:
                landing = root / "landing"
                data.copy_bundles(templates / source, landing)
                u = run_measured([sys.executable, "-m", "bench.ingest_probe", str(lake),
                                  str(landing)], cap_bytes=int(s.memory_cap_gib * GIB))
                if u.returncode != 0 or u.stopped:
                    raise RuntimeError(f"{n:,} slices, {phase}: exit {u.returncode} "
                                       f"{u.stopped} {' '.join(u.stderr.split())[-300:]}")
                doc = json.loads(u.stdout.strip().splitlines()[-1])
                expected = {"new": "ingested", "unchanged": "unchanged",
                            "replaced": "replaced"}[phase]
                if doc["counts"][expected] != 1:
                    raise RuntimeError(f"{n:,} slices, {phase}: {doc['summary']}")
                samples.setdefault((n, phase), []).append(doc["seconds"])
                key = (n, phase)
                peaks[key] = max(peaks.get(key, 0), u.peak)
        shutil.rmtree(root / "lake", ignore_errors=True)
    for phase, _source, what in PHASES:
        for n in counts:
            st = Stats(samples[(n, phase)])
            res.rows.append(Row(f"{n:,} slices, {phase} ({what})", st, per=n,
                                per_unit="slices", btlake=True,
                                note=f"{st.median / n * 1e6:,.1f} µs/slice; peak "
                                f"{peaks[(n, phase)] / MIB:,.0f} MiB"))
        lo, hi = counts[-2], counts[-1]
        t_lo, t_hi = (Stats(samples[(lo, phase)]).median, Stats(samples[(hi, phase)]).median)
        per_ratio = (t_hi / hi) / (t_lo / lo)
        exponent = math.log(t_hi / t_lo) / math.log(hi / lo)
        res.targets.append(Target(
            f"{phase}: linear or better, time per slice at {hi:,} <= at {lo:,} "
            f"(growth exponent {exponent:.2f})", per_ratio, "x", per_ratio <= 1.0))
    res.notes.append(
        f"Bundle: one market (OPRA), one day, n symbols with exactly {s.ticks_per_slice} ticks "
        "each interleaved in time order (so exactly n slices, like an options chain). Times are "
        "those of `ingest()` inside a fresh process (`bench/ingest_probe.py`: interpreter "
        "start and imports excluded), median over reps; the targets compare the time per slice "
        "at the two largest sizes (1.0x = linear; below = better than linear), and the "
        "exponent is log(t_hi / t_lo) / log(n_hi / n_lo).")
    return res
