"""A paho-mqtt client that publishes QoS 1 messages in batches: the publishing layer's fast path
(`core.mqtt_publisher`: the bridge, the probe, the agent) and the simulators' load generator.

paho's `publish()` costs ~65 µs of Python per message (an `MQTTMessage`, an `MQTTMessageInfo`, locks,
logging, a wake-up byte and one `send()` per packet) and reads PUBACKs one packet per `select()`. At
tens of thousands of messages a second that is the limit. `BatchClient` keeps paho for everything
that is not the hot path (CONNECT with last will, TLS, keep-alive, reconnect, SUBSCRIBE, DISCONNECT)
and replaces only these:

- QoS 1 PUBLISH packets are encoded here (`encode_publish`, MQTT 3.1.1 and 5), with packet ids from
  paho's own counter (so its ids never collide with paho's), and a batch is queued as one write.
- PUBACKs of its own packet ids are counted in bulk straight from a buffered socket read; any other
  packet (CONNACK, PINGRESP, PUBACKs of messages sent through paho's `publish()`) goes through paho.

Flow control and what is kept:
- In flight: at most `window` messages sent on the current connection and not yet acknowledged, in
  `_unacked` as encoded packets. The window is the setting capped by the broker's MQTT 5 Receive
  Maximum from the CONNACK (absent: 65,535; 3.1.1 has none), so a broker that allows fewer than the
  setting (Mosquitto's default `max_inflight_messages` is 20) never has more than it allows.
- Owed a re-send: what a lost connection left in flight, in `_resend`; on the next connection these
  go first, as the window has room.
- Waiting: messages accepted beyond the window or while no connection is up, in `_waiting`, sent as
  acknowledgements make room (on paho's network thread) and, up to the window, when a connection is
  accepted.
- Pending (in flight + owed a re-send + waiting) is bounded by `max_pending`: `publish_batch` waits
  for room (the simulators: back-pressure), `offer` waits while the broker is connected and
  acknowledging, and otherwise takes only what fits (the publishing layer: a bounded queue while the
  broker is away).
- Nothing accepted is dropped: a message stays pending until its PUBACK arrives; after a reconnect
  every unacknowledged message is sent again before any waiting one, in the original order, with the
  same packet id and DUP set (the broker may then deliver it twice; that is QoS 1).

Threads: `publish_batch`, `offer`, `wait_all_acked` and `pending` from any one producer thread;
paho's network thread (`loop_start`) does the socket I/O and tops the window up. `_flow` guards
`_unacked`, `_resend`, `_waiting`, `_online` and `_window`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt import _packet as paho_packet  # CONNACK decoding, once per connection
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from core.clock import Clock
from core.mqtt_buffer import READ_CHUNK_BYTES, BufferedReadClient, plain_publish_fields
from core.mqtt_connect import apply_credentials_and_tls
from core.settings.mqtt import MqttSettings

log = logging.getLogger(__name__)

Message = tuple[str, bytes, bool]
"""(topic, payload, retain) of a QoS 1 message."""

_PUBLISH_QOS1 = 0x32
_DUP = 0x08
_PUBACK = 0x40
_MAX_WINDOW = 60_000
"""Below 65,535 ids, so a free id always exists for paho's own packets and for ours."""


class PublishStalled(RuntimeError):
    """The broker acknowledged nothing for the stall timeout while messages waited; the message says
    how many are unacknowledged and what to check."""


def remaining_length(length: int) -> bytes:
    """MQTT's variable-length integer (1-4 bytes, 7 bits each, least significant first)."""
    if length < 128:
        return bytes((length,))
    out = bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


_SHORT_LENGTHS = tuple(remaining_length(n) for n in range(16_384))
"""`remaining_length` of every length that fits in two bytes (any reading): looked up, not computed."""
_FIRST_BYTE = {retain: bytes((_PUBLISH_QOS1 | retain,)) for retain in (False, True)}


def encode_publish(topic: bytes, payload: bytes, mid: int, *, retain: bool, mqtt5: bool, dup: bool = False) -> bytes:
    """One QoS 1 PUBLISH packet as paho would write it: fixed header, topic (length-prefixed),
    packet id, (MQTT 5: an empty property list), payload. `topic` must be valid UTF-8 without
    wildcards; `mid` 1..65535."""
    body_length = 4 + len(topic) + len(payload) + (1 if mqtt5 else 0)
    first = _PUBLISH_QOS1 | (_DUP if dup else 0) | (1 if retain else 0)
    return b"".join((bytes((first,)), remaining_length(body_length), len(topic).to_bytes(2, "big"), topic,
                     mid.to_bytes(2, "big"), b"\x00" if mqtt5 else b"", payload))


def _encode_publish_fast(topic_field: bytes, properties: bytes, payload: bytes, mid: int, retain: bool) -> bytes:
    """`encode_publish` (DUP clear) with the topic already length-prefixed and the property list
    given: the per-message path of `_send`. Same bytes (tested)."""
    length = len(topic_field) + 2 + len(properties) + len(payload)
    return b"".join((_FIRST_BYTE[retain], _SHORT_LENGTHS[length] if length < 16_384 else remaining_length(length),
                     topic_field, mid.to_bytes(2, "big"), properties, payload))


def decode_publish(packet: bytes, mqtt5: bool) -> Message:
    """The message of a PUBLISH packet `encode_publish` made (to carry it over to a client of another
    protocol version)."""
    at = 1
    while packet[at] & 0x80:
        at += 1
    fields = plain_publish_fields(packet, at + 1, len(packet), mqtt5)
    if fields is None:
        raise ValueError(f"not a PUBLISH packet of this client: {packet[:40]!r}")
    topic, _mid, payload_at = fields
    return topic, packet[payload_at:], bool(packet[0] & 1)


class BatchClient(BufferedReadClient):
    """paho's `Client` plus batched QoS 1 publishing; see the module docstring. Construct it like
    paho's client, then call `configure_batching` before `connect`."""

    _clock: Clock
    _flow: threading.Condition
    _unacked: dict[int, bytes]
    """In flight: packet id -> the PUBLISH as first encoded (DUP clear), sent on the current connection
    and not yet acknowledged, in the order sent. Emptied into `_resend` when a new connection begins."""
    _resend: dict[int, bytes]
    """Owed a re-send: packet id -> the PUBLISH (DUP clear) that an earlier connection left unacknowledged,
    the next to re-send *last* (so `popitem` takes it in O(1))."""
    _waiting: deque[Message]
    """Accepted, not yet given a packet id: beyond the window, or accepted while no connection is up."""
    _window: int
    _window_setting: int
    _max_pending: int
    _online: bool
    _topics: dict[str, bytes]
    """Topic -> its PUBLISH topic field (2-byte length, UTF-8), encoded once."""
    _rx: bytes
    _rx_pos: int
    acked: int
    refused: Counter[int]
    """MQTT 5 PUBACK reason codes >= 0x80 (the broker did not accept the message), by code."""
    resent: int
    peak_unacked: int
    """The most messages ever in flight on one connection at once (never above that connection's window)."""

    @classmethod
    def for_session(cls, settings: MqttSettings, client_id: str, clock: Clock, max_inflight: int,
                    will_topic: str | None = None, will_payload: str = "") -> BatchClient:
        """An MQTT 5 client logged in as `settings` say, ready to `connect`; with a retained last will
        on `will_topic` if given."""
        client = cls(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        client.configure_batching(clock, max_inflight)
        client.reconnect_delay_set(1, 8)
        apply_credentials_and_tls(client, settings)
        if will_topic is not None:
            client.will_set(will_topic, will_payload, qos=1, retain=True)
        return client

    def disconnect_with_will(self) -> None:
        """Leave as a device that died: MQTT 5 reason 0x04 "disconnect with will message" makes the
        broker publish the last will itself."""
        self.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))

    def configure_batching(self, clock: Clock, max_inflight: int, max_pending: int | None = None) -> None:
        """`max_inflight`: messages sent and not yet acknowledged (the window); `max_pending` (at least
        the window; default: the window): messages accepted and not yet acknowledged in all."""
        self._clock = clock
        self._flow = threading.Condition()
        self._unacked = {}
        self._resend = {}
        self._waiting = deque()
        self._window_setting = max(1, min(max_inflight, _MAX_WINDOW))
        self._window = self._window_setting
        self._max_pending = max(self._window_setting, max_pending or 0)
        self._online = False
        self._topics = {}
        self._rx, self._rx_pos = b"", 0
        self.acked = 0
        self.refused = Counter()
        self.resent = 0
        self.peak_unacked = 0

    # -- producer side -------------------------------------------------------------------------------
    @property
    def window(self) -> int:
        """Unacknowledged messages allowed in flight on the current connection."""
        return self._window

    @property
    def online(self) -> bool:
        """Connected, CONNACK received, unacknowledged messages (if any) re-sent."""
        return self._online

    def pending(self) -> int:
        """Messages accepted and not yet acknowledged (in flight, owed a re-send and waiting)."""
        with self._flow:
            return self._pending()

    def _pending(self) -> int:
        return len(self._unacked) + len(self._resend) + len(self._waiting)

    def publish_batch(self, messages: Iterable[Message], stall_timeout_s: float = 60.0) -> None:
        """Publish (topic, payload, retain) messages with QoS 1, in order, each once; blocks while
        `max_pending` messages are pending, connected or not. Messages are queued for paho's network
        thread, which writes them; `wait_all_acked` waits for the broker's PUBACKs. Raises
        PublishStalled if the broker acknowledges nothing for `stall_timeout_s` while it waits."""
        batch = messages if isinstance(messages, list) else list(messages)
        if self._offer(batch, stall_timeout_s, give_up_offline=False) < len(batch):
            raise PublishStalled(
                f"the broker acknowledged nothing for {stall_timeout_s:g} s with {len(self._unacked)} "
                f"messages in flight (connected: {self._online}); is it running, reachable and not "
                "overloaded?")

    def offer(self, messages: Sequence[Message], stall_timeout_s: float = 60.0) -> int:
        """Accept (topic, payload, retain) messages for QoS 1 publishing, in order, and return how many
        were accepted (the first ones; the caller counts the rest as dropped). While the broker is
        connected and acknowledges within `stall_timeout_s`, waits for room; otherwise (no connection,
        a stalled broker) takes only what fits under `max_pending`."""
        return self._offer(messages, stall_timeout_s, give_up_offline=True)

    def _offer(self, messages: Sequence[Message], stall_timeout_s: float, *, give_up_offline: bool) -> int:
        """Accept `messages` as room comes; how many were accepted before `_wait_for_room` gave up."""
        start = 0
        while start < len(messages):
            with self._flow:
                room = self._wait_for_room(stall_timeout_s, give_up_offline=give_up_offline)
                if not room:
                    return start
                start += self._accept(messages[start:start + room])
        return start

    def publish_ahead(self, messages: Sequence[Message]) -> None:
        """Queue `messages` ahead of those waiting, whatever `max_pending` says: a connection's few
        announcements (a device's retained `online`), which must not be refused."""
        with self._flow:
            self._waiting.extendleft(reversed(messages))
            self._fill_window()

    def _wait_for_room(self, stall_timeout_s: float, *, give_up_offline: bool) -> int:
        """With `_flow` held: wait until fewer than `max_pending` messages are pending; return the room,
        0 after `stall_timeout_s` without an acknowledgement (or at once offline, if `give_up_offline`)."""
        deadline = self._clock.monotonic() + stall_timeout_s
        seen = self.acked
        while self._pending() >= self._max_pending:
            if self.acked != seen:
                seen, deadline = self.acked, self._clock.monotonic() + stall_timeout_s
            elif self._clock.monotonic() > deadline or (give_up_offline and not self._online):
                return 0
            self._flow.wait(0.05)
        return self._max_pending - self._pending()

    def _accept(self, messages: Sequence[Message]) -> int:
        """With `_flow` held and room for them: send what the window takes, keep the rest waiting (all of
        them while no connection is up: they are sent once the CONNACK tells the window)."""
        waiting = self._waiting
        if waiting or self._resend or not self._online:
            waiting.extend(messages)
            self._fill_window()
        else:
            room = self._window - len(self._unacked)
            if room >= len(messages):
                self._send(messages)
            else:
                if room > 0:
                    self._send(messages[:room])
                waiting.extend(messages[max(room, 0):])
        return len(messages)

    def _fill_window(self) -> None:
        """With `_flow` held: if a connection is up, fill the window's room, first with the messages owed
        a re-send, then with waiting ones."""
        if not self._online:
            return
        room = self._window - len(self._unacked)
        if room > 0 and self._resend:
            room -= self._send_again(room)
        waiting = self._waiting
        room = min(room, len(waiting))
        if room > 0:
            self._send([waiting.popleft() for _ in range(room)])

    def _send_again(self, room: int) -> int:
        """With `_flow` held and a connection up: re-send up to `room` of the messages owed a re-send,
        oldest first, with their packet ids and DUP set (the broker may have had them); how many."""
        resend, unacked = self._resend, self._unacked
        count = min(room, len(resend))
        packets = []
        for _ in range(count):
            mid, packet = resend.popitem()
            unacked[mid] = packet
            packets.append(bytes((packet[0] | _DUP,)) + packet[1:])
        self.resent += count
        self._write(packets)
        return count

    def _send(self, messages: Sequence[Message]) -> None:
        """With `_flow` held and a connection up: give `messages` packet ids, keep them in flight and
        queue them as one write."""
        properties = b"\x00" if self._protocol == mqtt.MQTTv5 else b""
        topics, unacked = self._topics, self._unacked
        packets = []
        with self._mid_generate_mutex:  # held for the batch: ids taken in one pass, as _mid_generate would
            mid = self._last_mid
            for topic, payload, retain in messages:
                topic_field = topics.get(topic)
                if topic_field is None:
                    if len(topics) > 100_000:
                        topics.clear()  # bounded: malformed-topic bursts must not grow it forever
                    encoded = topic.encode()
                    topic_field = topics[topic] = len(encoded).to_bytes(2, "big") + encoded
                mid = self._free_mid_after(mid)
                packet = _encode_publish_fast(topic_field, properties, payload, mid, retain)
                unacked[mid] = packet
                packets.append(packet)
            self._last_mid = mid
        self._write(packets)

    def _write(self, packets: list[bytes]) -> None:
        """With `_flow` held and a connection up: queue `packets`, now in `_unacked`, as one write.
        (Queued only under `_flow` while `_online`, so never before the CONNECT of a new connection.)"""
        self.peak_unacked = max(self.peak_unacked, len(self._unacked))
        self._queue_publishes(b"".join(packets))

    def _mid_generate(self) -> int:
        """The next packet id from paho's counter that neither we nor paho have in flight (paho's
        publish() and subscribe() call this too, so the two never collide)."""
        with self._mid_generate_mutex:
            mid = self._free_mid_after(self._last_mid)
            while mid in self._resend:  # still ours, owed a re-send
                mid = self._free_mid_after(mid)
            self._last_mid = mid
            return mid

    def _free_mid_after(self, mid: int) -> int:
        """With `_mid_generate_mutex` held: the first packet id after `mid` (wrapping 65,535 -> 1)
        that neither we nor paho have in flight. Ids owed a re-send are not looked at: `_send` runs only
        when none are owed (they go first), and `_mid_generate` skips them itself."""
        for _ in range(65_536):
            mid = mid + 1 if mid < 65_535 else 1
            if mid not in self._unacked and mid not in self._out_messages:
                return mid
        raise RuntimeError("all 65,535 MQTT packet ids are in flight; lower max_inflight")

    def _queue_publishes(self, packets: bytes) -> None:
        # Queued as one write. qos=1 keeps paho's writer from treating it as a QoS 0 publish of its own
        # (which would fire on_publish and touch a message-info object we do not have).
        self._packet_queue(mqtt.PUBLISH, packets, 0, 1)

    def wait_all_acked(self, timeout_s: float) -> int:
        """Wait until every message accepted so far is acknowledged, at most `timeout_s`.
        Returns how many are still pending (0: all)."""
        deadline = self._clock.monotonic() + timeout_s
        with self._flow:
            while self._pending() and self._clock.monotonic() < deadline:
                self._flow.wait(0.05)
            return self._pending()

    def take_over(self, other: BatchClient) -> None:
        """Take every message `other` still holds (its connection gave way to this client's, e.g. MQTT 5
        refused for 3.1.1), ahead of this client's own, in `other`'s order; `other` accepts nothing
        more. `other`'s network loop must be stopped."""
        with other._flow:
            mqtt5 = other._protocol == mqtt.MQTTv5
            packets = [*other._unacked.values(), *reversed(other._resend.values())]  # sent before the rest
            carried = [decode_publish(packet, mqtt5) for packet in packets] + list(other._waiting)
            other._unacked, other._resend, other._waiting, other._max_pending = {}, {}, deque(), 0
        self.publish_ahead(carried)

    # -- network thread ---------------------------------------------------------------------------------
    def reconnect(self) -> mqtt.MQTTErrorCode:
        # Before paho clears its output queue and writes CONNECT: from now until the CONNACK nothing of ours
        # is queued. What the old connection left in flight (queued or sent, perhaps received) is owed a
        # re-send, ahead of anything still owed from before it: that connection re-sent in order, so what
        # it had in flight came first.
        with self._flow:
            self._online = False
            if self._unacked:
                self._resend = {**self._resend, **dict(reversed(self._unacked.items()))}
                self._unacked = {}
        self.drop_buffered_input()
        return super().reconnect()

    def _handle_connack(self) -> mqtt.MQTTErrorCode:
        connack = paho_packet.decode_connack(self._in_packet["command"], self._in_packet["packet"], self._protocol)
        rc = super()._handle_connack()
        if self._state != mqtt._ConnectionState.MQTT_CS_CONNECTED:
            return rc
        # MQTT 5: the broker's receive maximum (absent: 65,535); 3.1.1 has none, the setting rules.
        broker_max = getattr(connack.properties, "ReceiveMaximum", 65_535) if connack.properties else 65_535
        with self._flow:
            self._window = max(1, min(self._window_setting, broker_max))
            self._online = True
            self._fill_window()
            self._flow.notify_all()
        return rc

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        """Read what the socket has and handle all of it: runs of PUBACKs for our ids at once, anything
        else through paho's packet reader. (paho reads one packet per `select()` when its own
        bookkeeping holds no messages, which is always the case here.)"""
        if self._sock is None:
            return mqtt.MQTTErrorCode.MQTT_ERR_NO_CONN
        if self._rx_pos >= len(self._rx):
            try:
                data = mqtt.Client._sock_recv(self, READ_CHUNK_BYTES)
            except BlockingIOError:
                return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
            except OSError:
                return self._loop_rc_handle(mqtt.MQTTErrorCode.MQTT_ERR_CONN_LOST)
            if not data:
                return self._loop_rc_handle(mqtt.MQTTErrorCode.MQTT_ERR_CONN_LOST)
            self._rx, self._rx_pos = data, 0
            with self._msgtime_mutex:  # paho's keep-alive bookkeeping, on paho's own clock
                self._last_bytes_received = mqtt.time_func()
        for _ in range(len(self._rx) + 1):  # bounded: each pass consumes at least one byte or returns
            if self._in_packet["command"] == 0:
                self._take_pubacks()
                if self._rx_pos >= len(self._rx):
                    return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
            rc = self._packet_read()
            if self._sock is None:
                return mqtt.MQTTErrorCode.MQTT_ERR_NO_CONN
            if rc == mqtt.MQTTErrorCode.MQTT_ERR_AGAIN:
                return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
            if rc > 0:
                return self._loop_rc_handle(rc)
            if self._rx_pos >= len(self._rx):
                return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def _take_pubacks(self) -> None:
        """Consume the buffered run of whole PUBACKs for our ids (success, or MQTT 5 with a reason
        code), then top the window up from the waiting messages. Stops at anything else, which paho's
        reader then handles."""
        buf, pos, end = self._rx, self._rx_pos, len(self._rx)
        with self._flow:
            unacked = self._unacked
            before = len(unacked)
            while pos + 4 <= end and buf[pos] == _PUBACK and 2 <= buf[pos + 1] < 128:
                length = buf[pos + 1]
                mid = (buf[pos + 2] << 8) | buf[pos + 3]
                if pos + 2 + length > end or mid not in unacked:
                    break  # split across reads, or paho's own message: paho's reader handles it
                if length > 2 and buf[pos + 4] >= 0x80:
                    self.refused[buf[pos + 4]] += 1
                del unacked[mid]
                pos += 2 + length
            taken = before - len(unacked)
            if taken:
                self._settled(taken)
        self._rx_pos = pos

    def _handle_pubackcomp(self, cmd: Literal["PUBACK", "PUBCOMP"]) -> mqtt.MQTTErrorCode:
        # A PUBACK of ours that paho's reader got whole (it was split across two socket reads).
        packet = self._in_packet["packet"]
        if cmd == "PUBACK" and len(packet) >= 2:
            mid = (packet[0] << 8) | packet[1]
            with self._flow:
                if mid in self._unacked:
                    if len(packet) > 2 and packet[2] >= 0x80:
                        self.refused[packet[2]] += 1
                    del self._unacked[mid]
                    self._settled(1)
                    return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._handle_pubackcomp(cmd)

    def _settled(self, acknowledged: int) -> None:
        """With `_flow` held: `acknowledged` of ours left the window; top it up and wake the producers."""
        self.acked += acknowledged
        if self._resend or self._waiting:
            self._fill_window()
        self._flow.notify_all()
