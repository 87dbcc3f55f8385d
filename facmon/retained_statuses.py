"""Devices' retained statuses on a broker: which ones it holds, and setting or clearing them.

`facmon simulate` leaves the statuses of the devices it ran as it found them; `facmon sites retire`
and `facmon devices forget` clear them. An empty retained payload deletes a retained message, and
every facmon consumer reads it as `core.decode.StatusCleared` (the API then forgets the device).

    held = read_statuses(mqtt, clock, "park")           # {DeviceKey: b"online", ...}
    write_statuses(mqtt, clock, {key: b"" for key in held})  # cleared
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Mapping

from core.clock import Clock
from core.contract import DeviceKey, TopicError, parse_topic, status_subscription
from core.mqtt_publisher import Publisher
from core.mqtt_subscriber import SessionSpec, Subscriber
from core.settings.mqtt import MqttSettings

log = logging.getLogger("facmon.statuses")


class StatusesUnreachable(RuntimeError):
    """The broker did not let us read or write statuses in time; the message says where and what to check."""


def read_statuses(settings: MqttSettings, clock: Clock, site: str = "+", *, quiet_s: float = 0.3,
                  connect_timeout_s: float = 5.0, max_wait_s: float = 10.0) -> dict[DeviceKey, bytes]:
    """The status each device of `site` ('+': every site) holds on the broker: what arrives right
    after the subscription is granted (the retained messages), until `quiet_s` passes without
    another one, at most `max_wait_s`. Raises StatusesUnreachable if no subscription within
    `connect_timeout_s`."""
    held: dict[DeviceKey, bytes] = {}
    lock = threading.Lock()
    last_at = [clock.monotonic()]

    def keep(topic: str, payload: bytes) -> None:
        try:
            device = parse_topic(topic).device
        except TopicError:
            return  # not a facmon status topic: nothing of ours to keep or clear
        with lock:
            if payload:
                held[device] = payload
            else:
                held.pop(device, None)
            last_at[0] = clock.monotonic()

    session = SessionSpec(f"facmon-statuses-{secrets.token_hex(4)}", (status_subscription(site),), qos=1,
                          persistent=False)
    subscriber = Subscriber(settings, session, clock, "the status reader", log, keep)
    subscriber.start()
    try:
        deadline = clock.monotonic() + connect_timeout_s
        while not subscriber.subscribed:
            if clock.monotonic() > deadline:
                raise StatusesUnreachable(
                    f"no subscription to {status_subscription(site)} at mqtt://{settings.host}:{settings.port} "
                    f"within {connect_timeout_s:g} s: is the broker running there, and may this login read it?")
            clock.sleep(0.02)
        with lock:
            last_at[0] = clock.monotonic()
        end = clock.monotonic() + max_wait_s
        while clock.monotonic() < end:
            with lock:
                quiet_since = last_at[0]
            if clock.monotonic() - quiet_since >= quiet_s:
                break
            clock.sleep(0.02)
        with lock:
            return dict(held)
    finally:
        subscriber.stop()


def write_statuses(settings: MqttSettings, clock: Clock, statuses: Mapping[DeviceKey, bytes],
                   timeout_s: float = 10.0) -> None:
    """Publish each device's status retained (an empty payload clears it), QoS 1, and wait until the
    broker acknowledged them all. Raises StatusesUnreachable otherwise."""
    if not statuses:
        return
    publisher = Publisher(settings, f"facmon-statuses-{secrets.token_hex(4)}", clock, stage="the status writer",
                          log=log)
    if not publisher.open(wait_s=timeout_s):
        publisher.close(timeout_s=0)
        raise StatusesUnreachable(f"cannot reach the broker at mqtt://{settings.host}:{settings.port} to write "
                                  f"{len(statuses)} retained statuses: is it running?")
    for device, payload in statuses.items():
        publisher.publish(device.status_topic(), payload, retain=True)
    left = publisher.close(timeout_s=timeout_s)
    if left:
        raise StatusesUnreachable(f"the broker at mqtt://{settings.host}:{settings.port} acknowledged "
                                  f"{len(statuses) - left} of {len(statuses)} retained statuses within "
                                  f"{timeout_s:g} s; run the command again")
