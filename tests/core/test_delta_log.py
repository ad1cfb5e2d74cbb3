"""The Delta log reader: btlake's commit metadata as JSON values, read back typed, old lakes'
JSON-in-strings too; one commit found among racing writers; commit times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties, write_deltalake

from btlake_pipelines.storage import delta, delta_log
from btlake_pipelines.storage.delta_log import Commit


def _rows(run_id: str) -> pa.Table:
    return pa.table({"run_id": [run_id], "market": ["XNAS"], "date": ["2024-03-05"],
                     "equity": [1.0]})


def test_metadata_is_written_as_json_values_and_read_back_typed(tmp_path: Path) -> None:
    lake = str(tmp_path)
    version = delta.write(lake, "equity", _rows("r-1"), predicate=None, metadata={
        "btlake.batch": "b-1", "btlake.runs": ["r-1"], "btlake.run_count": 1,
        "btlake.rows_added": 1, "btlake.rows_removed": 0,
        "btlake.partitions": ["XNAS|2024-03-05"], "btlake.day": datetime(2024, 3, 5).date()})
    line = next(json.loads(x) for x in Path(delta_log.commit_uri(lake, "equity", version))
                .read_text().splitlines() if "commitInfo" in x)["commitInfo"]
    assert line["btlake.runs"] == ["r-1"] and line["btlake.run_count"] == 1
    assert line["btlake.day"] == "2024-03-05"  # no JSON type: its text

    from_file = delta_log.commit(lake, "equity", version)
    [from_history] = delta_log.history(delta.open_table(lake, "equity"))
    assert from_file == from_history
    assert from_file is not None
    assert (from_file.version, from_file.batch_id, from_file.runs, from_file.run_count) == (
        0, "b-1", ["r-1"], 1)
    assert (from_file.rows_added, from_file.rows_removed, from_file.files_added) == (1, 0, 1)
    assert from_file.partitions == ["XNAS|2024-03-05"] and from_file.commit_id
    assert from_file.operation == "WRITE"
    assert from_file.timestamp is not None
    assert abs(from_file.timestamp - datetime.now(UTC)) < timedelta(minutes=5)


def test_commits_of_older_lakes_hold_json_text(tmp_path: Path) -> None:
    """Lakes written before kept every value as a string: read the same."""
    uri = delta_log.table_uri(str(tmp_path), "equity")
    write_deltalake(uri, _rows("r-1"), commit_properties=CommitProperties(custom_metadata={
        "btlake.batch": "b-0", "btlake.runs": json.dumps(["r-1", "r-2"]),
        "btlake.run_count": "2", "btlake.rows_added": "5", "btlake.rows_removed": "0"}))
    commit = delta_log.commit(str(tmp_path), "equity", 0)
    assert commit is not None
    assert (commit.runs, commit.run_count, commit.rows_added, commit.rows_removed) == (
        ["r-1", "r-2"], 2, 5, 0)
    assert commit == delta_log.history(delta.open_table(str(tmp_path), "equity"))[0]


def test_a_commit_without_btlake_metadata() -> None:
    info = {"timestamp": 1_700_000_000_123, "operation": "OPTIMIZE",
            "operationMetrics": {"num_added_files": 1, "num_removed_files": 4},
            "btlake.maintenance": "optimize", "btlake.runs": "not json"}
    commit = Commit.from_info(info, version=7)
    assert commit.timestamp == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert (commit.version, commit.runs, commit.run_count, commit.batch_id) == (7, [], 0, None)
    assert (commit.files_added, commit.files_removed, commit.maintenance) == (1, 4, "optimize")


def test_find_commit_and_has_commit(tmp_path: Path) -> None:
    lake = str(tmp_path)
    for i in range(3):
        delta.write(lake, "equity", _rows(f"r-{i}"), predicate=None,
                    metadata={"btlake.batch": f"b-{i}"})
    ids = [c.commit_id for c in reversed(delta_log.history(delta.open_table(lake, "equity")))]
    assert [delta_log.find_commit(lake, "equity", cid, 2) for cid in ids] == [0, 1, 2]
    assert delta_log.find_commit(lake, "equity", "not-ours", 2) is None
    assert delta_log.find_commit(lake, "equity", ids[0], 2, depth=2) is None
    assert delta_log.has_commit(lake, "equity", 2)
    assert not delta_log.has_commit(lake, "equity", 3)
    assert delta_log.commit(lake, "equity", 3) is None
