"""The benchmark cannot rot: its smoke variant (tiny sizes, no timing assertions, peers only if
already installed) runs every case and writes a results file naming each of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def test_quick_bench_writes_every_case(tmp_path: Path) -> None:
    from bench.cases import CASES

    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--quick", "--no-peers", "--out", str(out),
         "--work", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    doc = json.loads((out / "latest.json").read_text())
    assert doc["mode"] == "quick"
    cases = {c["key"]: c for c in doc["cases"]}
    assert set(cases) == set(CASES)
    for key, case in cases.items():
        assert case["error"] is None, f"{key}: {case['error']}"
        assert case["rows"], key
        assert case["targets"], key
        timed = [r for r in case["rows"] if r["stats"]]
        assert all(r["stats"]["n"] >= 1 for r in timed), key

    text = (out / "latest.md").read_text()
    for key in CASES:
        assert f"## {key}:" in text, key
    assert "## Targets" in text and "## Machine" in text
    svg = (out / "ratios.svg").read_text()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")


def test_quick_scale_writes_every_section(tmp_path: Path) -> None:
    """``python -m bench scale --quick`` measures every slope of the scale model at smoke size
    and writes scale.md / scale.json with a figure for each, as docs/SCALE.md quotes them."""
    from bench.scale import SECTIONS

    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "scale", "--quick", "--out", str(out), "--work",
         str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    doc = json.loads((out / "scale.json").read_text())
    assert doc["mode"] == "quick"
    sections = {s["key"]: s for s in doc["sections"]}
    assert set(sections) == set(SECTIONS)
    for key, sec in sections.items():
        assert sec["error"] is None, f"{key}: {sec['error']}"
        assert sec["figures"], key
    keys = {f["key"] for s in doc["sections"] for f in s["figures"]}
    for quoted in ("log_bytes_per_commit", "checkpoint_bytes_per_file", "open_per_file_checkpoint",
                   "partition_10m", "dagster_partitions", "event_records_per_run",
                   "catalog_bytes_per_run"):
        assert quoted in keys, quoted
    text = (out / "scale.md").read_text()
    assert "## Figures" in text
    for key in SECTIONS:
        assert f"## {key}:" in text, key
