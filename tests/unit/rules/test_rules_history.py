"""Refilling the rules' windows after a restart: which history the rules need, rows back into
readings, and a refilled window that does not count the broker's redelivered copies twice."""

from __future__ import annotations

from core.contract import DeviceKey, Kind, Reading
from rules.evaluate import Evaluator
from rules.history import MAX_READINGS_PER_DEVICE, Span, history_needed, reading_of
from rules.model import Rule, RulePack

LOSS = {"name": "LossHigh", "kind": "uplink",
        "condition": {"aggregate": {"metric": "loss_pct", "func": "mean", "window_s": "5m", "op": ">", "value": 20}}}
RTT = {"name": "RttHigh", "kind": "uplink",
       "condition": {"aggregate": {"metric": "rtt_ms", "func": "max", "window_readings": 30, "op": ">", "value": 400}}}
RUNOUT = {"name": "Runout", "kind": "inverter",
          "condition": {"runout": {"metric": "battery_soc_pct", "window_s": "15m", "within_s": "30m"}}}
HOT = {"name": "Hot", "kind": "inverter", "condition": {"threshold": {"metric": "inverter_temp_c", "op": ">",
                                                                      "value": 70}}}
UPLINK = DeviceKey("park", Kind.UPLINK, "up-1")


def _pack(*rules: dict) -> RulePack:
    return RulePack(rules=tuple(Rule.model_validate(r) for r in rules))


def test_history_needed_takes_the_longest_window_of_each_kind_within_the_lookback():
    assert history_needed(_pack(LOSS, RUNOUT, HOT), 3600) == {
        Kind.UPLINK: Span(300.0, MAX_READINGS_PER_DEVICE), Kind.INVERTER: Span(900.0, MAX_READINGS_PER_DEVICE)}
    # A count window looks back as far as allowed; the time window of the same kind does not shorten it.
    assert history_needed(_pack(LOSS, RTT), 1800) == {Kind.UPLINK: Span(1800.0, MAX_READINGS_PER_DEVICE)}
    assert history_needed(_pack(RTT), 1800) == {Kind.UPLINK: Span(1800.0, 30)}
    assert history_needed(_pack(LOSS, RUNOUT), 120) == {Kind.UPLINK: Span(120.0, MAX_READINGS_PER_DEVICE),
                                                        Kind.INVERTER: Span(120.0, MAX_READINGS_PER_DEVICE)}
    assert history_needed(_pack(LOSS, RUNOUT), 0) == {}
    assert history_needed(_pack(HOT), 3600) == {}


def test_a_row_becomes_the_reading_it_was_stored_from():
    row = {"time": 1_767_225_600_000, "isp": "fibre", "link_up": True, "loss_pct": 12, "rtt_ms": None,
           "jitter_ms": None, "seq": 41, "iface": "eth1", "not_a_metric": 3.0}
    assert reading_of(UPLINK, row) == Reading(UPLINK, 1_767_225_600_000, 41, {"isp": "fibre", "link_up": True,
                                                                              "loss_pct": 12, "iface": "eth1"})


def _uplink(k: int, loss: float) -> Reading:
    return Reading(UPLINK, (1_767_225_600 + 10 * k) * 1000, k, {"isp": "fibre", "link_up": True, "rtt_ms": 20.0,
                                                                "jitter_ms": 1.0, "loss_pct": loss})


def test_refilled_window_decides_as_the_uninterrupted_one_and_skips_redelivered_readings():
    history = [_uplink(k, 40.0 if k >= 5 else 0.0) for k in range(10)]  # 5 of 10 high: mean 20, not above
    now = 1_767_225_600 + 100
    through = Evaluator(_pack(LOSS), {}, now)
    for reading in history:
        through.on_reading(reading, now)
    restarted = Evaluator(_pack(LOSS), {}, now)
    assert restarted.refill(history) == 10
    # The broker redelivers the last two (the collector stored them too): they are not counted again.
    assert [o.active for r in history[-2:] for o in restarted.on_reading(r, now)] == []
    for reading in [_uplink(10, 40.0), _uplink(11, 40.0)]:
        expected = [(o.active, o.value) for o in through.on_reading(reading, now)]
        assert [(o.active, o.value) for o in restarted.on_reading(reading, now)] == expected
    assert [i[2] for i in restarted.instances()] == [True]  # 7 of 12 high: mean above 20
