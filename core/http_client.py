"""Requests to one HTTP(S) server over kept-alive HTTP/1.1 connections, one per calling thread,
on plain sockets.

Why not urllib3 or http.client: in facmon's environment the `urllib3` module is urllib3-future
(grafana-client needs niquests, which replaces urllib3 with its fork), whose HTTP/1.1 path runs
through h11 and a background thread watching idle connections; and `http.client` parses every
answer's headers with the `email` package and wraps the socket in a new file object per answer. A
small InfluxDB write cost 540 µs of CPU through urllib3-future, 213 µs through http.client and
about 100 µs here (benchmarks/README.md, issue 16): at a park's trickle the collector's writes are
a good part of its CPU. What facmon sends is small and known (InfluxDB's /write and /query), so the
subset of HTTP/1.1 it needs is small too: a request with a body and Content-Length; an answer with
Content-Length, chunked or read-to-close body; `Connection: close` honoured.

A connection that the server closed while it sat idle shows up only when it is used again; such a
request is sent once more on a new connection. That is safe for what facmon sends (InfluxDB writes
overwrite identical points, queries read).
"""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from urllib.parse import urlsplit

CONNECT_TIMEOUT_MAX_S = 5.0
MAX_LINE_BYTES = 65_536
MAX_HEADERS = 100
MAX_BODY_BYTES = 256 * 1024 * 1024
"""Larger answers are refused rather than held: facmon's queries are bounded far below this."""


class HttpUnreachable(Exception):
    """The request got no usable answer: connection refused, reset, timed out, TLS failed, or the
    answer was not HTTP/1.x. The message names the server and the cause."""


class _StaleConnection(Exception):
    """A kept-alive connection was closed by the server before it answered anything."""


def basic_auth_header(username: str, password: str | None) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


class _Connection:
    """One socket and its buffered reader."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.used = False

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class KeptAliveHttp:
    """`request(method, target, body, headers) -> (status, body)` against `base_url` (scheme, host,
    port and an optional path prefix). Thread-safe: each thread has its own connection."""

    def __init__(self, base_url: str, timeout_s: float, verify_tls: bool = True) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._host_header = parts.netloc.rpartition("@")[2]
        self._prefix = parts.path.rstrip("/")
        self._timeout_s = timeout_s
        self._tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._tls = ssl.create_default_context()
            if not verify_tls:
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE
        self._local = threading.local()
        self._all: set[_Connection] = set()
        self._all_lock = threading.Lock()

    def request(self, method: str, target: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """Send `method` to `target` (a path with its query, after the base URL's own path) and read the
        whole answer. Raises `HttpUnreachable` when there is none."""
        head = [f"{method} {self._prefix}{target} HTTP/1.1\r\nHost: {self._host_header}\r\n"
                f"Content-Length: {len(body)}\r\n"]
        head.extend(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head.append("\r\n")
        message = "".join(head).encode("latin-1") + body
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                return self._exchange(conn, message, method)
            except _StaleConnection:
                self._drop(conn)
            except (OSError, ValueError) as err:
                self._drop(conn)
                raise self._unreachable(err) from None
        conn = self._connect()
        try:
            return self._exchange(conn, message, method)
        except (OSError, ValueError, _StaleConnection) as err:
            self._drop(conn)
            raise self._unreachable(err) from None

    def close(self) -> None:
        """Close every thread's connection; a later request opens a new one."""
        with self._all_lock:
            conns, self._all = self._all, set()
        for conn in conns:
            conn.close()

    def _exchange(self, conn: _Connection, message: bytes, method: str) -> tuple[int, bytes]:
        reused, conn.used = conn.used, True
        try:
            conn.sock.sendall(message)
            status_line = conn.reader.readline(MAX_LINE_BYTES + 1)
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            if reused:
                raise _StaleConnection() from None
            raise
        if not status_line:
            if reused:
                raise _StaleConnection()
            raise ValueError("the server closed the connection without an answer")
        version, _, rest = status_line.decode("latin-1").partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ValueError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
        status = int(code)
        length: int | None = None
        chunked = False
        keep_alive = version == "HTTP/1.1"
        for _ in range(MAX_HEADERS + 1):
            line = conn.reader.readline(MAX_LINE_BYTES + 1)
            if line in (b"\r\n", b"\n"):
                break
            if not line or len(line) > MAX_LINE_BYTES:
                raise ValueError("the answer's headers were cut short or too long")
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection":
                keep_alive = value.lower() != "close" if keep_alive else value.lower() == "keep-alive"
        else:
            raise ValueError(f"more than {MAX_HEADERS} headers in the answer")
        if status in (204, 304) or 100 <= status < 200 or method == "HEAD":
            data = b""
        elif chunked:
            data = self._read_chunked(conn)
        elif length is not None:
            if length > MAX_BODY_BYTES:
                raise ValueError(f"an answer of {length} bytes is larger than {MAX_BODY_BYTES}")
            data = self._read_exactly(conn, length)
        else:
            data = conn.reader.read(MAX_BODY_BYTES)
            keep_alive = False
        if not keep_alive:
            self._drop(conn)
        return status, data

    @staticmethod
    def _read_exactly(conn: _Connection, count: int) -> bytes:
        data = conn.reader.read(count)
        if len(data) != count:
            raise ValueError(f"the answer's body was cut short ({len(data)} of {count} bytes)")
        return data

    def _read_chunked(self, conn: _Connection) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = conn.reader.readline(MAX_LINE_BYTES + 1)
            size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
            if size == 0:
                while conn.reader.readline(MAX_LINE_BYTES + 1) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                raise ValueError(f"an answer larger than {MAX_BODY_BYTES} bytes")
            parts.append(self._read_exactly(conn, size))
            self._read_exactly(conn, 2)  # the chunk's CRLF

    def _connect(self) -> _Connection:
        try:
            sock = socket.create_connection((self._host, self._port), min(self._timeout_s, CONNECT_TIMEOUT_MAX_S))
        except OSError as err:
            raise self._unreachable(err) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
            sock.settimeout(self._timeout_s)
        except OSError as err:
            sock.close()
            raise self._unreachable(err) from None
        conn = _Connection(sock)
        self._local.conn = conn
        with self._all_lock:
            self._all.add(conn)
        return conn

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._all_lock:
            self._all.discard(conn)

    def _unreachable(self, err: BaseException) -> HttpUnreachable:
        if isinstance(err, ssl.SSLCertVerificationError):
            return HttpUnreachable(f"{self.base_url}: TLS certificate not trusted ({err.verify_message}); install "
                                   "its CA in the system's trust store, or set verify_tls false for a self-signed one")
        if isinstance(err, TimeoutError):
            return HttpUnreachable(f"{self.base_url}: no answer within {self._timeout_s:g} s")
        return HttpUnreachable(f"{self.base_url}: {type(err).__name__}: {err}")
