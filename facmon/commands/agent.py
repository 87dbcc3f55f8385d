"""`facmon agent`: poll inverters directly (Modbus TCP/RTU, Solarman V5 loggers, PI30 serial) and publish
them as contract devices (see agent/ and docs/devices.md)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from agent import AgentError
from agent.modbus import ModbusSource
from agent.pi30 import Pi30Port
from agent.poll import Driver, Outcome, Pi30Driver, PolledDevice, Poller, RegisterDriver, poll_round
from agent.registers import load_register_map
from core.clock import Clock, SystemClock
from core.config import FacmonConfig
from core.contract import DeviceKey, Kind, encode_reading
from core.rounds import run_rounds
from core.settings.agent import AgentDevice

HELP = "poll inverters directly (Modbus TCP/RTU, Solarman V5, PI30 serial) and publish them as devices"
_EXAMPLE = """agent:
  site: park
  devices:
    - {device: inv-main, driver: solarman_v5, host: 192.168.1.60, logger_serial: 2712345678,
       register_map: deye_hybrid}
    - {device: inv-store, driver: pi30, serial_port: /dev/ttyUSB0}"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="one round, then exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="print each reading (or the device's error) instead of publishing (no broker needed)")
    parser.epilog = "Reads agent.* and mqtt.* from the configuration, e.g.\n\n" + _EXAMPLE
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def driver_for(spec: AgentDevice, clock: Clock) -> Driver:
    """The driver of one configured device. Raises RegisterMapError for a bad map."""
    if spec.driver == "pi30":
        return Pi30Driver(Pi30Port(spec.serial_port, spec.serial_baudrate, spec.timeout_s, clock))  # type: ignore[arg-type]
    register_map = load_register_map(spec.register_map)  # type: ignore[arg-type]
    if spec.driver == "solarman_v5":
        from agent.solarman import SolarmanSource  # pysolarmanv5 only where a Solarman logger is configured

        source = SolarmanSource(spec.host, spec.tcp_port, spec.logger_serial, spec.unit_id, spec.timeout_s)  # type: ignore[arg-type]
    elif spec.driver == "modbus_tcp":
        source = ModbusSource.tcp(spec.host, spec.tcp_port, spec.unit_id, spec.timeout_s)  # type: ignore[arg-type]
    else:
        source = ModbusSource.rtu(spec.serial_port, spec.serial_baudrate, spec.unit_id, spec.timeout_s)  # type: ignore[arg-type]
    return RegisterDriver(register_map, source)


def build_poller(config: FacmonConfig, clock: Clock) -> Poller:
    settings = config.agent
    devices = [PolledDevice(DeviceKey(settings.site, Kind.INVERTER, spec.device), driver_for(spec, clock))
               for spec in settings.devices]
    return Poller(devices, clock, config.collector.decode.limits())


def run(args: argparse.Namespace, config: FacmonConfig, clock: Clock | None = None,
        stop: threading.Event | None = None) -> int:
    clock = clock or SystemClock()
    settings = config.agent
    if not settings.devices:
        print("facmon agent: no devices configured; add them to the config file, for example:\n" + _EXAMPLE,
              file=sys.stderr)
        return 2
    try:
        poller = build_poller(config, clock)
    except AgentError as err:
        print(f"facmon agent: {err}", file=sys.stderr)
        return 2
    if stop is None:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())  # type: ignore[union-attr]
    rounds = 1 if args.once else None
    try:
        if args.dry_run:
            run_rounds(lambda: poll_round(poller, _print), clock, settings.interval_s, stop, rounds)
            return 0
        from agent.publish import DeviceConnection

        connections = {p.device: DeviceConnection(config.mqtt, p.device,
                                                  f"{settings.client_id_prefix}-{p.device.site}-{p.device.device}",
                                                  clock) for p in poller.devices}
        for connection in connections.values():
            connection.open()
        try:
            run_rounds(lambda: poll_round(poller, lambda p, o: connections[p.device].deliver(o)), clock,
                       settings.interval_s, stop, rounds)
        finally:
            for connection in connections.values():
                connection.close()
    finally:
        poller.close()
    return 0


def _print(polled: PolledDevice, outcome: Outcome) -> None:
    if outcome.reading is not None:
        print(encode_reading(outcome.reading).decode(), flush=True)
    else:
        print(f"{polled.device}: offline: {polled.last_error}", flush=True)
