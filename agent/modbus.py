"""Registers from a device over Modbus TCP or RTU (serial), through pymodbus: the only module that
imports it. Every failure becomes a `DeviceError` that says which device and what to check."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException

from agent import DeviceError, DeviceRefused
from agent.registers import BlockSpec

# pymodbus logs every failed attempt at error level itself; our DeviceError says it once, rate-limited.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

NOT_A_REFUSAL = frozenset({ExcCodes.DEVICE_BUSY, ExcCodes.GATEWAY_PATH_UNAVIABLE, ExcCodes.GATEWAY_NO_RESPONSE})
"""Exception answers that say nothing about the registers: the device is busy, or a TCP gateway could
not reach it (a gone device behind a gateway answers these, after the gateway's own timeout). They are
plain DeviceErrors, so a SunSpec walk does not try the next base address on them."""


class ModbusSource:
    """One Modbus device (unit id) on a TCP gateway or a serial bus. Not thread-safe: one poller."""

    def __init__(self, client: ModbusTcpClient | ModbusSerialClient, unit_id: int, where: str) -> None:
        self._client = client
        self._unit_id = unit_id
        self.where = where

    @classmethod
    def tcp(cls, host: str, port: int, unit_id: int, timeout_s: float) -> ModbusSource:
        # retries=0: a poll that fails is reported and the next round tries again; retrying inside a round
        # would stretch it past the interval.
        return cls(ModbusTcpClient(host, port=port, timeout=timeout_s, retries=0), unit_id,
                   f"modbus tcp {host}:{port} unit {unit_id}")

    @classmethod
    def rtu(cls, port_path: str, baudrate: int, unit_id: int, timeout_s: float) -> ModbusSource:
        return cls(ModbusSerialClient(port_path, baudrate=baudrate, timeout=timeout_s, retries=0), unit_id,
                   f"modbus rtu {port_path}@{baudrate} unit {unit_id}")

    def read(self, blocks: Sequence[BlockSpec], table: str) -> dict[int, int]:
        """Every register of `blocks`. Raises DeviceRefused for an exception response (the device is
        there, the registers are not), DeviceError for the rest (no connection, timeout, short answer,
        NOT_A_REFUSAL)."""
        if not self._client.connected and not self._client.connect():
            raise DeviceError(f"{self.where}: cannot connect; check the address, port/cable and that nothing "
                              "else holds the connection (many gateways allow one client)")
        registers: dict[int, int] = {}
        for block in blocks:
            reader = (self._client.read_holding_registers if table == "holding"
                      else self._client.read_input_registers)
            try:
                response = reader(block.start, count=block.count, device_id=self._unit_id)
            except (ModbusException, OSError) as err:
                # OSError: pymodbus lets a reset or broken connection through (a device rebooting, a gateway
                # dropping us for another client). A half-read answer can leave the stream out of step: start clean.
                self._client.close()
                raise DeviceError(f"{self.where}: no answer for registers {block.start}+{block.count} "
                                  f"({type(err).__name__}: {err}); check the unit id and wiring, and that the "
                                  "device or gateway is not restarting") from None
            if response.isError() and response.exception_code in NOT_A_REFUSAL:
                raise DeviceError(f"{self.where}: no usable answer for registers {block.start}+{block.count} "
                                  f"({ExcCodes(response.exception_code).name}); check that the device is on and, "
                                  "behind a gateway, its wiring and unit id")
            if response.isError():
                raise DeviceRefused(f"{self.where}: the device refused registers {block.start}+{block.count} "
                                  f"({response}); the register map may not fit this model")
            values = list(response.registers)
            if len(values) < block.count:
                raise DeviceError(f"{self.where}: {len(values)} registers came back for {block.count} asked")
            registers.update(zip(range(block.start, block.start + block.count), values[:block.count], strict=True))
        return registers

    def close(self) -> None:
        self._client.close()
