"""btlake's settings: the one module that reads the environment.

Every knob (where the lake and landing are, object-store credentials and endpoint, API tokens
and limits, ingestion and sensor tuning) is a field of :class:`Settings`, built from the
environment and explicit overrides. A front end builds one (``Settings.from_env(lake=...)``
for ``--lake``) and hands it to :class:`~btlake_pipelines.app.lake.Lake`; code below that asks
:func:`current`, which returns the settings installed with :func:`use` or else those of the
environment as it is now (re-read only when a variable btlake knows has changed, so a test's
``monkeypatch.setenv`` is seen and a long-lived process pays one dictionary comparison).

The defaults are local folders under ``./btlake-data`` so that a fresh clone works with no
configuration; ``BTLAKE_LAKE`` and ``BTLAKE_LANDING`` (or ``--lake`` / ``--landing``) point
elsewhere, including ``s3://bucket/prefix``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_LAKE = "btlake-data/lake"
DEFAULT_LANDING = "btlake-data/landing"

#: Names under the lake root that start with ``_`` belong to btlake, not to tables.
ARCHIVE_DIR = "_archive"
QUARANTINE_DIR = "_quarantine"


@dataclass(frozen=True)
class ObjectStore:
    """Credentials, region and endpoint of an S3-compatible store, resolved once from the
    standard variables, and given to each client (deltalake, pyarrow, boto3) in its own words.
    ``AWS_ENDPOINT_URL_S3`` wins over ``AWS_ENDPOINT_URL``, as in the AWS SDKs.

    Frozen and hashable: :mod:`btlake_pipelines.storage.object_store` keeps one client per
    value, so a change of credentials or endpoint gets a new client and nothing else does."""

    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None
    endpoint_url: str | None = None
    allow_http: bool = False
    profile: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ObjectStore:
        return cls(
            access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=env.get("AWS_SESSION_TOKEN") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
            allow_http=(env.get("AWS_ALLOW_HTTP") or "").lower() in ("1", "true", "yes"),
            profile=env.get("AWS_PROFILE") or None,
        )

    def environment(self) -> dict[str, str | None]:
        """The variables that make :meth:`from_env` give this store back (None: unset it);
        variables it leaves as they are (``AWS_DEFAULT_REGION`` under an ``AWS_REGION``,
        ``AWS_ENDPOINT_URL`` under an ``AWS_ENDPOINT_URL_S3``) are not named."""
        env: dict[str, str | None] = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
            "AWS_REGION": self.region, "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_ALLOW_HTTP": "true" if self.allow_http else None, "AWS_PROFILE": self.profile}
        if self.region is None:
            env["AWS_DEFAULT_REGION"] = None
        if self.endpoint_url is None:
            env["AWS_ENDPOINT_URL"] = None
        return env

    def secrets(self) -> tuple[str, ...]:
        """The values no message may show."""
        return tuple(v for v in (self.access_key_id, self.secret_access_key,
                                 self.session_token) if v)

    def deltalake_options(self) -> dict[str, str]:
        """``storage_options`` for deltalake (object_store's keys)."""
        opts = {"AWS_ACCESS_KEY_ID": self.access_key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
                "AWS_SESSION_TOKEN": self.session_token, "AWS_REGION": self.region,
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_ALLOW_HTTP": "true" if self.allow_http else None}
        return {k: v for k, v in opts.items() if v}

    def pyarrow_options(self) -> dict[str, Any]:
        """Keyword arguments of ``pyarrow.fs.S3FileSystem``."""
        kwargs: dict[str, Any] = {"region": self.region or "us-east-1"}
        if self.endpoint_url:
            scheme, _, rest = self.endpoint_url.partition("://")
            kwargs.update(endpoint_override=rest or scheme, scheme=scheme if rest else "https")
        if self.access_key_id:
            kwargs.update(access_key=self.access_key_id, secret_key=self.secret_access_key,
                          session_token=self.session_token)
        return kwargs

    def boto3_options(self) -> dict[str, Any]:
        """Keyword arguments of ``boto3.client("s3", ...)``."""
        kwargs: dict[str, Any] = {"region_name": self.region or "us-east-1"}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.access_key_id:
            kwargs.update(aws_access_key_id=self.access_key_id,
                          aws_secret_access_key=self.secret_access_key,
                          aws_session_token=self.session_token)
        return kwargs


@dataclass(frozen=True)
class Settings:
    """Everything btlake reads from its environment, read once."""

    lake: str = DEFAULT_LAKE
    landing: str = DEFAULT_LANDING
    store: ObjectStore = field(default_factory=ObjectStore)
    #: HTTP API (``btlake serve``)
    api_token: str | None = field(default=None, repr=False)
    api_read_token: str | None = field(default=None, repr=False)
    max_upload_mb: str | None = None  # checked by the HTTP layer, which reports a bad value
    upload_dir: str | None = None
    json_rows: str | None = None
    root_path: str = ""
    log_level: str = "info"
    forwarded_allow_ips: str | None = None
    #: ingestion and orchestration
    batch_size: int | None = None
    ingest_runs: int | None = None
    sensor_interval: int = 15
    partition_start: str | None = None
    stream_mb: float | None = None
    debug: bool = False
    #: the crash supervisor and the fault hooks of the crash-safety tests
    #: (:mod:`btlake_pipelines.ingest.faults`, :mod:`btlake_pipelines.ingest.isolated`)
    fault_point: str | None = None
    fault_pause: str | None = None
    supervised_by: int | None = None
    #: replication (CONTRACT section 8): the replica's root, how often Dagster replicates
    #: (seconds) and the lag past which its asset check fails (seconds)
    replica: str | None = None
    replica_interval: int = 60
    replica_max_lag: int = 900
    #: coverage gaps: btlake market code -> exchange calendar, ``"NYSE=XNYS,COIN=none"``
    #: (see :mod:`btlake_pipelines.query.calendars`)
    calendars: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``environ`` (default: the process environment); ``overrides`` whose
        value is not None win (``lake=`` and ``landing=`` are what ``--lake`` and
        ``--landing`` give). A variable that is empty or does not parse keeps the default."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {"store": ObjectStore.from_env(env)}
        for name, var, parse in _FIELDS:
            text = env.get(var)
            if text:
                with contextlib.suppress(ValueError):
                    values[name] = parse(text)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).with_()

    def with_(self, **changes: Any) -> Settings:
        """A copy with ``changes`` whose value is not None (locations normalized)."""
        out = replace(self, **{k: v for k, v in changes.items() if v is not None})
        return replace(out, lake=_normalize(out.lake), landing=_normalize(out.landing))

    def environment(self) -> dict[str, str | None]:
        """The variables that make :meth:`from_env` give these settings back (None: unset)."""
        env = self.store.environment()
        for name, var, _ in _FIELDS:
            value = getattr(self, name)
            env[var] = None if value is None or value is False or value == "" else \
                "1" if value is True else str(value)
        return env


#: Each field of :class:`Settings` but ``store``, the variable it is read from, and how.
_FIELDS: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("lake", "BTLAKE_LAKE", str),
    ("landing", "BTLAKE_LANDING", str),
    ("api_token", "BTLAKE_API_TOKEN", str),
    ("api_read_token", "BTLAKE_API_READ_TOKEN", str),
    ("max_upload_mb", "BTLAKE_MAX_UPLOAD_MB", str),
    ("upload_dir", "BTLAKE_UPLOAD_DIR", str),
    ("json_rows", "BTLAKE_API_JSON_ROWS", str),
    ("root_path", "BTLAKE_ROOT_PATH", str),
    ("log_level", "BTLAKE_LOG_LEVEL", str.lower),
    ("forwarded_allow_ips", "FORWARDED_ALLOW_IPS", str),
    ("batch_size", "BTLAKE_BATCH_SIZE", int),
    ("ingest_runs", "BTLAKE_INGEST_RUNS", int),
    ("sensor_interval", "BTLAKE_SENSOR_INTERVAL", int),
    ("partition_start", "BTLAKE_PARTITION_START", str),
    ("stream_mb", "BTLAKE_STREAM_MB", float),
    ("debug", "BTLAKE_DEBUG", bool),
    ("fault_point", "BTLAKE_FAULT_POINT", str),
    ("fault_pause", "BTLAKE_FAULT_PAUSE", str),
    ("supervised_by", "BTLAKE_SUPERVISED_BY", int),
    ("replica", "BTLAKE_REPLICA", str),
    ("replica_interval", "BTLAKE_REPLICA_INTERVAL", int),
    ("replica_max_lag", "BTLAKE_REPLICA_MAX_LAG", int),
    ("calendars", "BTLAKE_CALENDARS", str),
)
#: Every variable :meth:`Settings.from_env` reads: a change to any of them is seen.
WATCHED: tuple[str, ...] = (*(var for _, var, _ in _FIELDS), "AWS_ACCESS_KEY_ID",
                            "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                            "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                            "AWS_ALLOW_HTTP", "AWS_PROFILE")
_lock = threading.Lock()
_installed: Settings | None = None
_cached: tuple[tuple[str | None, ...], Settings] | None = None


def current() -> Settings:
    """The settings in force: those installed with :func:`use`, else the environment's."""
    global _cached
    if _installed is not None:
        return _installed
    key = tuple(os.environ.get(v) for v in WATCHED)
    with _lock:
        if _cached is None or _cached[0] != key:
            _cached = (key, Settings.from_env())
        return _cached[1]


def use(settings: Settings | None) -> None:
    """Install ``settings`` for this process (None: back to the environment's). A front end
    that was given ``--lake`` installs its settings once, instead of writing the environment."""
    global _installed
    _installed = settings


def environment_for_child(settings: Settings) -> dict[str, str]:
    """The environment of a child process of btlake: this one's, with every variable of
    ``settings`` written over it, so the child's :func:`current` gives ``settings`` back even
    when they were installed with :func:`use` rather than read from the environment."""
    env = dict(os.environ)
    for var, value in settings.environment().items():
        if value is None:
            env.pop(var, None)
        else:
            env[var] = value
    return env


def lake_uri(value: str | None = None) -> str:
    """The lake root: the explicit value, else the settings' (``BTLAKE_LAKE``, else the local
    default)."""
    return _normalize(value) if value else current().lake


def landing_uri(value: str | None = None) -> str:
    """The landing zone: the explicit value, else the settings'."""
    return _normalize(value) if value else current().landing


def is_object_store(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def _normalize(uri: str) -> str:
    if is_object_store(uri):
        return uri.rstrip("/")
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return os.path.abspath(os.path.expanduser(uri))


def storage_options(uri: str) -> dict[str, str] | None:
    """deltalake object-store options for ``uri`` (None for local paths); credentials never
    leave this dict."""
    if not is_object_store(uri):
        return None
    return current().store.deltalake_options()
