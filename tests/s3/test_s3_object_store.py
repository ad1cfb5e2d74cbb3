"""One object-store layer: landing (boto3), lake files (pyarrow) and Delta tables (deltalake)
all reach the store through the settings' ``ObjectStore``, and boto3's transfer manager moves
the bytes."""

from __future__ import annotations

import io
import os
from collections import Counter
from pathlib import Path

import pytest

from btlake_pipelines import Lake, publish
from btlake_pipelines.landing.s3 import S3LandingZone
from btlake_pipelines.landing.zone import MANIFEST
from btlake_pipelines.settings import Settings, current, environment_for_child
from btlake_pipelines.storage import lake_files
from btlake_pipelines.storage.object_store import s3_client, s3_filesystem

from .conftest import S3Lake
from .helpers import backtest
from .test_s3_landing import Calls

pytestmark = pytest.mark.s3

#: Nothing listens here: a client configured from the generic variable fails at once.
DEAD_ENDPOINT = "http://127.0.0.1:9"


def test_every_client_takes_the_s3_endpoint_first(s3: S3Lake, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``AWS_ENDPOINT_URL_S3`` beats ``AWS_ENDPOINT_URL`` for publish (boto3), the Delta
    writes (deltalake), the archive (pyarrow) and the ingesting child process alike."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", DEAD_ENDPOINT)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint)
    store = current().store
    assert store.endpoint_url == s3.endpoint
    assert s3_client() is s3_client(store)  # one client per store value
    assert s3_filesystem() is s3_filesystem(store)

    publish(backtest(tmp_path / "src", "endpoint-1"))
    batch = Lake(s3.lake).ingest(s3.landing)  # in a supervised child process
    assert [r.status for r in batch.results] == ["ingested"]
    assert lake_files.exists(f"{s3.lake}/_archive/endpoint-1")
    assert Lake(s3.lake).runs().column("run_id").to_pylist() == ["endpoint-1"]


def test_a_child_gets_the_settings_it_was_given(s3: S3Lake) -> None:
    """Settings installed in a front end (not in the environment) reach the child whole."""
    given = Settings.from_env(lake="s3://elsewhere/lake", batch_size=7)
    env = environment_for_child(given.with_(supervised_by=os.getpid()))
    assert Settings.from_env(env) == given.with_(supervised_by=os.getpid())
    bare = Settings()  # no credentials at all: the child must not inherit this process's
    assert "AWS_SECRET_ACCESS_KEY" not in environment_for_child(bare)


def test_large_files_go_in_parts_and_moves_copy_each_object_once(s3: S3Lake) -> None:
    zone = S3LandingZone(s3.landing, client=s3.client())
    calls = Calls(zone.client)
    big = os.urandom(17 * 1024 * 1024)
    zone.write_file("big-1", "ticks.parquet", io.BytesIO(big))
    assert calls.ops["CreateMultipartUpload"] == 1 and calls.ops["UploadPart"] >= 2
    assert calls.ops["CompleteMultipartUpload"] == 1 and calls.ops["PutObject"] == 0
    zone.write_file("big-1", MANIFEST, io.BytesIO(b"{}"))
    assert calls.ops["PutObject"] == 2  # the manifest, then its arrival key

    calls.reset()
    zone.move_to("big-1", f"{s3.lake}/_archive/big-1")
    # one HEAD (the manifest's arrival key), one copy per object, sizes from the listing
    assert calls.ops == Counter({"ListObjectsV2": 1, "HeadObject": 1, "CopyObject": 2,
                                 "DeleteObjects": 1})
    # read back as btlake reads its archive: moto's copy of a multipart object keeps a
    # checksum that boto3's response validation rejects
    assert lake_files.read_bytes(f"{s3.lake}/_archive/big-1/ticks.parquet") == big
    assert s3.keys("landing/") == []
    calls.close()
