"""A real S3 API on loopback for the whole session: moto's ``ThreadedMotoServer``.

The server runs in a child process, not in the test process: several ``deltalake`` calls
(``DeltaTable.history`` among them) hold the GIL while they wait for the network, so a server
thread inside the test process could never answer them (the call hangs until its timeout).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

#: Distinctive credentials (moto accepts any), so tests can prove they never leak.
ACCESS_KEY = "AKIABTLAKETESTKEY042"
SECRET_KEY = "btlake-test-secret-Qx7vT2pL9wZ"

_SERVER = """
import sys, time
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the test session closes our stdin
server.stop()
"""


def start_moto(extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """A moto server process on 127.0.0.1 and a free port; returns (process, endpoint)."""
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError("moto server did not start")
    return proc, f"http://127.0.0.1:{int(line)}"


def stop_moto(proc: subprocess.Popen) -> None:
    if proc.stdin:
        proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    proc, endpoint = start_moto()
    try:
        yield endpoint
    finally:
        stop_moto(proc)


@dataclass
class S3Lake:
    endpoint: str
    bucket: str

    @property
    def lake(self) -> str:
        return f"s3://{self.bucket}/lake"

    @property
    def landing(self) -> str:
        return f"s3://{self.bucket}/landing"

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def keys(self, prefix: str = "") -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        return [o["Key"] for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
                for o in page.get("Contents", [])]

    @property
    def storage_options(self) -> dict[str, str]:
        """What any Delta reader needs: the standard variables, nothing of btlake's."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_REGION": "us-east-1"}


def s3_environment(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1"}


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Lake:
    """A fresh bucket; the environment points btlake's lake and landing into it."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                "AWS_ENDPOINT_URL_S3", "AWS_S3_ALLOW_UNSAFE_RENAME", "AWS_S3_LOCKING_PROVIDER"):
        monkeypatch.delenv(var, raising=False)
    for key, value in s3_environment(moto_endpoint).items():
        monkeypatch.setenv(key, value)
    lake = S3Lake(moto_endpoint, f"btlake-{uuid.uuid4().hex[:12]}")
    lake.client().create_bucket(Bucket=lake.bucket)
    monkeypatch.setenv("BTLAKE_LAKE", lake.lake)
    monkeypatch.setenv("BTLAKE_LANDING", lake.landing)
    return lake
