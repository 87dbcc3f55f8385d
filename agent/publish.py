"""The agent's MQTT side: one connection per device (its own last will), on core's publishing layer.

The device's status is what the agent last judged (online when it answered, offline when it did not),
published retained on every change and again after every reconnect, since the broker may have
published the connection's last will (`offline`) while the agent was away from it.
"""

from __future__ import annotations

import logging

from agent.poll import Outcome
from core.clock import Clock
from core.contract import STATUS_OFFLINE, DeviceKey, encode_reading
from core.mqtt_publisher import Outgoing, Publisher
from core.settings.mqtt import MqttSettings

log = logging.getLogger("facmon.agent")


class DeviceConnection:
    def __init__(self, settings: MqttSettings, device: DeviceKey, client_id: str, clock: Clock) -> None:
        self.device = device
        self._status: str | None = None
        self._republish = False
        self._publisher = Publisher(settings, client_id, clock, stage=f"the agent of {device}", log=log,
                                    will=Outgoing(device.status_topic(), STATUS_OFFLINE, retain=True),
                                    on_connection=self._on_connection)

    def _on_connection(self, connected: bool) -> None:
        if connected:
            self._republish = True  # picked up by the polling thread, the publisher's one user

    def open(self, wait_s: float = 5.0) -> bool:
        return self._publisher.open(wait_s)

    def deliver(self, outcome: Outcome) -> None:
        if outcome.status is not None:
            self._status = outcome.status
            self._publish(self.device.status_topic(), outcome.status, retain=True)
        elif self._republish and self._status is not None:
            self._publish(self.device.status_topic(), self._status, retain=True)
        self._republish = False
        if outcome.reading is not None:
            self._publish(self.device.reading_topic(), encode_reading(outcome.reading), retain=False)

    def _publish(self, topic: str, payload: bytes | str, retain: bool) -> None:
        if not self._publisher.publish(topic, payload, retain):
            log.warning("message dropped: the queue for the unreachable broker is full",
                        extra={"device": str(self.device), "topic": topic})

    def close(self, timeout_s: float = 10.0) -> None:
        """Publish `offline` (the agent stops watching the device), wait for the broker's acks, disconnect."""
        self._publisher.close([Outgoing(self.device.status_topic(), STATUS_OFFLINE, retain=True)], timeout_s)
