"""The broker's own counters, watched: an alert well before its queue limit, and one as soon as it drops.

Mosquitto keeps at most `max_queued_messages` for a session whose client is away or slow (the
collector while InfluxDB or its disk is down), then drops the *newest* QoS 1 messages for it, PUBACKed
to the devices already, with one log line (`Outgoing messages are being dropped for client ...`).
It publishes its counters every `sys_interval` (default 10 s) as retained `$SYS` topics (measured on
Mosquitto 2.0.11, Debian 12):

    $SYS/broker/store/messages/count      messages held: queued for sessions + retained messages
    $SYS/broker/retained messages/count   retained messages (its own $SYS topics among them)
    $SYS/broker/publish/messages/dropped  messages dropped since the broker started (queue limits)

Queued = store count − retained count. The store holds a message once however many sessions it is
queued for, so this is the longest queue when one subscriber lags (the usual case: the collector),
and an overestimate of each when several do.

    watch = BrokerWatch(queue_limit=1_000_000, warn_fraction=0.5, warn_left_s=900, drop_hold_s=300)
    watch.on_counter(topic, payload, now) -> list[Observation]   # a $SYS message (drops judged at once)
    watch.on_tick(now) -> list[Observation]                      # the queue judged; a drop alert ends

Pure: no I/O, times passed in. Observations are for `Engine.observe` (built-in alerts
`BrokerQueueFilling`, warning, and `BrokerDroppingMessages`, critical).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from rules.alerts import fingerprint
from rules.evaluate import Observation

STORE_COUNT = "$SYS/broker/store/messages/count"
RETAINED_COUNT = "$SYS/broker/retained messages/count"
DROPPED = "$SYS/broker/publish/messages/dropped"
TOPICS = (STORE_COUNT, RETAINED_COUNT, DROPPED)
QUEUE_FILLING = "BrokerQueueFilling"
DROPPING = "BrokerDroppingMessages"
SETTLE_S = 0.2
RATE_WINDOW_S = 60.0
"""The queue's growth rate is measured over the samples of the last minute."""


@dataclass(frozen=True, slots=True)
class QueueEstimate:
    queued: int
    rate_per_s: float
    left_s: float | None
    """Seconds until the limit at the current rate; None when the queue is not growing."""


class BrokerWatch:
    def __init__(self, queue_limit: int, warn_fraction: float, warn_left_s: float, drop_hold_s: float) -> None:
        if queue_limit < 1 or not 0 < warn_fraction <= 1:
            raise ValueError(f"queue_limit must be >= 1 and warn_fraction in (0, 1] (got {queue_limit}, "
                             f"{warn_fraction})")
        self._limit = queue_limit
        self._warn_at = warn_fraction * queue_limit
        self._warn_left_s = warn_left_s
        self._drop_hold_s = drop_hold_s
        self._store: int | None = None
        self._retained: int | None = None
        self._heard_at: float | None = None
        self._samples: deque[tuple[float, int]] = deque()
        self._dropped_seen: int | None = None
        self.dropped_total = 0
        """Messages the broker dropped while watched (across broker restarts, which reset its counter)."""
        self._last_drop_at: float | None = None
        # Unknown until the first counters: the first judgement is always said, so an alert left
        # firing by the previous process resolves when the broker is fine again.
        self._filling: bool | None = None
        self._dropping = False

    def on_counter(self, topic: str, payload: bytes, now: float) -> list[Observation]:
        """One $SYS message; a payload that is not a count is ignored (another broker, another version).
        Queue counts are judged on the next tick after they settle (`on_tick`)."""
        try:
            value = int(payload.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return []
        if topic == DROPPED:
            return self._count_drops(value, now)
        if topic == STORE_COUNT:
            self._store = value
        elif topic == RETAINED_COUNT:
            self._retained = value
        else:
            return []
        self._heard_at = now
        return []

    def on_tick(self, now: float) -> list[Observation]:
        """Judge the queue once its counters settled, and end a drop alert after `drop_hold_s`.

        The broker publishes the store count, then the retained count, back to back; between the two
        (new retained $SYS topics counted in one, not yet in the other) their difference is no queue.
        So a judgement waits until no counter came for `SETTLE_S`."""
        out: list[Observation] = []
        if (self._heard_at is not None and now - self._heard_at >= SETTLE_S and self._store is not None
                and self._retained is not None):
            self._heard_at = None
            out.extend(self._judge_queue(now))
        if self._dropping and self._last_drop_at is not None and now - self._last_drop_at >= self._drop_hold_s:
            self._dropping = False
            out.append(self._drop_observation(False, now))
        return out

    def estimate(self) -> QueueEstimate | None:
        if not self._samples:
            return None
        (t0, q0), (t1, q1) = self._samples[0], self._samples[-1]
        rate = (q1 - q0) / (t1 - t0) if t1 > t0 else 0.0
        left = max(self._limit - q1, 0) / rate if rate > 0 else None
        return QueueEstimate(q1, rate, left)

    # ---- internals ------------------------------------------------------------------------------

    def _judge_queue(self, now: float) -> list[Observation]:
        assert self._store is not None and self._retained is not None
        self._samples.append((now, max(self._store - self._retained, 0)))
        while len(self._samples) > 2 and self._samples[0][0] < now - RATE_WINDOW_S:
            self._samples.popleft()
        estimate = self.estimate()
        assert estimate is not None
        filling = estimate.queued >= self._warn_at or (estimate.left_s is not None
                                                       and estimate.left_s <= self._warn_left_s)
        if filling is False and self._filling is False:
            return []
        self._filling = filling
        return [self._queue_observation(filling, estimate, now)]

    def _count_drops(self, value: int, now: float) -> list[Observation]:
        previous = self._dropped_seen
        self._dropped_seen = value
        if previous is None:
            # What the broker dropped before facmon watched is in its log, not news now.
            return [self._drop_observation(False, now)]
        new = value - previous if value >= previous else value  # a smaller count: the broker restarted
        if new <= 0:
            return []
        self.dropped_total += new
        self._last_drop_at = now
        self._dropping = True
        return [self._drop_observation(True, now)]

    def _queue_observation(self, active: bool, estimate: QueueEstimate, now: float) -> Observation:
        labels = {"alertname": QUEUE_FILLING, "instance": "broker", "severity": "warning"}
        left = "not growing" if estimate.left_s is None else f"{estimate.left_s / 60:.0f} min"
        annotations = {
            "summary": (f"The broker holds {estimate.queued} queued messages of its limit of {self._limit} "
                        f"({100 * estimate.queued / self._limit:.0f} %), growing {estimate.rate_per_s:.0f}/s: "
                        f"full in {left}; past it the newest readings are dropped. Is the collector storing?"),
            "queued": str(estimate.queued), "time_left": left}
        return Observation(QUEUE_FILLING, fingerprint({"alertname": QUEUE_FILLING, "instance": "broker"}), labels,
                           annotations, active, float(estimate.queued), now)

    def _drop_observation(self, active: bool, now: float) -> Observation:
        labels = {"alertname": DROPPING, "instance": "broker", "severity": "critical"}
        annotations = {"summary": (f"The broker dropped {self.dropped_total} messages (queue limit "
                                   f"{self._limit} reached): readings acknowledged to devices are lost"),
                       "dropped": str(self.dropped_total)}
        return Observation(DROPPING, fingerprint({"alertname": DROPPING, "instance": "broker"}), labels, annotations,
                           active, float(self.dropped_total), now)
