"""The sources' own payloads through a real Mosquitto → bridge → collector → InfluxDB 1.6.7: stored
values, units and times are checked, and what breaks the contract is counted and never stored."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from core.clock import SystemClock
from core.config import FacmonConfig
from core.influxql import InfluxQLClient
from facmon.servers import InfluxDB, Mosquitto
from tests.integration.bridge.harness import MAPPINGS, bridge_env, running_bridge
from tests.integration.collector.harness import (
    Publisher,
    collector_env,
    config_from,
    count_points,
    running_collector,
    wait_for_points,
)
from tests.support import poll_until
from tests.unit.bridge.support import payload

CLOCK = SystemClock()


def _config(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, db: InfluxQLClient,
            mappings: list[str | Path]) -> FacmonConfig:
    env = collector_env(tmp_path, mosquitto.port, influxdb.url, db.database)
    env.update(bridge_env(tmp_path, mappings))
    return config_from(env)


def _quick_tasmota(tmp_path: Path) -> Path:
    """The shipped Tasmota mapping, gathering every second instead of every 30."""
    quick = tmp_path / "tasmota.yaml"
    quick.write_text((MAPPINGS / "tasmota.yaml").read_text().replace("interval_s: 30", "interval_s: 1"))
    return quick


def test_zigbee2mqtt_pirs_land_as_occupancy_with_room_battery_illuminance_and_status(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    config = _config(tmp_path, mosquitto, influxdb, influx_db, ["zigbee2mqtt"])
    with running_collector(config), running_bridge(config) as bridge:
        publisher = Publisher(mosquitto.port)
        before = CLOCK.now()
        publisher.publish("zigbee2mqtt/hall_pir/availability", payload("zigbee2mqtt", "availability_json_online"))
        publisher.publish("zigbee2mqtt/hall_pir", payload("zigbee2mqtt", "state"))
        publisher.publish("zigbee2mqtt/hall_pir", b'{"occupancy": true, "battery": 140}')  # out of range
        publisher.publish("zigbee2mqtt/hall_pir", b"{broken")
        publisher.publish("zigbee2mqtt/kitchen_bulb", b'{"state":"ON","brightness":254}')
        publisher.publish("zigbee2mqtt/office_pir", payload("zigbee2mqtt", "state_clear"))
        publisher.publish("zigbee2mqtt/office_pir/availability", payload("zigbee2mqtt", "availability_legacy_offline"))
        publisher.wait_all_acked()
        wait_for_points(influx_db, 2, measurement="occupancy")
        after = CLOCK.now()
        poll_until(lambda: sum(bridge.rejects.by_reason.values()) == 3, 10, what="3 drops counted")
        publisher.close()
    rows = influx_db.query("SELECT * FROM occupancy GROUP BY device")
    stored = {s.tags["device"]: s.rows()[0] for s in rows}
    assert {d: (r["room"], r["occupied"], r["sensor_battery_pct"], r["illuminance_lux"], r["seq"])
            for d, r in stored.items()} == {"pir-hall": ("Hall", True, 100.0, 49.0, 0),
                                           "pir-office": ("Office", False, 97.0, 12.0, 0)}
    for row in stored.values():  # Zigbee2MQTT sends no time: the bridge's receive time, in UTC milliseconds
        assert before * 1000 - 1 <= row["time"] <= after * 1000 + 1
    assert dict(bridge.rejects.by_reason) == {"out_of_range": 1, "bad_json": 1, "unknown_device": 1}
    assert bridge.forwarded == {"reading": 2, "status": 2}
    assert count_points(influx_db, "occupancy") == 2


def test_a_dead_zigbee2mqtt_makes_its_pirs_offline_though_their_retained_availability_says_online(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    """Zigbee2MQTT died before the bridge started: on the broker, retained, its last will says offline and
    its PIRs' availability still says online (a dead hub cannot update it). Then it comes back."""
    config = _config(tmp_path, mosquitto, influxdb, influx_db, ["zigbee2mqtt"])
    publisher = Publisher(mosquitto.port)
    for pir in ("hall_pir", "office_pir"):
        publisher.publish(f"zigbee2mqtt/{pir}/availability", payload("zigbee2mqtt", "availability_json_online"),
                          retain=True)
    publisher.publish("zigbee2mqtt/bridge/state", payload("zigbee2mqtt", "bridge_state_offline"), retain=True)
    publisher.wait_all_acked()
    try:
        with running_collector(config) as collector, running_bridge(config):
            def online() -> dict[str, bool | None]:
                return {s.device.device: s.online for s in collector.table.snapshot()
                        if s.device.device.startswith("pir-")}
            poll_until(lambda: online() == {"pir-hall": False, "pir-office": False}, 15,
                       what="both PIRs offline while Zigbee2MQTT is down")
            publisher.publish("zigbee2mqtt/bridge/state", payload("zigbee2mqtt", "bridge_state_online"), retain=True)
            publisher.publish("zigbee2mqtt/hall_pir/availability", payload("zigbee2mqtt", "availability_json_online"),
                              retain=True)
            publisher.wait_all_acked()
            poll_until(lambda: online() == {"pir-hall": True, "pir-office": False}, 15,
                       what="the hall PIR online once Zigbee2MQTT republished it")
    finally:
        publisher.close()  # the broker is this test's own: its retained messages go with it


def test_tasmota_local_time_is_stored_as_the_right_utc_instant_and_lwt_is_the_status(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    config = _config(tmp_path, mosquitto, influxdb, influx_db, ["tasmota"])
    # Tasmota stamps in local time without an offset: now in Karachi (UTC+5, no DST), to the second
    local_now = datetime.fromtimestamp(int(CLOCK.now()) - 60, UTC).replace(tzinfo=None) + (
        datetime(2026, 1, 1, 5) - datetime(2026, 1, 1))
    utc_ms = (int(CLOCK.now()) - 60) * 1000
    hours_off = local_now.replace(hour=(local_now.hour + 5) % 24)
    with running_collector(config), running_bridge(config) as bridge:
        publisher = Publisher(mosquitto.port)
        publisher.publish("tele/tasmota_5A9AE8/LWT", payload("tasmota", "lwt_online"))
        # the PIR's own STATE (Wi-Fi, uptime): the plug sources subscribe to STATE, and the mapping's
        # ignore: expects a sensor's: neither stored nor a drop, counted as ignored
        publisher.publish("tele/tasmota_5A9AE8/STATE", payload("tasmota", "state"))
        for time, switch in ((local_now, "ON"), (hours_off, "OFF")):
            message = f'{{"Time":"{time.isoformat()}","Switch1":"{switch}"}}'
            publisher.publish("tele/tasmota_5A9AE8/SENSOR", message.encode())
        publisher.publish("tele/tasmota_5A9AE8/SENSOR", b'{"Time":"2026-01-15T14:30:05","Switch1":"MAYBE"}')
        publisher.wait_all_acked()
        wait_for_points(influx_db, 1, measurement="occupancy")
        poll_until(lambda: sum(bridge.rejects.by_reason.values()) == 2, 10, what="2 drops counted")
        publisher.close()
    [row] = influx_db.query("SELECT * FROM occupancy")[0].rows()
    assert (row["time"], row["device"], row["room"], row["occupied"]) == (utc_ms, "pir-store", "Store", True)
    assert set(bridge.rejects.by_reason) == {"clock_off", "bad_value"}
    assert bridge.forwarded["status"] == 1
    assert bridge.translator.ignored == 1


def test_a_tasmota_plugs_state_and_energy_land_as_one_plug_reading_and_its_lwt_is_the_status(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    config = _config(tmp_path, mosquitto, influxdb, influx_db, [_quick_tasmota(tmp_path)])
    with running_collector(config), running_bridge(config) as bridge:
        publisher = Publisher(mosquitto.port)
        sent_at = CLOCK.now()
        publisher.publish("tele/plug_router/LWT", payload("tasmota", "lwt_online"))
        publisher.publish("tele/plug_router/STATE", payload("tasmota", "state"))
        publisher.publish("tele/plug_router/SENSOR", payload("tasmota", "sensor_energy"))
        publisher.wait_all_acked()
        wait_for_points(influx_db, 1, measurement="plug", timeout_s=20)
        publisher.publish("tele/plug_router/LWT", payload("tasmota", "lwt_offline"))
        publisher.wait_all_acked()
        poll_until(lambda: bridge.forwarded["status"] == 2, 10, what="the plug's last will forwarded")
        publisher.close()
    [row] = influx_db.query("SELECT * FROM plug")[0].rows()
    assert sent_at * 1000 - 1 <= row.pop("time") <= CLOCK.now() * 1000  # gathered: stamped when received
    assert row == {"device": "plug-router", "site": "park", "seq": 0, "relay_on": True, "power_w": 9.0,
                   "energy_kwh": 1.956, "voltage_v": 231.0, "wifi_signal_dbm": -58.0, "uptime_s": 3723}
    assert bridge.forwarded == {"reading": 1, "status": 2} and not bridge.rejects.by_reason


def test_a_two_channel_tasmota_lands_as_a_plug_per_channel_with_the_devices_lwt_as_both_statuses(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    config = _config(tmp_path, mosquitto, influxdb, influx_db, [_quick_tasmota(tmp_path)])
    with running_collector(config) as collector, running_bridge(config) as bridge:
        publisher = Publisher(mosquitto.port)
        publisher.publish("tele/shelly25_lab/LWT", payload("tasmota", "lwt_online"))
        publisher.publish("tele/shelly25_lab/STATE", payload("tasmota", "state_two_relays"))
        publisher.publish("tele/shelly25_lab/SENSOR", payload("tasmota", "sensor_energy_two_totals"))
        publisher.wait_all_acked()
        wait_for_points(influx_db, 2, measurement="plug", timeout_s=20)

        def statuses() -> dict[str, bool | None]:
            return {s.device.device: s.online for s in collector.table.snapshot()
                    if s.device.device.startswith("plug-lab")}
        poll_until(lambda: statuses() == {"plug-lab-ac": True, "plug-lab-lights": True}, 10,
                   what="both channels online from the one LWT")
        publisher.close()
    rows = {s.tags["device"]: s.rows()[0] for s in influx_db.query("SELECT * FROM plug GROUP BY device")}
    for row in rows.values():
        del row["time"]
    assert rows == {
        "plug-lab-ac": {"site": "park", "seq": 0, "relay_on": True, "power_w": 23.63, "energy_kwh": 2.104,
                        "voltage_v": 229.3, "wifi_signal_dbm": -65.0, "uptime_s": 3723},
        "plug-lab-lights": {"site": "park", "seq": 0, "relay_on": False, "power_w": 0.0, "energy_kwh": 1.158,
                            "voltage_v": 229.3, "wifi_signal_dbm": -65.0, "uptime_s": 3723}}
    assert bridge.forwarded == {"reading": 2, "status": 2} and not bridge.rejects.by_reason


def test_a_tasmota_energy_meter_and_controller_land_as_one_generator_reading(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    config = _config(tmp_path, mosquitto, influxdb, influx_db, [_quick_tasmota(tmp_path)])
    local_now = datetime.fromtimestamp(int(CLOCK.now()) + 5 * 3600, UTC).replace(tzinfo=None).isoformat()
    with running_collector(config), running_bridge(config) as bridge:
        publisher = Publisher(mosquitto.port)
        sent_at = CLOCK.now()
        publisher.publish("tele/genset_pow/LWT", payload("tasmota", "lwt_online"))
        energy = payload("tasmota", "sensor_energy").replace(b'"Power":9', b'"Power":4180')
        publisher.publish("tele/genset_pow/SENSOR", energy.replace(b"2026-01-15T14:30:05", local_now.encode()))
        publisher.publish("tele/genset_ctl/SENSOR", payload("tasmota", "sensor_analog_counter"))
        publisher.wait_all_acked()
        wait_for_points(influx_db, 1, measurement="generator", timeout_s=20)
        publisher.close()
    [row] = influx_db.query("SELECT * FROM generator")[0].rows()
    assert sent_at * 1000 - 1 <= row.pop("time") <= CLOCK.now() * 1000
    assert row == {"device": "gen-main", "site": "park", "seq": 0, "running": True, "state": "running",
                   "output_w": 4180.0, "fuel_pct": 50.049024, "engine_hours": 1234.5}
    assert bridge.forwarded == {"reading": 1, "status": 1}


def test_solar_assistant_values_land_as_one_inverter_reading_with_contract_units(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    quick = tmp_path / "solar_assistant.yaml"  # the shipped mapping, gathering every second instead of every 10
    quick.write_text((MAPPINGS / "solar_assistant.yaml").read_text().replace("interval_s: 10", "interval_s: 1"))
    config = _config(tmp_path, mosquitto, influxdb, influx_db, [quick])
    with running_collector(config), running_bridge(config) as bridge:
        publisher = Publisher(mosquitto.port)
        sent_at = CLOCK.now()
        for name, value in PAYLOAD_ITEMS:
            publisher.publish(f"solar_assistant/{name}/state", value.encode())
        publisher.wait_all_acked()
        wait_for_points(influx_db, 1, timeout_s=30)  # once the device's window has closed
        publisher.close()
    [row] = influx_db.query("SELECT * FROM inverter")[0].rows()
    assert sent_at * 1000 - 1 <= row["time"] <= CLOCK.now() * 1000
    del row["time"]
    assert row == {"device": "inv-main", "site": "park", "seq": 0, "grid_v": 229.8, "grid_hz": 49.9, "grid_ok": True,
                   "mode": "battery", "battery_soc_pct": 87.0, "battery_v": 52.4, "battery_a": 21.3,
                   "battery_temp_c": 27.5, "pv_w": 1843.0, "load_w": 612.0, "inverter_temp_c": 41.0}
    assert dict(bridge.rejects.by_reason) == {"unknown_value": 2}  # ac_output_voltage, battery_power: not mapped


PAYLOAD_ITEMS = sorted((name, value.decode()) for name, value in
                       ((n, payload("solar_assistant", n)) for n in (
                           "inverter_1/grid_voltage", "inverter_1/grid_frequency", "inverter_1/pv_power",
                           "inverter_1/load_power", "inverter_1/battery_voltage", "inverter_1/battery_current",
                           "inverter_1/temperature", "inverter_1/device_mode", "inverter_1/ac_output_voltage",
                           "total/battery_state_of_charge", "total/battery_temperature", "total/battery_power")))
