"""Sites, devices, keys, errors and health of the API app, on fakes (no servers)."""

from __future__ import annotations

import re

from api.keys import Role
from api.models import discharging
from core.contract import DeviceKey, Kind, Reading
from core.decode import StatusChange
from tests.unit.api.harness import ApiHarness

INV = DeviceKey("park", Kind.INVERTER, "inv-main")


def inverter_reading(ts_ms: int, seq: int, soc: float = 80.0, grid_ok: bool = True,
                     battery_a: float = 3.0) -> Reading:
    return Reading(INV, ts_ms, seq, {"grid_v": 230.0 if grid_ok else 0.0, "grid_ok": grid_ok,
                                     "mode": "grid" if grid_ok else "battery", "battery_soc_pct": soc,
                                     "battery_v": 52.0, "battery_a": battery_a, "pv_w": 500.0, "load_w": 2500.0})


def _fill(path: str) -> str:
    samples = {"site": "park", "device": "inv-main", "key_id": "0123456789ab", "fingerprint": "0123456789abcdef",
               "silence_id": "0" * 32, "name": "x"}
    return re.sub(r"\{(\w+)\}", lambda m: samples.get(m.group(1), "x"), path)


def test_every_api_route_without_a_key_is_401_problem(api: ApiHarness) -> None:
    paths = {p: ops for p, ops in api.app.openapi()["paths"].items() if p.startswith("/api/v1")}
    assert len(paths) >= 7
    for path, operations in paths.items():
        for method in operations:
            response = api.client.request(method, _fill(path))
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["status"] == 401


def test_a_wrong_or_revoked_key_is_401(api: ApiHarness) -> None:
    bad = api.tokens[Role.ADMIN][:-1] + ("A" if api.tokens[Role.ADMIN][-1] != "A" else "B")
    assert api.client.get("/api/v1/sites", headers={"Authorization": f"Bearer {bad}"}).status_code == 401
    key_id = api.tokens[Role.VIEWER].split("_")[1]
    api.services.keys.revoke(key_id)
    assert api.client.get("/api/v1/sites", headers=api.headers(Role.VIEWER)).status_code == 401
    assert api.client.get("/api/v1/sites", headers={"X-API-Key": api.tokens[Role.OPERATOR]}).status_code == 200


def test_viewer_and_operator_cannot_manage_keys(api: ApiHarness) -> None:
    for role in (Role.VIEWER, Role.OPERATOR):
        response = api.client.get("/api/v1/keys", headers=api.headers(role))
        assert response.status_code == 403
        assert "admin" in response.json()["detail"]
    assert api.client.get("/api/v1/keys", headers=api.headers(Role.ADMIN)).status_code == 200


def test_admin_creates_a_key_that_works_and_the_audit_log_names_the_admin(api: ApiHarness) -> None:
    response = api.client.post("/api/v1/keys", json={"name": "wall screen", "role": "viewer"},
                               headers=api.headers(Role.ADMIN))
    assert response.status_code == 201
    token = response.json()["token"]
    assert api.client.get("/api/v1/sites", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    entry = api.services.keys.audit(1)[0]
    assert (entry.action, entry.target, entry.key_name) == ("key.create", response.json()["id"], "test admin")
    assert token not in str(api.services.keys.list())


def test_site_tree_lists_the_park_with_its_urdu_name_and_all_devices(api: ApiHarness) -> None:
    sites = api.client.get("/api/v1/sites", headers=api.headers()).json()
    assert [(s["id"], s["name"], s["devices"], s["online"]) for s in sites] == [
        ("park", "سافٹ ویئر ٹیکنالوجی پارک", 12, 0)]
    devices = api.client.get("/api/v1/sites/park/devices", headers=api.headers()).json()
    rooms = {d["id"]: d["label"] for d in devices if d["kind"] == "occupancy"}
    assert rooms["occ-room-1"] == "کمرہ 1"
    assert all(d["presence"] == "offline" and d["reason"] == "no_reading_yet" for d in devices)


def test_latest_state_follows_readings_status_and_staleness(api: ApiHarness) -> None:
    now_ms = int(api.clock.now() * 1000)
    states = api.services.states
    states.observe(inverter_reading(now_ms, 1, soc=80.0, battery_a=-40.0), api.clock.now())
    url = "/api/v1/sites/park/devices/inv-main"
    body = api.client.get(url, headers=api.headers()).json()
    assert (body["presence"], body["reason"], body["latest"]["seq"]) == ("online", "reporting", 1)
    assert body["latest"]["metrics"]["battery_soc_pct"] == 80.0
    assert body["name"] == "Admin block"
    # 15 kWh × (80-5)% × 0.95 / (2500-500) W = 5.34375 h
    assert abs(body["battery_runtime_s"] - 5.34375 * 3600) < 1e-6
    # The same load while the grid charges the battery: no runtime (it is not draining).
    states.observe(inverter_reading(now_ms + 1, 2, soc=80.0, battery_a=3.0), api.clock.now())
    assert api.client.get(url, headers=api.headers()).json()["battery_runtime_s"] is None

    api.clock.advance(10)
    states.observe(inverter_reading(now_ms + 10_000, 3, soc=79.0, grid_ok=False), api.clock.now())
    body = api.client.get(url, headers=api.headers()).json()
    assert (body["latest"]["seq"], body["latest"]["metrics"]["grid_ok"]) == (3, False)

    api.clock.advance(61)
    assert [e.state.reason.value for e in states.sweep(api.clock.now())] == ["stale"]
    assert api.client.get(url, headers=api.headers()).json()["reason"] == "stale"

    states.observe(StatusChange(INV, online=False), api.clock.now())
    assert api.client.get(url, headers=api.headers()).json()["reason"] == "announced_offline"


def test_a_device_quiet_when_healthy_goes_stale_after_its_max_quiet_not_the_apis_limit() -> None:
    from api.device_states import DeviceStates

    pir = DeviceKey("park", Kind.OCCUPANCY, "pir-hall")
    states = DeviceStates(stale_after_s=60, quiet={pir: 7200.0})
    states.observe(Reading(pir, 0, 1, {"room": "Hall", "occupied": False}), 1000.0)
    states.observe(inverter_reading(0, 1), 1000.0)
    assert [(e.state.device, e.state.reason.value) for e in states.sweep(1061.0)] == [(INV, "stale")]
    assert states.get(pir).reason.value == "reporting"  # an hour and a half without motion is normal
    assert [(e.state.device, e.state.reason.value) for e in states.sweep(1000.0 + 7201)] == [(pir, "stale")]


def test_an_older_reading_does_not_replace_the_latest(api: ApiHarness) -> None:
    now_ms = int(api.clock.now() * 1000)
    api.services.states.observe(inverter_reading(now_ms, 5), api.clock.now())
    assert api.services.states.observe(inverter_reading(now_ms - 1000, 4), api.clock.now()) == []
    assert api.services.states.get(INV).latest.seq == 5


def test_unknown_site_and_device_are_404_and_bad_ids_422(api: ApiHarness) -> None:
    assert api.client.get("/api/v1/sites/nowhere", headers=api.headers()).status_code == 404
    assert api.client.get("/api/v1/sites/park/devices/nothing", headers=api.headers()).status_code == 404
    for bad in ("Park", "a'b", "x" * 65, "-x"):
        response = api.client.get(f"/api/v1/sites/{bad}", headers=api.headers())
        assert response.status_code == 422, bad
        assert response.headers["content-type"] == "application/problem+json"


def test_a_device_seen_only_on_mqtt_appears_unconfigured(api: ApiHarness) -> None:
    key = DeviceKey("depot", Kind.UPLINK, "wan-1")
    reading = Reading(key, int(api.clock.now() * 1000), 1, {"isp": "Nayatel", "link_up": True, "rtt_ms": 20.0,
                                                             "jitter_ms": 1.0, "loss_pct": 0.0})
    api.services.states.observe(reading, api.clock.now())
    sites = api.client.get("/api/v1/sites", headers=api.headers()).json()
    assert [s["id"] for s in sites] == ["park", "depot"]
    device = api.client.get("/api/v1/sites/depot/devices/wan-1", headers=api.headers()).json()
    assert (device["configured"], device["label"], device["presence"]) == (False, "Nayatel", "online")


def test_health_needs_no_key_and_metrics_count_requests_by_route_template(api: ApiHarness) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"ready": True, "checks": []}
    api.client.get("/api/v1/sites/park", headers=api.headers())
    api.client.get("/api/v1/sites/park", headers=api.headers())
    text = api.client.get("/metrics").text
    assert 'facmon_api_requests_total{method="GET",route="/api/v1/sites/{site}",status="200"} 2' in text
    assert 'facmon_api_devices{presence="offline"} 0' in text


def test_openapi_documents_problem_responses(api: ApiHarness) -> None:
    spec = api.client.get("/api/v1/openapi.json").json()
    assert "Problem" in spec["components"]["schemas"]
    op = spec["paths"]["/api/v1/sites/{site}"]["get"]
    assert {"401", "403", "404", "422"} <= set(op["responses"])


def test_cors_is_off_by_default(api: ApiHarness) -> None:
    response = api.client.options("/api/v1/sites", headers={"Origin": "https://evil.example",
                                                            "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in response.headers


def test_kinds_come_from_the_contract_registry_in_its_order(api: ApiHarness) -> None:
    from core.contract import KINDS

    kinds = api.client.get("/api/v1/kinds", headers=api.headers()).json()
    assert [k["kind"] for k in kinds] == [k.value for k in KINDS] == ["inverter", "uplink", "occupancy", "generator",
                                                                      "plug"]
    generator = kinds[3]
    assert (generator["title"], generator["site_section"], generator["label"]) == ("Generator", "generators", None)
    fuel = next(m for m in generator["metrics"] if m["name"] == "fuel_pct")
    assert (fuel["unit"], fuel["minimum"], fuel["maximum"], fuel["required"]) == ("%", 0, 100, True)
    assert next(k for k in kinds if k["kind"] == "uplink")["label"] == "isp"
    assert api.client.get("/api/v1/kinds").status_code == 401
    devices = api.client.get("/api/v1/sites/park/devices", headers=api.headers()).json()
    order = [d["kind"] for d in devices]
    assert order == sorted(order, key=[k["kind"] for k in kinds].index) and order[-1] == "plug"


def test_the_battery_discharges_by_its_current_or_without_one_by_the_mode() -> None:
    assert discharging({"battery_a": -0.5, "mode": "grid"})
    assert not discharging({"battery_a": 4.0, "mode": "battery"})  # the current decides when there is one
    assert discharging({"mode": "battery"}) and not discharging({"mode": "grid"}) and not discharging({})
