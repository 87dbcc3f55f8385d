"""Where simulated devices' messages go: a `Publisher` of a few methods, so unit tests capture the
stream in memory and integration tests and real runs use a broker (through `core.mqtt_batch`).

Lifecycle: `open(devices)` once (connects; each device's status `online` is a message in the stream
itself), then `publish_step()` (one simulation step's messages, in order) any number of times, then
`close()` once, which waits for the broker to
acknowledge what was published (QoS 1) and disconnects. `publish` is never called after `close`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from core.clock import Clock
from core.contract import STATUS_OFFLINE, DeviceKey
from core.mqtt_batch import BatchClient, PublishStalled
from core.settings.mqtt import MqttSettings
from simulators.world import Message

log = logging.getLogger(__name__)


class BrokerUnreachable(RuntimeError):
    """The broker could not be reached within the bounded retries; the message says where and what to check."""


class Publisher(Protocol):
    def open(self, devices: Sequence[DeviceKey]) -> None: ...

    def publish_step(self, messages: Sequence[Message]) -> None: ...

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

    def publish_step(self, messages: Sequence[Message]) -> None:
        self.count += len(messages)
        if self._keep:
            self.messages.extend(messages)

    def close(self) -> None:
        pass

    def stream(self) -> bytes:
        """Every message as `topic\\0payload\\n` bytes, for byte-for-byte comparisons."""
        return b"".join(m.topic.encode() + b"\0" + m.payload + b"\n" for m in self.messages)


class MqttPublisher:
    """Publishes over MQTT 5, QoS 1, with `BatchClient`s: each step's messages go out as one write per
    connection, PUBACKs are counted in bulk, and each connection keeps at most its window of
    unacknowledged messages (`max_inflight`, capped by the broker's receive maximum), so
    `publish_step` waits rather than holding unbounded memory or dropping anything.

    With one connection per device (devices <= max_connections) each connection carries its device's
    last will (`offline`, retained); with more devices they share `shared_connections` connections and
    a device's death is published as a plain retained `offline`. Fewer shared connections are faster:
    each has its own paho network thread (see benchmarks/README.md, "Simulators")."""

    def __init__(self, settings: MqttSettings, clock: Clock, *, client_id_prefix: str = "facmon-sim",
                 max_connections: int = 64, shared_connections: int = 2, max_inflight: int = 1000,
                 connect_attempts: int = 5, connect_timeout_s: float = 5.0, stall_timeout_s: float = 60.0) -> None:
        self._settings = settings
        self._clock = clock
        self._prefix = client_id_prefix
        self._max_connections = max_connections
        self._shared_connections = max(1, shared_connections)
        self._max_inflight = max_inflight
        self._attempts = connect_attempts
        self._timeout_s = connect_timeout_s
        self._stall_timeout_s = stall_timeout_s
        self._clients: list[BatchClient] = []
        self._route: dict[DeviceKey, BatchClient] = {}
        self._route_by_topic: dict[str, BatchClient] = {}
        """Every device's reading and status topics: a topic's hash is cached in the string, a
        DeviceKey's is recomputed in Python each time (two per message cost ~1.5 µs)."""
        self._own_connection: set[DeviceKey] = set()
        self._dropped: set[DeviceKey] = set()

    @property
    def acked(self) -> int:
        """Messages the broker has acknowledged so far."""
        return sum(client.acked for client in self._clients)

    @property
    def resent(self) -> int:
        """Messages sent again (DUP) after a reconnect."""
        return sum(client.resent for client in self._clients)

    def _client(self, client_id: str, will_device: DeviceKey | None) -> BatchClient:
        if will_device is None:
            return BatchClient.for_session(self._settings, client_id, self._clock, self._max_inflight)
        return BatchClient.for_session(self._settings, client_id, self._clock, self._max_inflight,
                                       will_device.status_topic(), STATUS_OFFLINE)

    def _connect(self, client: BatchClient) -> None:
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
        while not client.online:
            if self._clock.monotonic() > deadline:
                client.loop_stop()
                raise BrokerUnreachable(f"the MQTT broker at {host}:{port} accepted TCP but did not complete the "
                                        f"MQTT handshake within {self._timeout_s:g} s (wrong port, TLS or password?)")
            self._clock.sleep(0.01)

    def open(self, devices: Sequence[DeviceKey]) -> None:
        own = len(devices) <= self._max_connections
        count = len(devices) if own else min(self._shared_connections, self._max_connections)
        for index in range(max(count, 1)):
            device = devices[index] if own and devices else None
            client = self._client(f"{self._prefix}-{device or index}"[:128], device)
            self._connect(client)
            self._clients.append(client)
        for index, device in enumerate(devices):
            client = self._route[device] = self._clients[index % len(self._clients)]
            self._route_by_topic[device.reading_topic()] = self._route_by_topic[device.status_topic()] = client
            if own:
                self._own_connection.add(device)

    def publish(self, message: Message) -> None:
        self.publish_step([message])

    def publish_step(self, messages: Sequence[Message]) -> None:
        """Publish a step's messages in order (per device; devices on different connections are
        independent), one batch per connection. Blocks while a connection's window is full; raises
        BrokerUnreachable if the broker acknowledges nothing for the stall timeout."""
        batches: dict[BatchClient, list[tuple[str, bytes, bool]]] = {client: [] for client in self._clients}
        default, by_topic, dropped = self._clients[0], self._route_by_topic, self._dropped
        try:
            for message in messages:
                device = message.device
                if dropped and device in dropped:
                    continue  # a dead device's connection is gone; nothing it "sends" could arrive
                client = by_topic.get(message.topic)
                if client is None:  # a malformed topic (or no device): route by device
                    client = self._route.get(device, default) if device is not None else default
                if message.will and device in self._own_connection:
                    batch = batches[client]
                    if batch:  # its last readings go out before it dies
                        client.publish_batch(batch, self._stall_timeout_s)
                        batches[client] = []
                    self._die(client, device)  # type: ignore[arg-type]
                    continue
                batches[client].append((message.topic, message.payload, message.retain))
            for client, batch in batches.items():
                if batch:
                    client.publish_batch(batch, self._stall_timeout_s)
        except PublishStalled as err:
            raise BrokerUnreachable(str(err)) from err

    def wait_all_acked(self, timeout_s: float = 30.0) -> int:
        """Wait (up to `timeout_s` in all) until the broker has acknowledged everything published;
        returns how many messages are still unacknowledged. A barrier: what was published before it
        reaches every subscriber before anything published after it, whichever connection carried it."""
        deadline = self._clock.monotonic() + timeout_s
        return sum(client.wait_all_acked(max(0.0, deadline - self._clock.monotonic())) for client in self._clients)

    def _die(self, client: BatchClient, device: DeviceKey) -> None:
        self._dropped.add(device)
        client.wait_all_acked(10.0)
        client.disconnect_with_will()

    def close(self, timeout_s: float = 30.0) -> None:
        """Wait (up to `timeout_s` in all) for the broker to acknowledge everything, then disconnect."""
        left = self.wait_all_acked(timeout_s)
        refused = sum((client.refused for client in self._clients), Counter())
        if left:
            log.warning("closing with unacknowledged messages", extra={"count": left})
        if refused:
            log.warning("the broker refused messages", extra={"by_reason_code": dict(refused),
                                                               "hint": "check the broker's ACL for this user"})
        for client in self._clients:
            client.disconnect()
            client.loop_stop()
