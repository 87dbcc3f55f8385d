"""Where simulated devices' messages go: a `Publisher` of a few methods, so unit tests capture the
stream in memory and integration tests and real runs use a broker (paho-mqtt, only here).

Lifecycle: `open(devices)` once (connects; each device's status `online` is a message in the stream
itself), then `publish()` any number of times, then `close()` once, which waits for the broker to
acknowledge what was published (QoS 1) and disconnects. `publish` is never called after `close`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from core.clock import Clock
from core.contract import STATUS_OFFLINE, DeviceKey
from core.settings.mqtt import MqttSettings
from simulators.world import Message

log = logging.getLogger(__name__)


class BrokerUnreachable(RuntimeError):
    """The broker could not be reached within the bounded retries; the message says where and what to check."""


class Publisher(Protocol):
    def open(self, devices: Sequence[DeviceKey]) -> None: ...

    def publish(self, message: Message) -> None: ...

    def close(self) -> None: ...


class MemoryPublisher:
    """Keeps every message in order (tests, and the in-memory benchmark reference)."""

    def __init__(self, keep: bool = True) -> None:
        self.messages: list[Message] = []
        self.count = 0
        self._keep = keep

    def open(self, devices: Sequence[DeviceKey]) -> None:
        self.devices = list(devices)

    def publish(self, message: Message) -> None:
        self.count += 1
        if self._keep:
            self.messages.append(message)

    def close(self) -> None:
        pass

    def stream(self) -> bytes:
        """Every message as `topic\\0payload\\n` bytes, for byte-for-byte comparisons."""
        return b"".join(m.topic.encode() + b"\0" + m.payload + b"\n" for m in self.messages)


class MqttPublisher:
    """Publishes over up to `max_connections` MQTT connections. With one connection per device
    (devices <= max_connections) each connection carries its device's last will (`offline`,
    retained); with more devices they share connections and a device's death is published as a
    plain retained `offline`. QoS 1; at most `max_outstanding` unacknowledged messages, then
    `publish` waits (back-pressure instead of unbounded memory)."""

    def __init__(self, settings: MqttSettings, clock: Clock, *, client_id_prefix: str = "facmon-sim",
                 max_connections: int = 64, max_outstanding: int = 20_000, max_inflight: int = 1000,
                 connect_attempts: int = 5, connect_timeout_s: float = 5.0) -> None:
        self._settings = settings
        self._clock = clock
        self._prefix = client_id_prefix
        self._max_connections = max_connections
        self._max_outstanding = max_outstanding
        self._max_inflight = max_inflight
        self._window: dict[int, int] = {}
        """Per connection: unacknowledged publishes allowed, min(max_inflight, the broker's receive maximum)."""
        self._attempts = connect_attempts
        self._timeout_s = connect_timeout_s
        self._clients: list[mqtt.Client] = []
        self._route: dict[DeviceKey, mqtt.Client] = {}
        self._own_connection: set[DeviceKey] = set()
        self._dropped: set[DeviceKey] = set()
        self._per_client: dict[int, int] = {}
        self._outstanding = 0
        self._cond = threading.Condition()

    def _client(self, client_id: str, will_device: DeviceKey | None) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        # paho's own window (default 20, fixed once connected) would cap a connection at 20 messages per
        # round trip; it is switched off and `publish` keeps each connection within `_window` instead,
        # which follows the receive maximum the broker advertises in its CONNACK.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        if self._settings.username:
            password = self._settings.password.get_secret_value() if self._settings.password else None
            client.username_pw_set(self._settings.username, password)
        if self._settings.tls.enabled:
            client.tls_set(ca_certs=str(self._settings.tls.ca_file) if self._settings.tls.ca_file else None)
        if will_device is not None:
            client.will_set(will_device.status_topic(), STATUS_OFFLINE, qos=1, retain=True)
        client.on_publish = self._on_publish
        client.on_connect = self._on_connect
        return client

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                    props: object) -> None:
        # MQTT 5: absent ReceiveMaximum means 65,535.
        broker_max = getattr(props, "ReceiveMaximum", 65_535)
        with self._cond:
            self._window[id(client)] = max(1, min(self._max_inflight, broker_max))
            self._cond.notify_all()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        with self._cond:
            self._outstanding -= 1
            self._per_client[id(client)] -= 1
            self._cond.notify_all()

    def _connect(self, client: mqtt.Client) -> None:
        host, port = self._settings.host, self._settings.port
        last_error = ""
        delay = 0.2
        for attempt in range(1, self._attempts + 1):
            try:
                client.connect(host, port, keepalive=self._settings.keepalive_s)
                break
            except OSError as err:
                last_error = err.strerror or str(err)
                log.warning("broker not reachable", extra={"host": host, "port": port, "attempt": attempt,
                                                           "error": last_error})
                if attempt < self._attempts:
                    self._clock.sleep(delay)
                    delay = min(delay * 2, 5.0)
        else:
            raise BrokerUnreachable(
                f"cannot reach the MQTT broker at {host}:{port} after {self._attempts} attempts ({last_error}); "
                "is it running? Point facmon at it with FACMON_MQTT__HOST / FACMON_MQTT__PORT")
        client.loop_start()
        deadline = self._clock.monotonic() + self._timeout_s
        while not (client.is_connected() and id(client) in self._window):
            if self._clock.monotonic() > deadline:
                client.loop_stop()
                raise BrokerUnreachable(f"the MQTT broker at {host}:{port} accepted TCP but did not complete the "
                                        f"MQTT handshake within {self._timeout_s:g} s (wrong port, TLS or password?)")
            self._clock.sleep(0.01)

    def open(self, devices: Sequence[DeviceKey]) -> None:
        own = len(devices) <= self._max_connections
        count = len(devices) if own else self._max_connections
        for index in range(max(count, 1)):
            device = devices[index] if own and devices else None
            client = self._client(f"{self._prefix}-{device or index}"[:128], device)
            self._connect(client)
            self._clients.append(client)
        for index, device in enumerate(devices):
            self._route[device] = self._clients[index % len(self._clients)]
            if own:
                self._own_connection.add(device)

    def publish(self, message: Message) -> None:
        client = self._route.get(message.device) if message.device is not None else None
        client = client or self._clients[0]
        if message.device in self._dropped:
            return  # a dead device's connection is gone; nothing it "sends" could arrive
        if message.will and message.device in self._own_connection:
            # MQTT 5 reason 0x04 "disconnect with will message": the broker announces the death itself.
            self._dropped.add(message.device)
            with self._cond:  # its last readings go out before it dies
                deadline = self._clock.monotonic() + 10.0
                while self._per_client.get(id(client), 0) > 0 and self._clock.monotonic() < deadline:
                    self._cond.wait(0.05)
            client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
            return
        with self._cond:
            deadline = self._clock.monotonic() + 60.0
            window = self._window[id(client)]
            while self._outstanding >= self._max_outstanding or self._per_client.get(id(client), 0) >= window:
                if self._clock.monotonic() > deadline:
                    raise BrokerUnreachable("the broker has not acknowledged messages for 60 s; is it overloaded?")
                self._cond.wait(0.05)
            self._outstanding += 1
            self._per_client[id(client)] = self._per_client.get(id(client), 0) + 1
        client.publish(message.topic, message.payload, qos=1, retain=message.retain)

    def close(self, timeout_s: float = 30.0) -> None:
        deadline = self._clock.monotonic() + timeout_s
        with self._cond:
            while self._outstanding > 0 and self._clock.monotonic() < deadline:
                self._cond.wait(0.05)
            left = self._outstanding
        if left:
            log.warning("closing with unacknowledged messages", extra={"count": left})
        for client in self._clients:
            client.disconnect()
            client.loop_stop()
