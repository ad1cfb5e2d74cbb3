"""Maintenance safety: compaction, Z-order, checkpoints and vacuum never take away a version that
time travel inside the retention period needs; a version outside it fails with one clear
``RetentionError`` line (CLI exit 2), never a missing-file traceback."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

try:
    from . import robust_kit as K
except ImportError:
    import robust_kit as K

from btlake_pipelines import Lake
from btlake_pipelines.errors import NotFoundError, RetentionError
from btlake_pipelines.ingest.batch import ingest
from btlake_pipelines.landing.local import LocalLandingZone


@pytest.fixture
def versioned(tmp_path):
    """One run replaced twice (4, 6, then 8 trades), a second run, and market data: with the
    trades rows every version of the table holds, and a moment inside each version."""
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    zone = LocalLandingZone(str(landing))
    expected: dict[int, dict[str, int]] = {}
    moments: dict[int, datetime] = {}
    for n in (4, 6, 8):
        K.write_good(landing, "evolving", trades=K.trades_table(n))
        if n == 6:
            K.write_good(landing, "steady", trades=K.trades_table(3))
            K.write_raw(landing / "ticks-day", K.market_manifest("ticks-day"),
                        {"ticks.parquet": K.parquet_bytes(K.ticks_table())})
        batch = ingest(str(lake), zone)
        version = batch.commits["trades"][-1]
        expected[version] = {"evolving": n, **({"steady": 3} if n >= 6 else {})}
        time.sleep(0.01)
        moments[version] = datetime.now(UTC)
        time.sleep(0.01)
    return {"lake": lake, "landing": landing, "expected": expected, "moments": moments}


def _counts(table) -> dict[str, int]:
    out: dict[str, int] = {}
    for run in table.column("run_id").to_pylist():
        out[run] = out.get(run, 0) + 1
    return out


def test_time_travel_inside_retention_survives_maintain(versioned):
    lake, expected = versioned["lake"], versioned["expected"]
    lk = Lake(str(lake))
    latest_before = lk.read("trades").sort_by([("run_id", "ascending"), ("ts", "ascending")])
    reports = {r.table: r for r in lk.maintain()}  # default retention: 7 days
    assert reports["trades"].files_removed > 0  # it did compact something
    lk = Lake(str(lake))
    for version, counts in expected.items():
        assert _counts(lk.read("trades", as_of=version)) == counts, version
        assert _counts(lk.read("trades", as_of=versioned["moments"][version])) == counts
    latest = lk.read("trades").sort_by([("run_id", "ascending"), ("ts", "ascending")])
    assert latest.equals(latest_before)
    assert lk.read("ticks").num_rows == 6
    # every version the table's history shows is still readable, maintenance commits included
    for row in lk.history("trades").to_pylist():
        lk.read("trades", as_of=row["version"])
    versions = lk.run_versions("evolving")
    assert len(versions) == 3
    for v in versions:
        assert lk.read("trades", run_id="evolving", as_of=v["versions"]["trades"]).num_rows \
            == v["rows"]["trades"]
    proc = K.run_cli("--lake", str(lake), "read", "trades", "--as-of", str(min(expected)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("4 row(s)")
    K.assert_runs_whole(lake)


def test_maintain_twice_and_again_after_new_writes(versioned):
    """Maintenance on top of maintenance, then a replace, then maintenance: nothing inside
    retention is lost and no run is ever half visible."""
    lake, landing = versioned["lake"], versioned["landing"]
    lk = Lake(str(lake))
    lk.maintain()
    lk.maintain()
    K.write_good(landing, "evolving", trades=K.trades_table(2))
    batch = ingest(str(lake), LocalLandingZone(str(landing)))
    assert batch.results[0].status == "replaced"
    Lake(str(lake)).maintain()
    lk = Lake(str(lake))
    for version, counts in versioned["expected"].items():
        assert _counts(lk.read("trades", as_of=version)) == counts
    assert _counts(lk.read("trades")) == {"evolving": 2, "steady": 3}
    K.assert_runs_whole(lake)


def test_a_vacuumed_version_is_a_clear_retention_error(versioned):
    lake, expected = versioned["lake"], versioned["expected"]
    first, last = min(expected), max(expected)
    Lake(str(lake)).maintain(retention_hours=0)  # vacuum everything no longer current
    lk = Lake(str(lake))
    with pytest.raises(RetentionError, match=f"version {first} of table 'trades' is no longer "
                                             "readable"):
        lk.read("trades", as_of=first)
    with pytest.raises(RetentionError):
        lk.read("trades", as_of=versioned["moments"][first])
    assert _counts(lk.read("trades")) == expected[last]  # the current version is intact
    with pytest.raises(NotFoundError):
        lk.read("trades", as_of=datetime.now(UTC) - timedelta(days=3650))
    # versions the API lists as reachable are readable, the others are not listed; the
    # current one is read at the latest version (its own commit's files may be compacted away)
    listed = lk.run_versions("evolving")
    assert [v["current"] for v in listed] == [True]
    assert lk.read("trades", run_id="evolving").num_rows == listed[0]["rows"]["trades"]

    proc = K.run_cli("--lake", str(lake), "read", "trades", "--as-of", str(first))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("btlake: error: version ") and "retention" in lines[0]
    proc = K.run_cli("--lake", str(lake), "read", "trades", "--as-of", "999")
    assert proc.returncode == 2 and "no version 999" in proc.stderr
