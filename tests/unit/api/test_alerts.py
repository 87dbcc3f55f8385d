"""Alerts, acks, silences and rules through the API, on a real (temp-file) rules store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.alert_feed import AlertFeed, alert_metrics
from api.app import create_app
from api.keys import Role
from core.clock import FakeClock
from rules.alerts import Alert, AlertState, Transition, fingerprint
from rules.store import AlertStore
from tests.unit.api.harness import ApiHarness, RecordingInflux, build_services

PACKS = Path(__file__).resolve().parents[3] / "rules" / "packs"
LABELS = {"alertname": "GridOutage", "site": "park", "device": "inv-main", "severity": "critical"}
FP = fingerprint({k: v for k, v in LABELS.items() if k != "severity"})


@pytest.fixture
def alerts_api(tmp_path: Path) -> Iterator[tuple[ApiHarness, AlertStore]]:
    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.sqlite", clock)
    services = build_services(clock, RecordingInflux(), alerts=store)
    services.rule_files = sorted(PACKS.glob("*.yaml"))
    tokens = {role: services.keys.create(f"test {role.value}", role)[1] for role in Role}
    app = create_app(services)
    with TestClient(app) as client:
        yield ApiHarness(app, client, services, clock, RecordingInflux(), tokens), store
    store.close()
    services.keys.close()


def fire(store: AlertStore, clock: FakeClock) -> Alert:
    now = clock.now()
    alert = Alert(FP, "GridOutage", LABELS, {"summary": "Grid down"}, AlertState.FIRING, active_since=now - 10,
                  fired_at=now, updated_at=now, value=0.0)
    store.save_alert(alert, Transition(FP, "GridOutage", now, AlertState.PENDING, AlertState.FIRING, LABELS))
    return alert


def test_active_alerts_filter_and_detail(alerts_api: tuple[ApiHarness, AlertStore]) -> None:
    api, store = alerts_api
    fire(store, api.clock)
    h = api.headers()
    assert [a["fingerprint"] for a in api.client.get("/api/v1/alerts", headers=h).json()] == [FP]
    assert api.client.get("/api/v1/alerts", params={"site": "other"}, headers=h).json() == []
    assert api.client.get("/api/v1/alerts", params={"severity": "warning"}, headers=h).json() == []
    assert api.client.get("/api/v1/alerts", params={"state": "resolved"}, headers=h).json() == []
    # still active: an active alert overlaps every later range
    later = api.client.get("/api/v1/alerts", params={"since": "2030-01-01T00:00:00Z"}, headers=h).json()
    assert [a["fingerprint"] for a in later] == [FP]
    assert api.client.get("/api/v1/alerts", params={"until": "2025-01-01T00:00:00Z"}, headers=h).json() == []
    assert api.client.get("/api/v1/alerts", params={"since": "yesterday"}, headers=h).status_code == 422
    detail = api.client.get(f"/api/v1/alerts/{FP}", headers=h).json()
    assert [(t["from_state"], t["to_state"]) for t in detail["transitions"]] == [("pending", "firing")]
    assert api.client.get("/api/v1/alerts/0000000000000000", headers=h).status_code == 404
    assert api.client.get("/api/v1/alerts/not-a-fingerprint", headers=h).status_code == 422


def test_ack_needs_operator_is_recorded_with_who_and_409_when_resolved(
        alerts_api: tuple[ApiHarness, AlertStore]) -> None:
    api, store = alerts_api
    alert = fire(store, api.clock)
    url = f"/api/v1/alerts/{FP}/ack"
    assert api.client.post(url, json={"comment": "x"}, headers=api.headers(Role.VIEWER)).status_code == 403
    response = api.client.post(url, json={"comment": "generator started"}, headers=api.headers(Role.OPERATOR))
    assert response.status_code == 200, response.text
    assert response.json()["acked_by"].startswith("test operator (key ")
    assert store.alert(FP).acks[0].comment == "generator started"
    entry = api.services.keys.audit(1)[0]
    assert (entry.action, entry.target, entry.key_name) == ("alert.ack", FP, "test operator")
    store.save_alert(Alert(FP, alert.rule, LABELS, {}, AlertState.RESOLVED, resolved_at=api.clock.now(),
                           updated_at=api.clock.now()))
    assert api.client.post(url, json={}, headers=api.headers(Role.OPERATOR)).status_code == 409


def test_silence_create_list_expire(alerts_api: tuple[ApiHarness, AlertStore]) -> None:
    api, store = alerts_api
    body = {"matchers": ["site=park", "alertname=~Grid.*"], "ends_at": "2026-01-01T02:00:00Z",
            "comment": "maintenance"}
    assert api.client.post("/api/v1/silences", json=body, headers=api.headers(Role.VIEWER)).status_code == 403
    created = api.client.post("/api/v1/silences", json=body, headers=api.headers(Role.OPERATOR))
    assert created.status_code == 201, created.text
    silence = created.json()
    assert (silence["state"], silence["starts_at"]) == ("active", "2026-01-01T00:00:00Z")
    assert store.silence(silence["id"]).mutes(LABELS, api.clock.now())
    listed = api.client.get("/api/v1/silences", headers=api.headers()).json()
    assert [s["id"] for s in listed] == [silence["id"]]
    api.clock.advance(60)
    expired = api.client.delete(f"/api/v1/silences/{silence['id']}", headers=api.headers(Role.OPERATOR)).json()
    assert expired["state"] == "expired"
    assert not store.silence(silence["id"]).mutes(LABELS, api.clock.now())
    assert api.client.get("/api/v1/silences", headers=api.headers()).json() == []
    assert [e.action for e in api.services.keys.audit(2)] == ["silence.expire", "silence.create"]


@pytest.mark.parametrize("change", [
    {"matchers": []}, {"matchers": ["no operator"]}, {"matchers": ["site=~("]}, {"ends_at": "2025-01-01T00:00:00Z"},
    {"ends_at": "tomorrow"}, {"comment": ""}, {"starts_at": "2026-01-01T03:00:00Z"},
])
def test_bad_silences_are_422(alerts_api: tuple[ApiHarness, AlertStore], change: dict) -> None:
    api, _ = alerts_api
    body = {"matchers": ["site=park"], "ends_at": "2026-01-01T02:00:00Z", "comment": "m", **change}
    response = api.client.post("/api/v1/silences", json=body, headers=api.headers(Role.OPERATOR))
    assert response.status_code == 422, (change, response.text)


def test_rules_list_show_and_validate(alerts_api: tuple[ApiHarness, AlertStore]) -> None:
    api, _ = alerts_api
    rules = api.client.get("/api/v1/rules", headers=api.headers()).json()
    assert rules and all(r["name"] for r in rules)
    first = rules[0]["name"]
    assert api.client.get(f"/api/v1/rules/{first}", headers=api.headers()).json()["name"] == first
    assert api.client.get("/api/v1/rules/NoSuchRule", headers=api.headers()).status_code == 404
    # a rule with label matchers shows them as its file writes them
    plug = api.client.get("/api/v1/rules/PlugSwitchedOff", headers=api.headers()).json()
    assert plug["definition"]["match"] == ["device=~plug-router"]
    good = (PACKS / "park.yaml").read_text()
    assert api.client.post("/api/v1/rules/validate", json={"yaml": good}, headers=api.headers(Role.OPERATOR)
                           ).status_code == 403
    assert api.client.post("/api/v1/rules/validate", json={"yaml": good}, headers=api.headers(Role.ADMIN)
                           ).json() == {"valid": True, "problems": []}
    bad = "rules:\n  - name: X\n    kind: inverter\n    condition: {threshold: {metric: nope, op: '>', value: 1}}\n"
    result = api.client.post("/api/v1/rules/validate", json={"yaml": bad}, headers=api.headers(Role.ADMIN)).json()
    assert result["valid"] is False and "nope" in result["problems"][0]


def test_alert_feed_publishes_each_transition_once_and_metrics_count_states(
        alerts_api: tuple[ApiHarness, AlertStore]) -> None:
    api, store = alerts_api
    published: list = []
    api.services.hub.publish = published.append  # type: ignore[method-assign]
    feed = AlertFeed(store, api.services.hub, start_at=api.clock.now())
    fire(store, api.clock)
    assert feed.poll() == 1 and feed.poll() == 0
    assert (published[0].type, published[0].data["to_state"]) == ("alert", "firing")
    assert 'facmon_alerts{state="firing"} 1' in alert_metrics(store)
