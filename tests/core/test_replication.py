"""``btlake replicate`` on local folders: a valid replica, incremental and idempotent rounds,
SIGKILL at named and random moments, the lag, discovery of any btlake table, and maintenance
on a replica (CONTRACT section 8)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from btlake_pipelines import Lake
from btlake_pipelines.errors import BtlakeError, RetentionError
from btlake_pipelines.replication.objects import Root
from btlake_pipelines.replication.tables import latest_version
from tests.replication_kit import (
    assert_valid_earlier_point,
    build_lake,
    ingest_round,
    plain_files,
    table_frame,
)

BTLAKE = [sys.executable, "-m", "btlake_pipelines.interfaces.cli"]


def _btlake(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BTLAKE, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A primary with history (3 batches: a replace, refusals, market data), built once."""
    root = tmp_path_factory.mktemp("primary")
    landing = root / "landing"
    landing.mkdir()
    build_lake(str(root / "lake"), landing, rounds=3)
    return root


def _copy_template(template: Path, tmp_path: Path) -> tuple[str, Path]:
    import shutil

    shutil.copytree(template, tmp_path / "p")
    return str(tmp_path / "p" / "lake"), tmp_path / "p" / "landing"


def test_replica_is_the_same_lake_and_a_second_run_copies_nothing(template, tmp_path):
    primary, _ = _copy_template(template, tmp_path)
    replica = str(tmp_path / "replica")
    first = Lake(primary).replicate(replica)
    assert first.files_copied > 0 and first.log_entries > 0
    for table, version in first.versions.items():
        assert version == latest_version(Root.of(primary), table)
        assert table_frame(replica, table).equals(table_frame(primary, table)), table
    assert plain_files(replica) == plain_files(primary)
    assert any(p.startswith("_quarantine") for p in plain_files(replica))
    assert_valid_earlier_point(primary, replica)
    # btlake on the replica answers as on the primary
    assert Lake(replica).runs().sort_by("run_id").equals(Lake(primary).runs().sort_by("run_id"))

    second = Lake(primary).replicate(replica)
    assert (second.files_copied, second.bytes_copied, second.log_entries) == (0, 0, 0)
    status = Lake(primary).replication_status(replica)
    assert status.lag_versions == 0 and status.lag_seconds == 0


def test_rounds_copy_only_what_is_new_and_status_tells_the_lag(template, tmp_path):
    primary, landing = _copy_template(template, tmp_path)
    replica = str(tmp_path / "replica")
    Lake(primary).replicate(replica)
    before = {t: latest_version(Root.of(primary), t) for t in ("trades", "runs", "ticks")}
    time.sleep(1.1)  # commits a second apart: the lag in seconds is at least that
    ingest_round(primary, landing, 7, replace="run-1-b")
    after = {t: latest_version(Root.of(primary), t) for t in before}
    status = Lake(primary).replication_status(replica)
    doc = status.to_dict()
    new_versions = sum(after[t] - before[t] for t in before)
    assert doc["lag_versions"] >= new_versions > 0
    assert doc["lag_seconds"] >= 1.0
    for t in before:
        assert doc["tables"][t] == {"primary_version": after[t], "replica_version": before[t]}

    report = Lake(primary).replicate(replica)
    assert report.log_entries == doc["lag_versions"]
    assert Lake(primary).replication_status(replica).lag_versions == 0
    assert_valid_earlier_point(primary, replica)


def test_cli_status_json_and_errors(template, tmp_path):
    primary, _ = _copy_template(template, tmp_path)
    replica = str(tmp_path / "replica")
    out = _btlake("--lake", primary, "replicate", "--to", replica, "--status", "--format",
                  "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) == {"tables", "lag_versions", "lag_seconds"}
    assert doc["tables"]["runs"]["replica_version"] is None and doc["lag_versions"] > 0
    copied = _btlake("--lake", primary, "replicate", "--to", replica)
    assert copied.returncode == 0 and "file(s) copied" in copied.stdout, copied.stderr
    doc = json.loads(_btlake("--lake", primary, "replicate", "--to", replica, "--status",
                             "--format", "json").stdout)
    assert doc["lag_versions"] == 0 and doc["lag_seconds"] == 0
    assert all(t["primary_version"] == t["replica_version"] for t in doc["tables"].values())
    missing = _btlake("--lake", primary, "replicate", BTLAKE_REPLICA="")
    assert missing.returncode == 2 and "--to is required" in missing.stderr
    itself = _btlake("--lake", primary, "replicate", "--to", primary)
    assert itself.returncode == 2 and "--to" in itself.stderr


@pytest.mark.parametrize("point", ["replicate:after_data_file#3", "replicate:before_log_entry#2",
                                   "replicate:after_log_entry#5", "replicate:after_plain_file#4",
                                   "replicate:before_log_entry#9"])
def test_killed_at_a_named_point_then_resumed(template, tmp_path, point):
    primary, _ = _copy_template(template, tmp_path)
    replica = str(tmp_path / "replica")
    killed = _btlake("--lake", primary, "replicate", "--to", replica, BTLAKE_FAULT_POINT=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert_valid_earlier_point(primary, replica)
    done = Lake(primary).replicate(replica)
    assert_valid_earlier_point(primary, replica)
    assert Lake(primary).replication_status(replica).lag_versions == 0
    assert plain_files(replica) == plain_files(primary)
    # what the killed run had finished is not copied again: a file at its place is whole
    assert done.files_skipped > 0
    again = Lake(primary).replicate(replica)
    assert (again.files_copied, again.log_entries) == (0, 0)


def test_killed_at_random_moments_then_resumed(template, tmp_path):
    """SIGKILL by the clock, several times, while the primary keeps ingesting; each time
    the replica is checked, and the last run catches up."""
    primary, landing = _copy_template(template, tmp_path)
    replica = str(tmp_path / "replica")
    rng = random.Random(int(os.environ.get("BTLAKE_TEST_SEED", "14")))
    started = time.monotonic()  # how long a whole replication takes here, start-up included
    assert _btlake("--lake", primary, "replicate", "--to", str(tmp_path / "trial")
                   ).returncode == 0
    whole = time.monotonic() - started
    kills = 0
    for n in range(8):
        if kills >= 3:
            break
        began = time.monotonic()
        proc = subprocess.Popen([*BTLAKE, "--lake", primary, "replicate", "--to", replica],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(0.5, 0.97) * whole)
            whole = time.monotonic() - began  # it finished first: aim inside such a run next
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        assert_valid_earlier_point(primary, replica)
        ingest_round(primary, landing, 20 + n, replace=f"run-{n}-b" if n < 2 else None)
    Lake(primary).replicate(replica)
    assert_valid_earlier_point(primary, replica)
    assert Lake(primary).replication_status(replica).lag_versions == 0
    assert kills >= 2


def test_every_btlake_table_and_folder_is_found_not_listed(template, tmp_path):
    """A table another part of btlake keeps under ``_name`` (tags, coverage) and a plain
    folder are replicated with no change to the replicator; ``_maintenance`` is not."""
    primary, _ = _copy_template(template, tmp_path)
    write_deltalake(f"{primary}/_tags", pa.table({"name": ["t1"], "version": [3]}))
    write_deltalake(f"{primary}/_meta/coverage", pa.table({"market": ["XNAS"]}))
    Path(primary, "_notes").mkdir()
    Path(primary, "_notes", "a.json").write_text("{}")
    Path(primary, "_maintenance").mkdir(exist_ok=True)
    Path(primary, "_maintenance", "state.json").write_text("{}")
    replica = str(tmp_path / "replica")
    versions = Lake(primary).replicate(replica).versions
    assert {"_tags", "_meta/coverage"} <= set(versions)
    assert table_frame(replica, "_meta/coverage").equals(table_frame(primary, "_meta/coverage"))
    assert Path(replica, "_notes", "a.json").read_text() == "{}"
    assert not Path(replica, "_maintenance").exists()


def test_primary_vacuum_and_log_cleanup_delete_nothing_on_the_replica(template, tmp_path):
    primary, _ = _copy_template(template, tmp_path)
    replica = str(tmp_path / "replica")
    Lake(primary).replicate(replica)
    replica_files = {p for p in Path(replica, "trades").rglob("*.parquet")}
    Lake(primary).maintain(retention_hours=0)  # compacts, and vacuums every old file
    gone = [p for p in replica_files
            if not Path(primary, os.path.relpath(p, replica)).exists()]
    assert gone, "maintenance on the primary removed no file: the test proves nothing"
    Lake(primary).replicate(replica)
    assert all(p.exists() for p in replica_files)  # removals are log actions, not deletes
    assert_valid_earlier_point(primary, replica)
    # the replica's own maintenance keeps what its retention (7 days) keeps: version 0,
    # gone from the primary, still reads there
    Lake(replica).maintain()
    with pytest.raises(RetentionError):
        Lake(primary).read("trades", as_of=0)
    assert Lake(replica).read("trades", as_of=0).num_rows > 0


def test_maintenance_on_the_replica_keeps_what_replication_needs(template, tmp_path):
    """deltalake 1.6.6's vacuum commits (VACUUM START/END) and optimize commits: on a
    replica either would clash with the next copied entry. Maintenance there only
    checkpoints and deletes what vacuum would, and never a file copied for an entry not
    copied yet."""
    primary, landing = _copy_template(template, tmp_path)
    replica = str(tmp_path / "replica")
    Lake(primary).replicate(replica)
    Lake(primary).maintain(retention_hours=0)  # removals older than retention 0 on replica
    ingest_round(primary, landing, 9)
    # a round stopped after data files, before the log entry that names them

    def pause(point: str) -> None:
        if point == "before_log_entry" and _unlogged_files(replica):
            raise _Stop

    with pytest.raises(_Stop):
        Lake(primary).replicate(replica, pause=pause)
    in_flight = _unlogged_files(replica)
    assert in_flight
    versions = {t: latest_version(Root.of(replica), t) for t in ("trades", "runs")}
    Lake(replica).maintain(retention_hours=0)
    assert {t: latest_version(Root.of(replica), t) for t in versions} == versions  # no commit
    assert all(p.exists() for p in in_flight)
    Lake(primary).replicate(replica)
    assert_valid_earlier_point(primary, replica)
    assert Lake(primary).replication_status(replica).lag_versions == 0
    # promoted, it is a primary again: maintenance compacts, replicate into it is refused
    assert Lake(replica).promote()
    Lake(replica).maintain(retention_hours=0)
    with pytest.raises(BtlakeError, match="not a replica"):
        Lake(primary).replicate(replica)


def _unlogged_files(root: str) -> set[Path]:
    """Data files of the replica's fact tables that no entry of its log names (neither added
    nor removed): copied for an entry not copied yet."""
    from btlake_pipelines.storage import delta_log

    out: set[Path] = set()
    for table in ("trades", "equity", "ticks", "events"):
        log = Path(root, table, "_delta_log")
        if not log.is_dir():
            continue
        named: set[str] = set()
        for entry in log.glob("*.json"):
            actions = delta_log.parse_actions(entry.read_bytes())
            named |= set(delta_log.referenced_files(actions)) | delta_log.removed_files(actions)
        out |= {p for p in Path(root, table).rglob("*.parquet")
                if "_delta_log" not in p.parts
                and p.relative_to(Path(root, table)).as_posix() not in named}
    return out


def test_a_diverged_replica_is_refused(template, tmp_path):
    primary, landing = _copy_template(template, tmp_path)
    replica = str(tmp_path / "replica")
    Lake(primary).replicate(replica)
    write_deltalake(f"{replica}/ingest_log", pl.from_arrow(
        DeltaTable(f"{replica}/ingest_log").to_pyarrow_table()).head(1).to_arrow(),
        mode="append")
    ingest_round(primary, landing, 5)
    with pytest.raises(BtlakeError, match="different"):
        Lake(primary).replicate(replica)


class _Stop(Exception):
    pass


def test_runs_stay_whole_when_fact_tables_are_ahead_of_runs(template, tmp_path):
    """A round stopped after the fact tables reached a replace but before ``runs`` did: a
    raw reader of the replica's ``trades`` sees the new rows, btlake on the replica shows
    the run as its ``runs`` row records it (the old content), never a mix."""
    primary, landing = _copy_template(template, tmp_path)
    replica = str(tmp_path / "replica")
    Lake(primary).replicate(replica)
    old = pl.from_arrow(Lake(primary).read("trades", run_id="run-1-a"))
    ingest_round(primary, landing, 11, replace="run-1-a")
    new = pl.from_arrow(Lake(primary).read("trades", run_id="run-1-a"))
    assert not new.equals(old)
    target = latest_version(Root.of(primary), "trades")

    def pause(point: str) -> None:
        if point == "before_log_entry" and \
                latest_version(Root.of(replica), "trades") == target:
            raise _Stop

    with pytest.raises(_Stop):
        Lake(primary).replicate(replica, pause=pause)
    raw = table_frame(replica, "trades").filter(pl.col("run_id") == "run-1-a")
    assert raw.height == new.height  # the replace is in the replica's trades already
    cols = ["ts", "price"]
    seen = pl.from_arrow(Lake(replica).read("trades", run_id="run-1-a"))
    assert seen.select(cols).sort(cols).equals(old.select(cols).sort(cols))
    assert_valid_earlier_point(primary, replica)
    Lake(primary).replicate(replica)
    seen = pl.from_arrow(Lake(replica).read("trades", run_id="run-1-a"))
    assert seen.select(cols).sort(cols).equals(new.select(cols).sort(cols))


def test_killed_runs_leave_no_temporary_files_for_long(template, tmp_path):
    primary, _ = _copy_template(template, tmp_path)
    replica = tmp_path / "replica"
    Lake(primary).replicate(str(replica))
    stale = replica / "_replication" / "tmp" / "left-by-a-killed-run"
    stale.write_bytes(b"x" * 10)
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = replica / "_replication" / "tmp" / "a-copy-in-flight"
    fresh.write_bytes(b"y")
    Lake(primary).replicate(str(replica))
    assert not stale.exists() and fresh.exists()
    with pytest.raises(BtlakeError, match="inside it"):
        Lake(primary).replicate(f"{primary}/_backup")


def test_the_coverage_summary_is_each_lakes_own(tmp_path):
    """``_coverage`` is refreshed by reads on whichever lake is read: on a replica it is
    built there from the replicated logs, never copied, so reading coverage on the replica
    never makes it diverge from the primary."""
    primary, landing = str(tmp_path / "lake"), tmp_path / "landing"
    landing.mkdir()
    build_lake(primary, landing, rounds=2)
    replica = str(tmp_path / "replica")
    Lake(primary).coverage("ticks")
    Lake(primary).replicate(replica)
    assert not Path(replica, "_coverage").exists()
    assert Lake(replica).coverage("ticks").rows.height > 0  # the replica's own summary
    assert Path(replica, "_coverage", "_delta_log").is_dir()
    ingest_round(primary, landing, 6)
    Lake(primary).replicate(replica)  # no divergence: the summary is not replicated
    assert Lake(primary).replication_status(replica).lag_versions == 0
    theirs, mine = Lake(primary).coverage("ticks").rows, Lake(replica).coverage("ticks").rows
    assert mine.sort(mine.columns).equals(theirs.sort(theirs.columns))
    assert mine.height > 0


def test_tags_pin_versions_on_the_replica_too(template, tmp_path):
    """The tags table is replicated like any btlake table, so maintenance on the replica
    keeps what tags pin, even at retention 0, and writes no commit there."""
    primary, landing = _copy_template(template, tmp_path)
    Lake(primary).tag_create("before-replace")
    ingest_round(primary, landing, 12, replace="run-0-b")
    Lake(primary).maintain(retention_hours=0)
    replica = str(tmp_path / "replica")
    Lake(primary).replicate(replica)
    Lake(replica).maintain(retention_hours=0)
    assert Lake(primary).replication_status(replica).lag_versions == 0
    cols = ["run_id", "ts", "price"]
    mine = pl.from_arrow(Lake(replica).read("trades", as_of="tag:before-replace"))
    theirs = pl.from_arrow(Lake(primary).read("trades", as_of="tag:before-replace"))
    assert mine.height > 0
    assert mine.select(cols).sort(cols).equals(theirs.select(cols).sort(cols))
    assert [t.name for t in Lake(replica).tags()] == ["before-replace"]


def test_a_round_lists_each_primary_log_once_and_reads_each_commit_at_most_twice(
        template, tmp_path, monkeypatch):
    """A fresh replica of a vacuumed primary: every early version lacks files, each answered
    from the later commits' removals, read once per table and round (not per version)."""
    from collections import Counter

    from btlake_pipelines.replication import tables

    primary, _ = _copy_template(template, tmp_path)
    Lake(primary).maintain(retention_hours=0)  # vacuums every file no latest version needs
    src = Root.of(primary)
    listed, read, asked = Counter(), Counter(), Counter()
    listing, reading, forward = Root.listing, Root.read, tables._LaterRemovals._read_next

    def count_listing(self, rel, recursive=False):
        if self.uri == src.uri and rel.endswith("/_delta_log"):
            listed[rel] += 1
        return listing(self, rel, recursive)

    def count_read(self, rel):
        if self.uri == src.uri and "/_delta_log/" in rel:
            read[rel] += 1
        return reading(self, rel)

    def count_forward(self):
        asked[self._table] += 1
        return forward(self)

    monkeypatch.setattr(Root, "listing", count_listing)
    monkeypatch.setattr(Root, "read", count_read)
    monkeypatch.setattr(tables._LaterRemovals, "_read_next", count_forward)
    Lake(primary).replicate(str(tmp_path / "replica"))
    assert asked["trades"] > 0, "no version lacked files: the test proves nothing"
    assert listed and max(listed.values()) == 1
    assert max(read.values()) <= 2  # copied once, and read once for its removals
    assert_valid_earlier_point(primary, str(tmp_path / "replica"))
