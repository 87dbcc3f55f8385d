"""The notifications feed: the default receiver's notifications land in the rules store's feed
(no integration configured: a new install still shows every notification), and the API serves
them to viewers, newest first, `after_id` for what is new."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import Role
from core.clock import FakeClock
from core.settings.rules import RulesSettings
from rules.alerts import Alert, AlertState, fingerprint
from rules.channels import build_notifiers
from rules.notify import Delivery, payload_of
from rules.route import Notification
from rules.store import AlertStore
from tests.unit.api.harness import RecordingInflux, build_services

LABELS = {"alertname": "GridOutage", "site": "park", "device": "inv-main", "severity": "critical"}


def _notification(clock: FakeClock, status: str = "firing") -> Notification:
    state = AlertState.FIRING if status == "firing" else AlertState.RESOLVED
    alert = Alert(fingerprint(LABELS), "GridOutage", LABELS, {"summary": "Grid down at park"}, state,
                  active_since=clock.now(), fired_at=clock.now(),
                  resolved_at=clock.now() if status != "firing" else None)
    return Notification("default", "default/park", {"site": "park"}, status, (alert,), (), "new")


@pytest.fixture
def feed_api(tmp_path: Path) -> Iterator[tuple[TestClient, dict[Role, str], AlertStore, FakeClock]]:
    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.db", clock)
    services = build_services(clock, RecordingInflux(), alerts=store)
    tokens = {role: services.keys.create(f"test {role.value}", role)[1] for role in Role}
    with TestClient(create_app(services)) as client:
        yield client, tokens, store, clock
    store.close()
    services.keys.close()


def test_the_default_receiver_delivers_to_the_feed_and_the_api_serves_it(feed_api):
    client, tokens, store, clock = feed_api
    channels = build_notifiers(RulesSettings().receivers, store, clock, {"park": ZoneInfo("Asia/Karachi")})
    assert channels.by_receiver == {"default": ["default:feed0"]}
    delivery = Delivery(store, channels.targets)
    for status in ("firing", "resolved"):
        store.enqueue_notification("default/park", "default:feed0", [fingerprint(LABELS)],
                                   payload_of(_notification(clock, status), "http://facmon.test"), clock.now())
        assert delivery.deliver_due(clock.now()) == 1
        clock.advance(60)

    viewer = {"Authorization": f"Bearer {tokens[Role.VIEWER]}"}
    answer = client.get("/api/v1/notifications", headers=viewer)
    assert answer.status_code == 200
    entries = answer.json()
    assert [(e["status"], e["severity"], e["site"], e["receiver"]) for e in entries] == [
        ("resolved", "none", "park", "default"), ("firing", "critical", "park", "default")]
    assert entries[1]["title"] == "[FIRING] park: 1 alert(s) — Grid down at park"
    assert "(since 05:00 PKT)" in entries[1]["body"] and entries[1]["at"] == "2026-01-01T00:00:00Z"
    assert entries[1]["notification_id"].startswith("fmn-1-")
    newer = client.get(f"/api/v1/notifications?after_id={entries[1]['id']}", headers=viewer).json()
    assert [e["id"] for e in newer] == [entries[0]["id"]]


def test_the_feed_needs_a_key(feed_api):
    client, _, _, _ = feed_api
    assert client.get("/api/v1/notifications").status_code == 401
    assert client.get("/api/v1/notifications?limit=0", headers={"Authorization": "Bearer x"}).status_code == 401


def test_the_status_page_loads_the_feed_script():
    static = Path(__file__).resolve().parents[3] / "api" / "static"
    assert '<script src="notifications.js"></script>' in (static / "index.html").read_text()
    assert "/notifications?after_id=" in (static / "notifications.js").read_text()
