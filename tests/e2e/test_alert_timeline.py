"""Scenarios end to end: the simulators publish through a real Mosquitto; the real collector
(`facmon collect`, a child process) writes the readings to a real InfluxDB; the rules engine (in
this process, its own MQTT subscription) turns them into alerts, notifications to a webhook
receiver started here, and `facmon_alerts` points.

Time: the simulated day is replayed in seconds, so the engine runs on device time — a `FakeClock`
that `rules.replay.DeviceTimeDriver` moves to each reading's `ts`, running the evaluation ticks
(every 10 s of simulated time) due on the way. MQTT, the collector and InfluxDB are real; only the
engine's clock follows the simulation instead of the wall. The timeline therefore depends only on
the order of the messages (one publisher connection, QoS 1: in order), and the fires and resolves
are asserted at the scripted simulated times within one evaluation interval (10 s).

The runs are fixed slices of the scenarios on Monday 2026-01-05 (Asia/Karachi), so the physics
(sun, batteries) is the same every run; the collector's maximum reading age is raised accordingly.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.clock import FakeClock
from core.config import load_config
from core.contract import Kind, Reading
from core.decode import DecodeLimits, StatusChange, decode_message
from core.influx_write import line_writer_for
from core.influxql import InfluxQLClient
from core.settings.mqtt import MqttSettings
from core.site import Site, load_site
from rules.alerts import AlertState, Transition
from rules.annotations import AnnotationWriter
from rules.engine import Engine
from rules.model import load_rule_files
from rules.mqtt import RulesSubscription
from rules.notify import Delivery, WebhookNotifier, load_template, render_text
from rules.replay import DeviceTimeDriver
from rules.route import Route
from rules.store import AlertStore
from simulators.scenario import load_scenario, resolve_scenario
from simulators.world import Message, Simulation
from tests.integration.collector.harness import CollectorProcess, Publisher, collector_env, count_points
from tests.integration.test_rules_notifiers import CaptureServer
from tests.support import poll_until
from tests.unit.rules.rules_harness import PACK, PARK, local

INTERVAL_S = 10.0
TEN_YEARS_S = 10 * 365 * 86_400
ROUTE = Route("oncall", group_by=("site",), group_wait_s=30, group_interval_s=300, repeat_interval_s=4 * 3600)


@dataclass
class Replay:
    """What one scenario replay left behind."""

    site: Site
    start_s: float
    end_s: float
    messages: list[Message]
    store: AlertStore
    hook: CaptureServer
    db: InfluxQLClient

    def transitions(self, rule: str) -> list[Transition]:
        return [t for t in self.store.history(limit=100_000) if t.rule == rule]

    def fired_rules(self) -> set[str]:
        return {t.rule for t in self.store.history(limit=100_000) if t.to_state is AlertState.FIRING}

    def at(self, hhmm: str) -> float:
        """The first local `hhmm` at or after the start (as scenario times are read)."""
        t = local(f"2026-01-05 {hhmm}")
        return t if t >= self.start_s else t + 86_400


@pytest.fixture
def hook() -> Iterator[CaptureServer]:
    server = CaptureServer()
    yield server
    server.close()


def _scenario_messages(scenario: str, start_s: float, duration_s: float) -> tuple[Simulation, list[Message]]:
    """The scenario's messages in order (seed 1). The run's last step (every device saying offline
    at the end of the simulation) is not part of the scenario's day and is left out."""
    simulation = Simulation(load_site(PARK), load_scenario(resolve_scenario(scenario)), 1, start_s,
                            duration_s=duration_s)
    return simulation, [m for step in list(simulation.steps())[:-1] for m in step.messages]


def _publish_scenario(port: int, scenario: str, start_s: float, duration_s: float) -> None:
    """The simulated devices, in a child process (the engine under test keeps this one's core):
    one connection, QoS 1, so the broker delivers the messages in the simulation's order."""
    _, messages = _scenario_messages(scenario, start_s, duration_s)
    publisher = Publisher(port, "e2e-simulators")
    try:
        for message in messages:
            publisher.publish(message.topic, message.payload)
        publisher.wait_all_acked(120)
    finally:
        publisher.close()


def _replay(tmp_path: Path, mosquitto, db: InfluxQLClient, hook: CaptureServer, scenario: str, start: str,
            duration_s: float) -> Replay:
    site = load_site(PARK)
    start_s = local(start)

    collector = CollectorProcess(collector_env(tmp_path / "collector", mosquitto.port, db.url, db.database, extra={
        "FACMON_COLLECTOR__DECODE__MAX_AGE_S": str(TEN_YEARS_S)}), tmp_path / "collector.log")
    clock = FakeClock(start_s)
    store = AlertStore(tmp_path / "alerts.db", clock)
    engine = Engine(load_rule_files([PACK]), {site.id: site}, store, [ROUTE], clock, {"oncall": ["oncall:hook"]})
    influx = line_writer_for(load_config(None, {"FACMON_INFLUXDB__API": "v1", "FACMON_INFLUXDB__URL": db.url,
                                                "FACMON_INFLUXDB__DATABASE": db.database}).influxdb)
    annotations = AnnotationWriter(store, influx.write)
    engine._on_transitions = annotations.wake  # as RulesService wires it
    driver = DeviceTimeDriver(engine, clock, INTERVAL_S)
    subscription = RulesSubscription(MqttSettings(host="127.0.0.1", port=mosquitto.port), "facmon-rules-e2e", clock,
                                     driver.handle, engine.source_connected, DecodeLimits(max_age_s=TEN_YEARS_S))
    delivery = Delivery(store, {"oncall:hook": WebhookNotifier("oncall:hook", hook.url)})
    stop_delivery = threading.Event()

    def deliver() -> None:  # the service's delivery thread, on the engine's (simulated) clock
        while not stop_delivery.wait(0.05):
            delivery.deliver_due(clock.now())

    delivering = threading.Thread(target=deliver, daemon=True)
    collector.start()
    subscription.start()
    annotations.start()
    delivering.start()
    devices = multiprocessing.get_context("spawn").Process(
        target=_publish_scenario, args=(mosquitto.port, scenario, start_s, duration_s), daemon=True)
    try:
        collector.wait_subscribed()
        poll_until(lambda: subscription.subscribed, 10, what="engine subscribed")
        devices.start()
        simulation, messages = _scenario_messages(scenario, start_s, duration_s)  # the oracle's copy
        devices.join(120)
        assert devices.exitcode == 0, "the simulated devices could not publish (see the output above)"
        poll_until(lambda: driver.handled >= len(messages), 60, 0.05, "engine consumed the replay")
        driver.advance_to(simulation.end_s)
        poll_until(lambda: not store.due_notifications(float("inf")), 10, what="every notification delivered")
        readings = [m for m in messages if isinstance(_decode(m, simulation.end_s), Reading)]
        for kind in Kind:
            expected = sum(1 for m in readings if m.device.kind is kind)
            poll_until(lambda kind=kind, expected=expected: count_points(db, kind.value) == expected, 60, 0.2,
                       f"{expected} {kind.value} points from the collector")
        poll_until(lambda: annotations.backlog() == 0, 20, what="facmon_alerts written")
    finally:
        if devices.is_alive():
            devices.kill()
        subscription.stop()
        stop_delivery.set()
        delivering.join(10)
        annotations.stop()
        assert collector.stop() == 0, collector.log_tail()
    return Replay(site, start_s, simulation.end_s, messages, store, hook, db)


def _decode(message: Message, now: float) -> Reading | StatusChange | object:
    return decode_message(message.topic, message.payload, now, DecodeLimits(max_age_s=TEN_YEARS_S))


def _spans(transitions: list[Transition]) -> list[tuple[float, float | None]]:
    """(fired at, resolved at) of each firing, from one alert's transitions in order."""
    spans: list[tuple[float, float | None]] = []
    for t in transitions:
        if t.to_state is AlertState.FIRING:
            spans.append((t.at, None))
        elif t.to_state is AlertState.RESOLVED:
            spans[-1] = (spans[-1][0], t.at)
    return spans


def _outage_windows(replay: Replay, unscheduled: list[tuple[str, str]]) -> list[tuple[float, float]]:
    """The grid is off in the site's published load-shedding windows and in the scenario's outages:
    merged where they touch (14:00–16:00 unscheduled runs into the 16:00–17:00 window)."""
    windows = sorted([*replay.site.shedding_windows(replay.start_s, replay.end_s),
                      *((replay.at(a), replay.at(b)) for a, b in unscheduled)])
    merged: list[tuple[float, float]] = []
    for begin, end in windows:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return [(b, e) for b, e in merged if replay.start_s <= b < replay.end_s]


def _by_device(transitions: list[Transition]) -> dict[str, list[Transition]]:
    out: dict[str, list[Transition]] = {}
    for t in transitions:
        out.setdefault(t.labels.get("device", ""), []).append(t)
    return out


def test_load_shedding_day_yields_the_scripted_alert_timeline(tmp_path, mosquitto, influx_db, hook):
    # 09:30–21:00: the published 10:00 and 16:00 windows, the unscheduled 14:00 outage, closing
    # time, and the evening uplink degradation (the 22:00 window is left out to keep the test short).
    replay = _replay(tmp_path, mosquitto, influx_db, hook, "load-shedding-day", "2026-01-05 09:30", 11.5 * 3600)
    grid = replay.site.inverters
    rule = load_rule_files([PACK]).rule("GridOutage")

    # GridOutage: each inverter fires `for` after each outage starts and resolves `keep_firing_for`
    # after the grid returns — exactly these, within one evaluation interval.
    windows = _outage_windows(replay, [("14:00", "16:00")])
    assert [(round(b - replay.start_s), round(e - replay.start_s)) for b, e in windows] == [
        (1800, 5400), (16200, 27000)]  # 10–11, 14–17
    expected = [(b + rule.for_s, e + rule.keep_firing_for_s) for b, e in windows]
    by_device = _by_device(replay.transitions("GridOutage"))
    assert sorted(by_device) == sorted(i.id for i in grid)
    for device, transitions in by_device.items():
        spans = _spans(transitions)
        assert len(spans) == len(expected), (device, spans)
        for (fired, resolved), (want_fired, want_resolved) in zip(spans, expected, strict=True):
            assert abs(fired - want_fired) <= INTERVAL_S and resolved is not None, (device, spans)
            assert abs(resolved - want_resolved) <= INTERVAL_S, (device, spans)
        # The 14:00 outage is outside the schedule (unscheduled); 10:00 is scheduled.
        fired_outage = [t.labels["outage"] for t in transitions if t.to_state is AlertState.FIRING]
        assert fired_outage == ["scheduled", "unscheduled"], device

    # OnBattery only ever fires inside an outage (it is inhibited by GridOutage, never notified).
    for device, transitions in _by_device(replay.transitions("OnBattery")).items():
        for fired, resolved in _spans(transitions):
            assert any(b <= fired and (resolved or replay.end_s) <= e + 60 for b, e in windows), (device, fired)

    # OccupancyAfterHours: every room still occupied at closing (18:00) fires at 18:10 (`for: 10m`)
    # and resolves with its sensor's first "unoccupied" reading after that.
    occupancy = _by_device(replay.transitions("OccupancyAfterHours"))
    assert occupancy, "rooms are occupied at closing time on a Monday"
    for device, transitions in occupancy.items():
        [(fired, resolved)] = _spans(transitions)
        assert abs(fired - replay.at("18:10")) <= INTERVAL_S, device
        emptied = next(r.ts_ms / 1000 for m in replay.messages if m.device is not None and m.device.device == device
                       and isinstance(r := _decode(m, replay.end_s), Reading) and r.ts_ms / 1000 > fired
                       and r.metrics["occupied"] is False)
        assert resolved is not None and abs(resolved - emptied) <= INTERVAL_S, device

    # The scripted 19:30 uplink degradation (3× RTT, +5 % loss) stays under the pack's thresholds
    # (p95 RTT > 400 ms, mean loss > 10 %): no UplinkDegraded. Nothing else fires on this day.
    assert replay.fired_rules() == {"GridOutage", "OnBattery", "OccupancyAfterHours"}

    # Notifications: each outage opens one incident `group_wait` (30 s) after GridOutage fires, and
    # is closed by one resolve within `group_interval` (300 s) of the grid's return; so is the
    # after-hours occupancy. Every notification reached the webhook receiver.
    notes = replay.store.notifications()
    assert [b["groupKey"] for b in hook.bodies] == [n.group_key for n in notes]
    opened = [(n.created_at, _names(n.payload["alerts"])) for n in notes if n.payload["facmon"]["reason"] == "new"]
    occupancy_fired = min(t.at for t in replay.transitions("OccupancyAfterHours") if t.to_state is AlertState.FIRING)
    want_opened = sorted([*(f + ROUTE.group_wait_s for f, _ in expected), occupancy_fired + ROUTE.group_wait_s])
    assert len(opened) == len(want_opened), opened
    for (at, names), want in zip(opened, want_opened, strict=True):
        assert abs(at - want) <= INTERVAL_S, (at - replay.start_s, names)
    closed = [n.created_at for n in notes if n.payload["status"] == "resolved"]
    want_closed = [*(r for _, r in expected), max(_spans(ts)[0][1] or 0 for ts in occupancy.values())]
    assert len(closed) == len(want_closed), closed
    for at, want in zip(closed, want_closed, strict=True):
        assert want - INTERVAL_S <= at <= want + ROUTE.group_interval_s + INTERVAL_S, (at - replay.start_s)
    # Every transition is a facmon_alerts point (the dashboards' annotations).
    points = influx_db.query('SELECT count("text") FROM "facmon_alerts"')
    assert points[0].values[0][1] == len(replay.store.history(limit=100_000))


def _names(alerts: list[dict]) -> list[str]:
    return sorted(f"{a['labels']['alertname']}/{a['labels'].get('device', '')}" for a in alerts)


def test_total_blackout_is_one_site_incident_with_its_dependents_inhibited(tmp_path, mosquitto, influx_db, hook):
    # 17:50 → 04:30: the grid fails at 18:00 with the batteries low and the generator fails to
    # start; inv-main (which powers the router) cuts off first and takes both uplinks down, then
    # inv-lab; the grid returns at 04:00.
    replay = _replay(tmp_path, mosquitto, influx_db, hook, "total-blackout", "2026-01-05 17:50", 10 * 3600 + 1200)
    notes = replay.store.notifications()

    # The generator (its own kind, through the same broker, collector and InfluxDB as the others)
    # cranks at 18:00 and gives up after its 15 s crank: GeneratorFailedToStart pages at once, and
    # stays firing (not inhibited: it is why the site goes dark) until the mains reset the alarm.
    stored = replay.db.query('SELECT "state", "running", "fuel_pct" FROM "generator" WHERE "device" = \'gen-main\'')
    states = [row[1] for row in stored[0].values]
    assert "cranking" in states and "fail_to_start" in states and "running" not in states
    [(gen_failed, gen_reset)] = _spans(replay.transitions("GeneratorFailedToStart"))
    assert replay.at("18:00") <= gen_failed <= replay.at("18:00") + 15 + 2 * INTERVAL_S
    assert gen_reset is not None and abs(gen_reset - replay.at("04:00")) <= 2 * INTERVAL_S
    # One incident: every notification of the night is the park's, and each reached the webhook.
    assert {n.group_key for n in notes} == {'oncall/{"site":"park"}'}
    assert [b["groupKey"] for b in hook.bodies] == [n.group_key for n in notes]

    # SitePowerLoss fires once, when the last battery is empty, and resolves when the grid returns.
    [(lost, back)] = _spans(replay.transitions("SitePowerLoss"))
    assert back is not None and abs(back - replay.at("04:00")) <= INTERVAL_S
    # While the site has no power, exactly one notification: SitePowerLoss, with every alert it
    # explains listed as inhibited by it — not a page per uplink, inverter and battery.
    during = [n for n in notes if lost <= n.created_at < back]
    assert len(during) == 1, [(n.created_at, n.payload["facmon"]["reason"]) for n in during]
    [incident] = during
    assert incident.created_at == lost
    assert _names([a for a in incident.payload["alerts"] if a["status"] == "firing"]) == [
        "GeneratorFailedToStart/gen-main", "SitePowerLoss/"]
    power_loss_fp = next(a["fingerprint"] for a in incident.payload["alerts"]
                         if a["labels"]["alertname"] == "SitePowerLoss")
    muted = incident.payload["facmon"]["muted"]
    assert _names(muted) == [
        "BatteryLow/inv-lab", "BatteryLow/inv-main", "BatteryRunoutPredicted/inv-lab",
        "BatteryRunoutPredicted/inv-main", "DeviceSilent/plug-router", "GridOutage/inv-lab", "GridOutage/inv-main",
        "InverterFault/inv-main",
        "OnBattery/inv-lab", "SiteOffline/", "UplinkDegraded/uplink-jazz", "UplinkDegraded/uplink-ptcl",
        "UplinkDown/uplink-jazz", "UplinkDown/uplink-ptcl"]
    assert all(f"inhibited:{power_loss_fp}" in a["muted_by"] for a in muted)
    # The webhook got the same incident (Alertmanager's v4 body has no field for muted alerts; the
    # chat and e-mail text list them, and so does the API's alert detail).
    [body] = [b for b in hook.bodies if "SitePowerLoss/" in _names([a for a in b["alerts"]
                                                                    if a["status"] == "firing"])]
    assert power_loss_fp in [a["fingerprint"] for a in body["alerts"]]
    _, text = render_text(incident.payload, "en")
    assert "UplinkDown" in text.split(load_template("en")["muted_header"].split("{")[0].strip())[-1]

    # The router's power loss (23:25, inv-main cut off) takes both uplinks down: SiteOffline explains
    # them, so no notification ever paged an uplink alert. The only device that went silent is the
    # router's plug, on inv-main's output too (its last will), muted by SitePowerLoss; the probe host
    # and the sensors have their own power, the broker is on site.
    fired_uplinks = [a for b in hook.bodies for a in b["alerts"]
                     if a["labels"]["alertname"] in ("UplinkDown", "UplinkDegraded", "FailoverActive")]
    assert fired_uplinks == []
    assert {t.labels["device"] for t in replay.transitions("UplinkDown")} == {"uplink-ptcl", "uplink-jazz"}
    assert {t.labels["device"] for t in replay.transitions("DeviceSilent")} == {"plug-router"}
    points = influx_db.query('SELECT count("text") FROM "facmon_alerts"')
    assert points[0].values[0][1] == len(replay.store.history(limit=100_000))
