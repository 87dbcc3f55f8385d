"""core.mqtt_subscriber.RunSubscriber through real Mosquitto: a burst arrives as runs, every message once
and in order, and a run its handler fails on is skipped, counted, and does not stop the subscription."""

from __future__ import annotations

import logging

from core.clock import SystemClock
from core.mqtt_publisher import Publisher
from core.mqtt_subscriber import RunSubscriber, SessionSpec
from core.settings.mqtt import MqttSettings
from facmon.servers import Mosquitto
from tests.support import poll_until

LOG = logging.getLogger("test.run_subscriber")


def _publish(settings: MqttSettings, messages: list[tuple[str, bytes, bool]]) -> None:
    publisher = Publisher(settings, "test-run-publisher", SystemClock(), stage="the test publisher", log=LOG,
                          queue_limit=len(messages))
    publisher.open(wait_s=10)
    try:
        assert publisher.publish_many(messages) == len(messages)
    finally:
        assert publisher.close(timeout_s=20) == 0


def _subscriber(settings: MqttSettings, on_run) -> RunSubscriber:  # type: ignore[no-untyped-def]
    subscriber = RunSubscriber(settings, SessionSpec("test-run-subscriber", ("x/+",), qos=1, persistent=False),
                               SystemClock(), "the test subscriber", LOG, on_run)
    subscriber.start()
    poll_until(lambda: subscriber.subscribed, 10, what="subscribed")
    return subscriber


def test_a_burst_arrives_in_runs_every_message_once_and_in_order(mosquitto: Mosquitto) -> None:
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port)
    runs: list[list[tuple[str, bytes]]] = []
    subscriber = _subscriber(settings, runs.append)
    try:
        _publish(settings, [(f"x/{n % 7}", b"%d" % n, False) for n in range(2_000)])
        poll_until(lambda: sum(map(len, runs)) >= 2_000, 20, what="the burst delivered")
    finally:
        subscriber.stop()
    received = [message for run in runs for message in run]
    assert received == [(f"x/{n % 7}", b"%d" % n) for n in range(2_000)]
    assert len(runs) < 2_000  # runs, not one hand-over a message


def test_a_run_the_handler_fails_on_is_skipped_and_counted_and_the_subscription_goes_on(
        mosquitto: Mosquitto) -> None:
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port)
    received: list[tuple[str, bytes]] = []

    def on_run(run: list[tuple[str, bytes]]) -> None:
        if ("x/bug", b"boom") in run:
            raise RuntimeError("a bug in the stage, on purpose")
        received.extend(run)

    subscriber = _subscriber(settings, on_run)
    try:
        _publish(settings, [("x/bug", b"boom", False)])
        poll_until(lambda: subscriber.poison_messages == 1, 10, what="the failed run counted")
        _publish(settings, [("x/ok", b"after", False)])
        poll_until(lambda: received == [("x/ok", b"after")], 10, what="the next message delivered")
    finally:
        subscriber.stop()
    assert subscriber.poison_messages == 1
