"""Voltronic PI30 (Axpert, Inverex, MPP Solar, EASun and their rebadges) over RS232, a USB-serial
adapter, or the inverter's own USB port, which Linux presents as a HID device (/dev/hidrawN).

Our own small codec rather than mppsolar: mppsolar is a command-line tool first (it opens and closes the
port itself per command, returns strings with units attached, and carries many protocols we do not
use), while a poller needs two queries on a port it keeps, a timeout that is ours, and garbage told
apart from silence. The protocol is short:

    request   ASCII command, CRC-16/XMODEM (2 bytes, big-endian), CR
    answer    "(" fields separated by spaces, CRC (2 bytes), CR        — "(NAK" when refused

The CRC bytes avoid 0x28 "(", 0x0D CR and 0x0A LF: such a byte is sent one higher (the firmware's
rule). Queries: QPIGS (general status), QMOD (mode letter). `parse_*` are pure; `Pi30Port` does I/O.

Over USB HID the same frames travel in 8-byte reports: a command is written 8 bytes at a time, the last
report padded with zeros, and the answer arrives in reports whose last is padded after its CR.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
from collections.abc import Mapping

import serial

from agent import DeviceError
from core.clock import Clock
from core.contract import FieldValue

_RESERVED = {0x28, 0x0D, 0x0A}
MAX_ANSWER_BYTES = 512
HID_REPORT_BYTES = 8


def is_hidraw(path: str) -> bool:
    """Is `path` a HID device (/dev/hidrawN, or a udev link named or pointing so), as the USB port of most
    Voltronic inverters shows itself, rather than a serial port?"""
    return any(os.path.basename(p).startswith("hidraw") for p in (path, os.path.realpath(path)))


def crc_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def pi30_crc(data: bytes) -> bytes:
    """The CRC as PI30 sends it, reserved bytes moved up by one."""
    crc = crc_xmodem(data)
    return bytes(b + 1 if b in _RESERVED else b for b in (crc >> 8, crc & 0xFF))


def encode_command(command: str) -> bytes:
    raw = command.encode("ascii")
    return raw + pi30_crc(raw) + b"\r"


class Pi30Error(ValueError):
    """An answer that is not a valid PI30 answer to the query (garbage, a NAK, a wrong CRC, too few fields)."""


def decode_answer(frame: bytes) -> str:
    """The text of an answer frame (without "(", CRC and CR). Raises Pi30Error."""
    if not frame.endswith(b"\r") or not frame.startswith(b"(") or len(frame) < 4:
        raise Pi30Error(f"not a PI30 answer: {frame[:40]!r}")
    body, crc = frame[:-3], frame[-3:-1]
    if pi30_crc(body) != crc:
        raise Pi30Error(f"CRC mismatch in {frame[:40]!r}: line noise, or not a PI30 device at this baud rate")
    text = body[1:].decode("ascii", "replace")
    if text.startswith("NAK"):
        raise Pi30Error("the inverter answered NAK: it does not know this query (not PI30?)")
    return text


QPIGS_FIELDS = 17
"""QPIGS answers have 17 fields on every PI30 firmware (21 on newer ones, PV power among them)."""


def parse_qpigs(text: str) -> dict[str, FieldValue]:
    """QPIGS fields → the inverter metrics they give. Raises Pi30Error."""
    fields = text.split()
    if len(fields) < QPIGS_FIELDS:
        raise Pi30Error(f"QPIGS answer has {len(fields)} fields, at least {QPIGS_FIELDS} expected: {text[:80]!r}")
    try:
        grid_v, grid_hz = float(fields[0]), float(fields[1])
        load_w = float(fields[5])
        battery_v = float(fields[8])
        charge_a, soc = float(fields[9]), float(fields[10])
        heatsink_c = float(fields[11])
        pv_a, pv_v = float(fields[12]), float(fields[13])
        discharge_a = float(fields[15])
        pv_w = float(fields[19]) if len(fields) > 19 else pv_a * pv_v  # field 20: PV charging power
    except ValueError:
        raise Pi30Error(f"QPIGS answer has a field that is not a number: {text[:80]!r}") from None
    return {"grid_v": grid_v, "grid_hz": grid_hz, "grid_ok": grid_v > 90.0, "battery_soc_pct": soc,
            "battery_v": battery_v, "battery_a": round(charge_a - discharge_a, 3), "pv_w": round(pv_w, 3),
            "load_w": load_w, "inverter_temp_c": heatsink_c}


MODES: Mapping[str, str] = {"L": "grid", "B": "battery", "F": "fault", "S": "bypass", "P": "bypass",
                            "H": "bypass", "D": "fault"}
"""QMOD letters: Line → grid; Battery → battery (solar when PV covers the load, below); Fault and
shutDown → fault; Standby, Power-on and power-saving (H) put out nothing of their own → bypass."""


def parse_qmod(text: str, metrics: Mapping[str, FieldValue]) -> str:
    letter = text.strip()[:1]
    mode = MODES.get(letter)
    if mode is None:
        raise Pi30Error(f"QMOD answer {text[:20]!r} is not a known mode letter ({', '.join(MODES)})")
    pv, load = metrics.get("pv_w"), metrics.get("load_w")
    if mode == "battery" and isinstance(pv, float) and isinstance(load, float) and pv >= load > 0:
        return "solar"
    return mode


class Pi30Port:
    """A PI30 inverter on a serial port or on its USB HID port (`is_hidraw`), kept open between polls."""

    def __init__(self, port_path: str, baudrate: int, timeout_s: float, clock: Clock) -> None:
        self._hid = is_hidraw(port_path)
        self.where = f"pi30 usb-hid {port_path}" if self._hid else f"pi30 {port_path}@{baudrate}"
        self._path, self._baudrate, self._timeout_s, self._clock = port_path, baudrate, timeout_s, clock
        self._port: serial.Serial | None = None
        self._fd: int | None = None

    def query(self, command: str) -> str:
        """Send `command`, return its answer's text. Raises DeviceError (port gone, timeout, garbage)."""
        try:
            self._open()
            self._drain()  # an answer to an earlier, timed-out query must not pass for this one
            self._write(encode_command(command))
            return decode_answer(self._read_frame(command))
        except serial.SerialException as err:
            self.close()
            raise DeviceError(f"{self.where}: the port failed ({err}); check the cable/USB adapter") from None
        except OSError as err:
            self.close()
            hint = ("; facmon needs read and write access to it (a udev rule giving its group the device)"
                    if err.errno == errno.EACCES else "")
            raise DeviceError(f"{self.where}: {err.strerror or err}{hint}; check the cable/USB adapter") from None
        except Pi30Error as err:
            raise DeviceError(f"{self.where}: {command}: {err}") from None

    def _open(self) -> None:
        if self._hid and self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
        elif not self._hid and self._port is None:
            self._port = serial.Serial(self._path, self._baudrate, timeout=0.1, write_timeout=self._timeout_s)

    def _drain(self) -> None:
        if self._port is not None:
            self._port.reset_input_buffer()
            return
        assert self._fd is not None
        for _ in range(MAX_ANSWER_BYTES // HID_REPORT_BYTES):
            try:
                if not os.read(self._fd, MAX_ANSWER_BYTES):
                    return
            except BlockingIOError:
                return

    def _write(self, frame: bytes) -> None:
        if self._port is not None:
            self._port.write(frame)
            return
        assert self._fd is not None
        for start in range(0, len(frame), HID_REPORT_BYTES):
            os.write(self._fd, frame[start:start + HID_REPORT_BYTES].ljust(HID_REPORT_BYTES, b"\x00"))

    def _read(self) -> bytes:
        if self._port is not None:
            return self._port.read(MAX_ANSWER_BYTES)
        assert self._fd is not None
        ready, _, _ = select.select([self._fd], [], [], 0.1)
        if not ready:
            return b""
        try:
            return os.read(self._fd, MAX_ANSWER_BYTES)
        except BlockingIOError:
            return b""

    def _read_frame(self, command: str) -> bytes:
        """The answer up to its CR (the rest of a HID report after it is padding)."""
        frame = b""
        deadline = self._clock.monotonic() + self._timeout_s
        while b"\r" not in frame:
            if self._clock.monotonic() >= deadline:
                what = f"only {frame[:40]!r}" if frame else "nothing"
                check = "the cable" if self._hid else "the cable, the baud rate (2400 for PI30)"
                raise DeviceError(f"{self.where}: {command}: {what} within {self._timeout_s:g} s; check {check} "
                                  "and that the inverter is on")
            frame += self._read()
            if len(frame) > MAX_ANSWER_BYTES:
                raise Pi30Error(f"answer longer than {MAX_ANSWER_BYTES} bytes without an end: {frame[:40]!r}")
        return frame[:frame.index(b"\r") + 1]

    def close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(OSError):  # the adapter is gone already
                self._port.close()
            self._port = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
