"""One MQTT subscription of a facmon stage: the layer the rules engine, the API and the bridge build
on (the collector keeps its own intake for speed, on the same `core.mqtt_connect`).

On top of the session (`core.mqtt_session`: broker identity, 3.1.1 fallback, persistent sessions):
- the collector's fast intake (`core.mqtt_buffer.PublishReaderClient`): chunked socket reads, QoS 1
  PUBLISHes taken straight from the read buffer in runs, one write for a run's PUBACKs, sent after
  the handler saw each message (at least once: a crash before the ack gets it again);
- "subscribed" as the broker's SUBACK granting every topic, not as "connected";
- poison-message isolation (`core.poison.PoisonGuard`): no message can stop the subscription;
- the stage's handler gets `(topic, payload)`, or with `RunSubscriber` each run of them as one list;
  paho's types stay in `core/`.

Lifecycle: `start()` once (connects in the background, reconnecting for ever), `stop()` once; after
`stop()` no handler is called. Handlers run on paho's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from core.clock import Clock
from core.mqtt_buffer import PublishReaderClient
from core.mqtt_connect import subscriptions_granted
from core.mqtt_session import MqttSession
from core.poison import PoisonGuard
from core.settings.mqtt import MqttSettings


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """A stage's own session: who it is to the broker and what it subscribes to."""

    client_id: str
    topics: tuple[str, ...]
    qos: int
    persistent: bool
    """Keep the session (and the QoS 1 messages queued for it) while the stage is away."""
    session_expiry_s: int = 7 * 86_400
    """How long the broker keeps a persistent session (MQTT 5; 3.1.1 keeps it until it is resumed)."""
    optional_topics: tuple[str, ...] = ()
    """Subscribed apart, and not part of `subscribed`: a refusal (an ACL without them) is logged once
    per connection and the stage goes on with `topics` (e.g. the broker's `$SYS` counters)."""


class Subscriber(MqttSession):
    _client_class = PublishReaderClient
    _manual_ack = True
    def __init__(self, settings: MqttSettings, session: SessionSpec, clock: Clock, stage: str,
                 log: logging.Logger, on_message: Callable[[str, bytes], None],
                 on_connection: Callable[[bool], None] | None = None,
                 on_poison: Callable[[], None] | None = None) -> None:
        """`on_message(topic, payload)` runs for every message (guarded); `on_poison()` after a message
        `on_message` failed on."""
        self._session = session
        self._on_message = on_message
        self._on_poison = on_poison
        self._guard = PoisonGuard(stage, log, clock)
        self._subscribed = False
        self._required_mid: int | None = None
        super().__init__(settings, session.client_id, persistent=session.persistent, stage=stage, log=log,
                         session_expiry_s=session.session_expiry_s, on_connection=on_connection)

    @property
    def subscribed(self) -> bool:
        """True once the broker granted every subscription on the current connection: messages sent
        before that reach the stage only if its persistent session already held them."""
        return self._subscribed

    @property
    def poison_messages(self) -> int:
        """Messages the stage's handler failed on (a bug), skipped so that the subscription lives on."""
        return self._guard.failures

    def _configure(self, client: mqtt.Client) -> None:
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        client.on_qos1_publishes = self._handle_publishes  # type: ignore[attr-defined]

    def _on_accepted(self, client: mqtt.Client) -> None:
        _, self._required_mid = client.subscribe([(topic, self._session.qos) for topic in self._session.topics])
        if self._session.optional_topics:
            client.subscribe([(topic, self._session.qos) for topic in self._session.optional_topics])

    def _on_lost(self) -> None:
        self._subscribed = False

    def _handle_subscribe(self, _client: mqtt.Client, _userdata: object, mid: int,
                          reasons: list[mqtt.ReasonCode], _properties: object = None) -> None:
        if mid == self._required_mid:
            self._subscribed = subscriptions_granted(reasons, list(self._session.topics), self._log)
        elif any(r.is_failure for r in reasons):
            self._log.warning(f"the broker refused {self._stage} optional topics; it goes on without them",
                              extra={"topics": list(self._session.optional_topics),
                                     "hint": "grant them in the broker's ACL (facmon acl regenerates it)"})

    def _handle_publishes(self, topics: list[str], payloads: list[bytes], mids: list[int]) -> None:
        """A run of plain QoS 1 PUBLISHes from the read buffer (paho's thread)."""
        if self._stopping:
            return
        self._take_run(topics, payloads)
        self._client.queue_pubacks(mids)  # type: ignore[attr-defined]

    def _take_run(self, topics: list[str], payloads: list[bytes]) -> None:
        guard, handler = self._guard, self._on_message
        for topic, payload in zip(topics, payloads, strict=True):
            if not guard.handle(handler, topic, bytes(payload)) and self._on_poison is not None:
                self._on_poison()

    def _handle_message(self, client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        """Anything unusual (QoS 0, MQTT 5 properties) through paho's own reader."""
        if self._stopping:
            return
        if not self._guard.handle(self._on_message, message.topic, message.payload) and self._on_poison is not None:
            self._on_poison()
        if message.qos > 0:
            client.ack(message.mid, message.qos)


class RunSubscriber(Subscriber):
    """A subscription whose handler takes each run of messages at once: `on_run([(topic, payload), …])`
    with the QoS 1 PUBLISHes read from the socket together, a run of one for a message paho reads
    itself. For a stage whose handler only hands messages to its own thread (the bridge): one hand-over
    and one wake-up of that thread a run, not a message. A run is acknowledged after `on_run` returned;
    if it raises, the run is skipped as one poison message (logged with its first message)."""

    def __init__(self, settings: MqttSettings, session: SessionSpec, clock: Clock, stage: str,
                 log: logging.Logger, on_run: Callable[[list[tuple[str, bytes]]], None],
                 on_connection: Callable[[bool], None] | None = None,
                 on_poison: Callable[[], None] | None = None) -> None:
        self._on_run = on_run
        super().__init__(settings, session, clock, stage, log, self._take_one, on_connection, on_poison)

    def _take_one(self, topic: str, payload: bytes) -> None:
        self._on_run([(topic, payload)])

    def _take_run(self, topics: list[str], payloads: list[bytes]) -> None:
        run = list(zip(topics, map(bytes, payloads), strict=True))
        if not self._guard.handle(lambda _topic, _payload: self._on_run(run), topics[0], run[0][1]) and (
                self._on_poison is not None):
            self._on_poison()
