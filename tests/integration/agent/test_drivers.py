"""The agent's drivers against devices that answer as real ones do: pymodbus's own server loaded with a
register map, a stand-in Solarman V5 logger on loopback, a pseudo-terminal answering PI30. A device that
times out, answers garbage or disappears gives a clear error, an offline status, and no crash."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pymodbus.constants import ExcCodes

from agent import DeviceError, DeviceRefused
from agent.modbus import ModbusSource
from agent.pi30 import Pi30Port
from agent.poll import Pi30Driver, PolledDevice, Poller, RegisterDriver
from agent.registers import BlockSpec, load_register_map
from agent.solarman import SolarmanSource
from core.clock import SystemClock
from core.contract import STATUS_OFFLINE, STATUS_ONLINE, DeviceKey, Kind
from tests.fixtures.sunspec import OTHER_CHAIN, SUNSPEC_METRICS, USUAL_CHAIN, sunspec_registers
from tests.integration.agent.devices import (
    ModbusDevice,
    ModbusRtuStandIn,
    Pi30HidStandIn,
    Pi30StandIn,
    ResettingGateway,
    SolarmanStandIn,
)

CLOCK = SystemClock()
INV = DeviceKey("park", Kind.INVERTER, "inv-main")
DEYE = {59: 2, 79: 4998, 91: 1412, 103: 0, 104: 0, 150: 2301, 169: 512, 178: 873, 182: 1255, 183: 5234, 184: 76,
        186: 1200, 187: 640, 191: 0x10000 - 1050, 194: 1}
"""A Deye hybrid on the grid, importing 512 W, charging at 10.5 A (Deye counts that as -1050)."""
DEYE_METRICS = {"grid_v": 230.1, "grid_hz": 49.98, "grid_ok": True, "battery_soc_pct": 76.0, "battery_v": 52.34,
                "battery_a": 10.5, "battery_temp_c": 25.5, "pv_w": 1840.0, "load_w": 873.0, "inverter_temp_c": 41.2,
                "fault_code": None, "mode": "grid"}


@pytest.fixture
def modbus_device() -> Iterator[ModbusDevice]:
    device = ModbusDevice(DEYE).start()
    yield device
    device.stop()


def poller_for(driver) -> tuple[Poller, PolledDevice]:  # type: ignore[no-untyped-def]
    polled = PolledDevice(INV, driver)
    return Poller([polled], CLOCK), polled


def test_modbus_tcp_deye_map_gives_the_contract_reading_and_offline_when_the_device_goes(
        modbus_device: ModbusDevice) -> None:
    poller, polled = poller_for(RegisterDriver(load_register_map("deye_hybrid"),
                                               ModbusSource.tcp("127.0.0.1", modbus_device.port, 1, 1.0)))
    first = poller.poll(polled)
    assert first.status == STATUS_ONLINE and first.reading is not None
    assert dict(first.reading.metrics) == DEYE_METRICS and first.reading.seq == 0
    modbus_device.set({184: 6553})  # garbage: a state of charge of 6553 %
    garbage = poller.poll(polled)
    assert (garbage.reading, garbage.status) == (None, STATUS_OFFLINE)
    assert "out_of_range" in polled.last_error and "battery_soc_pct" in polled.last_error
    modbus_device.set({184: 80, 169: 0, 194: 0, 150: 0})  # grid gone, PV 1840 W covers the 873 W load
    back = poller.poll(polled)
    assert back.status == STATUS_ONLINE and back.reading.metrics["mode"] == "solar" and back.reading.seq == 1
    modbus_device.stop()  # the device disappears
    gone = poller.poll(polled)
    assert (gone.reading, gone.status) == (None, STATUS_OFFLINE)
    assert f"modbus tcp 127.0.0.1:{modbus_device.port} unit 1" in polled.last_error
    assert poller.poll(polled).status is None  # still offline: published once, not every round
    poller.close()


def test_a_gateway_that_resets_the_connection_mid_request_is_offline_not_a_crash() -> None:
    # CI once lost the whole agent to this: pymodbus let the ConnectionResetError through.
    gateway = ResettingGateway().start()
    poller, polled = poller_for(RegisterDriver(load_register_map("deye_hybrid"),
                                               ModbusSource.tcp("127.0.0.1", gateway.port, 1, 1.0)))
    try:
        reset = poller.poll(polled)
        assert (reset.reading, reset.status) == (None, STATUS_OFFLINE) and gateway.resets == 1
        assert "ConnectionResetError" in polled.last_error and f"127.0.0.1:{gateway.port}" in polled.last_error
        gateway.stop()
        device = ModbusDevice(DEYE, port=gateway.port).start()  # the gateway is back, answering
        try:
            back = poller.poll(polled)
            assert back.status == STATUS_ONLINE and dict(back.reading.metrics) == DEYE_METRICS
        finally:
            device.stop()
    finally:
        gateway.stop()
        poller.close()


GROWATT_SPF = {0: 9, 17: 5234, 18: 76, 20: 2314, 21: 5001, 4: 12000, 6: 6405, 10: 8730, 25: 412, 37: 200,
               77: 0xFFFF, 78: 0x10000 - 5234}
"""A Growatt SPF on the grid (231.4 V) in "PV charge and bypass" (status 9): PV 1200 + 640.5 W, load 873 W,
the battery taking 523.4 W (the SPF counts that as -5234 tenths of a watt) at 52.34 V."""


def test_modbus_growatt_spf_map_reads_input_registers_and_derives_the_battery_current() -> None:
    device = ModbusDevice(GROWATT_SPF).start()
    poller, polled = poller_for(RegisterDriver(load_register_map("growatt_spf"),
                                               ModbusSource.tcp("127.0.0.1", device.port, 1, 1.0)))
    try:
        first = poller.poll(polled)
        assert first.status == STATUS_ONLINE and first.reading is not None
        assert dict(first.reading.metrics) == {
            "grid_v": 231.4, "grid_hz": 50.01, "grid_ok": True, "battery_soc_pct": 76.0, "battery_v": 52.34,
            "battery_a": 10.0, "pv_w": 1840.5, "load_w": 873.0, "inverter_temp_c": 41.2, "fault_code": None,
            "mode": "solar"}
        assert device.function_codes == {4}  # input registers, as the SPF serves them
        # the grid gone, the battery carrying the load: 873 W out of it, counted discharging
        device.set({20: 0, 21: 0, 0: 2, 4: 0, 6: 0, 77: 0, 78: 8730})
        night = poller.poll(polled).reading
        assert night is not None
        assert (night.metrics["grid_ok"], night.metrics["mode"], night.metrics["battery_a"]) == (
            False, "battery", pytest.approx(-873.0 / 52.34, abs=1e-6))
        device.set({17: 0})  # a battery at 0 V: the current cannot be derived; garbage, not a reading
        garbage = poller.poll(polled)
        assert (garbage.reading, garbage.status) == (None, STATUS_OFFLINE)
        assert "battery_a: register 17 is 0" in polled.last_error
    finally:
        poller.close()
        device.stop()


def sunspec_poller(device: ModbusDevice) -> tuple[Poller, PolledDevice]:
    return poller_for(RegisterDriver(load_register_map("sunspec_hybrid"),
                                     ModbusSource.tcp("127.0.0.1", device.port, 1, 1.0)))


def test_sunspec_map_refuses_a_device_that_is_not_sunspec(modbus_device: ModbusDevice) -> None:
    poller, polled = sunspec_poller(modbus_device)
    assert poller.poll(polled).status == STATUS_OFFLINE
    # 40000 and 0 are registers of this device (zeros), 50000 is not: it answers a Modbus exception
    assert ("no SunSpec marker (\"SunS\", 0x5375 0x6e53) at 40000 holds 0x0000 0x0000, 0 holds 0x0000 0x0000, "
            "50000 refused") in polled.last_error
    modbus_device.set(sunspec_registers(40000, USUAL_CHAIN))
    outcome = poller.poll(polled)
    assert outcome.status == STATUS_ONLINE and dict(outcome.reading.metrics) == SUNSPEC_METRICS
    poller.close()


@pytest.mark.parametrize(("base", "chain", "ranges"), [
    (40000, USUAL_CHAIN, [(0, 41_000)]),
    (40000, OTHER_CHAIN, [(0, 41_000)]),
    (0, OTHER_CHAIN, [(0, 400)]),            # 40000 is no register of this device
    (50000, USUAL_CHAIN, [(50000, 400)]),    # neither 40000 nor 0 are
], ids=["usual", "other-order-and-lengths", "base-0", "base-50000"])
def test_sunspec_map_reads_the_models_where_the_device_has_them(base: int, chain: list[tuple[int, int]],
                                                                 ranges: list[tuple[int, int]]) -> None:
    device = ModbusDevice(sunspec_registers(base, chain), ranges).start()
    try:
        poller, polled = sunspec_poller(device)
        outcome = poller.poll(polled)
        assert outcome.status == STATUS_ONLINE, polled.last_error
        assert dict(outcome.reading.metrics) == SUNSPEC_METRICS
        before = device.requests
        assert poller.poll(polled).reading is not None
        assert device.requests - before == 2  # the two blocks: the chain is walked once, not every round
        poller.close()
    finally:
        device.stop()


def test_a_sunspec_device_without_a_battery_model_is_offline_naming_its_models() -> None:
    device = ModbusDevice(sunspec_registers(40000, [(1, 65), (101, 50), (160, 48)])).start()
    try:
        poller, polled = sunspec_poller(device)
        assert poller.poll(polled).status == STATUS_OFFLINE
        assert (f"modbus tcp 127.0.0.1:{device.port} unit 1: the device's SunSpec models are 1 (common) at 40002, "
                "101 (single-phase inverter) at 40069, 160 (MPPT) at 40121; this map") in polled.last_error
        assert "reads 802 (battery); choose a map for this device or add the model to the file" in polled.last_error
        poller.close()
    finally:
        device.stop()


def test_a_sunspec_device_that_comes_back_with_another_chain_is_walked_again() -> None:
    device = ModbusDevice(sunspec_registers(40000, USUAL_CHAIN)).start()
    poller, polled = sunspec_poller(device)
    try:
        assert dict(poller.poll(polled).reading.metrics) == SUNSPEC_METRICS
        device.stop()  # a firmware update: the device goes, and comes back with its models elsewhere
        assert poller.poll(polled).status == STATUS_OFFLINE
        device = ModbusDevice(sunspec_registers(40000, OTHER_CHAIN), port=device.port).start()
        back = poller.poll(polled)
        assert back.status == STATUS_ONLINE, polled.last_error
        assert dict(back.reading.metrics) == SUNSPEC_METRICS
        poller.close()
    finally:
        device.stop()


def test_a_gateway_that_cannot_reach_its_sunspec_device_fails_at_once_not_at_every_base() -> None:
    device = ModbusDevice(sunspec_registers(40000, USUAL_CHAIN)).start()
    try:
        device.exception = ExcCodes.GATEWAY_NO_RESPONSE  # the RS485 side of a TCP gateway is dead
        poller, polled = sunspec_poller(device)
        assert poller.poll(polled).status == STATUS_OFFLINE
        assert "GATEWAY_NO_RESPONSE" in polled.last_error and "no SunSpec marker" not in polled.last_error
        assert device.requests == 1  # not one gateway timeout for each of 40000, 0 and 50000
        device.exception = None
        assert dict(poller.poll(polled).reading.metrics) == SUNSPEC_METRICS
        poller.close()
    finally:
        device.stop()


def test_a_solarman_logger_tells_a_refusal_from_an_inverter_out_of_reach() -> None:
    logger = SolarmanStandIn(2712345678, DEYE).start()
    source = SolarmanSource("127.0.0.1", logger.port, 2712345678, 1, 1.0)
    blocks = (BlockSpec(start=40000, count=2),)
    try:
        logger.exception = 0x02  # illegal data address: no such registers
        with pytest.raises(DeviceRefused, match="the inverter refused registers 40000\\+2"):
            source.read(blocks, "holding")
        logger.exception = 0x0B  # the logger could not reach the inverter
        with pytest.raises(DeviceError, match="GatewayTargetDeviceFailedToRespondError") as err:
            source.read(blocks, "holding")
        assert not isinstance(err.value, DeviceRefused)
        logger.exception = None
        assert source.read(blocks, "holding") == {40000: 0, 40001: 0}
    finally:
        source.close()
        logger.stop()


def test_solarman_v5_logger_gives_the_reading_and_a_silent_or_garbled_logger_is_offline() -> None:
    logger = SolarmanStandIn(2712345678, DEYE).start()
    try:
        source = SolarmanSource("127.0.0.1", logger.port, 2712345678, 1, 1.0)
        poller, polled = poller_for(RegisterDriver(load_register_map("deye_hybrid"), source))
        outcome = poller.poll(polled)
        assert outcome.status == STATUS_ONLINE and dict(outcome.reading.metrics) == DEYE_METRICS
        logger.mode = "garbage"
        assert poller.poll(polled).status == STATUS_OFFLINE
        assert "checksum" in polled.last_error
        logger.mode = "silent"
        assert poller.poll(polled).reading is None
        assert "logger 2712345678" in polled.last_error
        logger.mode = "ok"
        assert poller.poll(polled).status == STATUS_ONLINE
        poller.close()
    finally:
        logger.stop()


def test_modbus_rtu_over_a_serial_line_gives_the_reading_and_a_bad_crc_or_silence_is_offline() -> None:
    port = ModbusRtuStandIn(1, DEYE).start()
    try:
        poller, polled = poller_for(RegisterDriver(load_register_map("deye_hybrid"),
                                                   ModbusSource.rtu(port.path, 9600, 1, 0.5)))
        outcome = poller.poll(polled)
        assert outcome.status == STATUS_ONLINE and dict(outcome.reading.metrics) == DEYE_METRICS
        for mode in ("bad_crc", "silent"):
            port.mode = mode
            assert poller.poll(polled).reading is None, mode
            assert f"modbus rtu {port.path}@9600 unit 1" in polled.last_error
        port.mode = "ok"
        assert poller.poll(polled).status == STATUS_ONLINE
        poller.close()
    finally:
        port.stop()


QPIGS = "230.1 49.9 230.0 49.9 0921 0873 018 410 52.40 010 076 0041 0006 180.5 52.30 00000 00010110 00 00 01085 010"
"""An Axpert on the grid: battery 52.4 V charging at 10 A, 76 %, PV 1085 W (field 20), load 873 W."""


def test_pi30_over_a_serial_line_gives_the_reading_and_garbage_or_silence_is_offline() -> None:
    inverter = Pi30StandIn({"QPIGS": QPIGS, "QMOD": "L"}).start()
    try:
        poller, polled = poller_for(Pi30Driver(Pi30Port(inverter.path, 2400, 0.5, CLOCK)))
        outcome = poller.poll(polled)
        assert outcome.status == STATUS_ONLINE
        assert dict(outcome.reading.metrics) == {"grid_v": 230.1, "grid_hz": 49.9, "grid_ok": True,
                                                 "battery_soc_pct": 76.0, "battery_v": 52.4, "battery_a": 10.0,
                                                 "pv_w": 1085.0, "load_w": 873.0, "inverter_temp_c": 41.0,
                                                 "mode": "grid"}
        assert inverter.queries == ["QPIGS", "QMOD"]
        for mode, words in (("garbage", "not a PI30 answer"), ("bad_crc", "CRC mismatch"), ("nak", "NAK"),
                            ("silent", "nothing within 0.5 s")):
            inverter.mode = mode
            assert poller.poll(polled).reading is None, mode
            assert words in polled.last_error, polled.last_error
        inverter.mode = "ok"
        inverter.answers["QMOD"] = "B"
        back = poller.poll(polled)
        assert back.status == STATUS_ONLINE and back.reading.metrics["mode"] == "solar"  # PV covers the load
        poller.close()
    finally:
        inverter.stop()


def test_pi30_over_the_inverters_usb_hid_port_speaks_in_8_byte_reports(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Most Voltronic units' USB port is a HID device (/dev/hidrawN, often behind a udev link): the same
    frames in 8-byte reports. A link named hidraw0 to the stand-in's pseudo-terminal stands for it."""
    from agent.pi30 import encode_command

    inverter = Pi30HidStandIn({"QPIGS": QPIGS, "QMOD": "L"}).start()
    link = tmp_path / "hidraw0"
    link.symlink_to(inverter.path)
    try:
        poller, polled = poller_for(Pi30Driver(Pi30Port(str(link), 2400, 0.5, CLOCK)))
        outcome = poller.poll(polled)
        assert outcome.status == STATUS_ONLINE and outcome.reading.metrics["battery_soc_pct"] == 76.0
        assert outcome.reading.metrics["mode"] == "grid"
        # QPIGS's frame is 8 bytes, one report; QMOD's 7, padded to one
        assert inverter.raw == encode_command("QPIGS") + encode_command("QMOD") + b"\x00"
        inverter.mode = "silent"
        assert poller.poll(polled).reading is None
        assert f"pi30 usb-hid {link}: QPIGS: nothing within 0.5 s; check the cable" in polled.last_error
        inverter.mode = "ok"
        assert poller.poll(polled).status == STATUS_ONLINE
        poller.close()
    finally:
        inverter.stop()
