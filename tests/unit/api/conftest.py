"""The `api` fixture: the app on fakes (see harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import Role
from core.clock import FakeClock
from tests.unit.api.harness import ApiHarness, RecordingInflux, build_services


@pytest.fixture
def api() -> Iterator[ApiHarness]:
    clock = FakeClock()
    influx = RecordingInflux()
    services = build_services(clock, influx)
    tokens = {role: services.keys.create(f"test {role.value}", role)[1] for role in Role}
    app = create_app(services)
    with TestClient(app) as client:
        yield ApiHarness(app, client, services, clock, influx, tokens)
    services.keys.close()
