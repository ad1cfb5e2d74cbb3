"""Bearer tokens: BTLAKE_API_TOKEN guards writes, BTLAKE_API_READ_TOKEN reads (the write token
works for reads too); missing -> 401, wrong -> 403; health, the page, docs and OpenAPI stay
open."""

from __future__ import annotations

import pytest

try:
    from .http_helpers import client_for, make_bundle, upload
except ImportError:
    from http_helpers import client_for, make_bundle, upload

from btlake_pipelines.interfaces.http import create_app

WRITE, READ = "w-secret-token", "r-secret-token"
READS = ["/api/v1/runs", "/api/v1/runs/x", "/api/v1/runs/x/versions", "/api/v1/runs/x/equity",
         "/api/v1/tables/trades", "/api/v1/tables/trades/history", "/api/v1/compare?a=x&b=y",
         "/api/v1/compare/runs?run=x&run=y"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def guarded(fresh, monkeypatch):
    monkeypatch.setenv("BTLAKE_API_TOKEN", WRITE)
    monkeypatch.setenv("BTLAKE_API_READ_TOKEN", READ)
    with client_for(create_app(str(fresh["lake"]), str(fresh["landing"]))) as client:
        yield client


def test_writes_need_the_write_token(guarded, fresh):
    folder = make_bundle(fresh["src"])
    missing = upload(guarded, folder)
    assert missing.status_code == 401
    assert missing.json()["error"].startswith("this endpoint needs a token")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert upload(guarded, folder, headers=bearer("nope")).status_code == 403
    assert upload(guarded, folder, headers=bearer(READ)).status_code == 403  # read != write
    assert upload(guarded, folder, headers={"Authorization": f"Basic {WRITE}"}
                  ).status_code == 401
    ok = upload(guarded, folder, headers=bearer(WRITE))
    assert ok.status_code == 200, ok.text
    assert not fresh["landing"].exists() or not any(fresh["landing"].iterdir())


@pytest.mark.parametrize("path", READS)
def test_reads_need_the_read_or_write_token(guarded, path):
    assert guarded.get(path).status_code == 401
    r = guarded.get(path, headers=bearer("wrong"))
    assert r.status_code == 403 and set(r.json()) == {"error", "detail"}
    for token in (READ, WRITE):
        assert guarded.get(path, headers=bearer(token)).status_code not in (401, 403)


def test_open_paths_stay_open(guarded):
    for path in ("/api/v1/health", "/", "/docs", "/openapi.json", "/compare", "/runs/x",
                 "/static/app.js", "/vendor/plotly.min.js"):
        assert guarded.get(path).status_code == 200, path
    health = guarded.get("/api/v1/health").json()
    assert health["auth"] == {"write_token": True, "read_token": True}
    assert WRITE not in guarded.get("/api/v1/health").text


def test_token_errors_come_before_input_errors(guarded):
    # a caller without a token learns nothing about the lake, not even what is unknown
    assert guarded.get("/api/v1/tables/nope").status_code == 401
    assert guarded.get("/api/v1/runs", params={"where": "((("}).status_code == 401
    assert guarded.get("/api/v1/runs", params={"limit": "lots"}).status_code == 401
    assert guarded.post("/api/v1/bundles", content=b"junk").status_code == 401


def test_write_token_alone_leaves_reads_open(fresh, monkeypatch):
    monkeypatch.setenv("BTLAKE_API_TOKEN", WRITE)
    with client_for(create_app(str(fresh["lake"]), str(fresh["landing"]))) as client:
        assert client.get("/api/v1/runs").status_code == 200
        assert upload(client, make_bundle(fresh["src"])).status_code == 401


def test_read_token_alone_leaves_writes_open(fresh, monkeypatch):
    monkeypatch.setenv("BTLAKE_API_READ_TOKEN", READ)
    with client_for(create_app(str(fresh["lake"]), str(fresh["landing"]))) as client:
        assert client.get("/api/v1/runs").status_code == 401
        assert upload(client, make_bundle(fresh["src"])).status_code == 200


def test_tokens_are_compared_in_constant_time():
    import inspect

    from btlake_pipelines.app import access
    from btlake_pipelines.interfaces.http import dependencies

    # one rule for HTTP and Flight: the HTTP dependency compares nothing itself
    assert "hmac.compare_digest" in inspect.getsource(access.verdict)
    assert "token_verdict" in inspect.getsource(dependencies._check)
    assert "compare_digest" not in inspect.getsource(dependencies)
