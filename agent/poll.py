"""A round per device → a contract Reading, or an `offline` status when the device fails; paced by the
injected clock. A device that times out, answers garbage or disappears is reported `offline` (once,
retained), logged (at most once a minute per device) and polled again next round; when it answers
again it is `online` again. Nothing a device sends can stop the agent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from agent import DeviceError, SunSpecMismatch
from agent.pi30 import Pi30Error, Pi30Port, parse_qmod, parse_qpigs
from agent.registers import BlockSpec, DecodeProblem, RegisterMap, Registers
from agent.sunspec import place_models, walk_model_chain
from core.clock import Clock
from core.contract import STATUS_OFFLINE, STATUS_ONLINE, DeviceKey, FieldValue, Reading, encode_reading
from core.decode import DecodeLimits, Reject, decode_message
from core.logs import RateLimiter

log = logging.getLogger("facmon.agent")


class Driver(Protocol):
    """`read()` asks the device once and returns its contract metrics; raises DeviceError for any failure
    of the device (never for ours). `close()` releases the port or connection; `read()` reopens it."""

    where: str

    def read(self) -> dict[str, FieldValue]: ...

    def close(self) -> None: ...


class RegisterSource(Protocol):
    """`read()` returns every register of `blocks` from the `table` ("holding"/"input"); raises
    DeviceRefused for a Modbus exception answer, DeviceError for any other failure. `close()` drops the
    connection; `read()` reopens it."""

    where: str

    def read(self, blocks: Sequence[BlockSpec], table: str) -> Registers: ...

    def close(self) -> None: ...


class RegisterDriver:
    """A register map read through a source (Modbus TCP/RTU, Solarman V5). A map with `sunspec:` is moved
    onto the device's SunSpec model chain, walked at the first read; the placed map is kept until a read
    fails or close(), so a device that comes back (perhaps with new firmware and another chain) is walked
    again. The walk costs a few small requests, once a connection."""

    def __init__(self, register_map: RegisterMap, source: RegisterSource) -> None:
        self._map = register_map
        self._source = source
        self._placed: RegisterMap | None = None
        self.where = source.where

    def read(self) -> dict[str, FieldValue]:
        try:
            register_map = self._current_map()
            registers = self._source.read(register_map.blocks, register_map.table)
            return self._decode(register_map, registers)
        except DeviceError:
            self._placed = None
            raise

    def _current_map(self) -> RegisterMap:
        if self._map.sunspec is None:
            return self._map
        if self._placed is None:
            try:
                self._placed = place_models(self._map, walk_model_chain(self._read_holding))
            except SunSpecMismatch as err:  # the pure walk does not know which device it walked
                raise SunSpecMismatch(f"{self.where}: {err}") from None
        return self._placed

    def _read_holding(self, start: int, count: int) -> list[int]:
        registers = self._source.read((BlockSpec(start=start, count=count),), "holding")
        return [registers[address] for address in range(start, start + count)]

    def _decode(self, register_map: RegisterMap, registers: Registers) -> dict[str, FieldValue]:
        try:
            return register_map.decode(registers)
        except DecodeProblem as err:
            raise DeviceError(f"{self.where}: {err}") from None

    def close(self) -> None:
        self._placed = None
        self._source.close()


class Pi30Driver:
    def __init__(self, port: Pi30Port) -> None:
        self._port = port
        self.where = port.where

    def read(self) -> dict[str, FieldValue]:
        metrics = parse_qpigs_or_fail(self._port.query("QPIGS"), self.where)
        metrics["mode"] = parse_qmod_or_fail(self._port.query("QMOD"), metrics, self.where)
        return metrics

    def close(self) -> None:
        self._port.close()


def parse_qpigs_or_fail(text: str, where: str) -> dict[str, FieldValue]:
    try:
        return parse_qpigs(text)
    except Pi30Error as err:
        raise DeviceError(f"{where}: QPIGS: {err}") from None


def parse_qmod_or_fail(text: str, metrics: dict[str, FieldValue], where: str) -> str:
    try:
        return parse_qmod(text, metrics)
    except Pi30Error as err:
        raise DeviceError(f"{where}: QMOD: {err}") from None


@dataclass
class PolledDevice:
    device: DeviceKey
    driver: Driver
    seq: int = 0
    online: bool | None = None
    """What was last published; None: nothing yet."""
    failures: int = 0
    last_error: str | None = None
    readings: int = field(default=0)


@dataclass(frozen=True, slots=True)
class Outcome:
    reading: Reading | None
    status: str | None
    """STATUS_ONLINE/STATUS_OFFLINE when it changed (to be published, retained)."""


class Poller:
    """Polls devices; pure apart from the drivers' I/O."""

    def __init__(self, devices: list[PolledDevice], clock: Clock, limits: DecodeLimits | None = None) -> None:
        self.devices = devices
        self._clock = clock
        self._limits = limits or DecodeLimits()
        self._limiter = RateLimiter(clock, 60.0)

    def poll(self, polled: PolledDevice) -> Outcome:
        """One read of one device. Never raises for the device's failures."""
        try:
            metrics = polled.driver.read()
            reading = self._checked(polled, metrics)
        except DeviceError as err:
            return self._failed(polled, str(err))
        except Exception as err:  # a driver bug, or a library letting an error through
            # One device's surprise must not stop the polling of the others: it is offline, with the
            # traceback in the log so the bug can be fixed.
            suppressed = self._limiter.allow(f"{polled.device} unforeseen")
            if suppressed is not None:  # a lasting bug must not write a traceback every round
                log.exception("driver failed unexpectedly; reported offline (a facmon bug: please report it)",
                              extra={"device": str(polled.device), "suppressed_since_last": suppressed})
            return self._failed(polled, f"{polled.driver.where}: unexpected {type(err).__name__}: {err}")
        polled.seq += 1
        polled.readings += 1
        polled.last_error = None
        status = STATUS_ONLINE if polled.online is not True else None
        polled.online = True
        return Outcome(reading, status)

    def _checked(self, polled: PolledDevice, metrics: dict[str, FieldValue]) -> Reading:
        reading = Reading(polled.device, round(self._clock.now() * 1000), polled.seq, metrics)
        try:
            payload = encode_reading(reading)
        except ValueError as err:
            raise DeviceError(f"{polled.driver.where}: {err}") from None
        verdict = decode_message(polled.device.reading_topic(), payload, self._clock.now(), self._limits)
        if isinstance(verdict, Reject):  # e.g. a state of charge of 6553 %: garbage, not a reading
            raise DeviceError(f"{polled.driver.where}: the values break the contract ({verdict.reason}: "
                              f"{verdict.detail}); check the register map against the device's documentation")
        return reading

    def _failed(self, polled: PolledDevice, error: str) -> Outcome:
        polled.failures += 1
        polled.last_error = error
        suppressed = self._limiter.allow(str(polled.device))
        if suppressed is not None:
            log.warning("device did not answer usably; reported offline", extra={
                "device": str(polled.device), "error": error, "suppressed_since_last": suppressed})
        status = STATUS_OFFLINE if polled.online is not False else None
        polled.online = False
        return Outcome(None, status)

    def close(self) -> None:
        for polled in self.devices:
            polled.driver.close()


def poll_round(poller: Poller, deliver: Callable[[PolledDevice, Outcome], None]) -> None:
    """Every device once, one after another (several may share one serial bus)."""
    for polled in poller.devices:
        deliver(polled, poller.poll(polled))
