"""The API's own MQTT subscription: the only module of the API that imports paho-mqtt.

A non-persistent session (the API only wants *current* state: retained status messages tell it
who is online the moment it subscribes, and the next reading of each device arrives within its
interval), QoS 0, readings and status of every site. Messages are decoded with the contract's
`decode_message`, applied to `DeviceStates` with the injected clock's time, and the resulting
changes published as live events.

Lifecycle (api.deps.BackgroundService): `start()` connects in the background and returns at once (paho's
thread reconnects with backoff and resubscribes); `stop()` disconnects and joins the thread; after
it, no message is applied.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt

from api.device_states import DeviceEvent, DeviceStates
from api.metrics import ApiMetrics
from core.clock import Clock
from core.contract import reading_subscription, status_subscription
from core.decode import DecodeLimits, Reading, Reject, StatusChange, decode_message
from core.known_devices import KnownDevices
from core.mqtt_connect import apply_credentials_and_tls, subscriptions_granted
from core.poison import PoisonGuard
from core.settings.mqtt import MqttSettings

log = logging.getLogger("facmon.api.mqtt")


class DeviceStateSubscription:
    def __init__(self, settings: MqttSettings, client_id_prefix: str, states: DeviceStates, clock: Clock,
                 limits: DecodeLimits, metrics: ApiMetrics,
                 on_events: Callable[[Iterable[DeviceEvent]], None], known: KnownDevices | None = None) -> None:
        """`known`: the devices that may publish (`sites.known_devices_only`); None: any device."""
        self._settings = settings
        self._states = states
        self._clock = clock
        self._limits = limits
        self._metrics = metrics
        self._on_events = on_events
        self._known = known
        self._stopped = False
        protocol = mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                   client_id=f"{client_id_prefix}-{secrets.token_hex(4)}", protocol=protocol,
                                   clean_session=None if protocol == mqtt.MQTTv5 else True)
        apply_credentials_and_tls(self._client, settings)
        self._client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)
        self._client.on_connect = self._handle_connect
        self._client.on_message = self._handle_message
        self._client.on_subscribe = self._handle_subscribe
        self._client.on_disconnect = self._handle_disconnect
        self._subscribed = False
        self._guard = PoisonGuard("the API", log, clock)

    @property
    def connected(self) -> bool:
        return self._client.is_connected()

    @property
    def subscribed(self) -> bool:
        """True once the broker granted the subscriptions on the current connection."""
        return self._subscribed

    def start(self) -> None:
        self._client.connect_async(self._settings.host, self._settings.port, self._settings.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopped = True
        self._client.disconnect()
        self._client.loop_stop()

    def _handle_connect(self, client: mqtt.Client, _userdata: object, _flags: object, reason: object,
                        _properties: object = None) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("mqtt connect refused", extra={"reason": str(reason)})
            return
        client.subscribe([(status_subscription(), 0), (reading_subscription(), 0)])

    def _handle_subscribe(self, _client: mqtt.Client, _userdata: object, _mid: int,
                          reasons: list[mqtt.ReasonCode], _properties: object = None) -> None:
        self._subscribed = subscriptions_granted(reasons, [status_subscription(), reading_subscription()], log)

    def _handle_disconnect(self, *_args: object) -> None:
        self._subscribed = False

    def _handle_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if self._stopped:
            return
        if not self._guard.handle(self._decode_and_apply, message.topic, message.payload):
            self._metrics.count_mqtt("handler_failed")

    def _decode_and_apply(self, topic: str, payload: bytes) -> None:
        now = self._clock.now()
        decoded = decode_message(topic, payload, now, self._limits, self._known)
        if isinstance(decoded, Reject):
            self._metrics.count_mqtt(f"reject_{decoded.reason.value}")
            return
        self._metrics.count_mqtt("reading" if isinstance(decoded, Reading) else "status")
        assert isinstance(decoded, Reading | StatusChange)
        self._on_events(self._states.observe(decoded, now))
