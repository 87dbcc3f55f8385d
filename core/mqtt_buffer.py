"""A paho-mqtt 2.x client that reads its socket in large chunks.

paho reads each packet header a byte at a time, one recv() system call each; at tens of thousands of
packets a second those calls dominate. `BufferedReadClient` reads up to 256 KiB at once and serves
paho's small reads from that buffer (paho already handles short reads). The collector (receiving
PUBLISHes) and the simulators (receiving PUBACKs) both build on it; paho stays pinned below 3.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt

READ_CHUNK_BYTES = 262_144


class BufferedReadClient(mqtt.Client):
    _rx: bytes = b""
    _rx_pos: int = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rx_pos >= len(self._rx):
            data = super()._sock_recv(READ_CHUNK_BYTES)
            if not data:
                return data
            self._rx, self._rx_pos = data, 0
        chunk = self._rx[self._rx_pos:self._rx_pos + bufsize]
        self._rx_pos += len(chunk)
        return chunk

    def has_buffered_input(self) -> bool:
        """True while bytes already read from the socket wait to be handled (select() cannot see them)."""
        return self._rx_pos < len(self._rx)

    def drop_buffered_input(self) -> None:
        """Forget buffered bytes: they belong to a connection that is gone."""
        self._rx, self._rx_pos = b"", 0
