"""Who may do what with the API tokens (contract section 5), as one rule every network front
end applies: the Flight server in its middleware; the HTTP API's dependencies
(``interfaces/http/dependencies.py``) apply the same rule.

- ``api_token`` (``BTLAKE_API_TOKEN``): when set, writes need it;
- ``api_read_token`` (``BTLAKE_API_READ_TOKEN``): when set, reads need it or the write token.

A missing token is ``"missing"`` (HTTP 401, Flight UNAUTHENTICATED), a wrong one ``"refused"``
(HTTP 403, Flight PERMISSION_DENIED). Tokens are compared in constant time, every configured
token each time.
"""

from __future__ import annotations

import hmac
from typing import Literal

from btlake_pipelines.settings import Settings

Verdict = Literal["ok", "missing", "refused"]


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None when there is none)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def verdict(settings: Settings, token: str | None, *, write: bool) -> Verdict:
    """Whether ``token`` may write (``write``) or read under ``settings``."""
    expected = (settings.api_token,) if write else (settings.api_read_token,
                                                    settings.api_token)
    if (settings.api_token if write else settings.api_read_token) is None:
        return "ok"
    if not token:
        return "missing"
    given, ok = token.encode(), False
    for want in expected:
        if want is not None:
            ok |= hmac.compare_digest(given, want.encode())
    return "ok" if ok else "refused"
