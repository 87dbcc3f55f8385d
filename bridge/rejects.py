"""What the bridge did not forward, made visible: counts by reason (and by source), the latest
few listed with a payload excerpt, and log lines limited per reason and source so that one broken
sensor publishing every second cannot flood the log."""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from dataclasses import dataclass

from bridge.translate import Dropped, DropReason
from core.clock import Clock
from core.logs import RateLimiter

EXCERPT_BYTES = 200
QUIET_REASONS = frozenset({DropReason.UNKNOWN_VALUE.value})
"""Counted, never logged: a SolarAssistant box publishes dozens of values no mapping uses."""


@dataclass(frozen=True, slots=True)
class RejectEntry:
    at: float
    reason: str
    source: str | None
    topic: str
    detail: str
    excerpt: str

    def as_dict(self) -> dict[str, object]:
        return {"at": self.at, "reason": self.reason, "source": self.source, "topic": self.topic,
                "detail": self.detail, "payload_excerpt": self.excerpt}


class RejectLog:
    """Thread-safe."""

    def __init__(self, clock: Clock, log: logging.Logger, keep: int = 200, log_every_s: float = 60.0) -> None:
        self._clock = clock
        self._log = log
        self._limiter = RateLimiter(clock, log_every_s)
        self._recent: deque[RejectEntry] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self.by_reason: Counter[str] = Counter()
        self.by_source: Counter[tuple[str, str]] = Counter()
        """(source name or "-", reason) → count."""

    def add(self, dropped: Dropped) -> None:
        reason = str(dropped.reason)  # a DropReason or one of core.decode's reasons: plain text from here on
        entry = RejectEntry(self._clock.now(), reason, dropped.source, dropped.topic[:256],
                            dropped.detail[:500], dropped.payload[:EXCERPT_BYTES].decode("utf-8", "replace"))
        with self._lock:
            self.by_reason[reason] += 1
            self.by_source[(dropped.source or "-", reason)] += 1
            self._recent.append(entry)
        if reason in QUIET_REASONS:
            return
        suppressed = self._limiter.allow(f"{reason}/{dropped.source}")
        if suppressed is not None:
            self._log.warning("bridge dropped a message", extra={"reason": reason, "source": dropped.source,
                                                                 "topic": entry.topic, "detail": entry.detail,
                                                                 "payload": entry.excerpt,
                                                                 "suppressed_since_last": suppressed})

    def recent(self, limit: int = 50, reason: str | None = None) -> list[RejectEntry]:
        """The latest entries, newest first."""
        with self._lock:
            entries = [e for e in reversed(self._recent) if reason is None or e.reason == reason]
        return entries[:limit]

    def total(self) -> int:
        with self._lock:
            return sum(self.by_reason.values())
