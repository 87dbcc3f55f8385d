"""The rules engine's own MQTT subscription, on the shared layer (`core.mqtt_subscriber`).

A persistent session under its own client id, QoS 1, so readings published while the engine
restarts are delivered when it returns (MQTT 5 or 3.1.1, as `mqtt.protocol` says or when the broker
refuses 5). Messages are decoded with `core.decode.decode_message` (rejects are the collector's to
count; here they are skipped) and handed to `on_message` as `Reading`/`StatusChange`; connection
changes go to `on_connection(bool)`.

Lifecycle: `start()` once (paho's network thread, reconnecting with backoff), `stop()` once.
Callbacks run on paho's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.clock import Clock
from core.contract import Reading, reading_subscription, status_subscription
from core.decode import DecodeLimits, StatusChange, StatusCleared, decode_message
from core.known_devices import KnownDevices
from core.mqtt_subscriber import SessionSpec, Subscriber
from core.settings.mqtt import MqttSettings
from rules.broker_watch import TOPICS as BROKER_COUNTERS

log = logging.getLogger("facmon.rules.mqtt")


class RulesSubscription:
    def __init__(self, settings: MqttSettings, client_id: str, clock: Clock,
                 on_message: Callable[[Reading | StatusChange | StatusCleared], None],
                 on_connection: Callable[[bool], None], limits: DecodeLimits | None = None,
                 known: KnownDevices | None = None, session_expiry_s: int = 7 * 86_400,
                 on_broker_counter: Callable[[str, bytes], None] | None = None) -> None:
        """`known`: the devices that may publish (`sites.known_devices_only`); None: any device;
        `session_expiry_s`: how long the broker keeps the engine's session while it is away.
        `on_broker_counter(topic, payload)`: the broker's `$SYS` counters (`rules.broker_watch.TOPICS`),
        subscribed in the same session (a second connection would share the username-bound client id)
        but judged apart: a broker whose ACL refuses them still delivers the readings."""
        self._clock = clock
        self._on_message = on_message
        self._limits = limits or DecodeLimits()
        self._known = known
        self._on_broker_counter = on_broker_counter
        session = SessionSpec(client_id, (reading_subscription(), status_subscription()), qos=1, persistent=True,
                              session_expiry_s=session_expiry_s,
                              optional_topics=BROKER_COUNTERS if on_broker_counter is not None else ())
        self._subscriber = Subscriber(settings, session, clock, "the rules engine", log, self._decode_and_handle,
                                      on_connection)

    @property
    def connected(self) -> bool:
        return self._subscriber.connected

    @property
    def subscribed(self) -> bool:
        """True once the broker granted the subscriptions on the current connection."""
        return self._subscriber.subscribed

    @property
    def protocol_name(self) -> str:
        return self._subscriber.protocol_name

    @property
    def poison_messages(self) -> int:
        """Messages the engine failed on (a bug), skipped so that the subscription lives on."""
        return self._subscriber.poison_messages

    def start(self) -> None:
        self._subscriber.start()

    def stop(self) -> None:
        self._subscriber.stop()

    def _decode_and_handle(self, topic: str, payload: bytes) -> None:
        if topic.startswith("$SYS/"):
            if self._on_broker_counter is not None:
                self._on_broker_counter(topic, payload)
            return
        decoded = decode_message(topic, payload, self._clock.now(), self._limits, self._known)
        if isinstance(decoded, Reading | StatusChange | StatusCleared):
            self._on_message(decoded)
