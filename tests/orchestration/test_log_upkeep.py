"""The Delta log stays cheap to open under continuous ingestion (issue 11, item 4).

Opening a table replays its log from the last checkpoint, so instead of timing opens these
tests assert the structure that makes them cheap: a checkpoint at the expected version,
``_last_checkpoint`` pointing at it, and fewer than the checkpoint interval of commit files
left to replay after it. Tables are built with bare ``write_deltalake`` appends (a few ms
each) where the writer under test is not btlake's.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
from dagster import build_schedule_context
from deltalake import DeltaTable, write_deltalake
from deltalake.transaction import PostCommitHookProperties

from btlake_pipelines.defs.jobs import log_upkeep_job
from btlake_pipelines.defs.resources import LakeResource
from btlake_pipelines.defs.schedules import hourly_log_upkeep
from btlake_pipelines.storage import checkpoints, delta
from btlake_pipelines.storage.checkpoints import CHECKPOINT_INTERVAL, last_checkpoint, log_state
from btlake_pipelines.storage.maintenance import log_upkeep

NO_HOOK = PostCommitHookProperties(create_checkpoint=False, cleanup_expired_logs=False)


def _row(i: int) -> pa.Table:
    return pa.table({"ts": pa.array([datetime(2024, 11, 4, tzinfo=UTC)], pa.timestamp("us",
                                                                                     "UTC")),
                     "equity": [float(i)], "market": ["M"],
                     "date": pa.array([date(2024, 11, 4)], pa.date32())})


def _commits(uri: str, count: int, *, hook: bool = True, configuration=None) -> None:
    """``count`` one-row appends, as a sensor tick each would make."""
    for i in range(count):
        write_deltalake(uri, _row(i), mode="append", partition_by=["market", "date"],
                        configuration=configuration,
                        post_commithook_properties=None if hook else NO_HOOK)


def _pointer(uri: str) -> int:
    return json.loads((Path(uri) / "_delta_log" / "_last_checkpoint").read_text())["version"]


def test_deltalake_checkpoints_every_interval_by_itself(tmp_path):
    """The pinned deltalake writes a checkpoint after its own commit every 100 versions: a
    table with 105 commits replays 5 after the checkpoint, not 105."""
    uri = str(tmp_path / "equity")
    _commits(uri, CHECKPOINT_INTERVAL + 5)
    assert (Path(uri) / "_delta_log" / f"{CHECKPOINT_INTERVAL - 1:020d}.checkpoint.parquet"
            ).is_file()
    assert _pointer(uri) == last_checkpoint(uri) == CHECKPOINT_INTERVAL - 1
    state = log_state(uri)
    assert state.version == CHECKPOINT_INTERVAL + 4 and state.commits_after == 5
    assert DeltaTable(uri).version() == state.version


def test_btlake_writes_catch_up_a_missed_checkpoint(tmp_path, monkeypatch):
    """Commits whose checkpoint never came (another writer, a process that died after its
    commit) are caught up by btlake's next write, once an interval's worth has piled up."""
    monkeypatch.setattr(checkpoints, "CHECKPOINT_INTERVAL", 20)
    lake = str(tmp_path / "lake")
    uri = delta.table_uri(lake, "equity")
    _commits(uri, 10, hook=False)
    delta.write(lake, "equity", _row(10), predicate=None, metadata={})
    assert last_checkpoint(uri) is None  # 11 commits, fewer than the interval: nothing to do

    _commits(uri, 15, hook=False)
    version = delta.write(lake, "equity", _row(26), predicate=None, metadata={})
    assert version == 26
    assert _pointer(uri) == 26
    assert (Path(uri) / "_delta_log" / f"{26:020d}.checkpoint.parquet").is_file()
    assert log_state(uri).commits_after == 0
    assert delta.open_table(lake, "equity").to_pyarrow_table().num_rows == 27


def test_log_upkeep_checkpoints_and_removes_expired_log_files(tmp_path):
    lake = str(tmp_path / "lake")
    uri = delta.table_uri(lake, "equity")
    # a one-second log retention stands for the default 30 days having passed
    _commits(uri, 12, hook=False,
             configuration={"delta.logRetentionDuration": "interval 1 second"})
    _commits(delta.table_uri(lake, "trades"), 3, hook=False)
    before = log_state(uri)
    assert before.checkpoint is None and before.commits_after == 12
    time.sleep(1.1)

    reports = {r.table: r for r in log_upkeep(lake)}

    assert set(reports) == {"equity", "trades"}  # tables that do not exist are skipped
    equity = reports["equity"]
    assert equity.checkpointed and equity.checkpoint == equity.version == 11
    assert equity.commits_after == 0
    assert equity.log_files_before == 12 and equity.log_files_after < 12
    names = sorted(p.name for p in (Path(uri) / "_delta_log").iterdir())
    assert names == [f"{11:020d}.checkpoint.parquet", f"{11:020d}.json", "_last_checkpoint"]
    table = DeltaTable(uri)
    assert table.version() == 11 and table.to_pyarrow_table().num_rows == 12
    # within the default retention nothing is removed: only the checkpoint is new
    trades = reports["trades"]
    assert trades.checkpoint == 2 and trades.log_files_after == trades.log_files_before + 2

    again = {r.table: r for r in log_upkeep(lake)}
    assert not again["equity"].checkpointed and not again["trades"].checkpointed


def test_hourly_job_leaves_every_table_at_its_checkpoint(built_lake):
    lake = built_lake.lake
    result = log_upkeep_job.execute_in_process(resources={"lake": LakeResource(uri=lake)})
    assert result.success
    for table in ("trades", "equity", "events", "ticks", "l2", "runs", "ingest_log"):
        uri = delta.table_uri(lake, table)
        state = log_state(uri)
        assert state.checkpoint == state.version == delta.open_table(lake, table).version()
        assert state.commits_after == 0


def test_log_upkeep_runs_every_hour():
    when = datetime(2024, 11, 6, 3, 40, tzinfo=UTC)
    request = hourly_log_upkeep(build_schedule_context(scheduled_execution_time=when))
    assert request.run_key == "log-upkeep-2024-11-06T03"
    assert hourly_log_upkeep.cron_schedule == "40 * * * *"
