"""One MQTT session of a facmon stage, on paho's network thread: what the subscription layer
(`core.mqtt_subscriber`) and the publishing layer (`core.mqtt_publisher`) share.

Done once here, for every stage:
- the broker's identity from `mqtt.*` (host, port, TLS, credentials, keep-alive, reconnect back-off)
  apart from the stage's own session (client id, persistent or not, last will);
- the protocol: `mqtt.protocol` first, and 3.1.1 when a broker refuses MQTT 5 as unsupported and
  `mqtt.fallback_to_311` allows it; a persistent session as each version keeps one (MQTT 5
  `clean_start=False` with a session expiry, 3.1.1 `clean_session=False`);
- connection changes reported as a bool, never for a deliberate `stop()`;
- paho's types stay in `core/`: stages see topics, payloads and booleans.

Lifecycle: `start()` once (connects in the background, reconnecting for ever), `stop()` once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.mqtt_connect import apply_credentials_and_tls
from core.settings.mqtt import MqttSettings

_UNSUPPORTED_VERSION = (0x84, 1)
"""CONNACK reason codes for "unsupported protocol version": MQTT 5's, and 3.1.1's return code 1."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message a session publishes (QoS 1): a reading, a status, a last will."""

    topic: str
    payload: bytes | str
    retain: bool = False


class MqttSession:
    """The connection half of a session; subclasses say what happens once the broker accepts it
    (`_on_accepted`, on paho's thread) and what else the client needs (`_configure`)."""

    def __init__(self, settings: MqttSettings, client_id: str, *, persistent: bool, stage: str,
                 log: logging.Logger, will: Outgoing | None = None, session_expiry_s: int = 7 * 86_400,
                 on_connection: Callable[[bool], None] | None = None) -> None:
        """`stage` names the session in log lines ("the rules engine"); `session_expiry_s`: how long the
        broker keeps a persistent session while the stage is away (MQTT 5); `on_connection(connected)` runs
        when the connection comes or goes, never for a deliberate `stop()`."""
        self._settings = settings
        self._client_id = client_id[:128]
        self._persistent = persistent
        self._session_expiry_s = session_expiry_s
        self._stage = stage
        self._log = log
        self._will = will
        self._on_connection = on_connection
        self._connected = False
        self._stopping = False
        self._client = self._new_client(mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def protocol_name(self) -> str:
        """The MQTT version of the current connection: "5", or "3.1.1" as configured or after the fallback."""
        return "5" if self._client.protocol == mqtt.MQTTv5 else "3.1.1"

    def start(self) -> None:
        s = self._settings
        if self._client.protocol == mqtt.MQTTv5:
            properties = None
            if self._persistent:
                properties = Properties(PacketTypes.CONNECT)
                properties.SessionExpiryInterval = self._session_expiry_s
            self._client.connect_async(s.host, s.port, s.keepalive_s, clean_start=not self._persistent,
                                       properties=properties)
        else:
            self._client.connect_async(s.host, s.port, s.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    # -- for subclasses ----------------------------------------------------------------------------
    def _configure(self, client: mqtt.Client) -> None:
        """Set what else a new client needs (callbacks, queue limits); called for each client."""

    def _on_accepted(self, client: mqtt.Client) -> None:
        """The broker accepted the connection (subscribe, announce); on paho's thread."""

    def _on_replaced(self, refused: mqtt.Client) -> None:
        """`refused` (the MQTT 5 client) gave way to a 3.1.1 one; carry over what it still held."""

    def _on_lost(self) -> None:
        """The connection dropped (also on a deliberate stop)."""

    # -- paho's side -------------------------------------------------------------------------------
    _client_class: type[mqtt.Client] = mqtt.Client
    _manual_ack = False

    def _new_client(self, protocol: int) -> mqtt.Client:
        clean_session = None if protocol == mqtt.MQTTv5 else not self._persistent
        client = self._client_class(mqtt.CallbackAPIVersion.VERSION2, client_id=self._client_id, protocol=protocol,
                                    clean_session=clean_session, manual_ack=self._manual_ack)
        apply_credentials_and_tls(client, self._settings)
        client.reconnect_delay_set(self._settings.reconnect_min_s, self._settings.reconnect_max_s)
        if self._will is not None:
            client.will_set(self._will.topic, self._will.payload, qos=1, retain=self._will.retain)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        self._configure(client)
        return client

    def _fall_back_to_311(self) -> None:
        """On a thread of its own: paho's loop cannot stop itself from its own callback."""
        refused = self._client
        refused.loop_stop()
        refused.disconnect()
        if self._stopping:
            return
        self._client = self._new_client(mqtt.MQTTv311)
        self._on_replaced(refused)
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
        self._on_accepted(client)
        self._connected = True
        self._log.info(f"{self._stage} connected to the broker",
                       extra={"host": self._settings.host, "port": self._settings.port,
                              "protocol": self.protocol_name})
        if self._on_connection is not None:
            self._on_connection(True)

    def _handle_disconnect(self, *_args: object) -> None:
        self._on_lost()
        if not self._connected:
            return
        self._connected = False
        if self._stopping:
            return  # a deliberate stop is not an outage
        self._log.warning(f"{self._stage} lost the broker")
        if self._on_connection is not None:
            self._on_connection(False)
