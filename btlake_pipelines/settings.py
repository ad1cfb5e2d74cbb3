"""Where the lake and the landing zone are, from options, the environment or defaults.

The defaults are local folders under ``./btlake-data`` so that a fresh clone works with no
configuration; ``BTLAKE_LAKE`` and ``BTLAKE_LANDING`` (or ``--lake`` / ``--landing``) point
elsewhere, including ``s3://bucket/prefix``.
"""

from __future__ import annotations

import os

DEFAULT_LAKE = "btlake-data/lake"
DEFAULT_LANDING = "btlake-data/landing"

#: Names under the lake root that start with ``_`` belong to btlake, not to tables.
ARCHIVE_DIR = "_archive"
QUARANTINE_DIR = "_quarantine"


def lake_uri(value: str | None = None) -> str:
    """The lake root: the explicit value, else ``BTLAKE_LAKE``, else the local default."""
    return _normalize(value or os.environ.get("BTLAKE_LAKE") or DEFAULT_LAKE)


def landing_uri(value: str | None = None) -> str:
    """The landing zone: the explicit value, else ``BTLAKE_LANDING``, else the local default."""
    return _normalize(value or os.environ.get("BTLAKE_LANDING") or DEFAULT_LANDING)


def is_object_store(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def _normalize(uri: str) -> str:
    if is_object_store(uri):
        return uri.rstrip("/")
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return os.path.abspath(os.path.expanduser(uri))


def storage_options(uri: str) -> dict[str, str] | None:
    """deltalake object-store options from the standard AWS variables (None for local paths).

    Only the variables the contract names are passed; credentials never leave this dict.
    """
    if not is_object_store(uri):
        return None
    keys = (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ALLOW_HTTP",
    )
    opts = {k: os.environ[k] for k in keys if os.environ.get(k)}
    if "AWS_REGION" not in opts and os.environ.get("AWS_DEFAULT_REGION"):
        opts["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"]
    return opts
