"""Every id in a path is judged alike: one holding a `/` (which matches no route) is 422 naming the
parameter, never a routing 404; without a key it is 401 first; and nothing reaches InfluxDB."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import Role
from core.clock import FakeClock
from rules.store import AlertStore
from tests.unit.api.harness import ApiHarness, RecordingInflux, build_services

PACK = Path(__file__).resolve().parents[3] / "rules" / "packs" / "park.yaml"

SAMPLES = {"site": "park", "device": "inv-main", "key_id": "0123456789ab", "fingerprint": "0123456789abcdef",
           "silence_id": "0" * 32, "name": "GridOutage"}
QUERY = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "kind": "inverter"}
SLASHED = ["inv/main", "../../etc/passwd", "park/devices/inv-main", "a/", "/x", "a/" + "b" * 300,
           "x' OR '1'='1/--", "a/.*/"]


@pytest.fixture
def api() -> Iterator[ApiHarness]:
    """The app on fakes with every store present, so no route can answer 503 before judging its ids."""
    clock, influx = FakeClock(), RecordingInflux()
    store = AlertStore(":memory:", clock)
    services = build_services(clock, influx, alerts=store)
    services.rule_files = [PACK]
    tokens = {role: services.keys.create(f"test {role.value}", role)[1] for role in Role}
    app = create_app(services)
    with TestClient(app) as client:
        yield ApiHarness(app, client, services, clock, influx, tokens)
    store.close()
    services.keys.close()


def _operations(api: ApiHarness) -> list[tuple[str, str, str]]:
    """(method, path template, path parameter) for every documented operation with an id in its path."""
    out = []
    for path, operations in api.app.openapi()["paths"].items():
        for name in re.findall(r"\{(\w+)\}", path):
            out.extend((method.upper(), path, name) for method in operations)
    return out


def _fill(template: str, param: str, value: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: quote(value, safe="") if m.group(1) == param else SAMPLES[m.group(1)],
                  template)


def test_every_path_id_is_covered(api: ApiHarness) -> None:
    assert {name for _, _, name in _operations(api)} == set(SAMPLES)


@pytest.mark.parametrize("value", SLASHED)
def test_an_id_with_a_slash_is_422_naming_the_parameter_on_every_route(api: ApiHarness, value: str) -> None:
    for method, template, param in _operations(api):
        response = api.client.request(method, _fill(template, param, value), headers=api.headers(Role.ADMIN),
                                      follow_redirects=False, params=QUERY)
        assert response.status_code == 422, (method, template, param, response.status_code, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        named = {p["name"] for p in response.json()["invalid_params"]}
        assert named & set(SAMPLES) == {param}, (method, template, response.text)  # (a body may be missing too)
    assert api.influx.queries == []


def test_an_id_with_a_slash_without_a_key_is_401(api: ApiHarness) -> None:
    for method, template, param in _operations(api):
        response = api.client.request(method, _fill(template, param, "a/b"), follow_redirects=False)
        assert response.status_code == 401, (method, template, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


def test_unknown_endpoints_wrong_methods_and_trailing_slashes(api: ApiHarness) -> None:
    h = api.headers()
    response = api.client.get("/api/v1/nothing/here", headers=h)
    assert (response.status_code, response.headers["content-type"]) == (404, "application/problem+json")
    response = api.client.put("/api/v1/sites/park", headers=h)
    assert (response.status_code, response.headers["allow"]) == (405, "GET")
    response = api.client.get("/api/v1/sites/park/devices/?x=1", headers=h, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (307, "/api/v1/sites/park/devices?x=1")
    assert api.client.get("/api/v1/nothing").status_code == 401
