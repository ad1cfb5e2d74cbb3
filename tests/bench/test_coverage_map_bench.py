"""The coverage bench at a test size: the page's map stays bands x days whatever the number
of symbols, and a one-day append is refreshed by re-reading that one partition."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def test_map_size_depends_on_bands_not_symbols(tmp_path: Path) -> None:
    from bench.coverage_map import run

    small = run(150, 60, 1, tmp_path / "small")
    large = run(1500, 60, 1, tmp_path / "large")
    for result in (small, large):
        assert result["one_day_refresh"]["partitions"] == 1
        assert result["full_refresh"]["partitions"] == 60
        assert result["map"]["bands"] == 100
    assert large["full_refresh"]["coverage_rows"] == 1500 * 60 - 15  # 15 symbols miss a day
    assert large["map"]["gaps"] == 15 and small["map"]["gaps"] == 2
    # ten times the symbols: the same shape of answer, within a few percent in bytes
    assert large["map"]["json_bytes"] < 1.2 * small["map"]["json_bytes"]
    assert large["map"]["seconds"] < 10
