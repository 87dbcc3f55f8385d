"""Test helpers shared by every test package: polling real I/O with a deadline."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from core.clock import SystemClock

T = TypeVar("T")
_CLOCK = SystemClock()


class PollTimeout(AssertionError):
    """The condition polled for did not come true in time."""


def poll_until(predicate: Callable[[], T], timeout_s: float = 10.0, interval_s: float = 0.05,
               what: str = "") -> T:
    """Call `predicate` until it returns something truthy, and return that.

    For waiting on real I/O (a message delivered, a point written) — never for time-based logic,
    which tests drive with FakeClock. Exceptions from `predicate` propagate at once.
    Raises PollTimeout (an AssertionError) after `timeout_s`, naming `what` and the last value seen."""
    deadline = _CLOCK.monotonic() + timeout_s
    attempts = 0
    while True:
        value = predicate()
        attempts += 1
        if value:
            return value
        if _CLOCK.monotonic() >= deadline:
            name = what or getattr(predicate, "__name__", repr(predicate))
            raise PollTimeout(f"timed out after {timeout_s:g} s ({attempts} attempts) waiting for {name}; "
                              f"last value: {value!r}")
        _CLOCK.sleep(interval_s)
