"""One publishing session of a facmon stage: the layer the probe, the bridge, the agent's drivers and
the simulators' per-device connections build on (the simulators' bulk path keeps its batch client,
`simulators/mqtt_batch.py`, for speed).

On top of the session (`core.mqtt_session`: broker identity, 3.1.1 fallback):
- QoS 1 publishing with a bounded queue while the broker is unreachable: beyond `queue_limit` the
  newest message is refused (`publish` returns False) rather than memory growing without bound;
- `announce`: messages published on every (re)connect, such as a device's retained `online` after
  the broker published its last will;
- `close(final)`: publish the last messages (a retained `offline`), wait (bounded) for the broker to
  acknowledge everything, disconnect;
- messages published before a 3.1.1 fallback are carried over to the new connection, not lost.

Lifecycle: `open()` once, `publish()` from one thread any number of times, `close()` once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import paho.mqtt.client as mqtt

from core.clock import Clock
from core.mqtt_session import MqttSession, Outgoing
from core.settings.mqtt import MqttSettings

__all__ = ["Outgoing", "Publisher"]


class Publisher(MqttSession):
    def __init__(self, settings: MqttSettings, client_id: str, clock: Clock, *, stage: str, log: logging.Logger,
                 will: Outgoing | None = None, announce: Sequence[Outgoing] = (), queue_limit: int = 1000,
                 on_connection: Callable[[bool], None] | None = None) -> None:
        self._clock = clock
        self._announce = tuple(announce)
        self._queue_limit = queue_limit
        self._pending: dict[int, Outgoing] = {}
        """What was handed to paho and not yet acknowledged, by message id: counted, and carried over on
        a fallback. Entries are added by the publishing thread and paho's (announcements), removed only
        by the publishing thread (`_settle`)."""
        self._acked: set[int] = set()
        """Message ids paho's thread saw acknowledged and `_pending` has not yet let go of. A set, not a
        lock: paho calls `on_publish` holding its own lock, which a publisher holding ours would wait for."""
        super().__init__(settings, client_id, persistent=False, stage=stage, log=log, will=will,
                         on_connection=on_connection)

    def open(self, wait_s: float = 5.0) -> bool:
        """Start connecting; True if connected within `wait_s` (else it keeps trying in the background)."""
        self.start()
        deadline = self._clock.monotonic() + wait_s
        while not self.connected and self._clock.monotonic() < deadline:
            self._clock.sleep(0.02)
        if not self.connected:
            self._log.warning(f"broker not reachable yet; {self._stage} queues what it publishes",
                              extra={"host": self._settings.host, "port": self._settings.port})
        return self.connected

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> bool:
        """Publish at QoS 1; False if the queue for an unreachable broker is full (the message is dropped)."""
        return self._send(self._client, Outgoing(topic, payload, retain))

    def unacknowledged(self) -> int:
        self._settle()
        return len(self._pending)

    def _settle(self) -> None:
        for mid in list(self._acked):
            if mid in self._pending:  # else its publish() has not returned yet: settled next time
                del self._pending[mid]
                self._acked.discard(mid)

    def close(self, final: Sequence[Outgoing] = (), timeout_s: float = 10.0) -> int:
        """Publish `final` if connected, wait up to `timeout_s` for every acknowledgement, disconnect.
        Returns how many messages were left unacknowledged (logged as a warning)."""
        if self.connected:
            for message in final:
                self._send(self._client, message)
            deadline = self._clock.monotonic() + timeout_s
            while self.unacknowledged() and self._clock.monotonic() < deadline:
                self._clock.sleep(0.02)
        left = self.unacknowledged()
        if left:
            self._log.warning(f"{self._stage} closes with unacknowledged messages", extra={"count": left})
        self.stop()
        return left

    def _send(self, client: mqtt.Client, message: Outgoing) -> bool:
        info = client.publish(message.topic, message.payload, qos=1, retain=message.retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            return False
        self._pending[info.mid] = message
        if len(self._acked) > 64:  # settle now and then, not on every call
            self._settle()
        return True

    def _configure(self, client: mqtt.Client) -> None:
        client.max_queued_messages_set(self._queue_limit)
        client.on_publish = self._handle_publish

    def _handle_publish(self, _client: mqtt.Client, _userdata: object, mid: int, *_reason: object) -> None:
        self._acked.add(mid)

    def _on_accepted(self, client: mqtt.Client) -> None:
        for message in self._announce:  # tracked like any message, so that no acked id goes stale
            info = client.publish(message.topic, message.payload, qos=1, retain=message.retain)
            self._pending[info.mid] = message

    def _on_replaced(self, refused: mqtt.Client) -> None:
        self._settle()
        carried, self._pending, self._acked = list(self._pending.values()), {}, set()
        for message in carried:
            self._send(self._client, message)
