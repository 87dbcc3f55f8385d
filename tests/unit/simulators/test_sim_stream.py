"""The message stream: byte-identical for the same inputs, events at their scripted simulated times,
the contract on every reading, and malformed payloads rejected for the promised reasons."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

import pytest

from core.clock import FakeClock
from core.config import FacmonConfig
from core.contract import Channel, parse_topic
from core.decode import DecodeLimits, Reject, decode_message
from core.site import SiteFileError, iter_devices, load_site
from facmon.commands import simulate as simulate_command
from simulators.publish import MemoryPublisher
from simulators.run import run_simulation
from simulators.scenario import DEFAULT_SITE, load_scenario, named_scenarios, resolve_scenario
from simulators.world import Simulation

SITE = load_site(DEFAULT_SITE)
START = datetime(2026, 3, 2, 0, 0, tzinfo=SITE.tz).timestamp()


def capture(scenario: str, seed: int, duration_s: float | None = None) -> tuple[MemoryPublisher, object]:
    sim = Simulation(SITE, load_scenario(resolve_scenario(scenario)), seed, START, duration_s=duration_s)
    publisher = MemoryPublisher()
    summary = run_simulation(sim, publisher, FakeClock(START), speed=None)
    return publisher, summary


def test_same_inputs_give_the_same_bytes_and_another_seed_does_not() -> None:
    first, _ = capture("sensor-faults", seed=42, duration_s=6 * 3600)
    second, _ = capture("sensor-faults", seed=42, duration_s=6 * 3600)
    other, _ = capture("sensor-faults", seed=43, duration_s=6 * 3600)
    assert len(first.messages) > 10_000
    assert first.stream() == second.stream()
    assert first.stream() != other.stream()


def test_scripted_events_fire_at_their_local_times() -> None:
    _, summary = capture("isp-outage", seed=1)
    fired = {event: SITE.local_time(t).strftime("%H:%M") for t, event in summary.events}
    assert fired["uplink_outage uplink-ptcl starts"] == "15:10"
    assert fired["uplink_outage uplink-ptcl ends"] == "15:50"
    assert fired["uplink_outage uplink-jazz starts"] == "15:25"


def test_fiber_cut_shows_in_the_readings_only_during_the_outage() -> None:
    publisher, _ = capture("isp-outage", seed=1)
    cut = []
    for message in publisher.messages:
        topic = parse_topic(message.topic)
        if topic.channel is Channel.READING and topic.device.device == "uplink-ptcl":
            reading = decode_message(message.topic, message.payload, START + 86_400, DecodeLimits())
            if reading.metrics["loss_pct"] == 100 and reading.metrics["link_up"]:
                cut.append(SITE.local_time(reading.ts_ms / 1000).strftime("%H:%M"))
    assert cut[0] == "15:10" and cut[-1] == "15:49"


@pytest.mark.parametrize("scenario", sorted(named_scenarios()))
def test_every_reading_meets_the_contract_and_malformed_ones_fail_as_promised(scenario: str) -> None:
    publisher, summary = capture(scenario, seed=5, duration_s=3600 if scenario != "sensor-faults" else None)
    limits = DecodeLimits(max_future_s=900)  # sensor-faults has a device clock 10 min fast
    got: dict[str, int] = {}
    for message in publisher.messages:
        result = decode_message(message.topic, message.payload, START + 86_400 + 3600, limits)
        if message.expected_reject is None:
            assert not isinstance(result, Reject), (message, result)
        else:
            assert isinstance(result, Reject) and result.reason.value == message.expected_reject, (message, result)
            got[message.expected_reject] = got.get(message.expected_reject, 0) + 1
    assert got == dict(summary.malformed)
    if scenario == "bad-payloads":
        assert len(got) >= 15


def test_silent_sensor_announces_offline_and_stops() -> None:
    publisher, _ = capture("sensor-faults", seed=1)
    room3 = [m for m in publisher.messages if m.device is not None and m.device.device == "occ-room-3"]
    will = [m for m in room3 if m.will]
    assert len(will) == 1 and will[0].payload == b"offline" and will[0].retain
    after = room3[room3.index(will[0]) + 1:]
    assert after == []


def test_scenario_mistakes_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "oops.yaml"
    bad.write_text("name: oops\nduration: 1h\nevents:\n  - {at: '14:00', type: grid_outage}\n"
                   "  - at: '25:00'\n    type: grid_outage\n  - {at: '+1h', type: blackout}\n")
    with pytest.raises(SiteFileError, match=r"oops.yaml:7: events.2.type: 'blackout' is not one of"):
        load_scenario(bad)
    bad.write_text("name: oops\nduration: 1h\nevents:\n  - {at: '14:00', type: grid_outage}\n"
                   "  - at: '25:00'\n    type: grid_outage\n")
    with pytest.raises(SiteFileError, match=r"oops.yaml:5: events.1.at: .*'25:00' is neither"):
        load_scenario(bad)


def test_command_reports_a_scenario_naming_an_unknown_device(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "wrong-device.yaml"
    bad.write_text("name: wrong\nduration: 1h\nevents:\n\n  - {at: '+5m', type: sensor_silent, device: occ-room-9}\n")
    args = argparse.Namespace(site=None, scenario=str(bad), speed="max", start=None, duration=None, seed=None,
                              devices=0, dry_run=True, quiet=True)
    assert simulate_command.run(args, FacmonConfig(), clock=FakeClock(START)) == 2
    assert f"{bad}:5: events.0.device: site 'park' has no device 'occ-room-9'" in capsys.readouterr().err


def test_accelerated_runs_end_before_the_real_clock_and_live_runs_start_now() -> None:
    clock = FakeClock(START + 7 * 86_400)
    assert simulate_command.start_time(None, 60.0, 86_400, clock, SITE.tz) == clock.now() - 86_400
    assert simulate_command.start_time(None, None, 86_400, clock, SITE.tz) == clock.now() - 86_400
    assert simulate_command.start_time(None, 1.0, 86_400, clock, SITE.tz) == clock.now()


def test_speed_paces_against_the_clock() -> None:
    clock = FakeClock(START)
    sim = Simulation(SITE, load_scenario(resolve_scenario("load-shedding-day")), 1, START - 3600, duration_s=3600)
    run_simulation(sim, MemoryPublisher(keep=False), clock, speed=60.0)
    assert clock.monotonic() == pytest.approx(60.0)


def test_devices_scale_the_site() -> None:
    from simulators.world import scale_site

    big = scale_site(SITE, 1000)
    assert len(list(iter_devices(big))) == 1000 and big.plugs
    assert all(u.powered_by in {i.id for i in big.inverters} for u in big.uplinks)
    assert big.generators and all(g.feeds in {i.id for i in big.inverters} for g in big.generators)
    assert all(p.powered_by in {i.id for i in big.inverters} for p in big.plugs)
