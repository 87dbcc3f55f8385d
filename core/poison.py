"""Poison-message isolation for facmon's MQTT consumers: no message can stop one.

A consumer's handler runs on paho's network thread. If it raised, paho's loop would end and with it
the subscription, while the process went on saying it was connected; and since paho acknowledges a
QoS 1 message only after its handler returns, the broker would deliver the same message again after
every restart. So each message is handled inside `PoisonGuard.handle`: a failure is counted, logged
(with the topic, a payload excerpt and the traceback, at most once per `log_every_s`), and the
message is acknowledged as handled. It is facmon's bug to fix, not the device's to resend.

The collector keeps its own form of this (`collector.ingest`): there, such a message is also a
`handler_failed` reject in the dead-letter file and in InfluxDB.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.clock import Clock
from core.logs import RateLimiter

PAYLOAD_EXCERPT_BYTES = 200


class PoisonGuard:
    """Runs a consumer's handler on one message at a time; thread-safe for one paho thread."""

    def __init__(self, stage: str, log: logging.Logger, clock: Clock, log_every_s: float = 10.0) -> None:
        self._stage = stage
        self._log = log
        self._limiter = RateLimiter(clock, log_every_s)
        self.failures = 0
        """Messages whose handler raised, since start."""

    def handle(self, handler: Callable[[str, bytes], None], topic: str, payload: bytes) -> bool:
        """`handler(topic, payload)`; False (and counted and logged) if it raised."""
        try:
            handler(topic, payload)
        except Exception as err:  # a bug must cost one message, not the consumer
            self.failures += 1
            suppressed = self._limiter.allow("handler_failed")
            if suppressed is not None:
                self._log.error(f"{self._stage} failed on a message and skipped it (facmon's bug: please report it)",
                                exc_info=err, extra={"topic": topic[:200], "payload_bytes": len(payload),
                                                     "payload": payload[:PAYLOAD_EXCERPT_BYTES].decode("utf-8",
                                                                                                    "replace"),
                                                     "failures": self.failures, "suppressed_since_last": suppressed})
            return False
        return True
