"""An API app on fakes: FakeClock, in-memory keys, the park's site file, a recording InfluxQL client."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.deps import ApiServices
from api.device_states import DeviceStates
from api.events import EventHub
from api.history import HistoryReader
from api.keys import KeyStore, Role
from api.metrics import ApiMetrics
from api.sites import SiteTree
from core.clock import FakeClock
from core.influxql import Series
from core.known_devices import load_sites
from core.settings.api import ApiSettings

PARK = Path(__file__).resolve().parents[3] / "simulators" / "sites" / "park.yaml"


@dataclass
class RecordingInflux:
    """Stands in for InfluxQLClient: records each query, answers with `series`."""

    queries: list[str] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)

    def query(self, q: str, epoch: str | None = "ms", params: object = None) -> list[Series]:
        self.queries.append(q)
        return self.series

    def ping(self) -> bool:
        return True


@dataclass
class ApiHarness:
    app: FastAPI
    client: TestClient
    services: ApiServices
    clock: FakeClock
    influx: RecordingInflux
    tokens: dict[Role, str]

    def headers(self, role: Role = Role.VIEWER) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def build_services(clock: FakeClock, influx: RecordingInflux | None, settings: ApiSettings | None = None,
                   alerts: object = None) -> ApiServices:
    settings = settings or ApiSettings()
    return ApiServices(settings=settings, clock=clock, states=DeviceStates(settings.stale_after_s),
                       sites=SiteTree(load_sites([PARK])), keys=KeyStore(":memory:", clock),
                       hub=EventHub(settings.sse_queue_max, settings.sse_keepalive_s), metrics=ApiMetrics(),
                       history=HistoryReader(influx) if influx is not None else None,  # type: ignore[arg-type]
                       alerts=alerts)
