"""Credentials never reach output, error messages or anything btlake stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from btlake_pipelines import publish

from .conftest import ACCESS_KEY, SECRET_KEY, S3Lake, s3_environment, start_moto, stop_moto
from .helpers import backtest, broken, btlake

pytestmark = pytest.mark.s3


def _assert_clean_failure(result, *secrets: str) -> None:
    text = result.stdout + result.stderr
    assert result.returncode != 0, text
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("btlake: error: "), result.stderr
    assert "Traceback" not in text
    for secret in secrets:
        assert secret not in text


@pytest.fixture(scope="module")
def strict_s3() -> Iterator[tuple[str, str, str]]:
    """A moto server that checks signatures: (endpoint, registered key id, its bucket)."""
    import boto3

    proc, endpoint = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "4"})
    try:
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.create_user(UserName="btlake")
        iam.put_user_policy(UserName="btlake", PolicyName="all", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="btlake")["AccessKey"]
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id=key["AccessKeyId"],
                     aws_secret_access_key=key["SecretAccessKey"]).create_bucket(Bucket="strict")
        yield endpoint, key["AccessKeyId"], "strict"
    finally:
        stop_moto(proc)


@pytest.mark.parametrize("command", [["ingest"], ["runs"], ["read", "trades"],
                                     ["history", "trades"]])
def test_wrong_secret_is_not_printed(strict_s3: tuple[str, str, str],
                                     command: list[str]) -> None:
    endpoint, key_id, bucket = strict_s3
    wrong = "wrong-secret-Zr41kQ0vB8mN"
    env = {**s3_environment(endpoint), "AWS_ACCESS_KEY_ID": key_id,
           "AWS_SECRET_ACCESS_KEY": wrong, "BTLAKE_LAKE": f"s3://{bucket}/lake",
           "BTLAKE_LANDING": f"s3://{bucket}/landing"}
    result = btlake(*command, env=env)
    _assert_clean_failure(result, wrong, key_id)
    if command == ["ingest"]:
        assert "SignatureDoesNotMatch" in result.stderr
        assert f"s3://{bucket}/landing" in result.stderr


@pytest.mark.parametrize("where", ["missing bucket", "no endpoint"])
def test_unreachable_store_is_not_a_leak(s3: S3Lake, where: str) -> None:
    env = ({"BTLAKE_LANDING": f"s3://{s3.bucket}-gone/landing",
            "BTLAKE_LAKE": f"s3://{s3.bucket}-gone/lake"} if where == "missing bucket"
           else {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    for command in (["ingest"], ["runs"]):
        _assert_clean_failure(btlake(*command, env=env), SECRET_KEY, ACCESS_KEY)


def test_nothing_stored_or_printed_carries_credentials(s3: S3Lake, tmp_path: Path) -> None:
    publish(backtest(tmp_path, "clean-1"))
    publish(broken(tmp_path, "clean-bad"))
    outputs = [btlake("ingest"), btlake("runs", "--format", "json"),
               btlake("history", "runs", "--format", "json"),
               btlake("read", "ingest_log", "--out", str(tmp_path / "log.csv"))]
    assert outputs[0].returncode == 1 and "clean-bad  quarantined" in outputs[0].stdout
    for result in outputs:
        assert SECRET_KEY not in result.stdout + result.stderr
        assert ACCESS_KEY not in result.stdout + result.stderr
    assert SECRET_KEY not in (tmp_path / "log.csv").read_text()

    client = s3.client()
    keys = s3.keys()
    assert any(k.endswith("reason.json") for k in keys)
    assert any("/_delta_log/" in k for k in keys)
    for key in keys:  # tables, logs, archive, quarantine and reason.json alike
        body = client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
        assert SECRET_KEY.encode() not in body, key
        assert ACCESS_KEY.encode() not in body, key
