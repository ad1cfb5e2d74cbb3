"""The clients btlake talks to an S3-compatible store with, all built from one
:class:`~btlake_pipelines.settings.ObjectStore` (credentials, region, endpoint resolved once).

Three libraries reach the store, each where it is the one that fits: deltalake (Delta tables,
through ``storage_options``), pyarrow's ``S3FileSystem`` (plain files under the lake root:
archive, quarantine, the Delta log read directly) and boto3 (the landing zone: conditional puts,
listings with ``StartAfter``, server-side copies, the transfer manager). They used to read the
environment each in its own way and disagreed (``AWS_ENDPOINT_URL_S3`` was honoured by one);
now every one of them is configured from the same value.

Clients are kept per ``ObjectStore`` value: building a boto3 client costs a few hundred ms,
and a change of credentials or endpoint (a test's ``monkeypatch.setenv``) gives a new value,
hence a new client, by itself.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from btlake_pipelines.settings import ObjectStore, current

if TYPE_CHECKING:
    from pyarrow.fs import S3FileSystem


def s3_client(store: ObjectStore | None = None) -> Any:
    """A boto3 S3 client for ``store`` (default: the settings' store), shared per value.

    With a custom endpoint (MinIO, moto, Ceph, ...) requests use path-style addressing, which
    every S3-compatible store understands and which needs no per-bucket DNS name; retries are
    boto3's "standard" mode, five attempts."""
    return _s3_client(store or current().store)


def s3_filesystem(store: ObjectStore | None = None) -> S3FileSystem:
    """A ``pyarrow.fs.S3FileSystem`` for ``store`` (default: the settings' store), shared per
    value (pyarrow's file systems are thread-safe)."""
    return _s3_filesystem(store or current().store)


@functools.lru_cache(maxsize=4)
def _s3_client(store: ObjectStore) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 5, "mode": "standard"},
                    s3={"addressing_style": "path"} if store.endpoint_url else None)
    session = boto3.session.Session(profile_name=store.profile)
    return session.client("s3", config=config, **store.boto3_options())


@functools.lru_cache(maxsize=4)
def _s3_filesystem(store: ObjectStore) -> S3FileSystem:
    from pyarrow import fs

    return fs.S3FileSystem(**store.pyarrow_options())
