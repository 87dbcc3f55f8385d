"""Failed authentications, counted per client address and per key id, in a sliding window of the
injected clock; the API answers 429 with Retry-After past the limit, and logs the failures.

A failure is a request that sent a key the store does not accept (missing keys are plain 401s and
are not counted: they cost nothing to check). Past `limit` failures within `window_s`:

  * from one client address: every request with a key from that address gets 429 until the window
    has room again, before its key is looked at (no hashing, no SQLite);
  * at one key id (`fmk_<id>_...`, from any address): a wrong secret for that id gets 429 instead of
    401. A right one still works, so nobody can lock a key's owner out by guessing at its id (ids
    are shown to viewers, in `created_by` of silences and `acked_by` of alerts).

Log lines name the address and the key id (`fmk_<id>`, or `malformed`), never the key. At most one
line of each kind (failed, refused) is written every LOG_INTERVAL_S, whatever the number of
addresses (a per-address limiter would itself grow with an attacker's addresses); each line says how
many it held back.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import threading
from collections import deque

from core.clock import Clock
from core.logs import RateLimiter

log = logging.getLogger("facmon.api.auth")
_KEY_ID = re.compile(r"\Afmk_([0-9a-f]{12})_")
LOG_INTERVAL_S = 10.0
MAX_TRACKED = 10_000
"""Addresses (and key ids) remembered at most; past it, expired ones and then the quietest are
forgotten, down to 90% so that the sweep runs once per thousand new names, not on each."""


def key_label(token: str) -> str:
    """What a log may say about `token`: `fmk_<id>` when it has the shape of a key, else `malformed`."""
    match = _KEY_ID.match(token)
    return f"fmk_{match.group(1)}" if match else "malformed"


class _Window:
    """Recent failure times per name: at most `limit` kept each (older ones cannot matter)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self._limit = limit
        self._window_s = window_s
        self._times: dict[str, deque[float]] = {}

    def add(self, name: str, now: float) -> None:
        times = self._times.pop(name, None) or deque(maxlen=self._limit)
        times.append(now)
        self._times[name] = times  # re-inserted: the dict's order is least recently failed first
        if len(self._times) > MAX_TRACKED:
            self._forget(now)

    def retry_after_s(self, name: str, now: float) -> int | None:
        """Whole seconds until `name` is under the limit again, or None when it is under it now."""
        times = self._times.get(name)
        if times is None or len(times) < self._limit:
            return None
        wait = times[0] + self._window_s - now
        return max(1, math.ceil(wait)) if wait > 0 else None

    def _forget(self, now: float) -> None:
        self._times = {name: times for name, times in self._times.items() if times[-1] + self._window_s > now}
        excess = len(self._times) - MAX_TRACKED * 9 // 10
        if excess > 0:
            for name in list(itertools.islice(self._times, excess)):
                del self._times[name]


class AuthFailures:
    """Thread-safe counter of failed authentications (see the module docstring for the policy)."""

    def __init__(self, clock: Clock, limit: int, window_s: float) -> None:
        self._clock = clock
        self._by_address = _Window(limit, window_s)
        self._by_key = _Window(limit, window_s)
        self._lock = threading.Lock()
        self._log_limiter = RateLimiter(clock, LOG_INTERVAL_S)
        self.refused = 0
        """Requests answered 429 so far (for tests and metrics)."""

    def address_retry_after_s(self, address: str) -> int | None:
        """Seconds `address` must wait before its next request with a key is looked at; None: go on."""
        with self._lock:
            wait = self._by_address.retry_after_s(address, self._clock.monotonic())
        if wait is not None:
            self._refused(address, "-", wait, "address")
        return wait

    def failed(self, address: str, token: str) -> int | None:
        """Record that `address` sent `token` and it was not accepted. Returns the seconds to answer in
        Retry-After when the address or the key id is now over the limit, else None (answer 401)."""
        label = key_label(token)
        now = self._clock.monotonic()
        with self._lock:  # over the limit means `limit` failures already, before this one
            address_wait = self._by_address.retry_after_s(address, now)
            self._by_address.add(address, now)
            key_wait = None
            if label != "malformed":
                key_wait = self._by_key.retry_after_s(label, now)
                self._by_key.add(label, now)
        suppressed = self._log_limiter.allow("failed")
        if suppressed is not None:
            log.warning("authentication failed", extra={"client": address, "key_prefix": label,
                                                        "suppressed": suppressed})
        if address_wait is None and key_wait is None:
            return None
        wait = max(w for w in (address_wait, key_wait) if w is not None)
        self._refused(address, label, wait, "address" if address_wait is not None else "key id")
        return wait

    def _refused(self, address: str, label: str, wait: int, over: str) -> None:
        with self._lock:
            self.refused += 1
        suppressed = self._log_limiter.allow("refused")
        if suppressed is not None:
            log.warning("authentication failures over the limit; answering 429",
                        extra={"client": address, "key_prefix": label, "over": over, "retry_after_s": wait,
                               "suppressed": suppressed})
