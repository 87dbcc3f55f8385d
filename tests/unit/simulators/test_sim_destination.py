"""Where `facmon simulate` publishes (facmon/live_stack.py, facmon/commands/simulate.py): the broker of
a running `facmon up` unless mqtt.* is set, and a site id of its own beside a live site; and how a run
that leaves the statuses as it found them ends (without the simulation's farewell `offline`s)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from core.clock import FakeClock
from core.config import FacmonConfig, load_config
from core.contract import DeviceKey, Kind
from core.site import iter_devices, load_site
from facmon.commands.simulate import WithoutFarewell, choose_site_id, is_farewell
from facmon.live_stack import LiveSite, LiveStack, find_live_stack
from simulators.publish import MemoryPublisher
from simulators.run import run_simulation
from simulators.scenario import DEFAULT_SITE, load_scenario, resolve_scenario
from simulators.world import Simulation

PARK = load_site(DEFAULT_SITE)
PARK_DEVICES = list(iter_devices(PARK))


def _config(**env: str) -> FacmonConfig:
    return load_config(None, {f"FACMON_{k.upper()}": v for k, v in env.items()})


def _paths(stack: LiveStack) -> dict[str, Path]:
    return {site_id: live.path for site_id, live in stack.live_sites.items()}


def test_a_running_facmon_up_is_found_on_its_local_port_and_watches_the_demo_park() -> None:
    asked: list[tuple[str, int]] = []
    stack = find_live_stack(_config(), lambda host, port: asked.append((host, port)) or True)
    assert asked == [("127.0.0.1", 11883)]
    assert (stack.mqtt.host, stack.mqtt.port, stack.is_facmon_up) == ("127.0.0.1", 11883, True)
    assert "running `facmon up`" in stack.broker_origin
    assert _paths(stack) == {"park": DEFAULT_SITE} and stack.live_sites["park"].site == PARK


def test_without_facmon_up_the_mqtt_defaults_and_no_live_site() -> None:
    stack = find_live_stack(_config(), lambda host, port: False)
    assert (stack.mqtt.port, _paths(stack)) == (1883, {})
    assert "FACMON_MQTT__PORT" in stack.broker_origin


def test_configured_mqtt_wins_and_its_sites_are_the_live_ones(tmp_path: Path) -> None:
    site = tmp_path / "shop.yaml"
    site.write_text(DEFAULT_SITE.read_text().replace("id: park", "id: shop", 1))

    def never(host: str, port: int) -> bool:
        raise AssertionError("a configured broker needs no probe")

    stack = find_live_stack(_config(mqtt__host="broker.lan", mqtt__port="1884", sites__files=str(site)), never)
    assert (stack.mqtt.host, stack.mqtt.port, stack.is_facmon_up) == ("broker.lan", 1884, False)
    assert _paths(stack) == {"shop": site} and stack.live_sites["shop"].site.id == "shop"
    # facmon up's own children: the local broker configured through the environment, the demo park live.
    child = find_live_stack(_config(mqtt__port="11883"), never)
    assert child.is_facmon_up and _paths(child) == {"park": DEFAULT_SITE}


def _live(site_id: str) -> LiveStack:
    """A stack watching `site_id`, described by the park's file."""
    return LiveStack(FacmonConfig().mqtt, "test", {site_id: LiveSite(DEFAULT_SITE, PARK)})


LIVE = _live("park")
SANDBOX = LiveStack(FacmonConfig().mqtt, "test", {})


def test_a_test_run_gets_a_site_id_of_its_own_beside_the_live_site() -> None:
    assert choose_site_id(PARK, None, False, LIVE) == "test-park"
    assert choose_site_id(PARK, "lab-1", False, LIVE) == "lab-1"
    assert choose_site_id(PARK, None, False, SANDBOX) == "park"  # nothing watches it: the file's id
    assert choose_site_id(PARK, None, True, LIVE) == "park"
    assert choose_site_id(PARK.model_copy(update={"id": "x" * 64}), None, False, _live("x" * 64)) == "test-" + "x" * 59
    # A site named test-... is a test site, even listed in sites.files (so the stack accepts its readings).
    test_site = PARK.model_copy(update={"id": "test-park"})
    assert choose_site_id(test_site, None, False, _live("test-park")) == "test-park"


@pytest.mark.parametrize(("requested", "into_live", "message"), [
    ("park", False, "site 'park' is live: .* to write into the live site itself, add --into-live-site"),
    ("Park", False, r"--site-id 'Park' is not a site id: .* \(e.g. test-park\)"),
    ("lab-1", True, "--into-live-site publishes under the site file's id 'park'; drop --site-id lab-1"),
])
def test_the_live_site_only_with_the_flag_that_says_so(requested: str, into_live: bool, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        choose_site_id(PARK, requested, into_live, LIVE)


def test_a_run_leaving_statuses_as_found_skips_only_the_farewell_offlines() -> None:
    start = datetime(2026, 3, 2, 10, 50, tzinfo=PARK.tz).timestamp()  # sensor-faults: occ-room-3 dies at 11:00

    def simulation() -> Simulation:
        return Simulation(PARK, load_scenario(resolve_scenario("sensor-faults")), 9, start, duration_s=1800)

    steps = list(simulation().steps())
    farewells = [[m for m in step.messages if is_farewell(m)] for step in steps]
    assert all(found == [] for found in farewells[:-1])
    dead = DeviceKey("park", Kind.OCCUPANCY, "occ-room-3")
    assert {m.device for m in farewells[-1]} == {d for d in simulation().devices if d != dead}

    everything, inner = MemoryPublisher(), MemoryPublisher()
    run_simulation(simulation(), everything, FakeClock(start), None)
    without = WithoutFarewell(inner)
    run_simulation(simulation(), without, FakeClock(start), None)
    assert inner.messages == [m for m in everything.messages if not is_farewell(m)]
    assert without.skipped == len(farewells[-1]) == len(PARK_DEVICES) - 1
    # The dead sensor's will stays in the stream (the broker publishes it when its connection dies).
    assert [m for m in inner.messages if m.will] == [m for m in everything.messages if m.will] != []
