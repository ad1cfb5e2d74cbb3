"""The landing zone as an S3 prefix (AWS S3 or any S3-compatible store), through boto3.

Layout (the contract's, unchanged)::

    s3://bucket/prefix/<run_id>/manifest.json        # written last
    s3://bucket/prefix/<run_id>/<table>.parquet|csv
    s3://bucket/prefix/.arrivals/<time>-<id>-<run_id> # btlake's own arrival index (see below)
    s3://bucket/prefix/.claims/<run_id>               # btlake's lease while a batch handles it

The boto3 client is given (in Dagster, ``dagster_aws``'s ``S3Resource``:
``S3LandingZone(uri, client=s3.get_client())``) or the one
:func:`~btlake_pipelines.storage.object_store.s3_client` builds from the settings' object store
(the same credentials, region and endpoint as the lake's tables and files; with no key set,
profiles and instance roles work too). Files are written, copied and downloaded by boto3's
transfer manager: one request up to a size, parallel parts above it, an object visible only
when whole. Every S3 failure is reported as :class:`S3AccessError` with a message that names
the operation, the ``s3://`` location and S3's error code, scrubbed of any credential.

Cursor (what the sensor uses so that a tick costs what is new, not what waits)
---------------------------------------------------------------------------
S3 lists keys in name order, and run ids are arbitrary names, so "names after the last one
seen" is not "bundles that arrived since". btlake therefore keeps a small *arrival index*:
right after a bundle's manifest is written through :meth:`S3LandingZone.write_file` (what
``publish``, ``btlake demo`` and the HTTP upload all use) it puts one empty key
``.arrivals/<UTC time>-<random id>-<run_id>``. Those keys sort by time, so a tick is one
``ListObjectsV2(Prefix=".arrivals/", StartAfter=<cursor time - look-back>)`` that returns only
recent arrivals, plus one HEAD per arrival not seen before. The short look-back (10 minutes by
default) absorbs clock differences between writers; ids seen inside it are kept in the cursor
so nothing is offered twice. ``.arrivals`` starts with ``.`` so it can never be a run id.

Bundles written straight to S3 by an engine, without the index key, are still accepted: every
``sweep_every`` seconds (15 minutes by default, and on the first tick) the tick also lists the
whole landing prefix once and offers every complete bundle the index did not cover. Landing
holds only bundles not yet handled (handled ones are moved out, and their index key with them),
so even the sweep costs what is waiting, never what was ever landed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlparse

from boto3.s3.transfer import TransferConfig, create_transfer_manager
from s3transfer.subscribers import BaseSubscriber

from btlake_pipelines.errors import BtlakeError, redact
from btlake_pipelines.landing.zone import MANIFEST, Entry, LandingZone, NewBundles
from btlake_pipelines.settings import is_object_store
from btlake_pipelines.storage.object_store import s3_client

#: btlake's arrival index under the landing prefix; a name starting with "." is never a run id.
ARRIVALS = ".arrivals"
#: btlake's claims (leases) on bundles a batch is handling, under the landing prefix.
CLAIMS = ".claims"
_OWN = frozenset({ARRIVALS, CLAIMS})
#: Object metadata on a manifest naming its arrival key, so moving the bundle removes it too.
ARRIVAL_META = "btlake-arrival"
_TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_TIME_LEN = len("20240101T000000.000000Z")
#: Files up to 16 MiB are written with one PutObject call; larger ones in parts.
_UPLOAD = TransferConfig(multipart_threshold=16 * 1024**2)
#: Objects up to 5 GiB (S3's limit for one call) are copied with one CopyObject call; larger
#: ones in parts. The objects of a bundle are copied (or downloaded) in parallel.
_COPY = TransferConfig(multipart_threshold=5 * 1024**3)
_CURSOR_VERSION = 1
#: S3's answers to a conditional request whose condition did not hold (or lost a race).
_CONDITION_FAILED = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


class S3AccessError(BtlakeError, OSError):
    """An S3 request failed; the message never carries credentials. An ``OSError`` too, so
    ingestion treats it as a failure of the store (bundles stay in landing), not of a bundle."""

def _utcnow() -> datetime:
    return datetime.now(UTC)


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``) with no trailing slash."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("s3", "s3a") or not parsed.netloc:
        raise BtlakeError(f"not an S3 location: {redact(uri)!r} (use s3://bucket/prefix)")
    return parsed.netloc, parsed.path.strip("/")


class S3LandingZone(LandingZone):
    """Landing on ``s3://bucket/prefix``. Thread-safe as far as the boto3 client is."""

    def __init__(self, uri: str, *, client: Any = None, lookback_seconds: float = 600,
                 sweep_every_seconds: float = 900, claim_ttl_seconds: float = 1800) -> None:
        self.uri = uri.rstrip("/")
        self.bucket, self.prefix = split_uri(self.uri)
        self._client = client
        self.lookback = timedelta(seconds=lookback_seconds)
        self.sweep_every = timedelta(seconds=sweep_every_seconds)
        self.claim_ttl = timedelta(seconds=claim_ttl_seconds)

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            self._client = s3_client()
        return self._client

    def _key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts]) if self.prefix else "/".join(parts)

    def _folder(self, name: str) -> str:
        """The key prefix of a bundle folder (``name`` may be any listed name)."""
        return f"{self.prefix}/{name}/" if self.prefix else f"{name}/"

    def _root(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def _call(self, action: str, key: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise _access_error(exc, action, f"s3://{self.bucket}/{key}") from None

    def _pages(self, action: str, **kwargs) -> Iterator[dict]:
        paginator = self.client.get_paginator("list_objects_v2")
        where = kwargs.get("Prefix", "")
        try:
            yield from paginator.paginate(Bucket=self.bucket, **kwargs)
        except Exception as exc:
            raise _access_error(exc, action, f"s3://{self.bucket}/{where}") from None

    def _head(self, key: str) -> dict | None:
        """HEAD one key: its response, or None when it does not exist."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _access_error(exc, "HEAD", f"s3://{self.bucket}/{key}") from None

    # -- LandingZone ------------------------------------------------------------------------

    def bundle_names(self) -> list[str]:
        root = self._root()
        names = []
        for page in self._pages("list landing", Prefix=root, Delimiter="/"):
            for p in page.get("CommonPrefixes", []):
                name = p["Prefix"][len(root):-1]
                if name not in _OWN:
                    names.append(name)
        return sorted(names)

    def complete_bundles(self) -> list[str]:
        """One listing of the whole prefix instead of a HEAD per folder."""
        return sorted(self._scan_complete())

    def has_manifest(self, name: str) -> bool:
        return self._head(self._folder(name) + MANIFEST) is not None

    def entries(self, name: str) -> dict[str, Entry]:
        folder = self._folder(name)
        result: dict[str, Entry] = {}
        for page in self._pages("list bundle", Prefix=folder, Delimiter="/"):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(folder):]
                if rel:  # "folder/" itself is a console's folder marker, not a file
                    mtime = int(obj["LastModified"].timestamp() * 1_000_000_000)
                    result[rel] = Entry(rel, "file", int(obj["Size"]), mtime)
            for p in page.get("CommonPrefixes", []):
                rel = p["Prefix"][len(folder):-1]
                result.setdefault(rel, Entry(rel, "dir", 0, 0))
        return result

    def read_bytes(self, name: str, file_name: str) -> bytes:
        key = self._folder(name) + file_name
        response = self._call("GET", key, self.client.get_object, Bucket=self.bucket, Key=key)
        return self._call("GET", key, response["Body"].read)

    @contextmanager
    def open_file(self, name: str, file_name: str) -> Iterator[BinaryIO]:
        """Downloaded in pieces to a temporary file: a large table file never sits in memory."""
        key = self._folder(name) + file_name
        with tempfile.TemporaryFile() as fh:
            response = self._call("GET", key, self.client.get_object, Bucket=self.bucket,
                                  Key=key)
            for piece in response["Body"].iter_chunks(8 << 20):
                fh.write(piece)
            fh.seek(0)
            yield fh

    def write_file(self, name: str, file_name: str, source: BinaryIO) -> None:
        """One PUT (multipart for large files, completed only when whole): an S3 object
        appears whole or not at all.

        Writing the manifest (the last file of a bundle) also records the bundle's arrival in
        the index the sensor's cursor reads."""
        key = self._folder(name) + file_name
        extra: dict[str, Any] = {}
        arrival = None
        if file_name == MANIFEST:
            arrival = self._arrival_key(name)
            extra["Metadata"] = {ARRIVAL_META: arrival}
        self._call("PUT", key, self.client.upload_fileobj, source, self.bucket, key,
                   ExtraArgs=extra or None, Config=_UPLOAD)
        if arrival is not None:
            self._call("PUT", arrival, self.client.put_object, Bucket=self.bucket,
                       Key=arrival, Body=b"")

    def move_to(self, name: str, target_uri: str) -> None:
        """Copy every object of the bundle to ``target_uri`` (S3: server-side copies; a local
        path: downloads into ``<target>.partial`` then one rename), then delete the landing
        objects and the bundle's arrival key. Nothing is deleted before the copy is whole."""
        folder = self._folder(name)
        objects = [obj for page in self._pages("list bundle", Prefix=folder)
                   for obj in page.get("Contents", [])]
        if not objects:
            raise S3AccessError(f"bundle {name!r:.140} is no longer in landing {self.uri}")
        head = self._head(folder + MANIFEST)
        arrival = ((head or {}).get("Metadata") or {}).get(ARRIVAL_META)
        if is_object_store(target_uri):
            self._copy_to_s3(folder, objects, target_uri)
        else:
            self._copy_to_local(folder, objects, target_uri)
        keys = [obj["Key"] for obj in objects]
        if arrival and arrival.startswith(self._key(ARRIVALS) + "/"):
            keys.append(arrival)
        self._delete(keys)

    @contextmanager
    def claim(self, names: list[str]) -> Iterator[list[str]]:
        """A lease per bundle: ``.claims/<name>``, created only if absent (S3 conditional put,
        ``If-None-Match: *``), deleted when the block ends (only if still ours, ``If-Match``).

        S3 cannot tie a lease to a process, so a claim left by a process that died expires
        after ``claim_ttl_seconds`` (30 minutes by default) and is then taken over, again by a
        conditional put; a batch that outlives the lease may see its bundles handled twice,
        which ingestion tolerates (same rows, one more archive copy)."""
        held: dict[str, str] = {}
        try:
            for name in names:
                etag = self._take_claim(name)
                if etag is None:
                    continue
                held[name] = etag
                if not self.has_manifest(name):  # handled by someone else meanwhile
                    self._release_claim(name, held.pop(name))
            yield list(held)
        finally:
            for name, etag in held.items():
                self._release_claim(name, etag)

    # -- cursor -----------------------------------------------------------------------------

    def list_new(self, cursor: str | None) -> NewBundles:
        """Complete bundles that arrived since ``cursor`` (None: the first tick), and the next
        cursor. See the module docstring for the cost of a tick."""
        now = _utcnow()
        state = _parse_cursor(cursor)
        until = state.get("until")
        start = min(until, now) - self.lookback if until else now - self.lookback
        seen = set(state.get("seen", []))

        names: list[str] = []
        covered: set[str] = set()
        keep: list[str] = []
        for key in self._arrivals_after(start):
            stamp, name = _parse_arrival(key)
            if stamp is None:
                continue
            covered.add(name)
            when = _parse_time(stamp[:_TIME_LEN])
            if when is not None and when >= now - self.lookback:
                keep.append(stamp)
            if stamp in seen:
                continue
            if name not in names and self.has_manifest(name):
                names.append(name)

        swept = state.get("swept")
        if swept is None or now - swept >= self.sweep_every:
            for name in sorted(self._scan_complete()):
                if name not in covered and name not in names:
                    names.append(name)
            self._drop_stale_arrivals(start - self.lookback)
            swept = now
        doc = {"v": _CURSOR_VERSION, "until": _format_time(now), "swept": _format_time(swept),
               "seen": sorted(set(keep))}
        return NewBundles(names, json.dumps(doc, separators=(",", ":")))

    # -- helpers ----------------------------------------------------------------------------

    def _take_claim(self, name: str) -> str | None:
        """Our claim's ETag, or None when a live claim of another ingester holds ``name``."""
        key = self._key(CLAIMS, name)
        now = _utcnow()
        body = json.dumps({"owner": f"{socket.gethostname()}:{os.getpid()}",
                           "claimed": _format_time(now),
                           "expires": _format_time(now + self.claim_ttl)}).encode()
        etag = self._conditional_put(key, body, IfNoneMatch="*")
        if etag is not None:
            return etag
        try:
            current = self.client.get_object(Bucket=self.bucket, Key=key)
            held = json.loads(current["Body"].read())
        except ValueError:
            held = {}  # unreadable: counts as expired
        except Exception as exc:
            if _error_code(exc) in ("404", "NoSuchKey"):  # released meanwhile: try once more
                return self._conditional_put(key, body, IfNoneMatch="*")
            raise _access_error(exc, "GET", f"s3://{self.bucket}/{key}") from None
        expires = _parse_time(held.get("expires")) if isinstance(held, dict) else None
        if expires is not None and expires > now:
            return None
        return self._conditional_put(key, body, IfMatch=current["ETag"])

    def _conditional_put(self, key: str, body: bytes, **condition: str) -> str | None:
        """PUT under a condition: the new ETag, or None when the condition failed."""
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                              **condition)
        except Exception as exc:
            if _error_code(exc) in _CONDITION_FAILED:
                return None
            raise _access_error(exc, "PUT", f"s3://{self.bucket}/{key}") from None
        return response["ETag"]

    def _release_claim(self, name: str, etag: str) -> None:
        key = self._key(CLAIMS, name)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=etag)
        except Exception as exc:
            if _error_code(exc) not in (*_CONDITION_FAILED, "404", "NoSuchKey"):
                raise _access_error(exc, "DELETE", f"s3://{self.bucket}/{key}") from None

    def _arrival_key(self, name: str) -> str:
        return self._key(ARRIVALS, f"{_format_time(_utcnow())}-{uuid.uuid4().hex[:8]}-{name}")

    def _arrivals_after(self, start: datetime) -> Iterator[str]:
        base = self._key(ARRIVALS) + "/"
        for page in self._pages("list arrivals", Prefix=base,
                                StartAfter=base + _format_time(start)):
            for obj in page.get("Contents", []):
                yield obj["Key"][len(base):]

    def _scan_complete(self) -> set[str]:
        """Names of folders holding a ``manifest.json``, from one listing of the prefix."""
        root = self._root()
        found: set[str] = set()
        for page in self._pages("list landing", Prefix=root):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(root):]
                name, sep, rest = rel.partition("/")
                if sep and rest == MANIFEST and name not in _OWN:
                    found.add(name)
        return found

    def _drop_stale_arrivals(self, before: datetime) -> None:
        """Index keys older than the look-back have done their job (any bundle still waiting
        is offered by the sweep); remove them so the index stays as small as what is new."""
        base = self._key(ARRIVALS) + "/"
        cut = base + _format_time(before)
        stale: list[str] = []
        for page in self._pages("list arrivals", Prefix=base):
            keys = [obj["Key"] for obj in page.get("Contents", [])]
            stale.extend(k for k in keys if k < cut)
            if keys and keys[-1] >= cut:
                break  # keys come in name (= time) order: the rest are recent
        self._delete(stale)

    def _delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            chunk = keys[i:i + 1000]
            response = self._call("DELETE", chunk[0], self.client.delete_objects,
                                  Bucket=self.bucket,
                                  Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise S3AccessError(
                    f"S3 DELETE s3://{self.bucket}/{first.get('Key', '')} failed: "
                    f"{first.get('Code', 'error')}: {redact(first.get('Message', ''))}"
                    f" ({len(errors)} object(s) not deleted)")

    def _copy_to_s3(self, folder: str, objects: list[dict], target_uri: str) -> None:
        bucket, prefix = split_uri(target_uri)
        with create_transfer_manager(self.client, _COPY) as manager:
            self._wait("COPY", [(obj["Key"], manager.copy(
                {"Bucket": self.bucket, "Key": obj["Key"]}, bucket,
                f"{prefix}/{obj['Key'][len(folder):]}" if prefix else obj["Key"][len(folder):],
                subscribers=_listed(obj, copy=True))) for obj in objects])

    def _copy_to_local(self, folder: str, objects: list[dict], target_uri: str) -> None:
        target = Path(target_uri)
        partial = Path(f"{target_uri}.partial")
        if partial.exists():
            shutil.rmtree(partial)  # left by a crash before the rename: btlake's own, redo
        partial.mkdir(parents=True)
        downloads: list[tuple[str, Path, dict]] = []
        for obj in objects:
            rel = obj["Key"][len(folder):]
            if rel:
                path = partial / _safe_relative(rel)
                path.parent.mkdir(parents=True, exist_ok=True)
                downloads.append((obj["Key"], path, obj))
        with create_transfer_manager(self.client, _COPY) as manager:
            self._wait("GET", [(key, manager.download(self.bucket, key, str(path),
                                                      subscribers=_listed(obj)))
                               for key, path, obj in downloads])
        os.replace(partial, target)

    def _wait(self, action: str, transfers: list[tuple[str, Any]]) -> None:
        """Wait for every transfer; the first failure is raised (the transfer manager
        cancels the others as the ``with`` block ends)."""
        for key, future in transfers:
            self._call(action, key, future.result)


class _Listed(BaseSubscriber):
    """Gives the transfer manager an object's size and ETag from the listing, which spares
    the HEAD it would otherwise make before each copy or download (a download then asks for
    that very version: ``If-Match``)."""

    def __init__(self, obj: dict) -> None:
        self._size = int(obj.get("Size", 0))
        self._etag = obj.get("ETag")

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self._size)
        future.meta.provide_object_etag(self._etag)


def _listed(obj: dict, *, copy: bool = False) -> list[BaseSubscriber]:
    """The subscribers of one transfer; none for a multipart copy, whose HEAD of the source
    carries the object's metadata over (one CopyObject does that by itself)."""
    if copy and int(obj.get("Size", 0)) >= _COPY.multipart_threshold:
        return []
    return [_Listed(obj)]


def _safe_relative(rel: str) -> Path:
    """A key below a bundle folder as a relative local path that cannot leave the folder;
    a key with ``.``, ``..`` or empty segments keeps its whole name, percent-encoded."""
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\\" in rel or "\0" in rel:
        return Path(quote(rel, safe="") or "%2F")
    return Path(*parts)


def _parse_arrival(key: str) -> tuple[str | None, str]:
    """``<time>-<id>-<run_id>`` -> (``<time>-<id>``, run_id); (None, "") if not ours."""
    stamp_time, sep, rest = key.partition("-")
    ident, sep2, name = rest.partition("-")
    if not (sep and sep2 and name) or len(stamp_time) != _TIME_LEN or "/" in name:
        return None, ""
    return f"{stamp_time}-{ident}", name


def _format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime(_TIME_FORMAT)


def _parse_time(text: Any) -> datetime | None:
    try:
        return datetime.strptime(str(text), _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _parse_cursor(cursor: str | None) -> dict[str, Any]:
    """The cursor's fields; an unreadable or foreign cursor counts as none (a full sweep)."""
    if not cursor:
        return {}
    try:
        doc = json.loads(cursor)
    except ValueError:
        return {}
    if not isinstance(doc, dict) or doc.get("v") != _CURSOR_VERSION:
        return {}
    seen = doc.get("seen")
    return {"until": _parse_time(doc.get("until")), "swept": _parse_time(doc.get("swept")),
            "seen": [s for s in seen if isinstance(s, str)] if isinstance(seen, list) else []}


# -- errors without secrets -------------------------------------------------------------------


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str((response.get("Error") or {}).get("Code") or
                   (response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or "")
    return ""


def _access_error(exc: BaseException, action: str, where: str) -> S3AccessError:
    code = _error_code(exc)
    if code:
        message = (getattr(exc, "response", {}).get("Error") or {}).get("Message") or ""
        detail = f"{code}: {message}" if message else code
    else:
        detail = f"{type(exc).__name__}: {exc}"
    return S3AccessError(redact(f"S3 {action} {where} failed: {' '.join(detail.split())}"))
