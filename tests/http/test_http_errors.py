"""Every caller mistake answers 4xx JSON {"error", "detail"}: never a 500, a traceback, a server
path or a credential."""

from __future__ import annotations

import pytest

try:
    from .http_helpers import client_for, make_bundle, multipart, upload
except ImportError:
    from http_helpers import client_for, make_bundle, multipart, upload

from btlake_pipelines.interfaces.http import create_app


def assert_error(response, status: int, *needles: str) -> dict:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"]
    for needle in needles:
        assert needle in body["error"], body["error"]
    text = response.text
    assert "Traceback" not in text and 'File "' not in text
    assert "/tmp" not in text and "/work" not in text and "/root" not in text, text
    return body


@pytest.mark.parametrize(("path", "params", "status", "needle"), [
    ("/api/v1/tables/nope", {}, 404, "unknown table 'nope'"),
    ("/api/v1/tables/nope/history", {}, 404, "unknown table"),
    ("/api/v1/runs/no-such-run", {}, 404, "unknown run 'no-such-run'"),
    ("/api/v1/runs/no-such-run/versions", {}, 404, "unknown run"),
    ("/api/v1/runs/no-such-run/equity", {}, 404, "unknown run"),
    ("/api/v1/runs/no-such-run/diff", {}, 404, "unknown run"),
    ("/api/v1/compare", {"a": "no-such-run", "b": "other"}, 404, "unknown run"),
    ("/api/v1/compare/runs", {"run": ["x"]}, 400, "2 to 12"),
    ("/api/v1/runs", {"where": "params.lookback >>= 3"}, 400, "where at character"),
    ("/api/v1/runs", {"where": "metrics.sharpe > 'high'"}, 400, "metrics.sharpe"),
    ("/api/v1/runs", {"where": "(params.lookback > 1"}, 400, "where"),
    ("/api/v1/runs", {"order_by": "markets"}, 400, "markets"),
    ("/api/v1/runs", {"since": "last tuesday"}, 400, "since must be an ISO-8601"),
    ("/api/v1/runs", {"limit": "lots"}, 400, "limit"),
    ("/api/v1/runs", {"limit": "-1"}, 400, "limit"),
    ("/api/v1/runs", {"desc": "maybe"}, 400, "desc"),
    ("/api/v1/tables/trades", {"as_of": "not-a-time"}, 400, "as_of must be"),
    ("/api/v1/tables/trades", {"as_of": "99999"}, 404, "has no version 99999"),
    ("/api/v1/tables/trades", {"columns": "ts,nope"}, 400, "unknown column(s) nope"),
    ("/api/v1/tables/trades", {"start": "soon"}, 400, "start must be"),
    ("/api/v1/tables/trades", {"format": "xlsx"}, 400, "format"),
    ("/api/v1/tables/runs", {"symbol": "AAPL"}, 400, "symbol does not apply"),
    ("/api/v1/runs/x/equity", {"points": "3"}, 400, "points"),
    ("/api/v1/nowhere", {}, 404, "no such endpoint"),
])
def test_bad_reads_answer_4xx_json(demo_client, path, params, status, needle):
    assert_error(demo_client.get(path, params=params), status, needle)


def test_validation_errors_list_every_problem(demo_client):
    body = assert_error(demo_client.get("/api/v1/runs", params={"limit": "x", "offset": "y"}),
                        400, "invalid query parameter")
    assert {p["name"] for p in body["detail"]} == {"limit", "offset"}
    assert "(and 1 more problem(s))" in body["error"]


def test_compare_many_names_its_parameter(demo_client):
    body = assert_error(demo_client.get("/api/v1/compare/runs", params={"run": ["x", "x"]}),
                        400, "compare needs 2 to 12 different run ids (run), got 1")
    assert body["detail"] == {"type": "bad_request", "param": "run"}


def test_method_not_allowed_is_json(demo_client):
    assert_error(demo_client.delete("/api/v1/runs"), 405, "not allowed")


def test_diff_of_a_run_with_one_version(demo_client):
    run_id = demo_client.get("/api/v1/runs", params={"limit": 1}).json()["runs"][0]["run_id"]
    assert_error(demo_client.get(f"/api/v1/runs/{run_id}/diff"), 404, "no version before")
    body = assert_error(demo_client.get(f"/api/v1/runs/{run_id}/diff",
                                        params={"a": 0, "b": 77}), 404, "no stored version 77 (b)")
    assert body["detail"] == {"type": "not_found", "param": "b"}


# --- uploads -----------------------------------------------------------------------------------


def test_malformed_multipart(fresh_client):
    headers = {"content-type": "multipart/form-data; boundary=XYZ"}
    assert_error(fresh_client.post("/api/v1/bundles", content=b"this is not multipart",
                                   headers=headers), 400, "malformed multipart")
    # a body cut before the closing boundary
    cut = (b"--XYZ\r\nContent-Disposition: form-data; name=\"manifest\"\r\n\r\n{\"run_id\": \"a\"}"
           b"\r\n--XYZ\r\nContent-Disposition: form-data; name=\"files\"; filename=\"t.csv\"\r\n"
           b"\r\nts,x\r\n")
    assert_error(fresh_client.post("/api/v1/bundles", content=cut, headers=headers), 400,
                 "malformed multipart")
    assert_error(fresh_client.post("/api/v1/bundles", content=b"x", headers={
        "content-type": "multipart/form-data"}), 400, "boundary")
    assert_error(fresh_client.post("/api/v1/bundles", json={"manifest": {}}), 415,
                 "multipart/form-data")
    # a part without a name
    nameless = (b"--XYZ\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--XYZ--\r\n")
    assert_error(fresh_client.post("/api/v1/bundles", content=nameless, headers=headers), 400,
                 "malformed multipart", '"name" must be provided')


def test_missing_or_bad_manifest(fresh, fresh_client):
    folder = make_bundle(fresh["src"])
    data, files = multipart(folder)
    assert_error(fresh_client.post("/api/v1/bundles", files=files), 400,
                 "missing the 'manifest' field")
    assert_error(fresh_client.post("/api/v1/bundles", data={"manifest": "{not json"},
                                   files=files), 400, "not valid JSON")
    assert_error(fresh_client.post("/api/v1/bundles", data={"manifest": "[1, 2]"},
                                   files=files), 400, "JSON object")
    assert_error(fresh_client.post("/api/v1/bundles", data={"manifest": '{"run_id": "../x"}'},
                                   files=files), 400, "run_id must be a run id")
    assert_error(fresh_client.post("/api/v1/bundles", data={
        "manifest": '{"run_id": "ok", "tables": ["a"]}'}, files=files), 400, "manifest.tables")
    assert_error(fresh_client.post("/api/v1/bundles", data={**data, "manifest2": "x"},
                                   files=files), 400, "unexpected form field 'manifest2'")
    twice = [("manifest", ("m.json", data["manifest"].encode())),
             ("manifest", ("m.json", data["manifest"].encode())), *files]
    assert_error(fresh_client.post("/api/v1/bundles", files=twice), 400, "more than once")


def test_bad_file_parts(fresh, fresh_client):
    folder = make_bundle(fresh["src"])
    data, files = multipart(folder)
    for name, needle in [("../trades.parquet", "path separator"), ("a..b.parquet", "'..'"),
                         (".hidden.parquet", "starts with '.'"),
                         ("manifest.json", "manifest's name"), ("x\\y.csv", "path separator")]:
        bad = [*files, ("files", (name, b"abc", "application/octet-stream"))]
        assert_error(fresh_client.post("/api/v1/bundles", data=data, files=bad), 400, needle)
    body = assert_error(fresh_client.post("/api/v1/bundles", data=data, files=files[:1]), 400,
                        "but no file of that name was sent")
    assert body["detail"]["param"] == "files"
    extra = [*files, ("files", ("extra.csv", b"a,b\n", "text/csv"))]
    assert_error(fresh_client.post("/api/v1/bundles", data=data, files=extra), 400,
                 "not listed")
    dup = [*files, files[0]]
    assert_error(fresh_client.post("/api/v1/bundles", data=data, files=dup), 400,
                 "more than once")
    nofilename = (b"--XYZ\r\nContent-Disposition: form-data; name=\"files\"\r\n\r\nabc\r\n"
                  b"--XYZ--\r\n")
    assert_error(fresh_client.post("/api/v1/bundles", content=nofilename, headers={
        "content-type": "multipart/form-data; boundary=XYZ"}), 400, "needs a filename")
    assert not fresh["landing"].exists() or not any(fresh["landing"].iterdir())


def test_bad_bundle_is_quarantined_with_422(fresh, fresh_client):
    def bad_format(manifest, tables):
        manifest["format"] = "btlake.bundle/99"

    r = upload(fresh_client, make_bundle(fresh["src"], tweak=bad_format))
    assert r.status_code == 422
    body = r.json()
    assert body["status"] == "quarantined" and "format" in body["error"]
    assert body["reason"]["rule"]


def test_oversized_upload_answers_413(fresh):
    app = create_app(str(fresh["lake"]), str(fresh["landing"]), max_upload_mb=0.05)
    folder = make_bundle(fresh["src"], n_trades=3000, n_equity=4000)
    with client_for(app) as client:
        # with a Content-Length: refused before reading
        body = assert_error(upload(client, folder), 413, "larger than the server's limit")
        assert body["detail"]["limit_bytes"] == int(0.05 * 1024 * 1024)
        # chunked, no Content-Length: refused while streaming
        data, files = multipart(folder)
        request = client.build_request("POST", "/api/v1/bundles", data=data, files=files)
        payload = request.read()

        def chunks():
            for i in range(0, len(payload), 8192):
                yield payload[i:i + 8192]

        r = client.post("/api/v1/bundles", content=chunks(), headers={
            "content-type": request.headers["content-type"]})
        assert_error(r, 413, "BTLAKE_MAX_UPLOAD_MB")
    assert not fresh["landing"].exists() or not any(fresh["landing"].iterdir())


def test_max_upload_from_the_environment(fresh, monkeypatch):
    monkeypatch.setenv("BTLAKE_MAX_UPLOAD_MB", "0.01")
    app = create_app(str(fresh["lake"]), str(fresh["landing"]))
    with client_for(app) as client:
        assert_error(upload(client, make_bundle(fresh["src"], n_trades=1500, n_equity=3000)), 413)
    monkeypatch.setenv("BTLAKE_MAX_UPLOAD_MB", "lots")
    with pytest.raises(Exception, match="BTLAKE_MAX_UPLOAD_MB must be a number"):
        create_app(str(fresh["lake"]), str(fresh["landing"]))


def test_uploads_leave_no_staging_files(fresh, monkeypatch):
    staging = fresh["root"] / "uploads"
    staging.mkdir()
    monkeypatch.setenv("BTLAKE_UPLOAD_DIR", str(staging))
    app = create_app(str(fresh["lake"]), str(fresh["landing"]))
    with client_for(app) as client:
        assert upload(client, make_bundle(fresh["src"])).status_code == 200
        data, files = multipart(make_bundle(fresh["src"], 1))
        assert client.post("/api/v1/bundles", data=data, files=files[:1]).status_code == 400
    assert list(staging.iterdir()) == []
