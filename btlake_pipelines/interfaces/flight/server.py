"""The Arrow Flight server over one lake (``btlake flight``).

- ``DoPut`` (descriptor ``for_path(TABLE, MARKET)``): each record batch with ``app_metadata``
  ``{"writer", "seq"}`` goes to the ``Lake``'s stream writer; its answer ``{"seq", "status"}``
  is written back once the batch is durable. Acknowledgements are sent in order by a thread of
  their own, so a producer may wait for each ack (one batch in flight) or pipeline many; the
  next batch is read meanwhile. A batch that breaks a rule fails the call, with the rule's
  message, after the acks of the batches before it.
- ``DoGet`` (ticket: UTF-8 JSON of ``btlake read``'s filters and ``table``): ``Lake.scan``,
  streamed batch by batch.
- ``DoAction("last_seq", {"writer": ID[, "table": T]})``: the writer's last committed seq, as
  JSON (a number or ``null``).

Tokens are those of the HTTP API (``BTLAKE_API_TOKEN`` for ``DoPut``,
``BTLAKE_API_READ_TOKEN`` or the write token for the rest), sent as ``authorization: Bearer``
and checked for every call by a ``ServerMiddleware`` with the rule of ``app/access.py``.
"""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from btlake_pipelines.app.access import bearer_token
from btlake_pipelines.app.lake import Lake
from btlake_pipelines.errors import BtlakeError, BundleRefused, redact

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8815
#: The keys a ``DoGet`` ticket may hold: ``table`` and the filters of ``Lake.read``.
TICKET_KEYS = ("table", "run_id", "market", "symbol", "start", "end", "columns", "as_of")
_WRITES = {flight.FlightMethod.DO_PUT, flight.FlightMethod.DO_EXCHANGE}


class TokenMiddlewareFactory(flight.ServerMiddlewareFactory):
    """Refuses a call whose token the lake's rule does not accept: UNAUTHENTICATED when it is
    missing, PERMISSION_DENIED when it is wrong (HTTP's 401 and 403)."""

    def __init__(self, lake: Lake) -> None:
        super().__init__()
        self.lake = lake

    def start_call(self, info, headers: dict[str, list[Any]]):
        values = headers.get("authorization") or headers.get("Authorization") or []
        header = values[0] if values else None
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        verdict = self.lake.token_verdict(bearer_token(header), write=info.method in _WRITES)
        if verdict == "missing":
            raise flight.FlightUnauthenticatedError(
                "this call needs a token: send the header 'authorization: Bearer <token>'")
        if verdict == "refused":
            raise flight.FlightUnauthorizedError("the token was not accepted for this call")
        return None  # accepted: nothing to attach to the call


class _Acks:
    """Writes each batch's acknowledgement, in order, once its future is done."""

    def __init__(self, writer: flight.FlightMetadataWriter) -> None:
        self.writer = writer
        self.futures: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="btlake-flight-acks", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (future := self.futures.get()) is not None:
            if self.error is not None:
                continue
            try:
                ack = future.result()
                self.writer.write(pa.py_buffer(json.dumps(ack.as_json()).encode()))
            except BaseException as exc:
                self.error = exc

    def put(self, future) -> None:
        if self.error is not None:
            raise self.error
        self.futures.put(future)

    def finish(self) -> None:
        """Wait until every ack is written; raise the first failure."""
        self.futures.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


class LakeFlightServer(flight.FlightServerBase):
    def __init__(self, lake: Lake, location: str, **writer_options: Any) -> None:
        super().__init__(location, middleware={"auth": TokenMiddlewareFactory(lake)})
        self.lake = lake
        self.stream = lake.stream_writer(**writer_options)

    # -- DoPut ----------------------------------------------------------------------------------

    def do_put(self, context, descriptor, reader, writer) -> None:
        table, market = _target(descriptor)
        with _status():
            self.stream.check_target(table, market)
        acks = _Acks(writer)
        try:
            with _status():
                while True:
                    try:
                        chunk = reader.read_chunk()
                    except StopIteration:
                        break
                    if chunk.data is None:
                        continue
                    meta = chunk.app_metadata
                    acks.put(self.stream.put(table, market, None if meta is None
                                             else meta.to_pybytes(), chunk.data))
        finally:
            with _status():
                acks.finish()

    # -- DoGet ----------------------------------------------------------------------------------

    def do_get(self, context, ticket):
        with _status():
            table, filters = parse_ticket(ticket.ticket)
            reader = self.lake.scan(table, **filters)
        return flight.RecordBatchStream(reader)

    # -- actions --------------------------------------------------------------------------------

    def list_actions(self, context):
        return [("last_seq", 'the last committed seq of a writer: {"writer": ID} (optional '
                             '"table"); answers a JSON number or null')]

    def do_action(self, context, action):
        if action.type != "last_seq":
            raise flight.FlightServerError(f"unknown action {action.type!r}; actions: last_seq")
        with _status():
            body = _json(action.body.to_pybytes() if action.body else b"", "action body")
            if not isinstance(body, dict):
                raise BtlakeError('bad {param}: expected {"writer": ID}', param="body")
            seq = self.stream.last_seq(body.get("writer"), body.get("table"))
        yield flight.Result(pa.py_buffer(json.dumps(seq).encode()))


class _status:
    """btlake's errors as Flight statuses with the error line as message (redacted)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or isinstance(exc, flight.FlightError):
            return False
        if isinstance(exc, BtlakeError):
            # the error line only (a Python exception other than FlightError would send the
            # server's traceback); a refused batch adds its reason as JSON extra info
            extra = json.dumps(exc.reason()).encode() if isinstance(exc, BundleRefused) else b""
            raise flight.FlightServerError(redact(str(exc)), extra_info=extra) from None
        return False


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BtlakeError(f"bad {{param}}: the {what} must be UTF-8 JSON", param="ticket"
                          ) from None


def parse_ticket(data: bytes) -> tuple[str, dict[str, Any]]:
    """A ``DoGet`` ticket: ``table`` and the filters of ``Lake.read`` (absent = no filter)."""
    doc = _json(data, "ticket")
    if not isinstance(doc, dict) or not isinstance(doc.get("table"), str):
        raise BtlakeError('bad {param}: expected JSON {"table": T, ...filters}', param="ticket")
    unknown = sorted(set(doc) - set(TICKET_KEYS))
    if unknown:
        raise BtlakeError(f"bad {{param}}: unknown key(s) {', '.join(unknown)[:100]}; keys: "
                          f"{', '.join(TICKET_KEYS)}", param="ticket")
    filters = {k: v for k, v in doc.items() if k != "table" and v is not None}
    return doc["table"], filters


def _target(descriptor) -> tuple[str, str]:
    path = [p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p)
            for p in (descriptor.path or [])]
    if descriptor.descriptor_type != flight.DescriptorType.PATH or len(path) != 2:
        raise flight.FlightServerError("DoPut needs FlightDescriptor.for_path(TABLE, MARKET)")
    return path[0], path[1]


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, lake: Lake | None = None,
          ready=print, **writer_options: Any) -> None:
    """Serve until SIGINT or SIGTERM, then commit what is buffered and stop."""
    lake = lake or Lake()
    if not 0 <= port <= 65535:
        raise BtlakeError(f"{{param}} must be 0..65535, got {port}", param="port")
    shown = f"[{host}]" if ":" in host else host
    try:
        server = LakeFlightServer(lake, f"grpc://{shown}:{port}", **writer_options)
    except (OSError, pa.ArrowException) as exc:
        raise BtlakeError(f"cannot listen on {host}:{port}: {str(exc).splitlines()[0]}"
                          ) from None
    ready(f"btlake flight: grpc://{shown}:{server.port} (lake {lake.uri})", flush=True)
    try:
        server.serve()
    finally:
        server.stream.close()
