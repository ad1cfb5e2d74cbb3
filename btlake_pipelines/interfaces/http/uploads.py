"""Receiving an uploaded bundle: Starlette's multipart parser, held to the server's limits.

Starlette's ``MultiPartParser`` (what ``Request.form`` runs) parses the body as it arrives and
spools each file part to a temporary file (in memory up to 1 MiB, then on disk), so a 1 GiB
upload holds about a megabyte of memory. What it leaves to its caller is done here: the body
is counted as it streams and refused with 413 past ``BTLAKE_MAX_UPLOAD_MB`` (at once when its
Content-Length says so); a body that ends before its closing boundary is refused rather than
taken as whole; files spool into ``BTLAKE_UPLOAD_DIR`` when it is set; and the parts are
sorted into the manifest and the table files. Whether they make one bundle is the
application's check (``Lake.publish_upload``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from tempfile import SpooledTemporaryFile

from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from btlake_pipelines.interfaces.http.errors import ApiError

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_FILES = 64
MULTIPART = "multipart/form-data"


@dataclass
class Upload:
    """The parts of one upload: the manifest's bytes as sent and the table files by name."""

    form: FormData
    manifest: bytes
    files: dict[str, UploadFile]

    async def close(self) -> None:
        await self.form.close()


class _BundleParser(MultiPartParser):
    """Starlette's parser, spooling where the server says and noting whether the body reached
    its closing boundary (the parser itself returns whatever it got)."""

    def __init__(self, headers: Headers, stream: AsyncIterator[bytes],
                 spool_dir: str | None) -> None:
        super().__init__(headers, stream, max_files=MAX_FILES + 1, max_fields=8,
                         max_part_size=MAX_MANIFEST_BYTES)
        self.spool_dir = spool_dir
        self.complete = False

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        upload = self._current_part.file
        if upload is not None and self.spool_dir:
            # closed with the form (or by the parser on an error), like its own spools
            spool = SpooledTemporaryFile(  # noqa: SIM115
                max_size=self.spool_max_size, dir=self.spool_dir)
            self._files_to_close_on_error.append(spool)
            upload.file.close()
            upload.file = spool

    def on_end(self) -> None:
        self.complete = True


def too_large(limit: int) -> ApiError:
    mib = limit / (1024 * 1024)
    size = f"{mib:g} MiB" if mib >= 1 else f"{limit} bytes"
    return ApiError(413, f"upload is larger than the server's limit of {size} "
                    "(BTLAKE_MAX_UPLOAD_MB)", {"limit_bytes": limit})


async def _counted(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise too_large(limit)
        yield chunk


async def receive(request: Request, max_bytes: int, spool_dir: str | None) -> Upload:
    """Parse the request's multipart body into an :class:`Upload` (the caller closes it)."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != MULTIPART:
        raise ApiError(415, f"send the bundle as {MULTIPART} with a 'manifest' field and one "
                       "'files' part per table file")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_large(max_bytes)
    parser = _BundleParser(request.headers, _counted(request.stream(), max_bytes), spool_dir)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, f"malformed multipart body: {exc.message}") from None
    except ClientDisconnect:
        raise ApiError(400, "the client closed the connection before the upload ended"
                       ) from None
    try:
        if not parser.complete:
            raise ApiError(400, "malformed multipart body: it ended before the closing boundary")
        return await _sort(form)
    except BaseException:
        await form.close()
        raise


async def _sort(form: FormData) -> Upload:
    manifest: bytes | None = None
    files: dict[str, UploadFile] = {}
    for name, value in form.multi_items():
        if name == "manifest":
            if manifest is not None:
                raise ApiError(400, "the 'manifest' field was sent more than once")
            manifest = value.encode() if isinstance(value, str) else await _read_manifest(value)
        elif name == "files":
            if isinstance(value, str) or value.filename is None:
                raise ApiError(400, "each 'files' part needs a filename: the file name the "
                               "manifest's 'tables' lists for it", {"param": "files"})
            if value.filename in files:
                raise ApiError(400, f"file {value.filename[:80]!r} was sent more than once",
                               {"param": "files"})
            if len(files) >= MAX_FILES:
                raise ApiError(400, f"too many files (at most {MAX_FILES})", {"param": "files"})
            files[value.filename] = value
        else:
            raise ApiError(400, f"unexpected form field {name[:60]!r}: send 'manifest' and one "
                           "'files' part per table file", {"param": name[:200]})
    if manifest is None:
        raise ApiError(400, "missing the 'manifest' field: send the manifest JSON as a text "
                       "field or a file part named 'manifest'", {"param": "manifest"})
    return Upload(form, manifest, files)


async def _read_manifest(part: UploadFile) -> bytes:
    if part.size is not None and part.size > MAX_MANIFEST_BYTES:
        raise ApiError(413, f"the manifest is larger than {MAX_MANIFEST_BYTES // 2**20} MiB",
                       {"param": "manifest"})
    return await part.read()
