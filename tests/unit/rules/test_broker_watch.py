"""The broker watch on given times: queue from store − retained, warning by share or by time left at
the current rate, drops counted across a broker restart, judgements only on settled counters."""

from __future__ import annotations

from rules.broker_watch import DROPPED, DROPPING, QUEUE_FILLING, RETAINED_COUNT, STORE_COUNT, BrokerWatch


def _sample(watch: BrokerWatch, at: float, store: int, retained: int = 50) -> list:
    assert watch.on_counter(STORE_COUNT, str(store).encode(), at) == []
    assert watch.on_counter(RETAINED_COUNT, str(retained).encode(), at) == []
    return watch.on_tick(at + 1)


def test_warns_on_time_left_at_the_current_rate_before_the_share_is_reached():
    watch = BrokerWatch(queue_limit=1_000_000, warn_fraction=0.5, warn_left_s=900, drop_hold_s=300)
    [first] = _sample(watch, 0, 50 + 2_000)  # the usual in-flight window: said once, inactive
    assert (first.rule, first.active) == (QUEUE_FILLING, False)
    assert _sample(watch, 10, 50 + 2_000) == []
    # The collector stops acknowledging: 1,000 readings/s pile up. 1M at 1k/s is 16 min away: not yet.
    assert _sample(watch, 20, 50 + 12_000) == []
    # At 3,000/s the limit is 5.5 min away: warned with the time left, long before half the limit.
    [warning] = _sample(watch, 30, 50 + 72_000)
    assert warning.active and warning.labels["severity"] == "warning"
    assert watch.estimate().left_s < 900 and warning.annotations["queued"] == "72000"
    assert "full in" in warning.annotations["summary"]
    assert [o.active for o in _sample(watch, 200, 50 + 1_000)] == [False]  # drained


def test_half_the_limit_warns_even_when_not_growing():
    watch = BrokerWatch(queue_limit=1000, warn_fraction=0.5, warn_left_s=0, drop_hold_s=300)
    assert [o.active for o in _sample(watch, 0, 50 + 499)] == [False]
    assert [o.active for o in _sample(watch, 10, 50 + 500)] == [True]


def test_unsettled_counters_are_not_judged():
    watch = BrokerWatch(queue_limit=1000, warn_fraction=0.5, warn_left_s=0, drop_hold_s=300)
    watch.on_counter(RETAINED_COUNT, b"40", 0.0)
    watch.on_counter(STORE_COUNT, b"540", 0.0)  # 13 new retained $SYS topics counted here...
    assert watch.on_tick(0.1) == []  # ...and the retained count not yet in: no judgement
    watch.on_counter(RETAINED_COUNT, b"53", 0.15)
    assert [o.active for o in watch.on_tick(0.4)] == [False]  # 487 queued of 1000: below half


def test_drops_counted_across_a_broker_restart_and_the_alert_held():
    watch = BrokerWatch(queue_limit=1000, warn_fraction=0.5, warn_left_s=0, drop_hold_s=300)
    assert [o.active for o in watch.on_counter(DROPPED, b"7", 0)] == [False]  # before facmon watched
    [drop] = watch.on_counter(DROPPED, b"27", 10)
    assert (drop.rule, drop.active, drop.labels["severity"], watch.dropped_total) == (DROPPING, True, "critical", 20)
    assert watch.on_counter(DROPPED, b"27", 20) == []
    [again] = watch.on_counter(DROPPED, b"5", 30)  # the broker restarted: its counter began again
    assert (again.active, watch.dropped_total, again.annotations["dropped"]) == (True, 25, "25")
    assert watch.on_tick(329) == []
    assert [o.active for o in watch.on_tick(330)] == [False]
    assert watch.on_counter(DROPPED, b"not a count", 340) == []
