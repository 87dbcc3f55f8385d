"""One MQTT subscription of a facmon stage, on paho's network thread: the layer the rules engine and the
API build on (the collector keeps its own intake for speed, on the same `core.mqtt_connect`).

What every stage got wrong in its own way before, done once here:
- the broker's identity from `mqtt.*` (host, port, TLS, credentials, keep-alive, reconnect back-off as
  configured) apart from the stage's own session (`SessionSpec`: client id, persistent or not, QoS,
  topics);
- the protocol: `mqtt.protocol` first, and 3.1.1 when a broker refuses MQTT 5 as unsupported and
  `mqtt.fallback_to_311` allows it; a persistent session as each version keeps one (MQTT 5
  `clean_start=False` with a session expiry, 3.1.1 `clean_session=False`);
- "subscribed" as the broker's SUBACK granting every topic, not as "connected";
- poison-message isolation (`core.poison.PoisonGuard`): no message can stop the subscription;
- paho's types stay here: the stage's handler gets `(topic, payload)` and connection changes as bool.

Lifecycle: `start()` once (connects in the background, reconnecting for ever), `stop()` once; after
`stop()` no handler is called. Handlers run on paho's thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.clock import Clock
from core.mqtt_connect import apply_credentials_and_tls, subscriptions_granted
from core.poison import PoisonGuard
from core.settings.mqtt import MqttSettings

_UNSUPPORTED_VERSION = (0x84, 1)
"""CONNACK reason codes for "unsupported protocol version": MQTT 5's, and 3.1.1's return code 1."""


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """A stage's own session: who it is to the broker and what it subscribes to."""

    client_id: str
    topics: tuple[str, ...]
    qos: int
    persistent: bool
    """Keep the session (and the QoS 1 messages queued for it) while the stage is away."""


class Subscriber:
    def __init__(self, settings: MqttSettings, session: SessionSpec, clock: Clock, stage: str,
                 log: logging.Logger, on_message: Callable[[str, bytes], None],
                 on_connection: Callable[[bool], None] | None = None,
                 on_poison: Callable[[], None] | None = None) -> None:
        """`stage` names the subscriber in log lines ("the rules engine"); `on_message(topic, payload)`
        runs for every message (guarded); `on_connection(connected)` when the connection comes or goes,
        never for a deliberate `stop()`; `on_poison()` after a message `on_message` failed on."""
        self._settings = settings
        self._session = session
        self._stage = stage
        self._log = log
        self._on_message = on_message
        self._on_connection = on_connection
        self._on_poison = on_poison
        self._guard = PoisonGuard(stage, log, clock)
        self._connected = False
        self._subscribed = False
        self._stopping = False
        self._client = self._new_client(mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def subscribed(self) -> bool:
        """True once the broker granted every subscription on the current connection: messages sent
        before that reach the stage only if its persistent session already held them."""
        return self._subscribed

    @property
    def protocol_name(self) -> str:
        """The MQTT version of the current connection: "5", or "3.1.1" as configured or after the fallback."""
        return "5" if self._client.protocol == mqtt.MQTTv5 else "3.1.1"

    @property
    def poison_messages(self) -> int:
        """Messages the stage's handler failed on (a bug), skipped so that the subscription lives on."""
        return self._guard.failures

    def start(self) -> None:
        s = self._settings
        if self._client.protocol == mqtt.MQTTv5:
            properties = None
            if self._session.persistent:
                properties = Properties(PacketTypes.CONNECT)
                properties.SessionExpiryInterval = s.session_expiry_s
            self._client.connect_async(s.host, s.port, s.keepalive_s, clean_start=not self._session.persistent,
                                       properties=properties)
        else:
            self._client.connect_async(s.host, s.port, s.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    # -- paho's side -------------------------------------------------------------------------------
    def _new_client(self, protocol: int) -> mqtt.Client:
        clean_session = None if protocol == mqtt.MQTTv5 else not self._session.persistent
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self._session.client_id, protocol=protocol,
                             clean_session=clean_session)
        apply_credentials_and_tls(client, self._settings)
        client.reconnect_delay_set(self._settings.reconnect_min_s, self._settings.reconnect_max_s)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        return client

    def _fall_back_to_311(self) -> None:
        """On a thread of its own: paho's loop cannot stop itself from its own callback."""
        refused = self._client
        refused.loop_stop()
        refused.disconnect()
        if self._stopping:
            return
        self._client = self._new_client(mqtt.MQTTv311)
        self.start()

    def _handle_connect(self, client: mqtt.Client, _userdata: object, _flags: object, reason: object,
                        _properties: object = None) -> None:
        if getattr(reason, "is_failure", False):
            unsupported = getattr(reason, "value", None) in _UNSUPPORTED_VERSION
            if unsupported and client.protocol == mqtt.MQTTv5 and self._settings.fallback_to_311:
                self._log.warning(f"broker refused MQTT 5; {self._stage} connects again with 3.1.1",
                                  extra={"reason": str(reason)})
                threading.Thread(target=self._fall_back_to_311, name="mqtt-fallback", daemon=True).start()
                return
            self._log.warning(f"broker refused {self._stage}", extra={"reason": str(reason)})
            return
        client.subscribe([(topic, self._session.qos) for topic in self._session.topics])
        self._connected = True
        self._log.info(f"{self._stage} connected to the broker",
                       extra={"host": self._settings.host, "port": self._settings.port,
                              "protocol": self.protocol_name})
        if self._on_connection is not None:
            self._on_connection(True)

    def _handle_subscribe(self, _client: mqtt.Client, _userdata: object, _mid: int,
                          reasons: list[mqtt.ReasonCode], _properties: object = None) -> None:
        self._subscribed = subscriptions_granted(reasons, list(self._session.topics), self._log)

    def _handle_disconnect(self, *_args: object) -> None:
        self._subscribed = False
        if not self._connected:
            return
        self._connected = False
        if self._stopping:
            return  # a deliberate stop is not an outage
        self._log.warning(f"{self._stage} lost the broker")
        if self._on_connection is not None:
            self._on_connection(False)

    def _handle_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if self._stopping:
            return
        if not self._guard.handle(self._on_message, message.topic, message.payload) and self._on_poison is not None:
            self._on_poison()
