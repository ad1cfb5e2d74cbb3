"""``btlake replicate`` on a real S3 API (moto on loopback): local -> S3 and S3 -> S3 (two
buckets standing for two regions), killed and resumed, a second run copying nothing, and a
large file streamed without being held in memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from btlake_pipelines import Lake
from btlake_pipelines.replication.objects import Root
from tests.replication_kit import assert_valid_earlier_point, build_lake, ingest_round

from .conftest import S3Lake

pytestmark = pytest.mark.s3

BTLAKE = [sys.executable, "-m", "btlake_pipelines.interfaces.cli"]


def _bucket(s3: S3Lake) -> str:
    name = f"btlake-replica-{uuid.uuid4().hex[:10]}"
    s3.client().create_bucket(Bucket=name)
    return f"s3://{name}/lake"


def _plain(root: str) -> dict[str, int]:
    r = Root.of(root)
    return {f"{top}/{k}": v for top in ("_archive", "_quarantine")
            for k, v in r.listing(top, recursive=True).items()}


def test_local_to_s3_killed_resumed_and_idempotent(s3: S3Lake, tmp_path: Path) -> None:
    primary, landing = str(tmp_path / "lake"), tmp_path / "landing"
    landing.mkdir()
    build_lake(primary, landing, rounds=3)
    replica = s3.lake  # the fixture's bucket
    killed = subprocess.run([*BTLAKE, "--lake", primary, "replicate", "--to", replica],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ,
                                 "BTLAKE_FAULT_POINT": "replicate:before_log_entry#4"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert_valid_earlier_point(primary, replica)
    done = Lake(primary).replicate(replica)
    assert done.files_skipped > 0 and done.files_copied > 0
    assert_valid_earlier_point(primary, replica)
    assert _plain(replica) == _plain(primary)
    again = Lake(primary).replicate(replica)
    assert (again.files_copied, again.log_entries) == (0, 0)
    status = json.loads(subprocess.run(
        [*BTLAKE, "--lake", primary, "replicate", "--to", replica, "--status", "--format",
         "json"], capture_output=True, text=True, timeout=120).stdout)
    assert status["lag_versions"] == 0 and status["tables"]["runs"]["replica_version"] >= 2


def test_s3_to_s3_between_buckets_follows_new_batches(s3: S3Lake, tmp_path: Path) -> None:
    primary = s3.lake
    landing = tmp_path / "landing"
    landing.mkdir()
    build_lake(primary, landing, rounds=2)
    replica = _bucket(s3)
    Lake(primary).replicate(replica)
    assert_valid_earlier_point(primary, replica)
    ingest_round(primary, landing, 5, replace="run-0-b")
    assert Lake(primary).replication_status(replica).lag_versions > 0
    report = Lake(primary).replicate(replica)
    assert report.log_entries > 0
    assert Lake(primary).replication_status(replica).lag_versions == 0
    assert_valid_earlier_point(primary, replica)
    assert _plain(replica) == _plain(primary)
    # btlake reads on the replica, in its own bucket
    assert Lake(replica).runs().num_rows == Lake(primary).runs().num_rows


_STREAMED = """
import resource, sys
from btlake_pipelines.replication.objects import Root, copy_object
src, dst = Root.of(sys.argv[1]), Root.of(sys.argv[2])
copy_object(src, dst, "_archive/big.bin")  # warm up: imports, clients, pools
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
got = copy_object(src, dst, "_archive/huge.bin")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(got, (after - before) // 1024)
"""


def test_a_large_file_is_streamed_not_held(s3: S3Lake, tmp_path: Path) -> None:
    """Copying a 160 MB file to S3 (multipart) grows the process by far less than it."""
    primary = tmp_path / "lake"
    (primary / "_archive").mkdir(parents=True)
    chunk = os.urandom(1 << 20)
    with open(primary / "_archive" / "big.bin", "wb") as f:
        f.write(chunk * 16)
    with open(primary / "_archive" / "huge.bin", "wb") as f:
        for _ in range(160):
            f.write(chunk)
    out = subprocess.run([sys.executable, "-c", _STREAMED, str(primary), s3.lake],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    copied, grown_mb = (int(x) for x in out.stdout.split())
    assert copied == 160 << 20
    assert grown_mb < 80, f"peak memory grew {grown_mb} MB copying a 160 MB file"
    size = s3.client().head_object(Bucket=s3.bucket, Key="lake/_archive/huge.bin")
    assert size["ContentLength"] == 160 << 20
