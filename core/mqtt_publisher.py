"""One publishing session of a facmon stage: the layer the probe, the bridge and the agent's drivers
build on, over the batched client (`core.mqtt_batch.BatchClient`, which the simulators' bulk path
uses directly).

On top of the session (`core.mqtt_session`: broker identity, 3.1.1 fallback):
- QoS 1 publishing of one message (`publish`) or a run of them (`publish_many`: one write for the
  run, PUBACKs counted in bulk), at most `max_inflight` unacknowledged on the wire, or the broker's
  MQTT 5 Receive Maximum if lower (the rest waits, also what was queued while the broker was away);
- a bounded queue: at most `queue_limit` messages pending (in flight and waiting). While the broker
  is connected and acknowledging, a publish waits for room (back-pressure); while it is unreachable
  the newest messages beyond the limit are refused (`publish` returns False, `publish_many` says how
  many it took) rather than memory growing without bound;
- nothing accepted is lost across a broker restart: unacknowledged messages are sent again on the
  next connection, in order;
- `announce`: messages published on every (re)connect, such as a device's retained `online` after
  the broker published its last will (never refused by the queue's limit);
- `close(final)`: publish the last messages (a retained `offline`), wait (bounded) for the broker to
  acknowledge everything, disconnect;
- messages published before a 3.1.1 fallback are carried over to the new connection, not lost.

Lifecycle: `open()` once, `publish()`/`publish_many()` from one thread any number of times, `close()` once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import paho.mqtt.client as mqtt

from core.clock import Clock
from core.mqtt_batch import BatchClient, Message
from core.mqtt_session import MqttSession, Outgoing
from core.settings.mqtt import MqttSettings

__all__ = ["Message", "Outgoing", "Publisher"]


def _as_message(outgoing: Outgoing) -> Message:
    return _message(outgoing.topic, outgoing.payload, outgoing.retain)


def _message(topic: str, payload: bytes | str, retain: bool) -> Message:
    return topic, payload.encode() if isinstance(payload, str) else payload, retain


class Publisher(MqttSession):
    _client_class = BatchClient
    _client: BatchClient

    def __init__(self, settings: MqttSettings, client_id: str, clock: Clock, *, stage: str, log: logging.Logger,
                 will: Outgoing | None = None, announce: Sequence[Outgoing] = (), queue_limit: int = 1000,
                 max_inflight: int = 1000, stall_timeout_s: float = 30.0,
                 on_connection: Callable[[bool], None] | None = None) -> None:
        """`stall_timeout_s`: how long a publish waits for room while the broker is connected but
        acknowledges nothing, before it refuses what does not fit."""
        self._clock = clock
        self._announce = [_as_message(message) for message in announce]
        self._queue_limit = queue_limit
        self._max_inflight = min(max_inflight, queue_limit)
        self._stall_timeout_s = stall_timeout_s
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
        """Publish at QoS 1; False if the message was refused (the queue for an unreachable broker is full)."""
        return self.publish_many([_message(topic, payload, retain)]) == 1

    def publish_many(self, messages: Sequence[Message]) -> int:
        """Publish (topic, payload, retain) messages at QoS 1, in order, as one write where the window
        allows; returns how many were accepted: the first ones, the rest were refused (the queue for an
        unreachable or stalled broker is full)."""
        return self._client.offer(messages, self._stall_timeout_s)

    def unacknowledged(self) -> int:
        return self._client.pending()

    def close(self, final: Sequence[Outgoing] = (), timeout_s: float = 10.0) -> int:
        """Publish `final` if connected, wait up to `timeout_s` for every acknowledgement, disconnect.
        Returns how many messages were left unacknowledged (logged as a warning)."""
        if self.connected:
            deadline = self._clock.monotonic() + timeout_s
            self._client.offer([_as_message(message) for message in final], stall_timeout_s=timeout_s)
            self._client.wait_all_acked(max(0.0, deadline - self._clock.monotonic()))
        left = self.unacknowledged()
        if left:
            self._log.warning(f"{self._stage} closes with unacknowledged messages", extra={"count": left})
        refused = dict(self._client.refused)
        if refused:
            self._log.warning(f"the broker refused messages of {self._stage}",
                              extra={"by_reason_code": refused, "hint": "check the broker's ACL for this user"})
        self.stop()
        return left

    def _configure(self, client: mqtt.Client) -> None:
        client.configure_batching(self._clock, self._max_inflight, self._queue_limit)  # type: ignore[attr-defined]

    def _on_accepted(self, client: mqtt.Client) -> None:
        if self._announce:
            client.publish_ahead(self._announce)  # type: ignore[attr-defined]

    def _on_replaced(self, refused: mqtt.Client) -> None:
        self._client.take_over(refused)  # type: ignore[arg-type]
