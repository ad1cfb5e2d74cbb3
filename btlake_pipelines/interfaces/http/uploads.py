"""Receiving an uploaded bundle: a ``multipart/form-data`` body streamed to disk, size-limited.

The body is parsed as it arrives (``python-multipart``'s push parser); each ``files`` part is
written straight into a staging folder under its checked file name, so a 1 GiB upload holds a
few kilobytes of memory. The ``manifest`` part (a text field or a file part) is kept in memory
up to :data:`MAX_MANIFEST_BYTES`. Nothing here touches landing: the caller publishes the staged
folder with :func:`btlake_pipelines.interfaces.publish.publish` once the bundle is whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from btlake_pipelines.contract.run_ids import RUN_ID_RULE, is_valid_run_id
from btlake_pipelines.interfaces.http.errors import ApiError
from btlake_pipelines.landing.zone import MANIFEST

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_FILES = 64
MAX_FILE_NAME = 255
FIELDS = ("manifest", "files")


@dataclass
class Received:
    manifest: dict[str, Any]
    manifest_bytes: bytes
    run_id: str
    files: dict[str, Path]  # file name -> staged path
    bytes_received: int


def check_file_name(name: str) -> str:
    """A bare file name as the contract allows it: no ``/``, ``\\``, ``..``, NUL or control
    characters, not hidden, not the manifest, at most 255 characters."""
    problem = None
    if not name:
        problem = "is empty"
    elif len(name) > MAX_FILE_NAME:
        problem = f"is longer than {MAX_FILE_NAME} characters"
    elif "/" in name or "\\" in name:
        problem = "contains a path separator (send the bare file name)"
    elif ".." in name:
        problem = "contains '..'"
    elif name.startswith("."):
        problem = "starts with '.'"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "contains control characters"
    elif name == MANIFEST:
        problem = "is the manifest's name (send the manifest as the 'manifest' field)"
    if problem:
        raise ApiError(400, f"file name {name[:80]!r} {problem}",
                       {"field": "files", "filename": name[:300]})
    return name


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    disposition: bytes = b""
    header_name: bytes = b""
    header_value: bytes = b""
    sink: BinaryIO | None = None
    buffer: bytearray | None = None


@dataclass
class _Collector:
    """The multipart callbacks: route each part to a staged file or the manifest buffer."""

    staging: Path
    part: _Part = field(default_factory=_Part)
    manifest: bytes | None = None
    files: dict[str, Path] = field(default_factory=dict)
    ended: bool = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin, "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end, "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished, "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.part.header_name.strip().lower() == b"content-disposition":
            self.part.disposition = self.part.header_value
        self.part.header_name = b""
        self.part.header_value = b""

    def on_headers_finished(self) -> None:
        kind, options = parse_options_header(self.part.disposition)
        if kind != b"form-data" or b"name" not in options:
            raise ApiError(400, "malformed multipart body: a part has no Content-Disposition "
                           "form-data name")
        name = _text(options[b"name"])
        filename = _text(options[b"filename"]) if b"filename" in options else None
        self.part.name, self.part.filename = name, filename
        if name == "manifest":
            if self.manifest is not None or self.part.buffer is not None:
                raise ApiError(400, "the 'manifest' field was sent more than once")
            self.part.buffer = bytearray()
        elif name == "files":
            if filename is None:
                raise ApiError(400, "each 'files' part needs a filename: the file name the "
                               "manifest's 'tables' lists for it", {"field": "files"})
            check_file_name(filename)
            if filename in self.files:
                raise ApiError(400, f"file {filename!r} was sent more than once")
            if len(self.files) >= MAX_FILES:
                raise ApiError(400, f"too many files (at most {MAX_FILES})")
            path = self.staging / filename
            self.files[filename] = path
            self.part.sink = open(path, "xb")  # noqa: SIM115 - closed in on_part_end/close
        else:
            raise ApiError(400, f"unexpected form field {name[:60]!r}: send 'manifest' and "
                           "one 'files' part per table file", {"field": name[:200]})

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part.sink is not None:
            self.part.sink.write(data[start:end])
        elif self.part.buffer is not None:
            if len(self.part.buffer) + (end - start) > MAX_MANIFEST_BYTES:
                raise ApiError(413, f"the manifest is larger than "
                               f"{MAX_MANIFEST_BYTES // (1024 * 1024)} MiB")
            self.part.buffer += data[start:end]

    def on_part_end(self) -> None:
        if self.part.sink is not None:
            self.part.sink.close()
            self.part.sink = None
        elif self.part.buffer is not None:
            self.manifest = bytes(self.part.buffer)
            self.part.buffer = None

    def on_end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self.part.sink is not None:
            self.part.sink.close()
            self.part.sink = None


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"upload is larger than the server's limit of {_size(limit)} "
                    "(BTLAKE_MAX_UPLOAD_MB)", {"limit_bytes": limit})


def _size(n: int) -> str:
    mib = n / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{n} bytes"


async def receive(request: Request, staging: Path, max_bytes: int) -> Received:
    """Stream the request's multipart body into ``staging``; check it names one bundle whole."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data":
        raise ApiError(415, "send the bundle as multipart/form-data with a 'manifest' field and "
                       "one 'files' part per table file")
    boundary = options.get(b"boundary")
    if not boundary:
        raise ApiError(400, "malformed multipart body: the Content-Type has no boundary")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise too_large(max_bytes)

    parts = staging / "parts"
    parts.mkdir()
    collector = _Collector(parts)
    parser = MultipartParser(boundary, collector.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise too_large(max_bytes)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise ApiError(400, f"malformed multipart body: {str(exc)[:200]}") from None
    except ClientDisconnect:
        raise ApiError(400, "the client closed the connection before the upload ended"
                       ) from None
    finally:
        collector.close()
    if not collector.ended:
        raise ApiError(400, "malformed multipart body: it ended before the closing boundary")
    manifest, run_id = _manifest(collector.manifest)
    _match_files(manifest, collector.files)
    assert collector.manifest is not None
    return Received(manifest, collector.manifest, run_id, collector.files, received)


def _manifest(data: bytes | None) -> tuple[dict[str, Any], str]:
    if data is None:
        raise ApiError(400, "missing the 'manifest' field: send the manifest JSON as a text "
                       "field or a file part named 'manifest'", {"field": "manifest"})
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ApiError(400, "the manifest is not UTF-8 text", {"field": "manifest"}) from None
    except ValueError as exc:
        raise ApiError(400, f"the manifest is not valid JSON: {str(exc)[:120]}",
                       {"field": "manifest"}) from None
    if not isinstance(doc, dict):
        raise ApiError(400, "the manifest must be a JSON object", {"field": "manifest"})
    run_id = doc.get("run_id")
    if not is_valid_run_id(run_id):
        raise ApiError(400, f"the manifest's run_id must be a run id ({RUN_ID_RULE}); it names "
                       "the bundle", {"field": "manifest.run_id"})
    tables = doc.get("tables")
    if not isinstance(tables, dict) or not all(isinstance(v, str) for v in tables.values()):
        raise ApiError(400, "the manifest's 'tables' must be an object of table name -> file "
                       "name", {"field": "manifest.tables"})
    return doc, run_id


def _match_files(manifest: dict[str, Any], files: dict[str, Path]) -> None:
    listed = set(manifest["tables"].values())
    missing = sorted(listed - set(files))
    extra = sorted(set(files) - listed)
    if missing:
        raise ApiError(400, f"the manifest lists {', '.join(map(repr, missing[:5]))} but no "
                       "'files' part with that filename was sent",
                       {"field": "files", "missing": missing[:50]})
    if extra:
        raise ApiError(400, f"uploaded file(s) {', '.join(map(repr, extra[:5]))} are not listed "
                       "in the manifest's 'tables'", {"field": "files", "unlisted": extra[:50]})


def stage_bundle(staging: Path, received: Received) -> Path:
    """Move the staged files into ``staging/bundle/<run_id>/`` beside the manifest exactly as
    sent (its bytes are part of the content hash), ready to publish."""
    folder = staging / "bundle" / received.run_id
    folder.mkdir(parents=True)
    for name, path in received.files.items():
        os.replace(path, folder / name)
    (folder / MANIFEST).write_bytes(received.manifest_bytes)
    return folder
