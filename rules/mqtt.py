"""The rules engine's own MQTT subscription: the only module of `rules` that imports paho-mqtt.

A persistent session under its own client id, QoS 1, so readings published while the engine
restarts are delivered when it returns: MQTT 5 (`clean_start=False` + session expiry) or, as
`mqtt.protocol` says or when the broker refuses 5 (`mqtt.fallback_to_311`), 3.1.1 with
`clean_session=False`. Messages are decoded
with `core.decode.decode_message` (rejects are the collector's to count; here they are skipped) and
handed to `on_message` as `Reading`/`StatusChange`; connection changes go to `on_connection(bool)`.

Lifecycle: `start()` once (paho's network thread, reconnecting with backoff), `stop()` once.
Callbacks run on paho's thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.clock import Clock
from core.contract import Reading, reading_subscription, status_subscription
from core.decode import DecodeLimits, StatusChange, decode_message
from core.known_devices import KnownDevices
from core.mqtt_connect import apply_credentials_and_tls, subscriptions_granted
from core.poison import PoisonGuard
from core.settings.mqtt import MqttSettings

log = logging.getLogger("facmon.rules.mqtt")


class RulesSubscription:
    def __init__(self, settings: MqttSettings, client_id: str, clock: Clock,
                 on_message: Callable[[Reading | StatusChange], None],
                 on_connection: Callable[[bool], None], limits: DecodeLimits | None = None,
                 known: KnownDevices | None = None) -> None:
        """`known`: the devices that may publish (`sites.known_devices_only`); None: any device."""
        self._settings = settings
        self._clock = clock
        self._on_message = on_message
        self._on_connection = on_connection
        self._limits = limits or DecodeLimits()
        self._known = known
        self._client_id = client_id
        self._client = self._new_client(mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311)
        self._connected = False
        self._subscribed = False
        self._stopping = False
        self._guard = PoisonGuard("the rules engine", log, clock)

    def _new_client(self, protocol: int) -> mqtt.Client:
        # 3.1.1 keeps the session with clean_session=False; MQTT 5 with clean_start=False and an expiry.
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self._client_id, protocol=protocol,
                             clean_session=None if protocol == mqtt.MQTTv5 else False)
        apply_credentials_and_tls(client, self._settings)
        client.reconnect_delay_set(int(max(self._settings.reconnect_min_s, 1)), int(self._settings.reconnect_max_s))
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        return client

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def protocol_name(self) -> str:
        """The MQTT version of the current client: "5", or "3.1.1" as configured or after the fallback."""
        return "5" if self._client.protocol == mqtt.MQTTv5 else "3.1.1"

    @property
    def subscribed(self) -> bool:
        """True once the broker granted the subscriptions on the current connection: readings sent
        before that reach the engine only if its persistent session already held them."""
        return self._subscribed

    def start(self) -> None:
        if self._client.protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self._settings.session_expiry_s
            self._client.connect_async(self._settings.host, self._settings.port, self._settings.keepalive_s,
                                       clean_start=False, properties=props)
        else:
            self._client.connect_async(self._settings.host, self._settings.port, self._settings.keepalive_s)
        self._client.loop_start()

    def _fall_back_to_311(self) -> None:
        """Runs on a thread of its own: paho's loop cannot stop itself from its own callback."""
        refused = self._client
        refused.loop_stop()
        refused.disconnect()
        if self._stopping:
            return
        self._client = self._new_client(mqtt.MQTTv311)
        self.start()

    def stop(self) -> None:
        # A deliberate stop is not an outage: do not raise MonitoringDegraded for it.
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    def _handle_connect(self, client: mqtt.Client, _userdata: object, _flags: object, reason: object,
                        _props: object) -> None:
        if getattr(reason, "is_failure", False):
            unsupported = getattr(reason, "value", None) in (0x84, 1)  # MQTT 5's and 3.1.1's "unsupported version"
            if unsupported and client.protocol == mqtt.MQTTv5 and self._settings.fallback_to_311:
                log.warning("broker refused MQTT 5; the rules engine connects again with 3.1.1",
                            extra={"reason": str(reason)})
                threading.Thread(target=self._fall_back_to_311, name="rules-mqtt-fallback", daemon=True).start()
                return
            log.warning("broker refused the rules engine", extra={"reason": str(reason)})
            return
        client.subscribe([(reading_subscription(), 1), (status_subscription(), 1)])
        self._connected = True
        log.info("rules engine connected to the broker",
                 extra={"host": self._settings.host, "port": self._settings.port})
        self._on_connection(True)

    def _handle_subscribe(self, _client: mqtt.Client, _userdata: object, _mid: int,
                          reasons: list[mqtt.ReasonCode], _props: object) -> None:
        self._subscribed = subscriptions_granted(reasons, [reading_subscription(), status_subscription()], log)

    def _handle_disconnect(self, _client: mqtt.Client, _userdata: object, _flags: object, reason: object,
                           _props: object) -> None:
        self._subscribed = False
        if self._connected:
            self._connected = False
            if self._stopping:
                return
            log.warning("rules engine lost the broker", extra={"reason": str(reason)})
            self._on_connection(False)

    @property
    def poison_messages(self) -> int:
        """Messages the engine failed on (a bug), skipped so that the subscription lives on."""
        return self._guard.failures

    def _handle_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        self._guard.handle(self._decode_and_handle, message.topic, message.payload)

    def _decode_and_handle(self, topic: str, payload: bytes) -> None:
        decoded = decode_message(topic, payload, self._clock.now(), self._limits, self._known)
        if isinstance(decoded, Reading | StatusChange):
            self._on_message(decoded)
