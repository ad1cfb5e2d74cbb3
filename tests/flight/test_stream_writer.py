"""The stream writer's exactly-once rules where a commit fails, and column types that must
not fail the commit of other batches."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from btlake_pipelines import Lake
from btlake_pipelines.errors import BtlakeError, BundleRefused
from tests.flight.flight_kit import tick_batch


def _put(writer, seq: int, batch=None, name: str = "feed"):
    meta = json.dumps({"writer": name, "seq": seq}).encode()
    return writer.put("ticks", "XNAS", meta, batch if batch is not None else tick_batch(seq))


def test_a_failed_commit_opens_a_gap_the_writer_must_fill_first(dirs):
    lake = Lake(dirs.lake)
    writer = lake.stream_writer()
    assert _put(writer, 1).result(30).status == "accepted"
    # the next commit file's name is taken by a folder: the commit fails for real
    blocker = Path(dirs.lake) / "ticks" / "_delta_log" / f"{1:020d}.json"
    blocker.mkdir()
    with pytest.raises(BtlakeError, match="was not stored"):
        _put(writer, 2).result(60)
    with pytest.raises(BtlakeError, match="send again from seq 2"):
        _put(writer, 3)  # later seqs wait for the gap: a txn of 3 would hide 2 for good
    blocker.rmdir()
    assert lake.last_seq("feed") == 1
    assert [_put(writer, s).result(30).status for s in (2, 3)] == ["accepted", "accepted"]
    assert _put(writer, 2).result(30).status == "duplicate"
    writer.close()
    seqs = pl.from_arrow(Lake(dirs.lake).read("ticks")).group_by("seq").len()
    assert dict(seqs.iter_rows()) == {1: 4, 2: 4, 3: 4}


def test_an_extra_column_of_another_type_is_refused_alone(dirs):
    writer = Lake(dirs.lake).stream_writer()
    assert _put(writer, 1).result(30).status == "accepted"
    text_seq = tick_batch(2).set_column(4, "seq", pa.array(["two"] * 4))
    with pytest.raises(BundleRefused, match=r"column_type \[ticks\.seq\]"):
        _put(writer, 2, text_seq, name="other")
    assert _put(writer, 3).result(30).status == "accepted"
    writer.close()
    assert Lake(dirs.lake).read("ticks").num_rows == 8
