"""``serve``: run the application with uvicorn (``btlake serve``)."""

from __future__ import annotations

import errno
import socket

from btlake_pipelines.errors import BtlakeError
from btlake_pipelines.settings import Settings, current

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
          settings: Settings | None = None) -> None:
    """Serve the API and the lake browser until interrupted, over ``settings`` (default: those
    in force, :func:`btlake_pipelines.settings.current`).

    Behind a reverse proxy, keep ``host`` on 127.0.0.1; ``forwarded_allow_ips``
    (``FORWARDED_ALLOW_IPS``, uvicorn's default 127.0.0.1) names the proxies whose
    ``X-Forwarded-*`` headers are trusted, and ``root_path`` (``BTLAKE_ROOT_PATH``) the path
    prefix the proxy serves btlake under (e.g. ``/btlake``).
    """
    import uvicorn

    from btlake_pipelines.interfaces.http.app import create_app

    if not 0 <= port <= 65535:
        raise BtlakeError(f"{{param}} must be 0..65535, got {port}", param="port")
    _check_bind(host, port)
    settings = settings or current()
    app = create_app(settings=settings)
    shown = f"[{host}]" if ":" in host else host
    print(f"btlake serve: http://{shown}:{port}/ (API under /api/v1, docs at /docs; lake "
          f"{settings.lake})", flush=True)
    uvicorn.run(app, host=host, port=port, proxy_headers=True,
                forwarded_allow_ips=settings.forwarded_allow_ips,
                root_path=settings.root_path, log_level=settings.log_level,
                server_header=False)


def _check_bind(host: str, port: int) -> None:
    """Fail with one clear line when the address cannot be used (port taken, bad host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BtlakeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            hint = " (is another server using it?)" if exc.errno == errno.EADDRINUSE else ""
            raise BtlakeError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
