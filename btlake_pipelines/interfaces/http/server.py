"""``serve``: run the application with uvicorn (``btlake serve``)."""

from __future__ import annotations

import errno
import os
import socket

from btlake_pipelines.errors import BtlakeError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the API and the lake browser until interrupted.

    Behind a reverse proxy, keep ``host`` on 127.0.0.1; ``FORWARDED_ALLOW_IPS`` (uvicorn's
    setting, default 127.0.0.1) names the proxies whose ``X-Forwarded-*`` headers are trusted,
    and ``BTLAKE_ROOT_PATH`` the path prefix the proxy serves btlake under (e.g. ``/btlake``).
    """
    import uvicorn

    from btlake_pipelines.interfaces.http.app import create_app

    if not 0 <= port <= 65535:
        raise BtlakeError(f"--port must be 0..65535, got {port}")
    _check_bind(host, port)
    app = create_app()
    lake = app.state.btlake.settings.lake_uri
    shown = f"[{host}]" if ":" in host else host
    print(f"btlake serve: http://{shown}:{port}/ (API under /api/v1, docs at /docs; lake {lake})",
          flush=True)
    uvicorn.run(app, host=host, port=port, proxy_headers=True,
                forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS"),
                root_path=os.environ.get("BTLAKE_ROOT_PATH", ""),
                log_level=os.environ.get("BTLAKE_LOG_LEVEL", "info").lower(),
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
