"""The probe's MQTT side: one connection per uplink device, as a real device does it.

Lifecycle: `open()` once (starts connecting; the session reconnects for ever after), then
`publish()` any number of times, then `close()` once. On every (re)connect the device publishes
retained `online`; its last will is retained `offline`, so a crash or a cut cable is announced by
the broker; `close()` publishes `offline` itself, waits for the broker's acks and disconnects.
Readings are QoS 1; while the broker is unreachable up to `queue_limit` of them wait in the queue
(older ones first), beyond that the newest are dropped with a warning.
"""

from __future__ import annotations

import logging

from core.clock import Clock
from core.contract import STATUS_OFFLINE, STATUS_ONLINE, DeviceKey, Reading, encode_reading
from core.mqtt_publisher import Outgoing, Publisher
from core.settings.mqtt import MqttSettings

log = logging.getLogger(__name__)


class DeviceConnection:
    def __init__(self, settings: MqttSettings, device: DeviceKey, client_id: str, clock: Clock,
                 queue_limit: int = 1000) -> None:
        self.device = device
        self._publisher = Publisher(settings, client_id, clock, stage=f"the probe of {device}", log=log,
                                    will=Outgoing(device.status_topic(), STATUS_OFFLINE, retain=True),
                                    announce=[Outgoing(device.status_topic(), STATUS_ONLINE, retain=True)],
                                    queue_limit=queue_limit)

    @property
    def connected(self) -> bool:
        return self._publisher.connected

    def open(self, wait_s: float = 5.0) -> bool:
        """Start connecting; True if connected within `wait_s` (else it keeps trying in the background)."""
        return self._publisher.open(wait_s)

    def publish(self, reading: Reading) -> None:
        if not self._publisher.publish(reading.device.reading_topic(), encode_reading(reading)):
            log.warning("reading dropped: the queue for the unreachable broker is full",
                        extra={"device": str(self.device), "seq": reading.seq})

    def unacknowledged(self) -> int:
        return self._publisher.unacknowledged()

    def close(self, timeout_s: float = 10.0) -> None:
        """Publish `offline`, wait (bounded) for the broker to acknowledge everything, disconnect."""
        self._publisher.close([Outgoing(self.device.status_topic(), STATUS_OFFLINE, retain=True)], timeout_s)
