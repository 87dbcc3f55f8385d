"""schemathesis fuzzes every operation of the OpenAPI description, as an admin (so requests get past
auth into validation and handlers): no request may produce a 500. Bounded to fit the suite's time."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.core import NotSet

from api.app import create_app
from api.keys import Role
from core.clock import FakeClock
from rules.store import AlertStore
from tests.unit.api.harness import RecordingInflux, build_services

_clock = FakeClock()
_services = build_services(_clock, RecordingInflux(), alerts=AlertStore(":memory:", _clock))
_services.rule_files = sorted((Path(__file__).resolve().parents[3] / "rules" / "packs").glob("*.yaml"))
_TOKEN = _services.keys.create("fuzzer", Role.ADMIN)[1]
_app = create_app(_services)
_client = TestClient(_app)
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", _app)


@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_api_fail(case: schemathesis.Case) -> None:
    if case.path == "/api/v1/events":
        return  # an endless stream; covered by its own tests
    # Sent with Starlette's TestClient: schemathesis's own requests transport trips over this urllib3.
    headers = {**(case.headers or {}), "Authorization": f"Bearer {_TOKEN}"}
    if isinstance(case.body, NotSet) or case.body is None:
        body = {}
    elif isinstance(case.body, bytes):
        body = {"content": case.body}
    else:
        body = {"json": case.body}
    response = _client.request(case.method, case.formatted_path, params=case.query, headers=headers, **body)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json"), response.text[:200]
