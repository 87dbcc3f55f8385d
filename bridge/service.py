"""The bridge assembled: a subscription to the foreign topics (`core.mqtt_subscriber`), the pure
translator, and a publishing session for the contract messages (`core.mqtt_publisher`).

The subscription's thread only queues what arrives, a run of messages at a time (`RunSubscriber`; a
bounded inbox: when it is full the subscription waits, and the broker holds the messages); the
service's own thread (`run`) takes them in batches,
translates them, settles the batch's seqs (`SeqStore.settle`: at most one fsynced write a batch),
publishes its contract messages as one run (`Publisher.publish_many`: one write, PUBACKs counted in
bulk; it waits while the broker is connected and its window full) and closes the gathering windows.
So the translator and the publisher have one user, and paho's receiving thread is never held up by
translation. Lifecycle: `run(stop)` once; it
returns after `stop` is set, with the inbox drained, the publisher's messages acknowledged (bounded
wait) and the seq state written.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from operator import attrgetter

from bridge.mapping import BridgeMapping
from bridge.rejects import RejectLog
from bridge.seq import SeqStore
from bridge.translate import Dropped, Forward, Outcome, Translator
from core.clock import Clock
from core.decode import DecodeLimits
from core.mqtt_publisher import Publisher
from core.mqtt_subscriber import RunSubscriber, SessionSpec
from core.settings.bridge import BridgeSettings
from core.settings.mqtt import MqttSettings

log = logging.getLogger("facmon.bridge")
TICK_S = 0.25
PUBLISH_WINDOW = 2_000
"""Contract messages in flight to the broker: a batch fits, so it goes out in one write rather than in
pieces as PUBACKs free room (the shipped broker's max_inflight_messages; an MQTT 5 broker's Receive
Maximum lowers it)."""
INBOX_RUNS = 64
"""Runs the inbox holds: each at most one socket read (core.mqtt_buffer.READ_CHUNK_BYTES), 16 MiB in all."""
BATCH = 2_000
LINGER_S = 0.01
"""How long a batch gathers more messages when the inbox held fewer than BATCH: batches of a few
messages would cost the paho threads more than the translation saves (a wake-up, a small read and a
small run of PUBACKs each). A backlog never waits."""


class BridgeService:
    def __init__(self, settings: BridgeSettings, mqtt: MqttSettings, mapping: BridgeMapping, limits: DecodeLimits,
                 clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._inbox: queue.Queue[tuple[list[tuple[str, bytes]], float]] = queue.Queue(INBOX_RUNS)
        self.seqs = SeqStore(settings.state_file)
        self.translator = Translator(mapping, self.seqs.next, limits, settings.max_payload_bytes)
        self.rejects = RejectLog(clock, log, log_every_s=settings.log_reject_every_s)
        self.received = 0
        self.forwarded: Counter[str] = Counter()
        """Published contract messages by channel ("reading", "status"; `Channel` is a StrEnum)."""
        self.publish_refused = 0
        """Contract messages dropped because the publisher's queue for an unreachable broker was full."""
        self.publisher = Publisher(mqtt, f"{settings.client_id}-pub", clock, stage="the bridge's publisher", log=log,
                                   queue_limit=settings.queue_limit, max_inflight=PUBLISH_WINDOW)
        self.subscriber = RunSubscriber(mqtt, SessionSpec(settings.client_id, mapping.subscriptions, settings.qos,
                                                          persistent=True),
                                        clock, "the bridge", log, self._on_run)

    def _on_run(self, run: list[tuple[str, bytes]]) -> None:
        self._inbox.put((run, self._clock.now()))  # stamped on arrival (one socket read), as the device's time

    def _drain(self, wait_s: float) -> None:
        """Translate what the inbox holds (waiting up to `wait_s` for the first message) and publish the
        run's contract messages as one batch."""
        try:
            runs = [self._inbox.get(timeout=wait_s)]
        except queue.Empty:
            return
        size = self._take_queued(runs, len(runs[0][0]))
        if size < BATCH:  # not a backlog: let the messages on their way join this batch
            self._clock.sleep(LINGER_S)
            size = self._take_queued(runs, size)
        self.received += size
        handle = self.translator.handle
        outcomes: list[Outcome] = []
        for run, received_at in runs:
            for topic, payload in run:
                outcomes += handle(topic, payload, received_at)
        self._deliver(outcomes)

    def _take_queued(self, runs: list[tuple[list[tuple[str, bytes]], float]], size: int) -> int:
        """Add the queued runs to `runs` until they hold BATCH messages; returns how many they hold."""
        while size < BATCH:
            try:
                runs.append(self._inbox.get_nowait())
            except queue.Empty:
                break
            size += len(runs[-1][0])
        return size

    def tick(self) -> None:
        """Close the gathering windows that are due (`run` does it every TICK_S)."""
        self._deliver(self.translator.tick(self._clock.now()))

    def _deliver(self, outcomes: list[Outcome]) -> None:
        forwards: list[Forward] = []
        for outcome in outcomes:
            if isinstance(outcome, Dropped):
                self.rejects.add(outcome)
            else:
                forwards.append(outcome)
        if not forwards:
            return
        self.seqs.settle()  # before the seqs go out: after a crash none is handed out again
        accepted = self.publisher.publish_many([(f.topic, f.payload, f.retain) for f in forwards])
        self.forwarded.update(map(_CHANNEL, forwards[:accepted]))
        for refused in forwards[accepted:]:
            self.publish_refused += 1
            self.rejects.add(Dropped("queue_full", "the queue for the unreachable broker is full "
                                     "(bridge.queue_limit)", refused.topic, refused.payload))

    def run(self, stop: threading.Event) -> None:
        self.publisher.open(wait_s=5.0)
        self.subscriber.start()
        try:
            next_tick = self._clock.monotonic() + TICK_S
            while not stop.is_set():
                self._drain(wait_s=max(0.0, min(TICK_S, next_tick - self._clock.monotonic())))
                if self._clock.monotonic() >= next_tick:
                    self.tick()
                    next_tick = self._clock.monotonic() + TICK_S
        finally:
            self.subscriber.stop()
            while not self._inbox.empty():
                self._drain(wait_s=0)
            self.tick()
            self.publisher.close(timeout_s=10.0)
            self.seqs.close()


_CHANNEL = attrgetter("channel")
