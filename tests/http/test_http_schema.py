"""Property-based test of the API against its own OpenAPI schema (schemathesis): generated
requests for every operation never get a 5xx, and every answer matches what the schema
documents (status code, content type, body schema). Tokens are set, so auth paths run too."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from btlake_pipelines.app.lake import Lake
from btlake_pipelines.demo import write_demo_bundles
from btlake_pipelines.interfaces.http import create_app

WRITE, READ = "schema-write-token", "schema-read-token"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, ignored_auth]


# schemathesis needs the schema when pytest collects (its lazy fixture loader does not work
# with pytest 9), so the application is created at import over a lake path that is still
# empty; the module fixture fills it with demo runs before the first request and removes it.
ROOT = Path(tempfile.gettempdir()) / f"btlake-schema-{os.getpid()}-{uuid.uuid4().hex[:8]}"
_ENV = {"BTLAKE_API_TOKEN": WRITE, "BTLAKE_API_READ_TOKEN": READ, "BTLAKE_MAX_UPLOAD_MB": "4"}


def _app():
    saved = {k: os.environ.get(k) for k in _ENV}
    os.environ.update(_ENV)
    try:
        return create_app(str(ROOT / "lake"), str(ROOT / "landing"))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())
# valid requests and requests that break the schema (wrong types, missing fields) alike
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@pytest.fixture(scope="module", autouse=True)
def _demo_lake():
    write_demo_bundles(ROOT / "landing", 3)
    Lake(str(ROOT / "lake")).ingest(str(ROOT / "landing"))
    yield
    shutil.rmtree(ROOT, ignore_errors=True)


@schema.parametrize()
@hypothesis.settings(max_examples=100, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_api_conforms_to_its_schema(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {WRITE}"}, checks=CHECKS)
