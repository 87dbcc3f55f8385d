"""Devices for the agent's tests, on loopback and pseudo-terminals, each stopped at the end:

    ModbusDevice       pymodbus's own TCP server holding a register table (registers settable)
    SolarmanStandIn    a stand-in Solarman V5 logger: the V5 frame around Modbus RTU, as the loggers
                       answer (the real logger is a closed Wi-Fi stick; pysolarmanv5's frame checks apply)
    Pi30StandIn        a pseudo-terminal answering PI30 queries as a Voltronic inverter does
    Pi30HidStandIn     the same through 8-byte reports, as the inverter's USB HID port (/dev/hidrawN) does
    ModbusRtuStandIn   a pseudo-terminal answering Modbus RTU reads, as an inverter's RS485 port does
    ResettingGateway   a TCP port that takes a Modbus request and resets the connection, as a gateway
                       does when it restarts or drops us for another client

Each can be told to go silent or answer garbage.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import struct
import threading
import tty
from collections.abc import Callable, Mapping, Sequence
from typing import Self

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from agent.pi30 import HID_REPORT_BYTES, pi30_crc
from tests.support import poll_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ModbusDevice:
    """pymodbus's own TCP server (its SimDevice), unit 1, answering from `registers` (0 where unset) as
    they are at each request. It has holding registers in `ranges` ((start, count) pairs; by default
    0…40999, SunSpec's usual base included) and answers a read outside them with a Modbus exception
    (illegal data address), as a real device does for registers it does not have. The holding and input
    registers are one table (function 03 and 04 read the same values); `function_codes` records which
    each request used. `requests` counts the reads answered; `exception`, when set, is the exception code
    every read is answered with (a gateway that cannot reach its device answers GATEWAY_NO_RESPONSE)."""

    def __init__(self, registers: Mapping[int, int] | None = None,
                 ranges: Sequence[tuple[int, int]] = ((0, 41_000),), port: int | None = None) -> None:
        self.port = port or free_port()
        self.registers: dict[int, int] = dict(registers or {})
        self.requests = 0
        self.function_codes: set[int] = set()
        self.exception: ExcCodes | None = None
        simdata = [SimData(start, count=count, values=0, datatype=DataType.REGISTERS) for start, count in ranges]
        self._device = SimDevice(id=1, simdata=simdata, action=self._answer)
        self._server: ModbusTcpServer | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="modbus-device", daemon=True)

    def set(self, registers: Mapping[int, int]) -> None:
        self.registers.update(registers)

    async def _answer(self, function_code: int, start_address: int, address: int, count: int,
                      current_registers: list[int], _set_values: object) -> ExcCodes | None:
        # current_registers is the whole datastore from start_address: fill in only what is asked.
        self.requests += 1
        self.function_codes.add(function_code)
        if self.exception is not None:
            return self.exception
        for i in range(address - start_address, address - start_address + count):
            current_registers[i] = self.registers.get(start_address + i, 0) & 0xFFFF
        return None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._server = ModbusTcpServer(self._device, address=("127.0.0.1", self.port))  # needs the running loop
        await self._server.serve_forever()

    def start(self) -> ModbusDevice:
        self._thread.start()

        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0
        poll_until(listening, 10, what="modbus server listening")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            assert self._server is not None
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(10)
            self._thread.join(10)


class ResettingGateway:
    """Accepts connections, reads a request and answers it with a TCP reset (SO_LINGER 0), never a
    Modbus answer. `resets` counts the requests it reset."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.resets = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="resetting-gateway", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    if conn.recv(260):
                        self.resets += 1
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._listener.close()


def crc16_modbus(data: bytes) -> bytes:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


LOGGER_LATENCY_S = 0.02


class SolarmanStandIn:
    """Answers V5 requests for holding registers (function 3) from a register table. Stand-in for a
    Solarman logger, which cannot run here. Modes: "ok", "silent" (reads, never answers), "garbage"
    (a frame with a wrong checksum); `exception`, when set, is the Modbus exception code the inverter
    answers every read with, in a good V5 frame."""

    def __init__(self, serial: int, registers: Mapping[int, int]) -> None:
        self.serial = serial
        self.registers = dict(registers)
        self.mode = "ok"
        self.exception: int | None = None
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="solarman-stand-in", daemon=True)

    def start(self) -> SolarmanStandIn:
        self._thread.start()
        return self

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        with conn:
            while not self._stop.is_set():
                try:
                    request = conn.recv(1024)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not request:
                    return
                self.requests += 1
                if self.mode != "silent":
                    # A logger answers over Wi-Fi in tens of milliseconds; pysolarmanv5 sends, then starts
                    # waiting, and discards an answer that comes before it waits (quicker than any logger).
                    self._stop.wait(LOGGER_LATENCY_S)
                    conn.sendall(self.answer(request))

    def answer(self, request: bytes) -> bytes:
        assert request[0] == 0xA5 and request[-1] == 0x15, request
        assert struct.unpack("<I", request[7:11])[0] == self.serial
        rtu = request[26:-2]  # after the 11-byte header and the 15-byte request payload
        unit, function, start, count = struct.unpack(">BBHH", rtu[:6])
        assert function == 3 and crc16_modbus(rtu[:6]) == rtu[6:8]
        data = b"".join(struct.pack(">H", self.registers.get(start + i, 0)) for i in range(count))
        pdu = bytes([unit, 3, len(data)]) + data if self.exception is None else bytes([unit, 0x83, self.exception])
        modbus = pdu + crc16_modbus(pdu)
        payload = bytes([0x02, 0x01]) + bytes(12) + modbus  # frame type, status, three 4-byte times
        header = b"\xa5" + struct.pack("<H", len(payload)) + struct.pack("<H", 0x1510) + request[5:7] + request[7:11]
        frame = bytearray(header + payload + b"\x00\x15")
        frame[-2] = sum(frame[1:-2]) & 0xFF
        if self.mode == "garbage":
            frame[-2] ^= 0x5A
        return bytes(frame)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()


class PtyDevice:
    """A device on a pseudo-terminal (os.openpty): `path` is the serial port the agent opens; bytes the
    agent writes go to `_received`, whose answer (if any) is written back."""

    def __init__(self) -> None:
        self.mode = "ok"
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"{type(self).__name__}", daemon=True)
        self._buffer = b""

    def start(self) -> Self:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                self._buffer += os.read(self._master, 256)
            except OSError:
                return
            for answer in self._received():
                if answer:
                    os.write(self._master, answer)

    def _received(self) -> list[bytes]:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):  # closed already
                os.close(fd)


class Pi30StandIn(PtyDevice):
    """Answers PI30 queries as a Voltronic inverter does. Modes: "ok", "silent", "garbage" (bytes that
    are no PI30 frame), "bad_crc", "nak"."""

    def __init__(self, answers: Mapping[str, str]) -> None:
        super().__init__()
        self.answers = dict(answers)
        self.queries: list[str] = []

    def _received(self) -> list[bytes]:
        answers = []
        while b"\r" in self._buffer:
            frame, self._buffer = self._buffer.split(b"\r", 1)
            command = frame[:-2].decode("ascii", "replace")
            assert pi30_crc(frame[:-2]) == frame[-2:], f"bad CRC from the agent: {frame!r}"
            self.queries.append(command)
            answers.append(self._answer(command))
        return answers

    def _answer(self, command: str) -> bytes:
        answers: dict[str, Callable[[], bytes]] = {
            "ok": lambda: _frame("(" + self.answers[command]),
            "silent": lambda: b"",
            "garbage": lambda: b"\x00\xff\x13garbage\x7f\r",
            "bad_crc": lambda: _frame("(" + self.answers[command])[:-3] + b"\x01\x02\r",
            "nak": lambda: _frame("(NAK"),
        }
        return answers[self.mode]()


class Pi30HidStandIn(Pi30StandIn):
    """A Voltronic inverter's USB HID port: commands arrive in 8-byte reports, the last padded with zeros,
    and each answer goes out in 8-byte reports, the last padded after its CR (the pseudo-terminal carries
    the reports' bytes). `raw` is every byte received, padding included."""

    def __init__(self, answers: Mapping[str, str]) -> None:
        super().__init__(answers)
        self.raw = b""
        self._seen = 0

    def _received(self) -> list[bytes]:
        self.raw += self._buffer[self._seen:]
        self._buffer = self._buffer.replace(b"\x00", b"")  # report padding; PI30 frames hold no zero byte
        answers = super()._received()
        self._seen = len(self._buffer)
        report = HID_REPORT_BYTES
        return [answer.ljust(-(-len(answer) // report) * report, b"\x00") for answer in answers]


class ModbusRtuStandIn(PtyDevice):
    """Answers Modbus RTU reads of holding registers (function 3) from a register table, with the CRC of
    the RTU frame; an RS485 inverter port stand-in. Modes: "ok", "silent", "bad_crc"."""

    def __init__(self, unit_id: int, registers: Mapping[int, int]) -> None:
        super().__init__()
        self.unit_id = unit_id
        self.registers = dict(registers)

    def _received(self) -> list[bytes]:
        answers = []
        while len(self._buffer) >= 8:  # a read request is 8 bytes
            request, self._buffer = self._buffer[:8], self._buffer[8:]
            unit, function, start, count = struct.unpack(">BBHH", request[:6])
            assert crc16_modbus(request[:6]) == request[6:], f"bad CRC from the agent: {request!r}"
            if unit != self.unit_id or self.mode == "silent":
                continue  # another unit on the bus, or none at all
            data = b"".join(struct.pack(">H", self.registers.get(start + i, 0)) for i in range(count))
            pdu = bytes([unit, function, len(data)]) + data
            crc = crc16_modbus(pdu)
            answers.append(pdu + (bytes([crc[0] ^ 0xFF, crc[1]]) if self.mode == "bad_crc" else crc))
        return answers


def _frame(text: str) -> bytes:
    body = text.encode("ascii")
    return body + pi30_crc(body) + b"\r"
