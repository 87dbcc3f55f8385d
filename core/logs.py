"""Structured logging: one line per event, `key=value` (logfmt) or JSON, and a rate limiter for
events that input can flood (one bad device must not fill the disk with identical lines)."""

from __future__ import annotations

import json
import logging
import sys
import threading
from typing import Any

from core.clock import Clock

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\\\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}Z", f"level={record.levelname.lower()}",
                 f"logger={record.name}", f"msg={_logfmt_value(record.getMessage())}"]
        parts += [f"{k}={_logfmt_value(v)}" for k, v in record.__dict__.items() if k not in _RESERVED]
        if record.exc_info:
            parts.append(f"exc={_logfmt_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + "Z", "level": record.levelname.lower(),
                "logger": record.name, "msg": record.getMessage()}
        body.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False, default=str)


def configure_logging(level: str = "info", fmt: str = "logfmt") -> None:
    import time

    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else LogfmtFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class RateLimiter:
    """Allows one event per key every `interval_s` of the injected clock, and counts what it held back,
    so the next line that passes can say how many were suppressed."""

    def __init__(self, clock: Clock, interval_s: float) -> None:
        self._clock = clock
        self._interval_s = interval_s
        self._next_allowed: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> int | None:
        """None if the event should be dropped; otherwise how many were suppressed since the last one."""
        now = self._clock.monotonic()
        with self._lock:
            if now < self._next_allowed.get(key, float("-inf")):
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            self._next_allowed[key] = now + self._interval_s
            return self._suppressed.pop(key, 0)
