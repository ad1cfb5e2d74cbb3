"""``btlake serve``: the HTTP API under ``/api/v1`` and the lake browser at ``/``.

Layout (FastAPI's "Bigger Applications"): :mod:`.app` assembles the application, one router per
resource in :mod:`.routers`, shared needs (the one ``Lake``, token checks, settings) in
:mod:`.dependencies`, and one place that turns errors into JSON in :mod:`.errors`. Routes stay
thin: they call the same ``Lake`` methods and ``publish`` the CLI calls.
"""

from btlake_pipelines.interfaces.http.app import create_app

__all__ = ["create_app"]
