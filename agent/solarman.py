"""Registers through a Solarman V5 Wi-Fi logger (the stick on Deye, Sofar and many rebadged hybrids),
through pysolarmanv5: the logger wraps Modbus RTU in its own V5 frame on TCP port 8899, addressed by
the logger's serial number (on its label). The only module that imports pysolarmanv5."""

from __future__ import annotations

import contextlib
import logging
import queue
import struct
from collections.abc import Sequence

from pysolarmanv5 import NoSocketAvailableError, PySolarmanV5, V5FrameError
from umodbus.client.serial.redundancy_check import CRCError
from umodbus.exceptions import (
    GatewayPathUnavailableError,
    GatewayTargetDeviceFailedToRespondError,
    ModbusError,
    ServerDeviceBusyError,
)

from agent import DeviceError, DeviceRefused
from agent.registers import BlockSpec

_log = logging.getLogger("agent.solarman")
_log.setLevel(logging.CRITICAL)  # the library logs each bad frame itself; our DeviceError says it once


_FAILURES = (V5FrameError, NoSocketAvailableError, OSError, queue.Empty, struct.error, CRCError, ValueError,
             ServerDeviceBusyError, GatewayPathUnavailableError, GatewayTargetDeviceFailedToRespondError)
"""What pysolarmanv5 raises for a logger that is unreachable (OSError, NoSocketAvailableError), silent
(queue.Empty: its reader thread got nothing in time), answers garbage, or whose inverter is busy or out of
reach (the rest). Any other Modbus exception answer (umodbus's ModbusError) is the inverter refusing
registers (DeviceRefused)."""


class SolarmanSource:
    def __init__(self, host: str, port: int, logger_serial: int, unit_id: int, timeout_s: float) -> None:
        self.where = f"solarman v5 {host}:{port} logger {logger_serial}"
        self._args = (host, logger_serial)
        self._kwargs = {"port": port, "mb_slave_id": unit_id, "socket_timeout": timeout_s, "logger": _log}
        self._logger: PySolarmanV5 | None = None

    def read(self, blocks: Sequence[BlockSpec], table: str) -> dict[int, int]:
        """Every register of `blocks`. Raises DeviceRefused when the inverter answers that it has no such
        registers (a Modbus exception), DeviceError for the rest (logger unreachable, timeout, bad frame,
        inverter busy or out of the logger's reach)."""
        registers: dict[int, int] = {}
        try:
            if self._logger is None:
                self._logger = PySolarmanV5(*self._args, **self._kwargs)
            for block in blocks:
                reader = (self._logger.read_holding_registers if table == "holding"
                          else self._logger.read_input_registers)
                values = reader(block.start, block.count)
                if len(values) < block.count:
                    raise DeviceError(f"{self.where}: {len(values)} registers came back for {block.count} asked")
                registers.update(zip(range(block.start, block.start + block.count), values[:block.count],
                                     strict=True))
        except _FAILURES as err:
            self.close()
            raise DeviceError(f"{self.where}: {type(err).__name__}: {err or 'no answer'}; check the logger's "
                              "address and serial number (on its label) and that it is on the network") from None
        except ModbusError as err:  # the rest of them: the inverter answered, the connection is fine, keep it
            raise DeviceRefused(f"{self.where}: the inverter refused registers {block.start}+{block.count} "
                                f"({type(err).__name__}); the register map may not fit this model") from None
        return registers

    def close(self) -> None:
        if self._logger is not None:
            with contextlib.suppress(OSError):  # already gone: nothing to close
                self._logger.disconnect()
            self._logger = None
