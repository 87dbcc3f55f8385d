"""The API's own MQTT subscription, on the shared layer (`core.mqtt_subscriber`).

A non-persistent session (the API only wants *current* state: retained status messages tell it
who is online the moment it subscribes, and the next reading of each device arrives within its
interval), readings and status of every site. QoS 1 although nothing is kept while the API is away:
QoS 1 PUBLISHes take the layer's fast intake (runs from the read buffer, one write of PUBACKs)
instead of paho's own per-message path (benchmarks/README.md, "The stack without simulators").
Messages are decoded with the contract's `decode_message`, applied to `DeviceStates` with the
injected clock's time, and the resulting changes published as live events.

Lifecycle (api.deps.BackgroundService): `start()` connects in the background and returns at once
(paho's thread reconnects with backoff and resubscribes); `stop()` disconnects and joins the thread;
after it, no message is applied.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable

from api.device_states import DeviceEvent, DeviceStates
from api.metrics import ApiMetrics
from core.clock import Clock
from core.contract import reading_subscription, status_subscription
from core.decode import DecodeLimits, Reading, Reject, StatusChange, StatusCleared, decode_message
from core.known_devices import KnownDevices
from core.mqtt_subscriber import SessionSpec, Subscriber
from core.settings.mqtt import MqttSettings

log = logging.getLogger("facmon.api.mqtt")


class DeviceStateSubscription:
    def __init__(self, settings: MqttSettings, client_id_prefix: str, states: DeviceStates, clock: Clock,
                 limits: DecodeLimits, metrics: ApiMetrics,
                 on_events: Callable[[Iterable[DeviceEvent]], None], known: KnownDevices | None = None) -> None:
        """`known`: the devices that may publish (`sites.known_devices_only`); None: any device."""
        self._states = states
        self._clock = clock
        self._limits = limits
        self._metrics = metrics
        self._on_events = on_events
        self._known = known
        # A random suffix keeps several API processes apart (a broker binding client ids to accounts
        # replaces it with the account's name anyway).
        session = SessionSpec(f"{client_id_prefix}-{secrets.token_hex(4)}",
                              (status_subscription(), reading_subscription()), qos=1, persistent=False)
        self._subscriber = Subscriber(settings, session, clock, "the API", log, self._decode_and_apply,
                                      on_poison=lambda: metrics.count_mqtt("handler_failed"))

    @property
    def connected(self) -> bool:
        return self._subscriber.connected

    @property
    def subscribed(self) -> bool:
        """True once the broker granted the subscriptions on the current connection."""
        return self._subscriber.subscribed

    def start(self) -> None:
        self._subscriber.start()

    def stop(self) -> None:
        self._subscriber.stop()

    def _decode_and_apply(self, topic: str, payload: bytes) -> None:
        now = self._clock.now()
        decoded = decode_message(topic, payload, now, self._limits, self._known)
        if isinstance(decoded, Reject):
            self._metrics.count_mqtt(f"reject_{decoded.reason.value}")
            return
        if isinstance(decoded, StatusCleared):
            self._metrics.count_mqtt("status_cleared")
            self._states.forget(decoded.device)
            return
        self._metrics.count_mqtt("reading" if isinstance(decoded, Reading) else "status")
        assert isinstance(decoded, Reading | StatusChange)
        self._on_events(self._states.observe(decoded, now))
