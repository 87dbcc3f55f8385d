"""Retiring a site or device (rules/retire.py): its open alerts end with the reason in their history,
written by another process (the CLI) into the store a running engine uses; the engine takes them as
ended, fires nothing more for the gone devices, and judges a device again once it is back `online`.
A cleared retained status does the same for a device no site file describes."""

from __future__ import annotations

from pathlib import Path

from core.contract import DeviceKey, Kind, Reading
from core.decode import StatusChange, StatusCleared
from rules.alerts import AlertState, Retirement
from rules.engine import STATUS_CLEARED
from rules.retire import retire_alerts
from rules.store import AlertStore
from tests.unit.rules.rules_harness import Harness, all_devices_reporting, inverter, local

START = local("2026-01-05 12:00")
TEST_INVERTER = DeviceKey("test-park", Kind.INVERTER, "inv-main")
TEST_UPLINK = DeviceKey("test-park", Kind.UPLINK, "uplink-ptcl")


def _send(h: Harness, device: DeviceKey, metrics: dict) -> None:
    h.seq += 1
    h.engine.handle(Reading(device, int(h.clock.now() * 1000), h.seq, metrics))


def _silent_test_site(tmp_path: Path) -> Harness:
    """The park reporting, and a test site's two devices that reported once and went silent."""
    h = Harness(tmp_path, START)
    _send(h, TEST_INVERTER, inverter())
    _send(h, TEST_UPLINK, {"isp": "PTCL", "link_up": True, "rtt_ms": 40.0, "jitter_ms": 3.0, "loss_pct": 0.0})
    h.run(600, step=5, every=all_devices_reporting(h))
    return h


def _open(h: Harness, site: str) -> list[str]:
    return sorted(f"{a.rule}:{a.labels.get('device', '-')}" for a in h.engine.alerts()
                  if a.site == site and a.state in (AlertState.PENDING, AlertState.FIRING))


def test_a_retired_site_s_alerts_end_with_the_reason_and_do_not_fire_again(tmp_path: Path) -> None:
    h = _silent_test_site(tmp_path)
    # The story: a silent test site fires per device and for the site as a whole.
    assert _open(h, "test-park") == ["DeviceSilent:inv-main", "DeviceSilent:uplink-ptcl", "SiteOffline:-",
                                     "SitePowerLoss:-"]
    park_before = _open(h, "park")

    cli = AlertStore(tmp_path / "alerts.db", h.clock)  # the CLI's own connection, as `facmon sites retire` has
    changes = retire_alerts(cli, Retirement("test-park", None, h.clock.now(), "facmon-cli", "done testing"))
    assert sorted(c.alert.labels.get("device", c.alert.rule) for c in changes) == [
        "SiteOffline", "SitePowerLoss", "inv-main", "uplink-ptcl"]
    assert {c.alert.state for c in changes} == {AlertState.RESOLVED}

    h.run(2 * 3600, step=5, every=all_devices_reporting(h))
    assert _open(h, "test-park") == []
    assert _open(h, "park") == park_before
    for change in changes:
        transitions = cli.alert(change.alert.fingerprint).transitions  # type: ignore[union-attr]
        # One end, the retirement's, with its reason; nothing after it.
        assert [(t.to_state, t.summary) for t in transitions][-1] == (AlertState.RESOLVED, "done testing")
        assert [t.to_state for t in transitions].count(AlertState.RESOLVED) == 1
    assert cli.active_alerts(site="test-park") == []
    cli.close()


def test_a_forgotten_device_comes_back_when_it_announces_itself_online(tmp_path: Path) -> None:
    h = _silent_test_site(tmp_path)
    cli = AlertStore(tmp_path / "alerts.db", h.clock)
    retire_alerts(cli, Retirement("test-park", "inv-main", h.clock.now(), "facmon-cli", "replaced"))
    h.run(600, step=5, every=all_devices_reporting(h))
    # Only the forgotten device: the site's other device and the site as a whole stay judged.
    assert _open(h, "test-park") == ["DeviceSilent:uplink-ptcl", "SiteOffline:-", "SitePowerLoss:-"]

    h.engine.handle(StatusChange(TEST_INVERTER, True))
    _send(h, TEST_INVERTER, inverter())
    h.run(600, step=5, every=all_devices_reporting(h))
    assert "DeviceSilent:inv-main" in _open(h, "test-park")
    cli.close()


def test_a_restarted_engine_keeps_a_retirement(tmp_path: Path) -> None:
    h = _silent_test_site(tmp_path)
    cli = AlertStore(tmp_path / "alerts.db", h.clock)
    retire_alerts(cli, Retirement("test-park", None, h.clock.now(), "facmon-cli", "done testing"))
    h.restart()
    _send(h, TEST_INVERTER, inverter())  # a straggler reading, queued by the broker before the retirement
    h.run(3600, step=5, every=all_devices_reporting(h))
    assert _open(h, "test-park") == []
    cli.close()


def test_a_retirement_of_nothing_open_is_still_recorded(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.db", Harness(tmp_path / "h", START).clock)
    assert retire_alerts(store, Retirement("gone", None, START, "facmon-cli", "closed")) == []
    assert [r for _, r in store.retirements()] == [Retirement("gone", None, START, "facmon-cli", "closed")]
    store.close()


def test_a_cleared_status_ends_a_device_no_site_file_describes_and_its_site_with_its_last_device(
        tmp_path: Path) -> None:
    h = _silent_test_site(tmp_path)
    h.engine.handle(StatusCleared(TEST_INVERTER))
    assert _open(h, "test-park") == ["DeviceSilent:uplink-ptcl", "SiteOffline:-", "SitePowerLoss:-"]
    h.engine.handle(StatusCleared(TEST_UPLINK))
    assert _open(h, "test-park") == []
    h.run(2 * 3600, step=5, every=all_devices_reporting(h))
    assert _open(h, "test-park") == []
    ended = [t for t in h.store.history() if t.labels.get("site") == "test-park" and t.to_state is AlertState.RESOLVED]
    assert len(ended) == 4 and {t.summary for t in ended} == {STATUS_CLEARED}


def test_a_cleared_status_of_a_described_device_changes_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path, START)
    every = all_devices_reporting(h)
    h.run(60, step=5, every=every)
    h.engine.handle(StatusCleared(DeviceKey("park", Kind.INVERTER, "inv-lab")))
    del every[(Kind.INVERTER, "inv-lab")]
    h.run(600, step=5, every=every)
    assert "DeviceSilent:inv-lab" in _open(h, "park")  # its site file says it exists: its silence is an alert
