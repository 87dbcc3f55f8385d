"""The bridge assembled: a subscription to the foreign topics (`core.mqtt_subscriber`), the pure
translator, and a publishing session for the contract messages (`core.mqtt_publisher`).

Messages are translated on the subscription's thread; the one-value-per-topic windows close on the
service's own thread (`run`), under the same lock, so the translator and the publisher are only ever
used by one thread at a time. Lifecycle: `run(stop)` once; it returns after `stop` is set, with the
publisher's messages acknowledged (bounded wait) and the seq state written.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from bridge.mapping import BridgeMapping
from bridge.rejects import RejectLog
from bridge.seq import SeqStore
from bridge.translate import Dropped, Forward, Outcome, Translator
from core.clock import Clock
from core.decode import DecodeLimits
from core.mqtt_publisher import Publisher
from core.mqtt_subscriber import SessionSpec, Subscriber
from core.settings.bridge import BridgeSettings
from core.settings.mqtt import MqttSettings

log = logging.getLogger("facmon.bridge")
TICK_S = 0.25


class BridgeService:
    def __init__(self, settings: BridgeSettings, mqtt: MqttSettings, mapping: BridgeMapping, limits: DecodeLimits,
                 clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self.seqs = SeqStore(settings.state_file)
        self.translator = Translator(mapping, self.seqs.next, limits, settings.max_payload_bytes)
        self.rejects = RejectLog(clock, log, log_every_s=settings.log_reject_every_s)
        self.received = 0
        self.forwarded: Counter[str] = Counter()
        """Published contract messages by channel ("reading", "status")."""
        self.publish_refused = 0
        """Contract messages dropped because the publisher's queue for an unreachable broker was full."""
        self.publisher = Publisher(mqtt, f"{settings.client_id}-pub", clock, stage="the bridge's publisher", log=log,
                                   queue_limit=settings.queue_limit)
        self.subscriber = Subscriber(mqtt, SessionSpec(settings.client_id, mapping.subscriptions, settings.qos,
                                                       persistent=True),
                                     clock, "the bridge", log, self._on_message)

    def _on_message(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.received += 1
            self._deliver(self.translator.handle(topic, payload, self._clock.now()))

    def tick(self) -> None:
        """Close the one-value-per-topic windows that are due (`run` calls it every TICK_S)."""
        with self._lock:
            self._deliver(self.translator.tick(self._clock.now()))

    def _deliver(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            if isinstance(outcome, Dropped):
                self.rejects.add(outcome)
            elif self.publisher.publish(outcome.topic, outcome.payload, outcome.retain):
                self.forwarded[_channel(outcome)] += 1
            else:
                self.publish_refused += 1
                self.rejects.add(Dropped("queue_full", "the queue for the unreachable broker is full "
                                         "(bridge.queue_limit)", outcome.topic, outcome.payload))

    def run(self, stop: threading.Event) -> None:
        self.publisher.open(wait_s=5.0)
        self.subscriber.start()
        try:
            while not stop.wait(TICK_S):
                self.tick()
        finally:
            self.subscriber.stop()
            self.tick()
            with self._lock:
                self.publisher.close(timeout_s=10.0)
                self.seqs.close()


def _channel(outcome: Forward) -> str:
    return outcome.topic.rsplit("/", 1)[1]
