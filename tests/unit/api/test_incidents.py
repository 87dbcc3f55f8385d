"""Incidents: alerts grouped by what inhibits them (pure), listed and acknowledged as one (the API)."""

from __future__ import annotations

from api.incidents import group_incidents
from api.keys import Role
from rules.alerts import Alert, AlertState, Transition
from rules.store import AlertStore
from tests.unit.api.harness import ApiHarness
from tests.unit.api.test_alerts import alerts_api  # noqa: F401  (the fixture)


def alert(fp: str, severity: str = "critical", since: float = 0.0, muted_by: tuple[str, ...] = (),
          name: str = "") -> Alert:
    labels = {"alertname": name or f"Rule{fp[-1]}", "site": "park", "severity": severity}
    return Alert(fp, labels["alertname"], labels, {"summary": f"alert {fp}"}, AlertState.FIRING,
                 active_since=since, fired_at=since, updated_at=since, muted_by=muted_by)


def fp(n: int) -> str:
    return f"{n:016x}"


def test_muted_alerts_fold_under_their_cause_through_a_chain() -> None:
    power = alert(fp(1), since=100, name="SitePowerLoss")
    offline = alert(fp(2), since=110, muted_by=(f"inhibited:{fp(1)}",), name="SiteOffline")
    silent = alert(fp(3), "warning", since=105, muted_by=(f"inhibited:{fp(2)}",), name="DeviceSilent")
    silenced = alert(fp(4), "warning", since=50, muted_by=("silence:abc",), name="UplinkDegraded")
    earlier = alert(fp(5), since=90, name="InverterFault")
    incidents = group_incidents([silent, offline, power, silenced, earlier])
    assert [(i.cause.fingerprint, [m.fingerprint for m in i.muted]) for i in incidents] == [
        (fp(5), []), (fp(1), [fp(3), fp(2)]), (fp(4), [])]


def test_an_inhibitor_that_is_no_longer_active_leaves_its_target_a_cause() -> None:
    orphan = alert(fp(1), muted_by=(f"inhibited:{fp(9)}",))
    assert [(i.cause.fingerprint, i.muted) for i in group_incidents([orphan])] == [(fp(1), ())]


def test_a_loop_of_inhibitions_is_one_incident_under_its_most_urgent_member() -> None:
    a = alert(fp(1), "warning", since=1, muted_by=(f"inhibited:{fp(2)}",))
    b = alert(fp(2), "critical", since=2, muted_by=(f"inhibited:{fp(1)}",))
    c = alert(fp(3), "info", since=0, muted_by=(f"inhibited:{fp(1)}",))
    incidents = group_incidents([a, b, c])
    assert [(i.cause.fingerprint, {m.fingerprint for m in i.muted}) for i in incidents] == [(fp(2), {fp(1), fp(3)})]


def save(store: AlertStore, a: Alert) -> None:
    store.save_alert(a, Transition(a.fingerprint, a.rule, a.updated_at, AlertState.PENDING, AlertState.FIRING,
                                   a.labels))


def test_one_acknowledgement_covers_the_incident(alerts_api: tuple[ApiHarness, AlertStore]) -> None:  # noqa: F811
    api, store = alerts_api
    now = api.clock.now()
    save(store, alert(fp(1), since=now - 60, name="SitePowerLoss"))
    save(store, alert(fp(2), since=now - 50, muted_by=(f"inhibited:{fp(1)}",), name="GridOutage"))
    save(store, alert(fp(3), "warning", since=now - 40, muted_by=(f"inhibited:{fp(1)}",), name="UplinkDown"))
    save(store, alert(fp(4), "warning", since=now - 30, name="RoomOccupiedAfterHours"))
    listed = api.client.get("/api/v1/incidents", params={"site": "park"}, headers=api.headers()).json()
    assert [(i["fingerprint"], [m["fingerprint"] for m in i["muted"]]) for i in listed] == [
        (fp(1), [fp(2), fp(3)]), (fp(4), [])]
    assert listed[0]["started_at"] is not None and listed[0]["acked_by"] is None

    url = f"/api/v1/incidents/{fp(1)}/ack"
    assert api.client.post(url, json={}, headers=api.headers(Role.VIEWER)).status_code == 403
    assert api.client.post(f"/api/v1/incidents/{fp(2)}/ack", json={},
                           headers=api.headers(Role.OPERATOR)).status_code == 404  # muted: not an incident
    response = api.client.post(url, json={"comment": "on it"}, headers=api.headers(Role.OPERATOR))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["acked_by"].startswith("test operator (key ")
    assert all(m["acked_by"] == body["acked_by"] for m in body["muted"])
    assert {f: store.alert(f).alert.acked_by is not None for f in (fp(1), fp(2), fp(3), fp(4))} == {
        fp(1): True, fp(2): True, fp(3): True, fp(4): False}
    assert sorted(e.target for e in api.services.keys.audit(3)) == [fp(1), fp(2), fp(3)]
