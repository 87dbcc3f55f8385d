"""Requests to one HTTP(S) server over kept-alive connections, one per calling thread, on the
standard library's `http.client`.

Why not urllib3: in facmon's environment the `urllib3` module is urllib3-future (grafana-client
needs niquests, which replaces urllib3 with its fork), whose HTTP/1.1 path runs through h11 and a
background thread watching idle connections. A small write to InfluxDB cost 656-695 µs of CPU
through it against 288-298 µs through `http.client` (benchmarks/README.md, issue 16): at a park's
trickle the collector's writes are most of its CPU.

A connection that the server closed while it sat idle shows up only when it is used again; such a
request is sent once more on a new connection. That is safe for what facmon sends (InfluxDB writes
overwrite identical points, queries read).
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import threading
from urllib.parse import urlsplit

CONNECT_TIMEOUT_MAX_S = 5.0

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
"""What a request on a connection the server closed meanwhile raises: worth one fresh attempt."""


class HttpUnreachable(Exception):
    """The request got no answer: connection refused, reset, timed out, TLS failed, or the answer was
    not HTTP. The message names the server and the cause."""


def basic_auth_header(username: str, password: str | None) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


class KeptAliveHttp:
    """`request(method, target, body, headers) -> (status, body)` against `base_url` (scheme, host,
    port and an optional path prefix). Thread-safe: each thread has its own connection."""

    def __init__(self, base_url: str, timeout_s: float, verify_tls: bool = True) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout_s = timeout_s
        self._tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._tls = ssl.create_default_context()
            if not verify_tls:
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._all_lock = threading.Lock()

    def request(self, method: str, target: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """Send `method` to `target` (a path with its query, after the base URL's own path) and read the
        whole answer. Raises `HttpUnreachable` when there is none."""
        url = self._prefix + target
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                return self._exchange(conn, method, url, body, headers)
            except _STALE:
                self._drop(conn)
            except (OSError, http.client.HTTPException) as err:
                self._drop(conn)
                raise self._unreachable(err) from None
        conn = self._connect()
        try:
            return self._exchange(conn, method, url, body, headers)
        except (OSError, http.client.HTTPException) as err:
            self._drop(conn)
            raise self._unreachable(err) from None

    def close(self) -> None:
        """Close every thread's connection; a later request opens a new one."""
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()

    def _exchange(self, conn: http.client.HTTPConnection, method: str, url: str, body: bytes | None,
                  headers: dict[str, str] | None) -> tuple[int, bytes]:
        conn.request(method, url, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        if response.will_close:
            self._drop(conn)
        return response.status, data

    def _connect(self) -> http.client.HTTPConnection:
        connect_timeout = min(self._timeout_s, CONNECT_TIMEOUT_MAX_S)
        conn: http.client.HTTPConnection
        if self._tls is not None:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=connect_timeout, context=self._tls)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=connect_timeout)
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            raise self._unreachable(err) from None
        assert conn.sock is not None
        conn.sock.settimeout(self._timeout_s)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._local.conn = conn
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._all_lock:
            if conn in self._all:
                self._all.remove(conn)

    def _unreachable(self, err: BaseException) -> HttpUnreachable:
        if isinstance(err, ssl.SSLCertVerificationError):
            return HttpUnreachable(f"{self.base_url}: TLS certificate not trusted ({err.verify_message}); install "
                                   "its CA in the system's trust store, or set verify_tls false for a self-signed one")
        if isinstance(err, socket.timeout | TimeoutError):
            return HttpUnreachable(f"{self.base_url}: no answer within {self._timeout_s:g} s")
        return HttpUnreachable(f"{self.base_url}: {type(err).__name__}: {err}")
