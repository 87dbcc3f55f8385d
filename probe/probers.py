"""One probe to one target → its round-trip time in ms, or None when it was lost. The sockets live
here and nowhere else in the probe.

    IcmpProber   ICMP echo: an unprivileged ICMP datagram socket where net.ipv4.ping_group_range
                 admits our group, else a raw socket (root or CAP_NET_RAW)
    TcpProber    time to an established TCP connection (a refused or unanswered connect is lost)
    HttpProber   time from connect to the response's status line (any status is an answer)

Every prober opens its socket through a `Binding`, so an uplink's probes leave through its ISP:
bound to the ISP's source address (policy routing by source) and/or to its interface
(SO_BINDTODEVICE). IPv4 only. Names are resolved before the clock starts; a name that does not
resolve is a lost probe (the ISP's DNS may be what is down).
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from core.clock import Clock
from core.settings.probe import ProbeTarget
from probe import ProbeSetupError

ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
_ICMP_HEADER = struct.Struct("!BBHHH")


class Prober(Protocol):
    """`probe(seq)` sends one probe and waits at most the prober's timeout for its answer. Never raises
    for network failures (they are loss); raises ProbeSetupError when the host forbids the probe."""

    target: str

    def probe(self, seq: int) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Binding:
    """Where an uplink's probes leave from: a local source address and/or an interface."""

    source_address: str | None = None
    interface: str | None = None

    def apply(self, sock: socket.socket) -> None:
        if self.interface is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())
            except PermissionError:
                raise ProbeSetupError(f"binding probes to interface {self.interface!r} (SO_BINDTODEVICE) needs root "
                                      "or CAP_NET_RAW; run facmon probe with that capability or set "
                                      "bind_to_interface: false and use source_address") from None
            except OSError as err:
                raise ProbeSetupError(f"cannot bind probes to interface {self.interface!r}: {err.strerror}") from None
        if self.source_address is not None:
            try:
                sock.bind((self.source_address, 0))
            except OSError as err:
                raise ProbeSetupError(f"cannot send probes from {self.source_address}: {err.strerror}; is it an "
                                      "address of this host (ip -4 addr)?") from None


def icmp_socket_type() -> int | None:
    """The ICMP socket this process may open: SOCK_DGRAM (ping_group_range admits our group),
    SOCK_RAW (root or CAP_NET_RAW), or None (use TCP or HTTP probes)."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW):
        try:
            socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()
        except PermissionError:
            continue
        return kind
    return None


def _resolve(host: str, port: int) -> str | None:
    try:
        return socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except (socket.gaierror, IndexError):
        return None


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP echo request with a valid checksum."""
    header = _ICMP_HEADER.pack(ICMP_ECHO_REQUEST, 0, 0, ident, seq & 0xFFFF)
    return _ICMP_HEADER.pack(ICMP_ECHO_REQUEST, 0, checksum(header + payload), ident, seq & 0xFFFF) + payload


def is_echo_reply(packet: bytes, seq: int, payload: bytes, ident: int | None, with_ip_header: bool) -> bool:
    """Whether `packet` answers our request. A raw socket sees every ICMP packet (IP header included,
    our own requests too on loopback), so match the identifier; a datagram socket's identifier is
    the kernel's and only our replies arrive, so `ident` is None there."""
    if with_ip_header:
        if not packet:
            return False
        packet = packet[(packet[0] & 0x0F) * 4:]
    if len(packet) < _ICMP_HEADER.size:
        return False
    kind, _code, _sum, their_ident, their_seq = _ICMP_HEADER.unpack_from(packet)
    return (kind == ICMP_ECHO_REPLY and their_seq == seq & 0xFFFF and packet[_ICMP_HEADER.size:] == payload
            and (ident is None or their_ident == ident))


class IcmpProber:
    def __init__(self, host: str, binding: Binding, timeout_s: float, clock: Clock, socket_type: int) -> None:
        self.target = f"icmp:{host}"
        self._host, self._binding, self._timeout_s, self._clock = host, binding, timeout_s, clock
        self._type = socket_type
        self._ident = (os.getpid() ^ id(self)) & 0xFFFF

    def probe(self, seq: int) -> float | None:
        address = _resolve(self._host, 0)
        if address is None:
            return None
        payload = b"facmon-probe" + struct.pack("!HQ", self._ident, seq)
        raw = self._type == socket.SOCK_RAW
        with socket.socket(socket.AF_INET, self._type, socket.IPPROTO_ICMP) as sock:
            self._binding.apply(sock)
            start = self._clock.monotonic()
            try:
                sock.sendto(echo_request(self._ident, seq, payload), (address, 0))
            except OSError:
                return None  # no route (the uplink is down): lost
            deadline = start + self._timeout_s
            while (remaining := deadline - self._clock.monotonic()) > 0:
                sock.settimeout(remaining)
                try:
                    packet = sock.recv(65_535)
                except (TimeoutError, OSError):
                    return None
                if is_echo_reply(packet, seq, payload, self._ident if raw else None, raw):
                    return (self._clock.monotonic() - start) * 1000
        return None


class TcpProber:
    def __init__(self, host: str, port: int, binding: Binding, timeout_s: float, clock: Clock) -> None:
        self.target = f"tcp:{host}:{port}"
        self._host, self._port, self._binding, self._timeout_s, self._clock = host, port, binding, timeout_s, clock

    def probe(self, seq: int) -> float | None:
        address = _resolve(self._host, self._port)
        if address is None:
            return None
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            self._binding.apply(sock)
            sock.settimeout(self._timeout_s)
            start = self._clock.monotonic()
            try:
                sock.connect((address, self._port))
            except OSError:
                return None  # refused, timed out or unreachable: no answer from the service
            return (self._clock.monotonic() - start) * 1000


class HttpProber:
    def __init__(self, url: str, binding: Binding, timeout_s: float, clock: Clock) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProbeSetupError(f"probe url {url!r} is not http(s)://host[:port]/path")
        self.target = url
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._request = (f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
                         f"Host: {parts.netloc}\r\nUser-Agent: facmon-probe\r\nConnection: close\r\n\r\n").encode()
        self._binding, self._timeout_s, self._clock = binding, timeout_s, clock

    def probe(self, seq: int) -> float | None:
        address = _resolve(self._host, self._port)
        if address is None:
            return None
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain:
            self._binding.apply(plain)
            start = self._clock.monotonic()
            deadline = start + self._timeout_s
            try:
                plain.settimeout(self._timeout_s)
                plain.connect((address, self._port))
                sock = ssl.create_default_context().wrap_socket(plain, server_hostname=self._host) if self._tls \
                    else plain
                sock.sendall(self._request)
                if not _read_status_line(sock, deadline, self._clock):
                    return None
            except OSError:  # ssl.SSLError and timeouts included
                return None
            return (self._clock.monotonic() - start) * 1000


def _read_status_line(sock: socket.socket, deadline: float, clock: Clock) -> bool:
    received = b""
    while b"\r\n" not in received and len(received) < 1024:
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        chunk = sock.recv(1024)
        if not chunk:
            break
        received += chunk
    return received.startswith(b"HTTP/")


def prober_for(target: ProbeTarget, binding: Binding, timeout_s: float, clock: Clock,
               icmp_type: int | None) -> Prober:
    """The prober a configured target asks for; `icmp_type` from `icmp_socket_type()`. Method auto is
    ICMP where permitted, else a TCP connect to the target's port."""
    if target.url is not None:
        return HttpProber(target.url, binding, timeout_s, clock)
    assert target.host is not None  # the settings model guarantees host or url
    method = target.method if target.method != "auto" else ("icmp" if icmp_type is not None else "tcp")
    if method == "icmp":
        if icmp_type is None:
            raise ProbeSetupError(
                f"ICMP to {target.host} is not permitted for this process: add its group to "
                "net.ipv4.ping_group_range (sysctl -w net.ipv4.ping_group_range='0 2147483647'), run it with "
                "CAP_NET_RAW, or give the target method: tcp")
        return IcmpProber(target.host, binding, timeout_s, clock, icmp_type)
    return TcpProber(target.host, target.port, binding, timeout_s, clock)
