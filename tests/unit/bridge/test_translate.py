"""The bridge's pure core: the sources' own payloads through the shipped mappings → contract
messages the collector accepts, and bad input → a reason, never a reading stored wrongly."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from itertools import count

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.mapping import load_mapping
from bridge.translate import Dropped, Forward, Translator, with_seq
from core.clock import FakeClock
from core.contract import METRICS, SEQ_MAX, DeviceKey, Kind, Reading, encode_reading
from core.decode import DecodeLimits, decode_message
from tests.unit.bridge.support import payload, shipped

LIMITS = DecodeLimits()
KARACHI_OFFSET_S = 5 * 3600


def translator(name: str) -> Translator:
    counters: dict[DeviceKey, count] = {}
    return Translator(shipped(name), lambda d: next(counters.setdefault(d, count())), LIMITS)


def body(outcome: Forward | Dropped) -> dict:
    assert isinstance(outcome, Forward), outcome
    return orjson.loads(outcome.payload)


def test_zigbee2mqtt_pir_becomes_an_occupancy_reading_with_its_room_battery_and_light() -> None:
    t = translator("zigbee2mqtt")
    now = FakeClock().now()
    [first] = t.handle("zigbee2mqtt/hall_pir", payload("zigbee2mqtt", "state"), now)
    [second] = t.handle("zigbee2mqtt/hall_pir", payload("zigbee2mqtt", "state_clear"), now + 1)
    assert first.topic == "facmon/v1/park/occupancy/pir-hall/reading"
    assert body(first) == {"ts": "2026-01-01T00:00:00.000Z", "seq": 0, "room": "Hall", "occupied": True,
                           "sensor_battery_pct": 100.0, "illuminance_lux": 49.0}
    assert body(second) == {"ts": "2026-01-01T00:00:01.000Z", "seq": 1, "room": "Hall", "occupied": False,
                            "sensor_battery_pct": 97.0, "illuminance_lux": 12.0}
    without = t.handle("zigbee2mqtt/hall_pir", b'{"battery":96,"occupancy":false}', now + 2)[0]
    assert "illuminance_lux" not in body(without)  # a PIR without a light sensor: the metric is optional
    # What the bridge forwards is what the collector accepts
    assert decode_message(first.topic, first.payload, now, LIMITS).metrics["occupied"] is True


@pytest.mark.parametrize("name", ["availability_json_online", "availability_legacy_online"])
def test_zigbee2mqtt_availability_in_both_forms_is_a_retained_status(name: str) -> None:
    [out] = translator("zigbee2mqtt").handle("zigbee2mqtt/office_pir/availability", payload("zigbee2mqtt", name), 0)
    assert (out.topic, out.payload, out.retain) == ("facmon/v1/park/occupancy/pir-office/status", b"online", True)
    [off] = translator("zigbee2mqtt").handle("zigbee2mqtt/office_pir/availability",
                                             payload("zigbee2mqtt", name.replace("online", "offline")), 0)
    assert off.payload == b"offline"


def statuses(outcomes: list) -> dict[str, bytes]:
    assert all(isinstance(out, Forward) and out.retain for out in outcomes), outcomes
    return {out.device.device: out.payload for out in outcomes}


def test_zigbee2mqtts_last_will_makes_every_pir_offline_and_none_online_until_it_is_back() -> None:
    t = translator("zigbee2mqtt")
    t.handle("zigbee2mqtt/hall_pir/availability", payload("zigbee2mqtt", "availability_json_online"), 0)
    down = t.handle("zigbee2mqtt/bridge/state", payload("zigbee2mqtt", "bridge_state_offline"), 1)
    assert statuses(down) == {"pir-hall": b"offline", "pir-office": b"offline"}  # every listed PIR
    # a device's own (retained) availability arriving while Zigbee2MQTT is down cannot make it online
    late = t.handle("zigbee2mqtt/office_pir/availability", payload("zigbee2mqtt", "availability_json_online"), 2)
    assert statuses(late) == {"pir-office": b"offline"}
    [garbled] = t.handle("zigbee2mqtt/office_pir/availability", b"maybe", 2)
    assert isinstance(garbled, Dropped) and garbled.reason == "bad_status"  # judged even while the hub is down
    # back: the PIRs say it themselves (Zigbee2MQTT republishes their availability when it starts)
    assert t.handle("zigbee2mqtt/bridge/state", payload("zigbee2mqtt", "bridge_state_online"), 3) == []
    back = t.handle("zigbee2mqtt/office_pir/availability", payload("zigbee2mqtt", "availability_json_online"), 4)
    assert statuses(back) == {"pir-office": b"online"}
    [odd] = t.handle("zigbee2mqtt/bridge/state", b'{"state":"restarting"}', 5)
    assert isinstance(odd, Dropped) and odd.reason == "bad_status"


def test_a_hub_without_per_device_availability_brings_back_every_device_it_has_spoken_for(tmp_path) -> None:
    mapping = tmp_path / "hub.yaml"
    mapping.write_text("""sources:
  - name: hub-pir
    topic: hub/{device}
    gateway_availability: hub/status
    site: park
    kind: occupancy
    labels: {room: "{device}"}
    fields: {occupied: {from: occupancy}}
""")
    counters: dict[DeviceKey, count] = {}
    t = Translator(load_mapping(mapping), lambda d: next(counters.setdefault(d, count())), LIMITS)
    assert "hub/status" in load_mapping(mapping).subscriptions
    assert t.handle("hub/status", b"offline", 0) == []  # nothing heard yet, nothing listed
    now = FakeClock().now()
    for room in ("lab", "store"):
        [reading] = t.handle(f"hub/{room}", b'{"occupancy": true}', now)
        assert isinstance(reading, Forward)
    assert statuses(t.handle("hub/status", b"Offline", now)) == {"lab": b"offline", "store": b"offline"}
    assert statuses(t.handle("hub/status", b"Online", now)) == {"lab": b"online", "store": b"online"}


def test_tasmota_local_time_is_read_in_the_sites_zone_not_as_utc() -> None:
    t = translator("tasmota")
    # 14:30:05 in Karachi (UTC+5) is 09:30:05 UTC
    received = datetime(2026, 1, 15, 9, 30, 6, tzinfo=UTC).timestamp()
    [out] = t.handle("tele/tasmota_5A9AE8/SENSOR", payload("tasmota", "sensor_pir_on"), received)
    assert body(out) == {"ts": "2026-01-15T09:30:05.000Z", "seq": 0, "room": "Store", "occupied": True}
    [lwt] = t.handle("tele/tasmota_5A9AE8/LWT", payload("tasmota", "lwt_offline"), received)
    assert (lwt.topic, lwt.payload, lwt.retain) == ("facmon/v1/park/occupancy/pir-store/status", b"offline", True)


def test_a_tasmota_power_meter_and_controller_gather_into_one_generator_reading() -> None:
    t = translator("tasmota")
    clock = FakeClock(datetime(2026, 1, 15, 9, 30, 6, tzinfo=UTC).timestamp())
    assert t.handle("tele/genset_pow/SENSOR", payload("tasmota", "sensor_energy"), clock.now()) == []
    clock.advance(2)
    assert t.handle("tele/genset_ctl/SENSOR", payload("tasmota", "sensor_analog_counter"), clock.now()) == []
    clock.advance(30)
    [out] = t.tick(clock.now())
    assert out.topic == "facmon/v1/park/generator/gen-main/reading"
    assert body(out) == {"ts": "2026-01-15T09:30:08.000Z", "seq": 0, "running": False, "state": "off",
                         "output_w": 9.0, "fuel_pct": 50.049024, "engine_hours": 1234.5}
    # the meter alone lacks fuel and hours: refused as incomplete, naming them
    t.handle("tele/genset_pow/SENSOR", b'{"Time":"2026-01-15T14:31:00","ENERGY":{"Power":4200}}', clock.now())
    clock.advance(31)
    [alone] = t.tick(clock.now())
    assert isinstance(alone, Dropped) and alone.reason == "incomplete" and "fuel_pct, engine_hours" in alone.detail


def test_a_tasmota_plugs_state_and_energy_gather_into_one_plug_reading_and_sensors_state_is_ignored() -> None:
    t = translator("tasmota")
    clock = FakeClock(datetime(2026, 1, 15, 9, 30, 5, tzinfo=UTC).timestamp())
    assert t.handle("tele/plug_router/STATE", payload("tasmota", "state"), clock.now()) == []
    clock.advance(1)
    assert t.handle("tele/plug_router/SENSOR", payload("tasmota", "sensor_energy"), clock.now()) == []
    # the PIR's own STATE: no source takes it, the mapping expects it (ignore:): not a drop
    assert t.handle("tele/tasmota_5A9AE8/STATE", payload("tasmota", "state"), clock.now()) == []
    assert t.ignored == 1
    clock.advance(30)
    [out] = t.tick(clock.now())
    assert out.topic == "facmon/v1/park/plug/plug-router/reading"
    assert body(out) == {"ts": "2026-01-15T09:30:06.000Z", "seq": 0, "relay_on": True, "wifi_signal_dbm": -58.0,
                         "uptime_s": 3723, "power_w": 9.0, "energy_kwh": 1.956, "voltage_v": 231.0}
    # a relay switched off, a plug that does not meter: STATE alone is a reading
    off = payload("tasmota", "state").replace(b'"POWER":"ON"', b'"POWER":"OFF"')
    t.handle("tele/plug_router/STATE", off, clock.now())
    clock.advance(31)
    [alone] = t.tick(clock.now())
    assert body(alone)["relay_on"] is False and "power_w" not in body(alone)
    # the energy block alone lacks the relay: refused as incomplete, naming it
    t.handle("tele/plug_router/SENSOR", payload("tasmota", "sensor_energy"), clock.now())
    clock.advance(31)
    [partial] = t.tick(clock.now())
    assert isinstance(partial, Dropped) and partial.reason == "incomplete" and "relay_on" in partial.detail
    # a relay state the mapping does not know is refused, not guessed
    [odd] = t.handle("tele/plug_router/STATE", payload("tasmota", "state").replace(b'"ON"', b'"TOGGLE"'), clock.now())
    assert isinstance(odd, Dropped) and odd.reason == "bad_value"


def test_a_two_channel_tasmota_is_a_plug_per_channel_with_its_own_relay_power_and_energy() -> None:
    t = translator("tasmota")
    clock = FakeClock(datetime(2026, 1, 15, 9, 30, 5, tzinfo=UTC).timestamp())
    assert t.handle("tele/shelly25_lab/STATE", payload("tasmota", "state_two_relays"), clock.now()) == []
    assert t.handle("tele/shelly25_lab/SENSOR", payload("tasmota", "sensor_energy_two_channels"), clock.now()) == []
    clock.advance(31)
    ac, lights = sorted(t.tick(clock.now()), key=lambda out: out.topic)
    assert ac.topic == "facmon/v1/park/plug/plug-lab-ac/reading"
    assert lights.topic == "facmon/v1/park/plug/plug-lab-lights/reading"
    common = {"ts": "2026-01-15T09:30:05.000Z", "seq": 0, "wifi_signal_dbm": -65.0, "uptime_s": 3723,
              "voltage_v": 229.3}  # one Voltage for the device: every channel's (shared)
    # one Total summed over both channels is neither channel's: no energy_kwh rather than the sum twice
    assert body(ac) == common | {"relay_on": True, "power_w": 23.63}
    assert body(lights) == common | {"relay_on": False, "power_w": 0.0}
    t.handle("tele/shelly25_lab/STATE", payload("tasmota", "state_two_relays"), clock.now())
    t.handle("tele/shelly25_lab/SENSOR", payload("tasmota", "sensor_energy_two_totals"), clock.now())
    clock.advance(31)
    ac, lights = sorted(t.tick(clock.now()), key=lambda out: out.topic)
    assert (body(ac)["energy_kwh"], body(lights)["energy_kwh"]) == (2.104, 1.158)
    assert (body(ac)["voltage_v"], body(ac)["seq"]) == (229.3, 1)
    # the device's last will is both channels' status
    statuses = t.handle("tele/shelly25_lab/LWT", payload("tasmota", "lwt_offline"), clock.now())
    assert sorted((s.topic, s.payload, s.retain) for s in statuses) == [
        ("facmon/v1/park/plug/plug-lab-ac/status", b"offline", True),
        ("facmon/v1/park/plug/plug-lab-lights/status", b"offline", True)]
    # a channel whose relay state is garbage is refused alone, naming it; the other channel goes on
    odd = payload("tasmota", "state_two_relays").replace(b'"POWER2":"OFF"', b'"POWER2":"BLINK"')
    [dropped] = t.handle("tele/shelly25_lab/STATE", odd, clock.now())
    assert isinstance(dropped, Dropped) and dropped.reason == "bad_value"
    assert dropped.detail.startswith("park/plug/plug-lab-lights (channel 2): relay_on: source value 'BLINK'")
    clock.advance(31)
    [only_ac] = t.tick(clock.now())
    assert only_ac.topic == ac.topic and body(only_ac)["relay_on"] is True


def test_a_tasmota_clock_hours_off_is_refused_as_clock_off() -> None:
    received = datetime(2026, 1, 15, 14, 30, 6, tzinfo=UTC).timestamp()  # the device read as UTC: 5 h ahead
    [out] = translator("tasmota").handle("tele/tasmota_5A9AE8/SENSOR", payload("tasmota", "sensor_pir_on"), received)
    assert isinstance(out, Dropped) and out.reason == "clock_off"
    assert "5.00 h behind" in out.detail


def test_solar_assistant_values_are_gathered_into_one_inverter_reading_per_interval() -> None:
    t = translator("solar_assistant")
    clock = FakeClock()
    for name in ("inverter_1/grid_voltage", "inverter_1/grid_frequency", "inverter_1/pv_power",
                 "inverter_1/load_power", "inverter_1/battery_voltage", "inverter_1/battery_current",
                 "inverter_1/temperature", "inverter_1/device_mode", "total/battery_state_of_charge",
                 "total/battery_temperature"):
        assert t.handle(f"solar_assistant/{name}/state", payload("solar_assistant", name), clock.now()) == []
        clock.advance(0.5)
    [unused] = t.handle("solar_assistant/inverter_1/ac_output_voltage/state",
                        payload("solar_assistant", "inverter_1/ac_output_voltage"), clock.now())
    assert isinstance(unused, Dropped) and unused.reason == "unknown_value"
    assert t.tick(clock.now()) == []  # the window is still open
    clock.advance(6)
    [out] = t.tick(clock.now())
    assert out.topic == "facmon/v1/park/inverter/inv-main/reading"
    assert body(out) == {"ts": "2026-01-01T00:00:04.500Z", "seq": 0, "grid_v": 229.8, "grid_hz": 49.9,
                         "grid_ok": True, "mode": "battery", "battery_soc_pct": 87.0, "battery_v": 52.4,
                         "battery_a": 21.3, "battery_temp_c": 27.5, "pv_w": 1843.0, "load_w": 612.0,
                         "inverter_temp_c": 41.0}
    assert t.tick(clock.now() + 60) == []


def test_a_solar_assistant_window_without_a_required_metric_is_refused_as_incomplete() -> None:
    t = translator("solar_assistant")
    t.handle("solar_assistant/inverter_1/pv_power/state", b"100", 0)
    [out] = t.tick(11)
    assert isinstance(out, Dropped) and out.reason == "incomplete" and "grid_v" in out.detail


@pytest.mark.parametrize(("topic", "raw", "reason"), [
    ("zigbee2mqtt/hall_pir", b"{not json", "bad_json"),
    ("zigbee2mqtt/hall_pir", b"[1, 2]", "not_an_object"),
    ("zigbee2mqtt/hall_pir", b'{"battery": 90}', "missing_field"),
    ("zigbee2mqtt/hall_pir", b'{"occupancy": "yes"}', "wrong_type"),
    ("zigbee2mqtt/hall_pir", b'{"occupancy": true, "battery": 140}', "out_of_range"),
    ("zigbee2mqtt/kitchen_bulb", b'{"state": "ON"}', "unknown_device"),
    ("zigbee2mqtt/kitchen_bulb/availability", b'{"state": "online"}', "unknown_device"),
    ("zigbee2mqtt/hall_pir/availability", b'{"state": "maybe"}', "bad_status"),
    ("zigbee2mqtt/a/b/c", b"{}", "unmapped"),
    ("homeassistant/sensor/x/config", b"{}", "unmapped"),
])
def test_bad_input_is_dropped_with_its_reason(topic: str, raw: bytes, reason: str) -> None:
    [out] = translator("zigbee2mqtt").handle(topic, raw, 0)
    assert isinstance(out, Dropped), out
    assert out.reason == reason, out.detail


def test_refused_readings_take_no_seq_so_they_leave_no_gap() -> None:
    t = translator("zigbee2mqtt")
    t.handle("zigbee2mqtt/hall_pir", b'{"occupancy": true, "battery": 140}', 0)
    [out] = t.handle("zigbee2mqtt/hall_pir", b'{"occupancy": true}', 1)
    assert body(out)["seq"] == 0


def test_a_sensor_reporting_in_another_unit_is_converted_or_refused(tmp_path) -> None:
    from bridge.mapping import load_mapping

    mapping = tmp_path / "m.yaml"
    mapping.write_text("""
time_zone: UTC
sources:
  - name: inv
    topic: x/{device}
    site: park
    kind: inverter
    fields:
      grid_v: {from: v}
      grid_ok: {from: v, above: 180}
      mode: {from: mode}
      battery_soc_pct: {from: soc, unit: fraction}
      battery_v: {from: bv, unit: mV}
      battery_a: {from: ba, scale: -0.1}
      pv_w: {from: pv, unit: kW}
      load_w: {from: load}
      battery_temp_c: {from: temp, unit_from: unit}
""")
    t = Translator(load_mapping(mapping), lambda d: 0, LIMITS)
    message = {"v": 231, "mode": "grid", "soc": 0.5, "bv": 52100, "ba": 123, "pv": 1.5, "load": 300,
               "temp": 77, "unit": "°F"}
    [out] = t.handle("x/inv-1", orjson.dumps(message), 0)
    got = body(out)
    assert (got["battery_soc_pct"], got["battery_v"], got["battery_a"], got["pv_w"], got["battery_temp_c"],
            got["grid_ok"]) == (50.0, 52.1, -12.3, 1500.0, 25.0, True)
    [wrong] = t.handle("x/inv-1", orjson.dumps({**message, "unit": "furlongs"}), 0)
    assert isinstance(wrong, Dropped) and wrong.reason == "wrong_unit"


def test_a_topic_name_that_is_no_contract_id_is_refused_with_the_fix() -> None:
    mapping = shipped("zigbee2mqtt")
    open_to_all = replace(mapping, sources=tuple(replace(s, only_listed_devices=False) for s in mapping.sources))
    t = Translator(open_to_all, lambda d: 0, LIMITS)
    [out] = t.handle("zigbee2mqtt/Living Room PIR", b'{"occupancy": true}', 0)
    assert isinstance(out, Dropped) and out.reason == "bad_device_id" and "devices:" in out.detail
    [ok] = t.handle("zigbee2mqtt/Garage_PIR", b'{"occupancy": true}', 0)
    assert ok.topic == "facmon/v1/park/occupancy/garage_pir/reading" and body(ok)["room"] == "Garage_PIR"
    assert DeviceKey("park", Kind.OCCUPANCY, "garage_pir") == ok.device


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(list(Kind)), seq=st.integers(0, SEQ_MAX), ts_ms=st.integers(0, 4_102_444_800_000),
       picks=st.lists(st.integers(0, 40), max_size=12), values=st.lists(
           st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False,
                                                                                     allow_infinity=False),
                     st.text(max_size=12)), min_size=12, max_size=12))
def test_with_seq_gives_the_bytes_of_encoding_with_that_seq(kind: Kind, seq: int, ts_ms: int, picks: list[int],
                                                             values: list[object]) -> None:
    # The translator encodes a reading once (seq 0, to judge it) and splices the real seq in.
    names = [metric.name for metric in METRICS[kind]]
    metrics = {names[i % len(names)]: values[n] for n, i in enumerate(picks)}  # any subset, any order
    device = DeviceKey("park", kind, "dev-1")
    assert with_seq(encode_reading(Reading(device, ts_ms, 0, metrics)), seq) == \
        encode_reading(Reading(device, ts_ms, seq, metrics))
