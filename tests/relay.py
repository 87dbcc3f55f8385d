"""A TCP relay on a free loopback port in front of a real server, for tests that must see or bend what
crosses the wire: `Relay` passes bytes through both ways and lets a subclass refuse a connection on its
first bytes (`_admit`) or watch each direction (`_watchers`); `MqttPackets` cuts a direction's bytes
into whole MQTT packets."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

from paho.mqtt.properties import MalformedPacket, VariableByteIntegers

Watcher = Callable[[bytes], None]
"""Called with each chunk of one direction of one connection, before the chunk is passed on."""


def _ignore(_data: bytes) -> None:
    return None


class Relay:
    """Accepts connections on `port` and relays each to `upstream_port` on loopback until `close`.
    A connection whose server is down is closed at once (as the server's refusal would end it)."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _admit(self, conn: socket.socket, first: bytes) -> bool:
        """Whether to relay a connection whose client sent `first` (a subclass may answer it itself)."""
        return True

    def _watchers(self) -> tuple[Watcher, Watcher]:
        """(client to server, server to client) watchers for a new relayed connection."""
        return _ignore, _ignore

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._sockets.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            first = conn.recv(4096)  # for an MQTT client: the CONNECT's first bytes
            if not first or not self._admit(conn, first):
                conn.close()
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
        except OSError:
            conn.close()
            return
        self._sockets.append(upstream)
        conn.settimeout(None)
        to_server, to_client = self._watchers()
        threading.Thread(target=self._pump, args=(upstream, conn, to_client), daemon=True).start()
        self._pump(conn, upstream, to_server, first)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, watch: Watcher, first: bytes = b"") -> None:
        try:
            data = first or source.recv(65536)
            while data:
                watch(data)
                sink.sendall(data)
                data = source.recv(65536)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for sock in self._sockets:
            sock.close()
        self._thread.join(5)


class MqttPackets:
    """One direction of an MQTT connection cut into whole packets, as its bytes arrive in pieces."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        """The (first byte, rest after the remaining length) of every packet `data` completes."""
        buffer = self._buffer
        buffer += data
        while len(buffer) > 1:
            try:
                length, length_size = VariableByteIntegers.decode(bytes(buffer[1:5]))
            except MalformedPacket:
                return  # the remaining length is not all here yet
            end = 1 + length_size + length
            if end > len(buffer):
                return
            yield buffer[0], bytes(buffer[1 + length_size:end])
            del buffer[:end]
