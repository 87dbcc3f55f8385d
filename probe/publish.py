"""The probe's MQTT side: one connection per uplink device, as a real device does it.

Lifecycle: `open()` once (starts connecting; paho's thread reconnects for ever after), then
`publish()` any number of times, then `close()` once. On every (re)connect the device publishes
retained `online`; its last will is retained `offline`, so a crash or a cut cable is announced by
the broker; `close()` publishes `offline` itself, waits for the broker's acks and disconnects.
Readings are QoS 1; while the broker is unreachable up to `queue_limit` of them wait in paho's
queue (older ones first), beyond that the newest are dropped with a warning.
"""

from __future__ import annotations

import logging

import paho.mqtt.client as mqtt

from core.clock import Clock
from core.contract import STATUS_OFFLINE, STATUS_ONLINE, DeviceKey, Reading, encode_reading
from core.mqtt_connect import apply_credentials_and_tls
from core.settings.mqtt import MqttSettings

log = logging.getLogger(__name__)


class DeviceConnection:
    def __init__(self, settings: MqttSettings, device: DeviceKey, client_id: str, clock: Clock,
                 queue_limit: int = 1000) -> None:
        self.device = device
        self._settings = settings
        self._clock = clock
        protocol = mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id[:128], protocol=protocol)
        self._client.max_queued_messages_set(queue_limit)
        self._client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)
        apply_credentials_and_tls(self._client, settings)
        self._client.will_set(device.status_topic(), STATUS_OFFLINE, qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._infos: list[mqtt.MQTTMessageInfo] = []

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                    props: object) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("broker refused the probe", extra={"device": str(self.device), "reason": str(reason)})
            return
        # After an unclean drop the broker has published our will; say we are back.
        client.publish(self.device.status_topic(), STATUS_ONLINE, qos=1, retain=True)
        log.info("probe connected", extra={"device": str(self.device)})

    @property
    def connected(self) -> bool:
        return self._client.is_connected()

    def open(self, wait_s: float = 5.0) -> bool:
        """Start connecting; True if connected within `wait_s` (else paho keeps trying in the background)."""
        self._client.connect_async(self._settings.host, self._settings.port, keepalive=self._settings.keepalive_s)
        self._client.loop_start()
        deadline = self._clock.monotonic() + wait_s
        while not self._client.is_connected() and self._clock.monotonic() < deadline:
            self._clock.sleep(0.02)
        if not self._client.is_connected():
            log.warning("broker not reachable yet; readings wait in the queue",
                        extra={"device": str(self.device), "host": self._settings.host, "port": self._settings.port})
        return self._client.is_connected()

    def publish(self, reading: Reading) -> None:
        info = self._client.publish(reading.device.reading_topic(), encode_reading(reading), qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            log.warning("reading dropped: the queue for the unreachable broker is full",
                        extra={"device": str(self.device), "seq": reading.seq})
            return
        self._infos = [i for i in self._infos if not i.is_published()] + [info]

    def unacknowledged(self) -> int:
        return sum(not i.is_published() for i in self._infos)

    def close(self, timeout_s: float = 10.0) -> None:
        """Publish `offline`, wait (bounded) for the broker to acknowledge everything, disconnect."""
        if self._client.is_connected():
            self._infos.append(self._client.publish(self.device.status_topic(), STATUS_OFFLINE, qos=1, retain=True))
            deadline = self._clock.monotonic() + timeout_s
            while self.unacknowledged() and self._clock.monotonic() < deadline:
                self._clock.sleep(0.02)
        left = self.unacknowledged()
        if left:
            log.warning("closing with unacknowledged readings", extra={"device": str(self.device), "count": left})
        self._client.disconnect()
        self._client.loop_stop()
