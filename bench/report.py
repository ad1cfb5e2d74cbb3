"""``bench/results/latest.md`` (+ ``latest.json``, ``ratios.svg``, ``ratios.png``)."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from html import escape
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.core import ROOT, CaseResult, Context, Row

PACKAGES = ("btlake", "deltalake", "polars", "pyarrow", "pandera", "numpy", "dagster",
            "fastapi", "uvicorn", "httpx")


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(),
        "cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        info["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                     capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "btlake_pipelines"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        if dirty:
            info["git"] += " (+ uncommitted changes in btlake_pipelines/)"
    except OSError:
        pass
    return info


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    return out


def _ms(seconds: float) -> str:
    if seconds != seconds:
        return "-"
    ms = seconds * 1000
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.1f} ms"
    return f"{seconds:.2f} s"


def _rate(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if value >= 1e6:
        return f"{value / 1e6:.2f} M {unit}/s"
    if value >= 1e3:
        return f"{value / 1e3:.1f} k {unit}/s"
    return f"{value:.1f} {unit}/s"


def _row_md(row: Row) -> str:
    if row.stats is None and row.value is None:
        return f"| {row.label} | - | - | - | | {row.note} |"
    if row.stats is None:
        return f"| {row.label} | {row.value:.2f} {row.value_unit} | | | | {row.note} |"
    st = row.stats
    n = f" (n={len(st.samples)})"
    return (f"| {'**' if row.btlake else ''}{row.label}{'**' if row.btlake else ''} | "
            f"{_ms(st.median)}{n} | {_ms(st.min)} | {_ms(st.max)} | "
            f"{_rate(row.throughput(), row.per_unit)} | {row.note} |")


def write(out: Path, results: list[CaseResult], ctx: Context, peer_versions: dict,
          total_seconds: float, selected: list[str]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    mach, vers = machine(), versions()
    mode = "quick (smoke sizes: not a measurement)" if ctx.quick else "full"
    chart = [(t.chart_label or t.text, t.chart, t.met) for r in results for t in r.targets
             if t.chart is not None and t.chart > 0]
    svg = out / "ratios.svg"
    svg.write_text(ratios_svg(chart))
    png = None
    if ctx.has_peer("matplotlib") and chart and not ctx.quick:
        try:
            labels = [c[0] for c in chart]
            values = [c[1] for c in chart]
            colors = [_color(c[1], c[2]) for c in chart]
            ctx.worker.call("plot_png", path=str(out / "ratios.png"), labels=labels,
                            values=values, colors=colors, title="btlake vs peers, same run")
            png = out / "ratios.png"
        except Exception as exc:
            ctx.log(f"ratios.png not written: {exc}")
        finally:
            ctx.close()

    lines = [
        "# btlake benchmark results",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        f"`.venv/bin/python -m bench run{' --quick' if ctx.quick else ''}` in "
        f"{total_seconds / 60:.1f} min; mode: **{mode}**. Every ratio below was measured in "
        "this same run, contenders interleaved rep by rep (A B C A B C ...), so a noisy "
        "neighbour hits them alike. Times are wall-clock (`time.perf_counter`): median, min "
        "and max over n samples.",
        "",
        "## Machine",
        "",
        f"- CPU: {mach.get('cpu', '?')}, {mach.get('cores')} cores; memory "
        f"{mach.get('memory_gib', '?')} GiB; {mach.get('platform')}",
        f"- Python {mach.get('python')}; load average at the end: {mach.get('load_average')} "
        "(a shared machine: other work was running)",
        f"- btlake commit: {mach.get('git', '?')}",
        "",
        "## Versions",
        "",
        "- btlake side: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        "- peers (bench/.peers-venv): " + (", ".join(
            f"{k} {v}" for k, v in peer_versions.items() if not k.endswith("_error") and v)
            or "none"),
    ]
    for name, why in ctx.peer_problems.items():
        lines.append(f"- **{name} unavailable**: {why}")
    lines += ["", "## Targets", "",
              "| case | target | measured | met |", "|---|---|---|---|"]
    for r in results:
        if r.error:
            lines.append(f"| {r.key} | (case failed) | {r.error} | **no** |")
        for t in r.targets:
            met = {True: "yes", False: "**no**", None: "-"}[t.met]
            lines.append(f"| {r.key} | {t.text} | {t.shown()} | {met} |")
    missing = [k for k in selected if k not in {r.key for r in results}]
    for k in missing:
        lines.append(f"| {k} | (not run) | | |")
    lines += ["", "Speed ratios (btlake / peer, > 1 = btlake faster; bytes: peer / btlake):",
              "", "![ratios](ratios.svg)", ""]
    if png:
        lines += ["(also as [ratios.png](ratios.png))", ""]
    for r in results:
        lines += [f"## {r.key}: {r.title}", ""]
        if r.error:
            lines += [f"**The case failed:** `{r.error}`", ""]
        if r.rows:
            lines += ["| contender | median | min | max | throughput | note |",
                      "|---|---|---|---|---|---|"]
            lines += [_row_md(row) for row in r.rows]
            lines.append("")
        for t in r.targets:
            met = {True: "met", False: "**missed**", None: "information"}[t.met]
            lines.append(f"- {t.text}: **{t.shown()}** ({met})")
        if r.targets:
            lines.append("")
        for note in r.notes:
            lines += [note, ""]
        if r.profile:
            lines += ["Profile:", "", "```", r.profile, "```", ""]
        lines += [f"_case time: {r.seconds:.0f} s_", ""]
    md = out / "latest.md"
    md.write_text("\n".join(lines))
    doc = {"mode": "quick" if ctx.quick else "full", "seconds": total_seconds,
           "machine": mach, "versions": vers, "peers": peer_versions,
           "peer_problems": ctx.peer_problems, "selected": selected,
           "cases": [r.to_json() for r in results]}
    (out / "latest.json").write_text(json.dumps(doc, indent=1, default=str))
    return md


def _color(value: float, met: bool | None) -> str:
    if met is False:
        return "#d62728"
    return "#2ca02c" if value >= 1 else "#ff7f0e"


def ratios_svg(chart: list[tuple[str, float, bool | None]]) -> str:
    """A horizontal bar chart on a log scale, written by hand (no plotting library needed)."""
    width, left, right, bar, gap, top = 900, 330, 70, 18, 8, 46
    height = top + len(chart) * (bar + gap) + 40
    if not chart:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="60">'
                '<text x="10" y="30" font-family="sans-serif" font-size="13">no ratios '
                'measured</text></svg>')
    values = [v for _, v, _ in chart]
    lo = min(0.1, min(values) / 1.5)
    hi = max(10.0, max(values) * 1.5)
    span = math.log10(hi) - math.log10(lo)
    plot = width - left - right

    def x(v: float) -> float:
        return left + (math.log10(v) - math.log10(lo)) / span * plot

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="20" font-size="14" font-weight="bold">btlake vs peers, '
             'measured in the same run (log scale; right of 1 = btlake ahead)</text>']
    decade = math.floor(math.log10(lo))
    while 10**decade <= hi:
        for m in (1, 2, 5):
            v = m * 10**decade
            if lo <= v <= hi:
                xv = x(v)
                parts.append(f'<line x1="{xv:.1f}" y1="{top - 6}" x2="{xv:.1f}" '
                             f'y2="{height - 30}" stroke="#ddd"/>')
                parts.append(f'<text x="{xv:.1f}" y="{height - 14}" text-anchor="middle" '
                             f'fill="#555">{v:g}x</text>')
        decade += 1
    one = x(1.0)
    for i, (label, v, met) in enumerate(chart):
        y = top + i * (bar + gap)
        x0, x1 = sorted((one, x(v)))
        parts.append(f'<text x="{left - 8}" y="{y + bar - 5}" text-anchor="end">'
                     f'{escape(label)}</text>')
        parts.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" '
                     f'height="{bar}" fill="{_color(v, met)}"/>')
        parts.append(f'<text x="{max(x(v), one) + 4:.1f}" y="{y + bar - 5}">{v:.3g}x</text>')
    parts.append(f'<line x1="{one:.1f}" y1="{top - 6}" x2="{one:.1f}" y2="{height - 30}" '
                 'stroke="black"/>')
    parts.append("</svg>")
    return "\n".join(parts)

