"""The collector's intake at a trickle (`MqttSource.gather`) against a real Mosquitto: what arrives while it
lingers is handed over in one go, and a burst of 64 KiB or a stop ends the wait before the linger does."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from collector.mqtt_source import GATHER_BYTES, InboundBatch, MqttSource
from core.clock import SystemClock
from core.contract import encode_reading
from core.settings.collector import CollectorSessionSettings
from core.settings.mqtt import MqttSettings
from facmon.servers import Mosquitto
from tests.integration.collector.harness import Publisher, inverter_readings, now_ms
from tests.support import poll_until

pytestmark = pytest.mark.integration

LONG_S = 60.0
"""A wait the test must never sit out: the thread under test is joined with a third of it."""


@pytest.fixture
def source(mosquitto: Mosquitto) -> Iterator[tuple[MqttSource, list[InboundBatch]]]:
    batches: list[InboundBatch] = []
    source = MqttSource(MqttSettings(host="127.0.0.1", port=mosquitto.port),
                        CollectorSessionSettings(client_id=f"gather-{uuid.uuid4().hex[:8]}"), batches.append,
                        SystemClock())

    def subscribed() -> bool:
        source.poll(0.05)
        return source.subscribed

    poll_until(subscribed, 15, what="source subscribed")
    yield source, batches
    source.close()


def gather_in_thread(source: MqttSource, results: list[float | None]) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.append(source.gather(LONG_S, LONG_S)), daemon=True)
    thread.start()
    return thread


def test_what_arrives_while_it_lingers_is_handed_over_in_one_go(
        mosquitto: Mosquitto, source: tuple[MqttSource, list[InboundBatch]]) -> None:
    mqtt_source, batches = source
    readings = inverter_readings("park", devices=4, per_device=5, start_ms=now_ms() - 60_000)
    results: list[float | None] = []
    thread = threading.Thread(target=lambda: results.append(mqtt_source.gather(LONG_S, 3.0)), daemon=True)
    thread.start()
    publisher = Publisher(mosquitto.port, client_id="gather-publisher")
    publisher.publish_readings(readings[:10])  # wakes the gather, which lingers for 3 s
    publisher.wait_all_acked()
    publisher.publish_readings(readings[10:])  # arrives while it lingers
    publisher.wait_all_acked()
    publisher.close()
    thread.join(LONG_S / 3)
    assert not thread.is_alive() and results[0] is not None
    # One socket read; paho's own reader takes its first packet, the fast path the run after it.
    assert [payload for batch in batches for payload in batch.payloads] == [encode_reading(r) for r in readings]
    assert len(batches) <= 2
    assert mqtt_source.ack([batch.ack for batch in batches if batch.ack is not None]) == 20


def test_a_burst_of_64_kib_ends_the_linger(mosquitto: Mosquitto,
                                           source: tuple[MqttSource, list[InboundBatch]]) -> None:
    mqtt_source, batches = source
    readings = inverter_readings("park", devices=10, per_device=100, start_ms=now_ms() - 600_000)
    assert sum(len(encode_reading(r)) for r in readings) > 2 * GATHER_BYTES
    results: list[float | None] = []
    publisher = Publisher(mosquitto.port, client_id="gather-burst-publisher")
    publisher.publish_readings(readings)
    thread = gather_in_thread(mqtt_source, results)
    thread.join(LONG_S / 3)
    publisher.close()
    assert not thread.is_alive(), "gather sat out its linger with 64 KiB waiting"
    assert results[0] is not None and sum(len(batch.topics) for batch in batches) > 0


def test_a_stop_wakes_an_idle_gather(source: tuple[MqttSource, list[InboundBatch]]) -> None:
    mqtt_source, batches = source
    results: list[float | None] = []
    thread = gather_in_thread(mqtt_source, results)
    mqtt_source.wake()
    thread.join(LONG_S / 3)
    assert not thread.is_alive(), "gather did not wake"
    assert results == [None] and batches == []
