"""A tester beside a live site, against a real Mosquitto (issue 14, item 2).

The live site is the shipped park, listed in sites.files, its devices connected with the live
simulator's client ids and their retained `online`. A tester's `facmon simulate` on the same broker
then runs as `test-park`: it closes no live session (no last will of the park is published) and
leaves the park's retained statuses as they were, and its own none. `facmon sites retire` /
`facmon devices forget` clear a gone site's or device's retained statuses, the API's latest state of
it (the API's real MQTT adapter) and its open alerts in the rules store.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from api.device_states import DeviceStates
from api.metrics import ApiMetrics
from api.mqtt import DeviceStateSubscription
from core.clock import SystemClock
from core.config import FacmonConfig, load_config
from core.contract import DeviceKey, Kind, status_subscription
from core.decode import DecodeLimits
from core.mqtt_publisher import Publisher
from core.mqtt_subscriber import SessionSpec, Subscriber
from core.site import iter_devices, load_site
from facmon.commands import devices as devices_command
from facmon.commands import simulate as simulate_command
from facmon.commands import sites as sites_command
from facmon.retained_statuses import read_statuses
from facmon.servers import Mosquitto, free_port
from rules.alerts import Alert, AlertState, fingerprint
from rules.store import AlertStore
from simulators.publish import MqttPublisher
from simulators.scenario import DEFAULT_SITE, load_scenario, resolve_scenario
from simulators.world import Simulation
from tests.support import poll_until

CLOCK = SystemClock()
PARK = load_site(DEFAULT_SITE)
PARK_DEVICES = {DeviceKey(PARK.id, spec.kind, spec.id) for spec in iter_devices(PARK)}
log = logging.getLogger("tests.testers")


def _config(broker: Mosquitto, tmp_path: Path, *site_files: Path) -> FacmonConfig:
    """The tester's configuration: the stack's broker, its site files, its rules store; `facmon up`'s
    local port elsewhere (nothing answers there)."""
    return load_config(None, {"FACMON_MQTT__HOST": broker.host, "FACMON_MQTT__PORT": str(broker.port),
                              "FACMON_SITES__FILES": ",".join(str(f) for f in site_files),
                              "FACMON_RULES__STORE_PATH": str(tmp_path / "alerts.db"),
                              "FACMON_LOCAL__BROKER_PORT": str(free_port())})


@contextmanager
def _live_park(config: FacmonConfig) -> Iterator[MqttPublisher]:
    """The park's devices connected as the live simulator connects them (client ids `facmon-sim-...`,
    each with its last will), each having announced `online`."""
    simulation = Simulation(PARK, load_scenario(resolve_scenario("load-shedding-day")), 1, CLOCK.now() - 60,
                            duration_s=60)
    live = MqttPublisher(config.mqtt, CLOCK, client_id_prefix=config.simulate.client_id_prefix)
    live.open(simulation.devices)
    try:
        live.publish_step(next(iter(simulation.steps())).messages)
        poll_until(lambda: read_statuses(config.mqtt, CLOCK, PARK.id).keys() == PARK_DEVICES, 10,
                   what="the live park's retained statuses")
        yield live
    finally:
        live.close()


@contextmanager
def _status_watch(config: FacmonConfig, site: str) -> Iterator[list[tuple[str, bytes]]]:
    """Every status message of `site` the broker delivers after the retained ones (a last will included)."""
    seen: list[tuple[str, bytes]] = []
    lock = threading.Lock()
    retained_done = threading.Event()

    def keep(topic: str, payload: bytes) -> None:
        if retained_done.is_set():
            with lock:
                seen.append((topic, payload))

    subscriber = Subscriber(config.mqtt, SessionSpec("test-status-watch", (status_subscription(site),), 1, False),
                            CLOCK, "the test's status watch", log, keep)
    subscriber.start()
    try:
        poll_until(lambda: subscriber.subscribed, 10, what="the status watch subscribed")
        # The retained statuses come right after the SUBACK; one more status read is a round trip after them.
        read_statuses(config.mqtt, CLOCK, site)
        retained_done.set()
        yield seen
    finally:
        subscriber.stop()


def _simulate(config: FacmonConfig, capsys: pytest.CaptureFixture, **options: object) -> tuple[int, list[str]]:
    args = argparse.Namespace(site=None, scenario="sensor-faults", speed="max", start=None, duration="20m",
                              seed=None, devices=0, dry_run=False, quiet=True, site_id=None, into_live_site=False)
    for name, value in options.items():
        setattr(args, name, value)
    code = simulate_command.run(args, config)
    return code, capsys.readouterr().out.splitlines()


def test_a_test_run_beside_the_live_site_closes_none_of_its_sessions_and_leaves_statuses_as_found(
        mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = _config(mosquitto, tmp_path, DEFAULT_SITE)
    with _live_park(config), _status_watch(config, PARK.id) as park_statuses:
        before = read_statuses(config.mqtt, CLOCK, PARK.id)
        # sensor-faults: a sensor dies mid-run (its connection's last will) and the run ends with `offline`s.
        code, out = _simulate(config, capsys)
        assert code == 0, out
        assert out[0].startswith(f"facmon simulate: site test-park (a test site) to mqtt://{mosquitto.host}:"
                                 f"{mosquitto.port}, mqtt.host/mqtt.port as configured"), out[0]
        assert f"retained statuses left as found: 0 restored, {len(PARK_DEVICES)} cleared" in out[-1], out
        assert read_statuses(config.mqtt, CLOCK, "test-park") == {}
        assert read_statuses(config.mqtt, CLOCK, PARK.id) == before
        assert set(before.values()) == {b"online"}
    assert park_statuses == []  # no last will, no status of any kind: the live sessions were never closed
    assert _sessions_taken_over(mosquitto) == []


def test_into_the_live_site_only_when_asked_and_its_statuses_are_restored(
        mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = _config(mosquitto, tmp_path, DEFAULT_SITE)
    with _live_park(config):
        before = read_statuses(config.mqtt, CLOCK, PARK.id)
        code, out = _simulate(config, capsys, site_id="park")
        assert code == 2 and read_statuses(config.mqtt, CLOCK, PARK.id) == before
        code, out = _simulate(config, capsys, into_live_site=True)
        assert code == 0, out
        assert out[0].startswith("facmon simulate: site park (the live site itself (--into-live-site))"), out[0]
        assert f"retained statuses left as found: {len(PARK_DEVICES)} restored, 0 cleared" in out[-1], out
        assert read_statuses(config.mqtt, CLOCK, PARK.id) == before
    assert _sessions_taken_over(mosquitto) == []  # its client ids are its own, even under the live site's id


def _sessions_taken_over(broker: Mosquitto) -> list[str]:
    """The broker's log lines for a client that connected with a client id already in use (Mosquitto
    closes the older session: the live devices' drop)."""
    return [line for line in broker.log_path.read_text().splitlines() if "already connected" in line]


def _announce(config: FacmonConfig, statuses: dict[DeviceKey, bytes]) -> None:
    publisher = Publisher(config.mqtt, "test-devices", CLOCK, stage="the test's devices", log=log)
    assert publisher.open()
    for device, payload in statuses.items():
        publisher.publish(device.status_topic(), payload, retain=True)
    assert publisher.close() == 0


def _firing(store: AlertStore, rule: str, labels: dict[str, str]) -> str:
    identity = {"alertname": rule, **labels}
    fp = fingerprint(identity)
    now = CLOCK.now()
    store.save_alert(Alert(fp, rule, identity, {"summary": rule}, AlertState.FIRING, now - 600, now - 500,
                           updated_at=now - 500))
    return fp


@contextmanager
def _api_states(config: FacmonConfig) -> Iterator[DeviceStates]:
    """The API's latest state, fed by the API's own MQTT adapter (any device: known_devices_only off)."""
    states = DeviceStates(stale_after_s=3600)
    subscription = DeviceStateSubscription(config.mqtt, "test-api", states, CLOCK, DecodeLimits(), ApiMetrics(),
                                           lambda _events: None)
    subscription.start()
    try:
        poll_until(lambda: subscription.subscribed, 10, what="the API subscribed")
        yield states
    finally:
        subscription.stop()


def test_retiring_a_test_site_clears_its_statuses_latest_state_and_open_alerts(
        mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = _config(mosquitto, tmp_path, DEFAULT_SITE)
    testpark = {DeviceKey("testpark", key.kind, key.device): b"offline" for key in PARK_DEVICES}
    park = {key: b"online" for key in PARK_DEVICES}
    store = AlertStore(config.rules.store_path, CLOCK)
    gone = [_firing(store, "DeviceSilent", {"site": "testpark", "kind": "inverter", "device": "inv-main"}),
            _firing(store, "SitePowerLoss", {"site": "testpark"})]
    stays = _firing(store, "DeviceSilent", {"site": "park", "kind": "inverter", "device": "inv-main"})
    with _api_states(config) as states:
        _announce(config, {**testpark, **park})
        poll_until(lambda: len(states.of_site("testpark")) == len(testpark), 10, what="the API knows testpark")

        args = argparse.Namespace(sites_action="retire", site="testpark", reason="done testing")
        assert sites_command.run(args, config) == 0
        out = capsys.readouterr().out
        assert f"retained statuses cleared: {len(testpark)}" in out and "open alerts ended: 2" in out, out
        assert f"database {config.influxdb.database}" in out  # says what stays

        assert read_statuses(config.mqtt, CLOCK, "testpark") == {}
        assert read_statuses(config.mqtt, CLOCK, PARK.id) == park
        poll_until(lambda: states.of_site("testpark") == [], 10, what="the API forgot testpark")
        assert len(states.of_site(PARK.id)) == len(park)
    assert store.active_alerts(site="testpark") == []
    for fp in gone:
        detail = store.alert(fp)
        assert detail is not None and detail.alert.state is AlertState.RESOLVED
        assert detail.transitions[-1].summary == "done testing (facmon sites retire)"
    assert [a.fingerprint for a in store.active_alerts()] == [stays]
    store.close()


def test_forgetting_one_device_leaves_the_rest_of_its_site(
        mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = _config(mosquitto, tmp_path, DEFAULT_SITE)
    stray = DeviceKey(PARK.id, Kind.INVERTER, "inv-old")  # once published, described by no site file
    store = AlertStore(config.rules.store_path, CLOCK)
    gone = _firing(store, "DeviceSilent", {"site": PARK.id, "kind": "inverter", "device": "inv-old"})
    stays = _firing(store, "SitePowerLoss", {"site": PARK.id})
    with _api_states(config) as states:
        _announce(config, {stray: b"offline", **{key: b"online" for key in PARK_DEVICES}})
        poll_until(lambda: states.get(stray) is not None, 10, what="the API knows inv-old")
        args = argparse.Namespace(devices_action="forget", device="park/inverter/inv-old", reason="replaced")
        assert devices_command.run(args, config) == 0
        poll_until(lambda: states.get(stray) is None, 10, what="the API forgot inv-old")
        assert len(states.of_site(PARK.id)) == len(PARK_DEVICES)
    assert read_statuses(config.mqtt, CLOCK, PARK.id).keys() == PARK_DEVICES
    assert [a.fingerprint for a in store.active_alerts()] == [stays]
    assert store.alert(gone).transitions[-1].summary == "replaced (facmon devices forget)"  # type: ignore[union-attr]
    capsys.readouterr()

    # A described device, a live site, an unknown one: refused, saying what to fix.
    described = argparse.Namespace(devices_action="forget", device="park/inverter/inv-main", reason="x")
    assert devices_command.run(described, config) == 2
    assert f"inverter 'inv-main' is described in {DEFAULT_SITE} (sites.files): remove it from that file" \
        in capsys.readouterr().err
    live = argparse.Namespace(sites_action="retire", site="park", reason="x")
    assert sites_command.run(live, config) == 2
    assert f"site 'park' is described by {DEFAULT_SITE} (sites.files): remove that file" in capsys.readouterr().err
    unknown = argparse.Namespace(sites_action="retire", site="tsetpark", reason="x")
    assert sites_command.run(unknown, config) == 2
    err = capsys.readouterr().err
    assert "unknown site 'tsetpark'" in err and "Sites with retained statuses there: park" in err, err
    assert read_statuses(config.mqtt, CLOCK, PARK.id).keys() == PARK_DEVICES
    store.close()
