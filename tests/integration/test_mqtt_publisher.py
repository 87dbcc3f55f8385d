"""The publishing layer's batched path (`core.mqtt_publisher.Publisher.publish_many` over
`core.mqtt_batch.BatchClient`) against a real Mosquitto: a broker restart in the middle of a run of
batches loses nothing, the in-flight window is never exceeded, and while the broker is away the queue
takes what fits under `queue_limit` and refuses the rest, saying how many it took. A broker whose MQTT 5
Receive Maximum is below the publisher's window gets no more than that in flight, online, from the queue
held while it was away, and from the re-sends after a restart that lowered it; over 3.1.1, which has
no Receive Maximum, the publisher's own window holds.

Mosquitto 2.0.11 itself does not enforce its Receive Maximum (`max_inflight_messages`, announced in the
CONNACK): sent 200 QoS 1 PUBLISHes at once with a maximum of 5, it acknowledges all 200 and keeps the
connection (measured), so these tests watch the wire between publisher and broker (`InFlightTap`)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Literal

import paho.mqtt.client as mqtt

from core.clock import SystemClock
from core.mqtt_publisher import Publisher
from core.settings.mqtt import MqttSettings
from facmon.servers import Mosquitto
from tests.relay import MqttPackets, Relay, Watcher
from tests.support import poll_until

if TYPE_CHECKING:
    from collections.abc import Callable

TOPICS = [f"facmon/v1/test/inverter/inv-{i}/reading" for i in range(10)]


class _Listener:
    """A QoS 1 subscriber on a persistent 3.1.1 session: it reconnects after a broker restart and the
    broker (which saves sessions on a clean shutdown) keeps what arrived meanwhile."""

    def __init__(self, broker: Mosquitto) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-publisher-listener",
                                  clean_session=False)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe("facmon/#", qos=1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((msg.topic, msg.payload))

    def got(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publisher(broker: Mosquitto, via: Relay | None = None, protocol: Literal["5", "3.1.1"] = "5",
               **kwargs: int) -> Publisher:
    settings = MqttSettings(host=broker.host, port=broker.port if via is None else via.port, protocol=protocol,
                            reconnect_min_s=0.1, reconnect_max_s=0.5)
    return Publisher(settings, "test-batched-publisher", SystemClock(), stage="a test publisher",
                     log=logging.getLogger("test"), **kwargs)


def _batch(seqs: range, sent: dict[str, list[bytes]]) -> list[tuple[str, bytes, bool]]:
    batch = [(topic, b'{"seq":%d}' % seq, False) for seq in seqs for topic in TOPICS]
    for topic, payload, _ in batch:
        sent.setdefault(topic, []).append(payload)
    return batch


def _assert_every_message_arrived_in_order(got: list[tuple[str, bytes]], sent: dict[str, list[bytes]]) -> None:
    for topic, payloads in sent.items():
        theirs = [payload for t, payload in got if t == topic]
        # QoS 1: a re-sent message may arrive twice, but each first arrival is in order and none is missing.
        assert list(dict.fromkeys(theirs)) == payloads, topic


def test_a_broker_restart_mid_batch_loses_nothing_and_the_window_holds(mosquitto: Mosquitto) -> None:
    window = 50
    listener = _Listener(mosquitto)
    publisher = _publisher(mosquitto, max_inflight=window, queue_limit=20_000)
    client = publisher._client  # the batch client under the session, for its counters
    sent: dict[str, list[bytes]] = {}
    try:
        poll_until(lambda: listener.client.is_connected(), 5, what="listener connected")
        assert publisher.open(wait_s=5)
        for first in range(0, 100, 20):  # 1,000 messages in runs of 200 through a window of 50
            batch = _batch(range(first, first + 20), sent)
            assert publisher.publish_many(batch) == len(batch)
        big = _batch(range(100, 400), sent)  # 3,000 in one run: most wait beyond the window
        assert publisher.publish_many(big) == len(big)
        mosquitto.stop()  # mid-batch: messages in flight, more waiting
        assert publisher.publish_many(_batch(range(400, 420), sent)) == 200  # while it is away: queued
        mosquitto.start()
        mosquitto.wait_ready(10)
        batch = _batch(range(420, 500), sent)
        assert publisher.publish_many(batch) == len(batch)
        poll_until(lambda: publisher.unacknowledged() == 0, 30, what="every message acknowledged")
        total = sum(len(payloads) for payloads in sent.values())
        poll_until(lambda: len(set(listener.got())) >= total, 30, what="every message at the listener")
        assert publisher.close() == 0
    finally:
        publisher.stop()  # after close() a second stop does nothing
        listener.close()
    assert client.resent > 0, "the restart should have caught messages in flight"
    assert client.peak_unacked <= window
    assert client.refused == {}
    _assert_every_message_arrived_in_order(listener.got(), sent)


def test_while_the_broker_is_away_the_queue_takes_what_fits_and_refuses_the_rest(mosquitto: Mosquitto) -> None:
    listener = _Listener(mosquitto)
    poll_until(lambda: listener.client.is_connected(), 5, what="listener connected")
    mosquitto.stop()
    publisher = _publisher(mosquitto, max_inflight=20, queue_limit=150)
    sent: dict[str, list[bytes]] = {}
    try:
        publisher.open(wait_s=0)
        batch = _batch(range(0, 10), sent)  # 100: all fit
        assert publisher.publish_many(batch) == 100
        refused = _batch(range(10, 20), {})  # 100 more: 50 fit, the rest are refused at once (no wait)
        assert publisher.publish_many(refused) == 50
        sent_later = [payload for topic, payload, _ in refused[:50]]
        for topic, payload, _ in refused[:50]:
            sent.setdefault(topic, []).append(payload)
        assert not publisher.publish(TOPICS[0], b"one more")
        assert publisher.unacknowledged() == 150
        mosquitto.start()
        mosquitto.wait_ready(10)
        poll_until(lambda: publisher.unacknowledged() == 0, 30, what="the queue sent once the broker is back")
        poll_until(lambda: len(set(listener.got())) >= 150, 30, what="the 150 accepted messages at the listener")
        assert publisher.close() == 0
    finally:
        publisher.stop()  # after close() a second stop does nothing
        listener.close()
    got = listener.got()
    assert sent_later and all((payload in {p for t, p in got}) for payload in sent_later)
    assert b"one more" not in {p for _, p in got}
    assert {(t, p) for t, p, _ in refused[50:]}.isdisjoint(got)
    _assert_every_message_arrived_in_order(got, sent)


BROKER_RECEIVE_MAXIMUM = 5
"""The broker's `max_inflight_messages`, which Mosquitto announces as its MQTT 5 Receive Maximum."""


class InFlightTap(Relay):
    """In front of the broker: for each connection relayed, the most QoS 1 PUBLISHes the client had sent
    and not seen acknowledged at once (`peaks`, one a connection, in order). A PUBACK is counted before
    it is passed on and a PUBLISH once it has arrived, so the count is never above what the client
    really had in flight: a peak above the broker's maximum is a real breach."""

    def __init__(self, upstream_port: int) -> None:
        self.peaks: list[int] = []
        self._lock = threading.Lock()
        super().__init__(upstream_port)

    def _watchers(self) -> tuple[Watcher, Watcher]:
        with self._lock:
            connection = len(self.peaks)
            self.peaks.append(0)
        in_flight: set[int] = set()
        from_client, from_broker = MqttPackets(), MqttPackets()

        def publishes(data: bytes) -> None:
            for first_byte, body in from_client.feed(data):
                if first_byte & 0xF6 == 0x32:  # PUBLISH at QoS 1, whatever its DUP and retain flags
                    topic_end = 2 + (body[0] << 8 | body[1])
                    with self._lock:
                        in_flight.add(body[topic_end] << 8 | body[topic_end + 1])
                        self.peaks[connection] = max(self.peaks[connection], len(in_flight))

        def pubacks(data: bytes) -> None:
            for first_byte, body in from_broker.feed(data):
                if first_byte == 0x40:
                    with self._lock:
                        in_flight.discard(body[0] << 8 | body[1])

        return publishes, pubacks


def _small_receive_maximum_broker(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    return mosquitto_factory(extra_config=f"max_inflight_messages {BROKER_RECEIVE_MAXIMUM}\n")


def _numbered(count: int) -> list[tuple[str, bytes, bool]]:
    return [(TOPICS[seq % len(TOPICS)], b'{"seq":%d}' % seq, False) for seq in range(count)]


def test_what_was_queued_while_the_broker_was_away_goes_out_within_its_receive_maximum(
        mosquitto_factory: Callable[..., Mosquitto]) -> None:
    broker = _small_receive_maximum_broker(mosquitto_factory)
    listener = _Listener(broker)
    poll_until(lambda: listener.client.is_connected(), 5, what="listener connected")
    broker.stop()
    tap = InFlightTap(broker.port)
    publisher = _publisher(broker, tap, max_inflight=50, queue_limit=1000)
    client = publisher._client
    messages = _numbered(200)
    try:
        publisher.open(wait_s=0)
        assert publisher.publish_many(messages) == 200
        broker.start()
        broker.wait_ready(10)
        poll_until(lambda: publisher.unacknowledged() == 0, 30, what="the queue sent once the broker is up")
        poll_until(lambda: len(listener.got()) >= 200, 30, what="the 200 messages at the listener")
        assert publisher.close() == 0
    finally:
        publisher.stop()
        listener.close()
        tap.close()
    assert client.window == BROKER_RECEIVE_MAXIMUM
    assert tap.peaks and max(tap.peaks) <= BROKER_RECEIVE_MAXIMUM
    assert client.peak_unacked <= BROKER_RECEIVE_MAXIMUM
    assert client.resent == 0 and client.refused == {}
    assert listener.got() == [(topic, payload) for topic, payload, _ in messages]  # in order, none lost or doubled


class _ConnectedRun:
    """600 numbered messages through `InFlightTap` from a connected publisher with a window of 50: 500
    as one run (most of them wait), then 100 one at a time; then close and wait for them all."""

    def __init__(self, broker: Mosquitto, protocol: Literal["5", "3.1.1"]) -> None:
        listener = _Listener(broker)
        self.tap = InFlightTap(broker.port)
        publisher = _publisher(broker, self.tap, protocol=protocol, max_inflight=50, queue_limit=1000)
        self.client = publisher._client
        self.messages = _numbered(600)
        try:
            poll_until(lambda: listener.client.is_connected(), 5, what="listener connected")
            assert publisher.open(wait_s=5)
            self.protocol = publisher.protocol_name
            assert publisher.publish_many(self.messages[:500]) == 500
            for message in self.messages[500:]:
                assert publisher.publish(*message)
            assert publisher.close() == 0
            poll_until(lambda: len(listener.got()) >= 600, 30, what="the 600 messages at the listener")
        finally:
            publisher.stop()
            listener.close()
            self.tap.close()
        self.got = listener.got()

    def arrived_in_order_once_each(self) -> bool:
        return self.got == [(topic, payload) for topic, payload, _ in self.messages]


def test_a_connected_publisher_keeps_within_the_brokers_receive_maximum(
        mosquitto_factory: Callable[..., Mosquitto]) -> None:
    run = _ConnectedRun(_small_receive_maximum_broker(mosquitto_factory), "5")
    assert run.client.window == BROKER_RECEIVE_MAXIMUM
    assert len(run.tap.peaks) == 1 and run.tap.peaks[0] <= BROKER_RECEIVE_MAXIMUM
    assert run.client.peak_unacked <= BROKER_RECEIVE_MAXIMUM
    assert run.arrived_in_order_once_each()


def test_over_311_which_has_no_receive_maximum_the_configured_window_rules(
        mosquitto_factory: Callable[..., Mosquitto]) -> None:
    run = _ConnectedRun(_small_receive_maximum_broker(mosquitto_factory), "3.1.1")
    assert run.protocol == "3.1.1"
    assert run.client.window == 50
    assert run.tap.peaks == [50], "the first write: a whole window before any PUBACK"
    assert run.arrived_in_order_once_each()


def test_after_a_restart_that_lowers_the_receive_maximum_the_resends_keep_within_it(mosquitto: Mosquitto) -> None:
    listener = _Listener(mosquitto)
    tap = InFlightTap(mosquitto.port)
    publisher = _publisher(mosquitto, tap, max_inflight=50, queue_limit=5000)
    client = publisher._client
    sent: dict[str, list[bytes]] = {}
    try:
        poll_until(lambda: listener.client.is_connected(), 5, what="listener connected")
        assert publisher.open(wait_s=5)
        batch = _batch(range(0, 300), sent)  # 3,000 in one run: 50 in flight when the broker stops
        assert publisher.publish_many(batch) == len(batch)
        mosquitto.stop()
        poll_until(lambda: not client.online, 10, what="the publisher noticing the broker is gone")
        assert client.window == 50
        mosquitto.extra_config = f"max_inflight_messages {BROKER_RECEIVE_MAXIMUM}\n"
        mosquitto.start()
        mosquitto.wait_ready(10)
        poll_until(lambda: publisher.unacknowledged() == 0, 30, what="every message acknowledged")
        total = sum(len(payloads) for payloads in sent.values())
        poll_until(lambda: len(set(listener.got())) >= total, 30, what="every message at the listener")
        assert publisher.close() == 0
    finally:
        publisher.stop()
        listener.close()
        tap.close()
    assert client.resent > BROKER_RECEIVE_MAXIMUM, "the restart should have caught more in flight than the new maximum"
    assert client.window == BROKER_RECEIVE_MAXIMUM
    first, *after_the_restart = tap.peaks
    assert first == 50, "the first write: a whole window before any PUBACK"
    assert after_the_restart and max(after_the_restart) <= BROKER_RECEIVE_MAXIMUM
    _assert_every_message_arrived_in_order(listener.got(), sent)
