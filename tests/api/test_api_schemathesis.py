"""Schemathesis against the served OpenAPI schema: no generated request, valid or not, gets a 500.
Bounded (a few dozen examples per operation) so it stays fast on two cores."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.api.conftest import make_context, request_body

EXAMPLES_PER_MODE = 25


def test_no_generated_request_gets_a_server_error(api_factory, examples):
    # Private webhooks refused: generated URLs must not make the server call out anywhere.
    api = api_factory.start(make_context(allow_private_webhooks=False), worker=False)
    # one real job, so the job endpoints also meet an id that exists
    api.post("/api/v1/generate", json=request_body(examples))
    schema = schemathesis.openapi.from_url(f"{api.url}/api/v1/openapi.json")
    failures: list[str] = []
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case) -> None:
                nonlocal checked
                response = case.call(base_url=api.url, headers={**api.auth, **(case.headers or {})})
                checked += 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                    f"{response.text[:200]}")
                assert "Traceback" not in response.text

            try:
                check()
            except Unsatisfiable:
                # nothing to make invalid (e.g. health takes no input): positive mode covered it
                assert mode is GenerationMode.NEGATIVE
    assert checked > 100
    print(f"schemathesis: {checked} requests")
    assert not failures, failures
