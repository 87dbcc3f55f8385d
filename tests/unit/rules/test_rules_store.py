"""The SQLite alert store: what the engine writes and the API reads survives reopening, and the
API's writes are visible to another connection (the engine) through `data_version`."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.clock import FakeClock
from rules.alerts import Alert, AlertState, Transition, fingerprint
from rules.matchers import Matcher, parse_matcher
from rules.silences import SilenceError, SilenceMuter
from rules.store import AlertNotFound, AlertStore, GroupState, SilenceNotFound, StoreError


def _firing(clock: FakeClock, device: str = "inv-1") -> Alert:
    identity = {"alertname": "GridOutage", "site": "park", "device": device}
    return Alert(fingerprint(identity), "GridOutage", {**identity, "severity": "critical"}, {"summary": "grid down"},
                 AlertState.FIRING, active_since=clock.now() - 60, fired_at=clock.now(), updated_at=clock.now(),
                 value=0.0)


def test_alert_and_transitions_survive_reopen(tmp_path):
    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.db", clock)
    alert = _firing(clock)
    store.save_alert(alert, Transition(alert.fingerprint, alert.rule, clock.now(), AlertState.PENDING,
                                       AlertState.FIRING, dict(alert.labels), 0.0))
    store.close()

    reopened = AlertStore(tmp_path / "alerts.db", clock)
    detail = reopened.alert(alert.fingerprint)
    assert detail is not None
    assert detail.alert == alert
    assert [(t.from_state, t.to_state) for t in detail.transitions] == [(AlertState.PENDING, AlertState.FIRING)]
    assert reopened.active_alerts(site="park", severity="critical") == [alert]
    assert reopened.active_alerts(site="other") == []
    assert reopened.active_alerts(state="resolved") == []
    assert reopened.alert("0" * 16) is None


def test_acknowledge_records_who_and_is_seen_by_other_connection(tmp_path):
    clock = FakeClock()
    engine = AlertStore(tmp_path / "alerts.db", clock)
    api = AlertStore(tmp_path / "alerts.db", clock)
    alert = _firing(clock)
    engine.save_alert(alert)
    version = engine.data_version()

    clock.advance(30)
    acked = api.acknowledge(alert.fingerprint, "amina", "on my way")
    assert (acked.acked_by, acked.acked_at, acked.ack_comment) == ("amina", clock.now(), "on my way")
    assert engine.data_version() != version
    assert engine.acks() == {alert.fingerprint: ("amina", clock.now(), "on my way")}
    detail = engine.alert(alert.fingerprint)
    assert detail is not None and [a.by for a in detail.acks] == ["amina"]

    with pytest.raises(AlertNotFound):
        api.acknowledge("feedfeedfeedfeed", "amina")
    with pytest.raises(StoreError, match="who acknowledges"):
        api.acknowledge(alert.fingerprint, " ")
    engine.save_alert(Alert(alert.fingerprint, alert.rule, alert.labels, alert.annotations, AlertState.RESOLVED,
                            resolved_at=clock.now()))
    with pytest.raises(StoreError, match="resolved"):
        api.acknowledge(alert.fingerprint, "amina")


def test_silence_lifecycle(tmp_path):
    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.db", clock)
    now = clock.now()
    silence = store.create_silence([parse_matcher("site=park"), parse_matcher("alertname=~Uplink.*")],
                                   now, now + 3600, "bilal", "ISP maintenance")
    assert store.silence(silence.id) == silence
    muter = SilenceMuter(store.list_silences())
    assert muter.mutes({"site": "park", "alertname": "UplinkDown"}, now) == silence.id
    assert muter.mutes({"site": "park", "alertname": "GridOutage"}, now) is None
    assert muter.mutes({"site": "park", "alertname": "UplinkDown"}, now + 3600) is None

    clock.advance(600)
    expired = store.expire_silence(silence.id, "bilal")
    assert expired.ends_at == clock.now() and expired.expired_by == "bilal"
    assert not expired.is_active(clock.now())
    assert store.list_silences(include_expired=False) == []
    assert store.list_silences() == [expired]
    with pytest.raises(SilenceNotFound):
        store.expire_silence("nope", "bilal")
    with pytest.raises(SilenceError, match="at least one matcher"):
        store.create_silence([], now, now + 1, "bilal")
    with pytest.raises(SilenceError, match="before it starts"):
        store.create_silence([Matcher("site", "=", "park")], now, now - 1, "bilal")


def test_outbox_enqueue_retry_and_sent(tmp_path):
    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.db", clock)
    now = clock.now()
    group = GroupState("site=park", "oncall", {"site": "park"}, now, now, ("abc:firing",))
    nid = store.enqueue_notification("site=park", "oncall", ["abc"], {"status": "firing"}, now, group)
    assert store.groups() == [group]
    assert [n.id for n in store.due_notifications(now)] == [nid]
    store.mark_attempt_failed(nid, "connection refused", now + 5)
    assert store.due_notifications(now) == []
    assert store.next_notification_due() == now + 5
    store.mark_sent(nid, now + 5)
    [record] = store.notifications("site=park")
    assert (record.status, record.attempts, record.sent_at, record.last_error) == (
        "sent", 2, now + 5, "connection refused")
    assert store.due_notifications(now + 100) == []


def test_a_version_1_database_gains_the_new_columns_and_keeps_its_rows(tmp_path):
    import sqlite3

    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE transitions (id INTEGER PRIMARY KEY AUTOINCREMENT, fingerprint TEXT NOT NULL, rule TEXT NOT NULL,"
        " at REAL NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL, labels TEXT NOT NULL, value REAL);"
        "CREATE TABLE groups (key TEXT PRIMARY KEY, receiver TEXT NOT NULL, labels TEXT NOT NULL,"
        " first_seen_at REAL NOT NULL, last_notified_at REAL, notified TEXT NOT NULL DEFAULT '[]',"
        " escalation_level INTEGER NOT NULL DEFAULT 0, escalated_at REAL);"
        "INSERT INTO transitions (fingerprint, rule, at, from_state, to_state, labels) "
        "VALUES ('fp', 'GridOutage', 5.0, 'pending', 'firing', '{}');"
        "INSERT INTO groups VALUES ('oncall/{}', 'oncall', '{}', 1.0, 2.0, '[]', 0, NULL);")
    db.close()
    store = AlertStore(path, FakeClock())
    [(first_id, transition)] = store.transitions_after(0)
    assert (first_id, transition.rule, transition.summary) == (1, "GridOutage", "")
    [group] = store.groups()
    assert (group.first_seen_at, group.last_notified_at, group.first_notified_at) == (1.0, 2.0, None)
    store.save_group(GroupState("oncall/{}", "oncall", {}, 1.0, 2.0, first_notified_at=2.0))
    assert store.groups()[0].first_notified_at == 2.0
    assert store.meta("schema_version") == "2"


def test_keep_firing_since_survives_reopen_and_a_database_from_before_it_opens(tmp_path):
    import sqlite3

    clock = FakeClock()
    old = sqlite3.connect(tmp_path / "old.db")
    old.executescript("CREATE TABLE alerts (fingerprint TEXT PRIMARY KEY, rule TEXT NOT NULL, labels TEXT NOT NULL, "
                      "annotations TEXT NOT NULL, state TEXT NOT NULL, active_since REAL, fired_at REAL, "
                      "resolved_at REAL, updated_at REAL NOT NULL, value REAL, muted_by TEXT NOT NULL DEFAULT '[]', "
                      "acked_by TEXT, acked_at REAL, ack_comment TEXT NOT NULL DEFAULT '');")
    alert = _firing(clock)
    old.execute("INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (alert.fingerprint, alert.rule, '{"alertname": "GridOutage"}', "{}", "firing", alert.active_since,
                 alert.fired_at, None, alert.updated_at, 0.0, "[]", None, None, ""))
    old.commit()
    old.close()
    store = AlertStore(tmp_path / "old.db", clock)
    [loaded] = store.all_alerts()
    assert (loaded.state, loaded.keep_firing_since) == (AlertState.FIRING, None)

    store.save_alert(replace(loaded, keep_firing_since=clock.now()))
    store.close()
    reopened = AlertStore(tmp_path / "old.db", clock)
    assert [a.keep_firing_since for a in reopened.all_alerts()] == [clock.now()]
    assert [a.keep_firing_since for a in reopened.active_alerts()] == [clock.now()]
    reopened.save_alert(replace(loaded, keep_firing_since=None))  # the condition holds again: the timer stops
    assert reopened.alert(loaded.fingerprint).alert.keep_firing_since is None
    reopened.close()
