"""Whether the API itself is hearing the broker: its live feed, told apart from devices going quiet.

When the API's own MQTT subscription is down, no reading reaches it from any device, and judging
silence then would mark every device offline (stale) at once: a broker hiccup looked like a site-wide
failure. `FeedWatch` says when silence may be judged: never while the feed is down, and not until
`grace_s` (the devices' stale limit) after it is back, so each device has had its interval to be
heard again. Devices keep their last known state meanwhile; the page shows "feed lost" instead.

Pure: the app's sweep feeds it the subscription's state and the clock's time once a second. `LiveFeed`
holds the two the sweep needs together: how to ask the subscription, and the watch of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FeedState:
    connected: bool
    """The API's subscription is granted on a live broker connection."""
    since: float | None
    """When `connected` last changed (epoch seconds, the API's clock); None: not since the API started."""


class FeedWatch:
    """Tracks the API's feed; not thread-safe (the app's sweep task alone calls `update`)."""

    def __init__(self, grace_s: float) -> None:
        self._grace_s = grace_s
        self._state = FeedState(connected=False, since=None)
        self._judge_from: float | None = None
        """Silence may be judged from this time on; None while the feed is down."""

    @property
    def state(self) -> FeedState:
        return self._state

    def update(self, connected: bool, now: float) -> FeedState | None:
        """Note the subscription's state at `now`; the new state when it changed, else None."""
        if connected == self._state.connected:
            return None
        self._state = FeedState(connected, now)
        self._judge_from = now + self._grace_s if connected else None
        return self._state

    def may_judge_silence(self, now: float) -> bool:
        """True when a device's silence at `now` is its own and not the API's deafness."""
        return self._judge_from is not None and now >= self._judge_from


@dataclass(frozen=True, slots=True)
class LiveFeed:
    """The API's live feed: its MQTT subscription, asked whether it is live now, and the watch the sweep
    keeps of it (served at GET /api/v1/feed)."""

    is_connected: Callable[[], bool]
    """Whether the subscription is granted on a live broker connection now."""
    watch: FeedWatch
