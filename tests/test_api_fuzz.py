"""Schemathesis against the app's own OpenAPI schema: no 5xx, a one-line JSON error on every 4xx,
and the documented body on every 200.

Each POST operation in ``/openapi.json`` gets ``DIGITLAB_API_FUZZ_CASES`` generated requests (default
100: about 500 in all for ``make test``), valid and invalid ones; the GET operations take
no parameters, so one case each. ``DIGITLAB_API_FUZZ_SEED`` (default 0) fixes the cases; ``random``
explores new ones each run. Requests go through the ASGI app in-process, or to a running server at
``DIGITLAB_API_FUZZ_URL``::

    DIGITLAB_API_FUZZ_CASES=350 DIGITLAB_API_FUZZ_SEED=random pytest tests/test_api_fuzz.py   # > 1,000 cases
    DIGITLAB_API_FUZZ_URL=http://127.0.0.1:8000 pytest tests/test_api_fuzz.py                 # `digitlab serve`
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")
pytest.importorskip("multipart")

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from digitlab.serve.app import create_app  # noqa: E402

CASES = int(os.environ.get("DIGITLAB_API_FUZZ_CASES", "100"))
SEED = os.environ.get("DIGITLAB_API_FUZZ_SEED", "0")
OPERATIONS = [("GET", "/healthz"), ("GET", "/api/models"), ("POST", "/api/predict"),
              ("POST", "/api/predict/pixels"), ("POST", "/api/predict/image"),
              ("POST", "/api/read"), ("POST", "/api/read/image")]


@pytest.fixture(scope="module")
def api_schema(request):
    url = os.environ.get("DIGITLAB_API_FUZZ_URL")
    if url:
        return schemathesis.openapi.from_url(url.rstrip("/") + "/openapi.json")
    run = request.getfixturevalue("lesson_run")
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(run.folder, run.folder.parent))


def test_every_operation_in_the_schema_is_fuzzed(api_schema):
    listed = {(result.ok().method.upper(), result.ok().path) for result in api_schema.get_all_operations()}
    assert listed == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_api_answers_every_generated_request_within_its_contract(api_schema, method, path):
    operation = api_schema[path][method]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=cases)
    @settings(max_examples=CASES, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate])  # a failure is reported as found: shrinking one takes minutes
    def one_request(case) -> None:
        response = case.call()
        _errors_are_json(response)
        if response.status_code == 200:
            case.validate_response(response, checks=[schemathesis.checks.response_schema_conformance])

    (one_request if SEED == "random" else seed(int(SEED))(one_request))()


def _errors_are_json(response) -> None:
    """A 4xx carries ``{"error": "one line"}``; nothing answers 5xx."""
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:300]}"
    if 400 <= status < 500:
        assert response.headers.get("content-type", [""])[0].startswith("application/json"), response.headers
        body = response.json()
        assert isinstance(body, dict) and set(body) == {"error"}, body
        assert isinstance(body["error"], str) and body["error"] and "\n" not in body["error"], body
