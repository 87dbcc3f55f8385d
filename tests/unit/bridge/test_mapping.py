"""The mapping file is validated at start: every mistake is refused with file:line and what to fix."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bridge import MappingError
from bridge.mapping import load_mapping

GOOD_SOURCE = """time_zone: Asia/Karachi
sources:
  - name: pir
    topic: zigbee2mqtt/{device}
    site: park
    kind: occupancy
    labels: {room: "{device}"}
    fields:
      occupied: {from: occupancy}
"""


def refusal(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bridge.yaml"
    path.write_text(text)
    with pytest.raises(MappingError) as err:
        load_mapping(path)
    return str(err.value)


def test_a_good_mapping_loads(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(GOOD_SOURCE)
    assert load_mapping(path).subscriptions == ("zigbee2mqtt/+",)


@pytest.mark.parametrize(("change", "expected"), [
    (("occupied: {from: occupancy}", "occupied: {form: occupancy}"), ":9: sources.0.fields.occupied.form: unknown key"),
    (("occupied: {from", "occupy: {from"), ":3: sources.0: fields: 'occupy' is not a metric of occupancy"),
    (("kind: occupancy", "kind: boiler"), ":6: sources.0.kind: Input should be"),
    (("site: park", "site: Park Lane"), ":5: sources.0.site: String should match pattern"),
    (("topic: zigbee2mqtt/{device}", "topic: zigbee2mqtt/#"), "'#' is not allowed"),
    (('labels: {room: "{device}"}', 'labels: {room: "{name}"}'), "{name} is not a capture of topic"),
    (('    labels: {room: "{device}"}\n', ""), "occupancy readings need room"),
    (("time_zone: Asia/Karachi", "time_zone: Mars/Olympus"), ":1: time_zone: 'Mars/Olympus' is not an"),
    (("occupied: {from: occupancy}", "occupied: {from: occupancy, values: {ON: true}}"), "quote it"),
    (("occupied: {from: occupancy}", "occupied: {from: occupancy, unit: kW}"), "cannot become a unitless value"),
    (("sources:", "ignore: [tele/#/STATE]\nsources:"), ":2: ignore: ignore[0]: "),
    (("    site: park", "    gateway_availability: zigbee2mqtt/{hub}/state\n    site: park"),
     "gateway_availability: the hub's own topic names no device; write it out"),
])
def test_mistakes_are_refused_with_file_line_and_the_fix(tmp_path: Path, change: tuple[str, str],
                                                         expected: str) -> None:
    message = refusal(tmp_path, GOOD_SOURCE.replace(*change))
    assert expected in message
    assert message.startswith(str(tmp_path / "bridge.yaml") + ":")


RELAYS_SOURCE = """sources:
  - name: relays
    topic: tele/{device}/STATE
    site: park
    kind: plug
    fields:
      relay_on: {from: "POWER{channel}", values: {"ON": true, "OFF": false}}
      voltage_v: {from: "ENERGY.Voltage.{index}", shared: true}
    only_listed_devices: true
    devices:
      sonoff_dual: {channels: [plug-a, plug-b]}
"""


def test_a_multi_channel_device_loads_with_a_rule_per_channel(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(RELAYS_SOURCE)
    [source] = load_mapping(path).sources
    assert source.devices["sonoff_dual"].channels == ("plug-a", "plug-b")
    relay, voltage = (rule.at_channel(2) for rule in source.fields)
    assert relay.path == ("POWER2",) and voltage.path == ("ENERGY", "Voltage", "1")
    assert voltage.single_path == ("ENERGY", "Voltage")


@pytest.mark.parametrize(("changes", "expected"), [
    ([("{channels: [plug-a, plug-b]}", "{device: plug-a, channels: [plug-a, plug-b]}")],
     ":11: sources.0.devices.sonoff_dual: set device: for a one-channel device or channels:"),
    ([("[plug-a, plug-b]", "[plug-a, plug-a]")], "each channel needs its own device id"),
    ([("[plug-a, plug-b]", "[plug-a, Plug B]")], ":11: sources.0.devices.sonoff_dual.channels.1: String should match"),
    ([("[plug-a, plug-b]", "[]")], "channels: Tuple should have at least 1 item"),
    ([("    only_listed_devices: true\n", "")], "{channel}/{index} are the channels of devices listed with channels:"),
    ([("sonoff_dual: {channels: [plug-a, plug-b]}", "sonoff_dual: {channels: [plug-a, plug-b]}\n      pow: {}")],
     "give every device of this source its channels"),
    ([('"POWER{channel}"', '"POWER{relay}"')], "fields.relay_on.from: {relay} is not a placeholder of a path"),
    ([('"ENERGY.Voltage.{index}"', "ENERGY.Voltage")], "fields.voltage_v.shared: applies to a from: path with an"),
    ([('"POWER{channel}"', "POWER"), ('"ENERGY.Voltage.{index}", shared: true', "ENERGY.Voltage")],
     "devices.sonoff_dual.channels: no field of this source says where a channel's values are"),
])
def test_channel_mistakes_are_refused_with_the_fix(tmp_path: Path, changes: list[tuple[str, str]],
                                                   expected: str) -> None:
    text = RELAYS_SOURCE
    for change in changes:
        assert change[0] in text
        text = text.replace(*change)
    assert expected in refusal(tmp_path, text)


def test_an_offset_less_timestamp_needs_a_known_zone(tmp_path: Path) -> None:
    text = GOOD_SOURCE.replace("time_zone: Asia/Karachi\n", "")
    text = text.replace("    fields:", "    ts: {from: Time}\n    fields:")
    assert "no time zone is known for site 'park'" in refusal(tmp_path, text)
    path = tmp_path / "zoned.yaml"
    path.write_text(text)
    assert load_mapping(path, {"park": "Europe/Berlin"}).sources[0].zone.key == "Europe/Berlin"


def test_yaml_bombs_and_syntax_errors_are_refused_with_the_line(tmp_path: Path) -> None:
    assert ":3:" in refusal(tmp_path, "sources:\n  - name: x\n  bad: [\n")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    assert "refused" in refusal(tmp_path, bomb)


def test_facmon_bridge_try_shows_what_the_mappings_make_of_messages_without_a_broker(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from facmon.cli import main
    from tests.unit.bridge.support import MAPPINGS, payload

    monkeypatch.delenv("FACMON_CONFIG", raising=False)
    monkeypatch.setenv("FACMON_BRIDGE__MAPPINGS", str(MAPPINGS / "tasmota.yaml"))
    state, sensor = payload("tasmota", "state").decode(), payload("tasmota", "sensor_energy").decode()
    assert main(["bridge", "try", "--message", "tele/plug_router/STATE", state,
                 "--message", "tele/plug_router/SENSOR", sensor, "--message", "tele/plug_router/LWT", "Online"]) == 0
    out = capsys.readouterr().out
    assert out.count("gathered: its device's reading comes when the window closes") == 2
    assert "  → facmon/v1/park/plug/plug-router/status (retained) online\n" in out
    reading = out.split("windows closed:\n  → facmon/v1/park/plug/plug-router/reading ", 1)[1]
    assert orjson.loads(reading.splitlines()[0])["power_w"] == 9.0
    assert main(["bridge", "try", "--message", "tele/plug_router/STATE", state.replace('"ON"', '"TOGGLE"'),
                 "--message", "foo/bar", "x"]) == 1
    out = capsys.readouterr().out
    assert "  dropped bad_value by source tasmota-plug-state: relay_on: source value 'TOGGLE'" in out
    assert "  dropped unmapped: no source of the mapping matches this topic" in out
    assert main(["bridge", "try"]) == 2
    assert "give a message: --message TOPIC PAYLOAD" in capsys.readouterr().err


def test_facmon_bridge_check_prints_the_subscriptions_or_the_mistakes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from facmon.cli import main

    good = tmp_path / "good.yaml"
    good.write_text(GOOD_SOURCE)
    monkeypatch.delenv("FACMON_CONFIG", raising=False)
    monkeypatch.setenv("FACMON_BRIDGE__MAPPINGS", str(good))
    assert main(["bridge", "check"]) == 0
    assert "subscribes to: zigbee2mqtt/+" in capsys.readouterr().out
    relays = tmp_path / "relays.yaml"
    relays.write_text(RELAYS_SOURCE)
    monkeypatch.setenv("FACMON_BRIDGE__MAPPINGS", str(relays))
    assert main(["bridge", "check"]) == 0
    assert "  sonoff_dual: channels 1 → plug-a, 2 → plug-b\n" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD_SOURCE.replace("kind: occupancy", "kind: boiler"))
    monkeypatch.setenv("FACMON_BRIDGE__MAPPINGS", f"{good},{bad}")
    assert main(["bridge", "check"]) == 2
    assert f"{bad}:6: sources.0.kind:" in capsys.readouterr().err
