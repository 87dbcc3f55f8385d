"""The collector's subscription: the only module of the collector that imports paho-mqtt.

A persistent session (MQTT 5 `clean_start=False` + session expiry; 3.1.1 `clean_session=False`) with
QoS 1 subscriptions and manual acknowledgement: the broker keeps what arrives while we are away and
re-sends whatever we did not acknowledge. paho's types stay here; the rest of the collector sees
`InboundBatch` values and calls `ack`.

Lifecycle: `poll()` from one thread only (it runs paho's network loop, connects and reconnects with
backoff); `ack()` and `close()` from that same thread. Messages are handed to `on_messages` inside
`poll()`, in the order the broker sent them.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
from collections.abc import Callable, Sequence
from typing import NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from core.clock import Clock
from core.contract import reading_subscription, status_subscription
from core.mqtt_buffer import PublishReaderClient
from core.mqtt_connect import apply_credentials_and_tls, subscriptions_granted
from core.settings.collector import CollectorSessionSettings
from core.settings.mqtt import MqttSettings

log = logging.getLogger("facmon.collector.mqtt")


# NamedTuples rather than frozen dataclasses: built per batch of messages on the hot path, and a
# frozen dataclass's __init__ (object.__setattr__ per field) measured several times slower.
class AckRun(NamedTuple):
    """Packet ids to acknowledge, in order, and the connection that delivered them: an ack is only
    valid on that connection."""

    connection: int
    mids: list[int]


class InboundBatch(NamedTuple):
    """Messages in the order the broker sent them: usually every complete QoS 1 PUBLISH of one socket
    read (hundreds), sometimes one message."""

    topics: list[str]
    payloads: list[bytes]
    ack: AckRun | None
    """None for QoS 0 messages, which need no acknowledgement."""

    def part(self, start: int, stop: int | None = None) -> InboundBatch:
        """Messages `start` to `stop` (as a slice), with their acks."""
        ack = None if self.ack is None else AckRun(self.ack.connection, self.ack.mids[start:stop])
        return InboundBatch(self.topics[start:stop], self.payloads[start:stop], ack)


GATHER_BYTES = 65_536
"""A batch worth reading at once (~200 readings): `gather` stops lingering when this much waits."""


class MqttSource:
    def __init__(self, settings: MqttSettings, session: CollectorSessionSettings,
                 on_messages: Callable[[InboundBatch], None], clock: Clock,
                 on_connection_change: Callable[[bool], None] | None = None) -> None:
        self._settings = settings
        self._session = session
        self._on_messages = on_messages
        self._on_connection_change = on_connection_change
        self._clock = clock
        self._protocol = mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311
        self._client = self._new_client()
        self._connection = 0
        self._connected = False
        self._subscribed = False
        self._closing = False
        self._socket_open = False
        self._backoff_s = settings.reconnect_min_s
        self._next_attempt = 0.0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self.last_error: str | None = None
        self.connected_since = 0.0
        """Wall-clock time the current (or last) connection was made."""

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def subscribed(self) -> bool:
        """True once the broker confirmed the subscriptions on the current connection."""
        return self._subscribed

    @property
    def protocol_name(self) -> str:
        return "5" if self._protocol == mqtt.MQTTv5 else "3.1.1"

    # -- client set-up ------------------------------------------------------------------------------
    def _new_client(self) -> PublishReaderClient:
        s = self._settings
        v5 = self._protocol == mqtt.MQTTv5
        self._client_protocol = self._protocol
        client = PublishReaderClient(mqtt.CallbackAPIVersion.VERSION2, client_id=self._session.client_id,
                                 protocol=self._protocol, clean_session=None if v5 else False, manual_ack=True,
                                 reconnect_on_failure=False)
        apply_credentials_and_tls(client, s)
        client.max_inflight_messages_set(self._session.receive_maximum)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_qos1_publishes = self._handle_qos1_publishes
        client.on_subscribe = self._handle_subscribe
        # Registering a write callback stops paho from flushing the socket after every queued packet:
        # `ack` queues a whole group commit's PUBACKs, then writes them with one loop_write().
        client.on_socket_register_write = self._ignore_socket_event
        return client

    def _connect_properties(self) -> Properties | None:
        if self._protocol != mqtt.MQTTv5:
            return None
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session.session_expiry_s
        props.ReceiveMaximum = self._session.receive_maximum
        return props

    def subscriptions(self) -> list[str]:
        topics = [reading_subscription(), status_subscription()]
        group = self._session.shared_group
        if group and self._protocol == mqtt.MQTTv5:
            return [f"$share/{group}/{t}" for t in topics]
        return topics

    # -- paho callbacks (run inside poll) ----------------------------------------------------------------
    def _handle_connect(self, client: mqtt.Client, _userdata: object, flags: mqtt.ConnectFlags,
                        reason: mqtt.ReasonCode, _props: Properties | None) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            if (self._protocol == mqtt.MQTTv5 and self._settings.fallback_to_311
                    and reason.value in (0x84, 1)):  # unsupported protocol version
                log.warning("broker does not speak MQTT 5; falling back to 3.1.1", extra={"broker": self._where()})
                self._protocol = mqtt.MQTTv311
            else:
                log.error("mqtt connection refused", extra={"reason": str(reason), "broker": self._where()})
            return
        self._connection += 1
        self._connected = True
        self.connected_since = self._clock.now()
        self._backoff_s = self._settings.reconnect_min_s
        self.last_error = None
        # Subscribing again on a resumed session is harmless and covers a broker that lost it.
        if self._protocol == mqtt.MQTTv5:
            client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.subscriptions()])
        else:
            client.subscribe([(t, 1) for t in self.subscriptions()])
        log.info("mqtt connected", extra={"broker": self._where(), "protocol": self.protocol_name,
                                          "session_present": bool(flags.session_present)})
        if self._on_connection_change:
            self._on_connection_change(True)

    def _handle_disconnect(self, _client: mqtt.Client, _userdata: object, _flags: mqtt.DisconnectFlags,
                           reason: mqtt.ReasonCode, _props: Properties | None) -> None:
        self._mark_lost(f"disconnected: {reason}")

    @staticmethod
    def _ignore_socket_event(*_args: object) -> None:
        return

    def _handle_subscribe(self, _client: mqtt.Client, _userdata: object, _mid: int,
                          reasons: list[mqtt.ReasonCode], _props: Properties | None) -> None:
        self._subscribed = subscriptions_granted(reasons, self.subscriptions(), log)

    def _handle_qos1_publishes(self, topics: list[str], payloads: list[bytes], mids: list[int]) -> None:
        self._on_messages(InboundBatch(topics, payloads, AckRun(self._connection, mids)))

    def _handle_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        ack = AckRun(self._connection, [message.mid]) if message.qos > 0 else None
        self._on_messages(InboundBatch([message.topic], [message.payload], ack))

    # -- driving ---------------------------------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    def _mark_lost(self, why: str) -> None:
        was_connected = self._connected
        self._connected = False
        self._subscribed = False
        self._socket_open = False
        self._client.drop_buffered_input()
        self.last_error = why
        self._next_attempt = self._clock.monotonic() + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, self._settings.reconnect_max_s)
        if was_connected and not self._closing:
            log.warning("mqtt connection lost", extra={"broker": self._where(), "why": why})
            if self._on_connection_change:
                self._on_connection_change(False)

    def _try_connect(self) -> None:
        if self._clock.monotonic() < self._next_attempt:
            return
        if self._protocol != self._client_protocol:
            self._client = self._new_client()
        # 3.1.1 takes its persistent session from clean_session=False at construction instead.
        clean_start = False if self._protocol == mqtt.MQTTv5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY
        try:
            self._client.connect(self._settings.host, self._settings.port, self._settings.keepalive_s,
                                 clean_start=clean_start, properties=self._connect_properties())
            self._socket_open = True
        except (OSError, ValueError) as err:
            self._mark_lost(f"cannot connect to {self._where()}: {err}")

    def poll(self, timeout_s: float) -> None:
        """Run the network loop for up to `timeout_s` (less when input is waiting); connect or
        reconnect when due. Never raises for network trouble: it is logged and retried with backoff."""
        if not self._socket_open:
            self._try_connect()
            if not self._socket_open:
                self._clock.sleep(min(timeout_s, max(self._next_attempt - self._clock.monotonic(), 0.0)))
                return
        client = self._client
        deadline = self._clock.monotonic() + timeout_s
        rc = client.loop(timeout_s)
        # Serve what is already buffered before waiting on the socket again, but return by the
        # deadline: the caller's group commit (and so the broker's flow of messages) waits on us.
        while rc == mqtt.MQTT_ERR_SUCCESS and client.has_buffered_input():
            rc = client.loop_read()
            if self._clock.monotonic() >= deadline:
                break
        if rc != mqtt.MQTT_ERR_SUCCESS and self._socket_open:
            self._mark_lost(f"network loop: {mqtt.error_string(rc)}")

    def gather(self, idle_s: float, linger_s: float) -> float | None:
        """Wait up to `idle_s` for input; once some arrives, wait `linger_s` more (less once GATHER_BYTES
        wait), then run the network loop once over everything that came meanwhile. Returns when the
        input arrived (the clock's monotonic time), or None if none came. At a trickle this is one
        wake-up, one read and one batch for what `linger_s` brings instead of one each per message
        (a message read alone, with the CPU's caches cold from the wait, cost ~230 µs of the
        collector's CPU: benchmarks/README.md). Anything unusual (not connected, bytes already read
        or waiting in TLS, output to send) takes `poll(idle_s)` instead, and None is returned."""
        client = self._client
        sock = client.socket()
        if (not self._socket_open or sock is None or client.has_buffered_input() or client.want_write()
                or (hasattr(sock, "pending") and sock.pending())):
            self.poll(idle_s)
            return None
        arrived_at = None
        try:
            readable = select.select([sock, self._wake_r], [], [], idle_s)[0]
            if self._wake_r in readable:
                self._wake_r.recv(4096)
            elif readable:
                arrived_at = self._clock.monotonic()
                # The kernel wakes us before `linger_s` once GATHER_BYTES wait: a burst or a busy fleet
                # is read as soon as it makes a batch worth reading, a trickle when its linger ends.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, GATHER_BYTES)
                select.select([sock, self._wake_r], [], [], linger_s)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
        except (OSError, ValueError):  # the socket closed under us: the network loop below reports it
            pass
        if arrived_at is None:
            self.poll(0.0)
            return None
        # Input is waiting and no output is: read it without paho's whole loop (another select and the
        # write pass, a noticeable part of a trickle's CPU); its keep-alive check still runs.
        rc = client.loop_read()
        while rc == mqtt.MQTT_ERR_SUCCESS and client.has_buffered_input():
            rc = client.loop_read()
        if rc == mqtt.MQTT_ERR_SUCCESS:
            rc = client.loop_misc()
        if rc != mqtt.MQTT_ERR_SUCCESS and self._socket_open:
            self._mark_lost(f"network loop: {mqtt.error_string(rc)}")
        return arrived_at

    def wake(self) -> None:
        """End a `gather` waiting for input now (the collector is stopping). Safe from any thread and
        from a signal handler."""
        # Full: a wake-up is already pending; closed: the source is, so nothing waits.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"w")

    def ack(self, runs: Sequence[AckRun]) -> int:
        """Acknowledge, in order, the messages of the current connection; runs from an earlier
        connection are dropped (the broker re-sends those). Returns how many were acknowledged."""
        if not self._connected:
            return 0
        mids = [mid for run in runs if run.connection == self._connection for mid in run.mids]
        if mids:
            self._client.queue_pubacks(mids)
            self._client.loop_write()
        return len(mids)

    def close(self) -> None:
        self._closing = True
        if self._socket_open:
            self._client.disconnect()
            self._client.loop(0.2)
        self._socket_open = False
        self._connected = False
        self._wake_r.close()
        self._wake_w.close()
