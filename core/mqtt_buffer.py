"""A paho-mqtt 2.x client that reads its socket in large chunks.

paho reads each packet header a byte at a time, one recv() system call each; at tens of thousands of
packets a second those calls dominate. `BufferedReadClient` reads up to 256 KiB at once and serves
paho's small reads from that buffer (paho already handles short reads). The simulators (receiving
PUBACKs) build on it; `PublishReaderClient` adds a direct path for QoS 1 PUBLISHes, on which the
collector and every subscriber of the shared layer (`core.mqtt_subscriber`) receive. paho stays
pinned (tests/unit/core/test_paho_private_names.py).
"""

from __future__ import annotations

from collections.abc import Callable

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


PublishesHandler = Callable[[list[str], list[bytes], list[int]], None]
_QOS1_PUBLISH, _QOS_RETAIN_DUP_MASK = 0x32, 0xF6


def plain_publish_fields(packet: bytes | bytearray, at: int, end: int,
                          has_properties_length: bool) -> tuple[str, int, int] | None:
    """(topic, packet id, where the payload starts) of a QoS 1 PUBLISH whose variable header starts at
    `at` and which ends at `end`; None for anything unusual — too short, an empty topic (an MQTT 5
    topic alias), MQTT 5 properties (user properties, …), a topic that is not UTF-8 — which paho's own
    handler then reads and reports its way."""
    if at + 2 > end:
        return None
    topic_end = at + 2 + (packet[at] << 8 | packet[at + 1])
    payload_at = topic_end + 2 + has_properties_length
    if topic_end == at + 2 or payload_at > end or (has_properties_length and packet[topic_end + 2] != 0):
        return None
    try:
        topic = bytes(packet[at + 2:topic_end]).decode()
    except UnicodeDecodeError:
        return None
    return topic, packet[topic_end] << 8 | packet[topic_end + 1], payload_at


class PublishReaderClient(BufferedReadClient):
    """A subscriber's paho client: chunked socket reads (BufferedReadClient), a direct path for QoS 1
    PUBLISHes and one write for a batch's PUBACKs. The collector drives it with its own loop; the
    shared subscription layer (`core.mqtt_subscriber`) with paho's thread, which `loop_read` and
    `reconnect` below make safe for buffered input."""

    on_qos1_publishes: PublishesHandler | None = None
    """If set, QoS 1 PUBLISHes without properties go straight here as (topics, payloads, packet ids),
    skipping paho's per-packet reading, its message objects and its callback matching (each user
    subscribes to one handler). The caller acknowledges (`queue_pubacks`): no PUBACK is sent here."""

    def _packet_read(self) -> mqtt.MQTTErrorCode:
        """paho reads a packet with four or more calls and dict updates, then builds an MQTT 5
        `Properties` object and a message object for it: ~30 µs of the collector's CPU per message
        in all. Between packets (paho holds no partial one), every complete QoS 1 PUBLISH already in
        the read buffer is taken here in one loop instead; anything else — another packet type,
        properties, a packet cut by the end of the buffer — is left to paho's own reader."""
        if (self.on_qos1_publishes is not None and self._in_packet["command"] == 0 and self._manual_ack
                and self._rx_pos < len(self._rx) and self._take_buffered_publishes()):
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
            return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._packet_read()

    def _take_buffered_publishes(self) -> int:
        """Decode the complete QoS 1 PUBLISHes at the read position; returns how many were handed on."""
        rx, pos, end = self._rx, self._rx_pos, len(self._rx)
        has_properties_length = self._protocol == mqtt.MQTTv5
        topics: list[str] = []
        payloads: list[bytes] = []
        mids: list[int] = []
        while pos < end and rx[pos] & _QOS_RETAIN_DUP_MASK == _QOS1_PUBLISH:
            at, length, shift = pos + 1, 0, 0
            while at < end and shift <= 21:  # remaining length: at most 4 bytes of 7 bits
                byte = rx[at]
                at += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
            else:
                break  # cut by the end of the buffer, or malformed: paho's reader decides
            packet_end = at + length
            fields = plain_publish_fields(rx, at, packet_end, has_properties_length) if packet_end <= end else None
            if fields is None:
                break
            topic, mid, payload_at = fields
            topics.append(topic)
            mids.append(mid)
            payloads.append(rx[payload_at:packet_end])
            pos = packet_end
        if mids:
            self._rx_pos = pos
            self.on_qos1_publishes(topics, payloads, mids)
        return len(mids)

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        """A QoS 1 PUBLISH read by paho's own reader (one cut by the end of a read): decoded here
        rather than through paho's `Properties` and message objects, unless it is unusual."""
        header = self._in_packet["command"]
        if (header & 0x06) != 0x02 or not self._manual_ack or self.on_qos1_publishes is None:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        fields = plain_publish_fields(packet, 0, len(packet), self._protocol == mqtt.MQTTv5)
        if fields is None:
            return super()._handle_publish()
        topic, mid, payload_at = fields
        self.on_qos1_publishes([topic], [bytes(packet[payload_at:])], [mid])
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def queue_pubacks(self, mids: list[int]) -> None:
        """Queue the PUBACKs of `mids`, in order, as one write. paho's `ack()` queues each PUBACK as its
        own packet with its own wake-up and send() calls: two system calls per message. A PUBACK with
        reason "success" is the same 4 bytes in MQTT 3.1.1 and 5 (the reason code may be omitted)."""
        pubacks = b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in mids)
        self._packet_queue(mqtt.PUBACK, pubacks, 0, 0)



    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        """paho's read, then the rest of what the buffer already holds: `select()` cannot see bytes
        read from the socket but not yet handled, so paho's own loop would leave them waiting."""
        rc = super().loop_read(max_packets)
        for _ in range(len(self._rx) + 1):  # bounded: each pass consumes at least one packet
            if rc != mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS or self._sock is None or not self.has_buffered_input():
                break
            rc = super().loop_read(1)
        return rc

    def reconnect(self) -> mqtt.MQTTErrorCode:
        self.drop_buffered_input()  # bytes of the connection that is gone
        return super().reconnect()
