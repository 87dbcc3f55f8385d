"""bridge.plans: a topic's plan forwards exactly what the general path (topic patterns, conversion, encode,
then `core.decode`) forwards, and hands back to it whatever that path refuses, so the refusals and their
reasons stay the general path's. The oracle is a fresh translator, whose first message of a topic always
takes the general path; the translator under test has planned the topic with one valid message first."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.mapping import BridgeMapping, load_mapping
from bridge.translate import Forward, Outcome, Translator
from core.decode import DecodeLimits, decode_message
from tests.unit.bridge.support import payload, shipped

LIMITS = DecodeLimits()
TASMOTA_AT = datetime(2026, 1, 15, 9, 30, 6, tzinfo=UTC).timestamp()  # 14:30:06 in Karachi
NOW = 1_780_000_000.0

INVERTER = """
time_zone: UTC
sources:
  - name: inv
    topic: x/{device}
    site: park
    kind: inverter
    ts: {from: at, format: epoch_s}
    fields:
      grid_v: {from: v}
      grid_ok: {from: v, above: 180}
      mode: {from: mode, values: {"Solar/Battery": battery, "Line": grid, "7": fault}}
      battery_soc_pct: {from: soc, unit: fraction}
      battery_v: {from: bv, unit: mV}
      battery_a: {from: ba, scale: -0.1}
      pv_w: {from: pv.power, unit: kW}
      load_w: {from: load}
      battery_temp_c: {from: temp, unit_from: unit}
      fault_code: {from: fault}
"""
PIR_EPOCH_MS = """
time_zone: UTC
sources:
  - name: bench-pir
    topic: zigbee2mqtt/{device}
    site: bench
    kind: occupancy
    labels: {room: "{device}"}
    ts: {from: last_seen, format: epoch_ms}
    fields:
      occupied: {from: occupancy}
      sensor_battery_pct: {from: battery}
      people: {from: count}
"""


def written(tmp: Path, name: str, text: str) -> BridgeMapping:
    path = tmp / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return load_mapping(path)


_TMP = Path(__import__("tempfile").mkdtemp(prefix="facmon-test-plans-"))
# (mapping, topic, a valid body, when it is received)
CASES: dict[str, tuple[BridgeMapping, str, dict[str, Any], float]] = {
    "zigbee2mqtt": (shipped("zigbee2mqtt"), "zigbee2mqtt/hall_pir",
                    orjson.loads(payload("zigbee2mqtt", "state")), NOW),
    "tasmota": (shipped("tasmota"), "tele/tasmota_5A9AE8/SENSOR", orjson.loads(payload("tasmota", "sensor_pir_on")),
                TASMOTA_AT),
    "epoch_ms": (written(_TMP, "pir", PIR_EPOCH_MS), "zigbee2mqtt/pir-7",
                 {"battery": 88, "occupancy": True, "count": 2, "last_seen": int(NOW * 1000) - 400}, NOW),
    "inverter": (written(_TMP, "inv", INVERTER), "x/inv-1",
                 {"at": NOW - 1, "v": 231, "mode": "Line", "soc": 0.5, "bv": 52100, "ba": 123, "pv": {"power": 1.5},
                  "load": 300, "temp": 77, "unit": "°F", "fault": None}, NOW),
}


def zero_seq(_device: object) -> int:
    return 0


def general(case: str, topic: str, raw: bytes, received_at: float, limits: DecodeLimits) -> list[Outcome]:
    """The general path's answer: a fresh translator has no plan for any topic."""
    return Translator(CASES[case][0], zero_seq, limits).handle(topic, raw, received_at)


def planned(case: str, limits: DecodeLimits = LIMITS) -> Translator:
    """A translator that has planned the case's topic."""
    mapping, topic, body, received_at = CASES[case]
    translator = Translator(mapping, zero_seq, limits)
    [first] = translator.handle(topic, orjson.dumps(body), received_at)
    assert isinstance(first, Forward), first
    return translator


def assert_agrees(translator: Translator, case: str, raw: bytes, received_at: float,
                  limits: DecodeLimits = LIMITS) -> bool:
    """The planned translator answers as the general path; True if its plan forwarded the message."""
    topic = CASES[case][1]
    before = translator.planned
    got = translator.handle(topic, raw, received_at)
    assert got == general(case, topic, raw, received_at, limits), raw
    return translator.planned > before


@pytest.mark.parametrize("case", list(CASES))
def test_a_topics_later_readings_take_its_plan_and_forward_the_same_bytes(case: str) -> None:
    _, topic, body, received_at = CASES[case]
    translator = planned(case)
    assert assert_agrees(translator, case, orjson.dumps(body), received_at + 1)
    [out] = translator.handle(topic, orjson.dumps(body), received_at + 2)
    assert isinstance(out, Forward)
    assert decode_message(out.topic, out.payload, received_at + 2, LIMITS).device == out.device  # a Reading


@pytest.mark.parametrize(("case", "change", "reason"), [
    ("zigbee2mqtt", {"battery": 140}, "out_of_range"),
    ("zigbee2mqtt", {"occupancy": "yes"}, "wrong_type"),
    ("zigbee2mqtt", {"occupancy": None}, "wrong_type"),
    ("epoch_ms", {"count": 10_001}, "out_of_range"),
    ("epoch_ms", {"count": 2.5}, "wrong_type"),
    ("epoch_ms", {"count": 1e30}, "out_of_range"),  # a whole number beyond 64 bits
    ("epoch_ms", {"last_seen": int(NOW * 1000) + 3_600_000}, "clock_off"),
    ("epoch_ms", {"last_seen": "yesterday"}, "bad_ts"),
    ("tasmota", {"Time": "2026-01-15T09:30:05"}, "clock_off"),
    ("tasmota", {"Switch1": "TOGGLE"}, "bad_value"),
    ("inverter", {"unit": "furlongs"}, "wrong_unit"),
    ("inverter", {"mode": "7"}, None),  # a choice the table gives: forwarded
    ("inverter", {"soc": 1.2}, "out_of_range"),
    ("inverter", {"fault": "E" * 300}, "wrong_type"),
    ("inverter", {"ba": 1e30}, "out_of_range"),
    ("inverter", {"pv": 3}, "missing_field"),
])
def test_what_the_general_path_refuses_the_plan_hands_back_with_the_same_reason(case: str, change: dict,
                                                                               reason: str | None) -> None:
    _, topic, body, received_at = CASES[case]
    translator = planned(case)
    raw = orjson.dumps({**body, **change})
    assert assert_agrees(translator, case, raw, received_at) is (reason is None)
    [out] = translator.handle(topic, raw, received_at)
    assert (getattr(out, "reason", None)) == reason


def test_a_reading_over_the_collectors_payload_limit_is_refused_as_the_collector_would() -> None:
    limits = DecodeLimits(max_payload_bytes=260)
    translator = planned("inverter", limits)
    _, _, body, received_at = CASES["inverter"]
    assert not assert_agrees(translator, "inverter", orjson.dumps({**body, "fault": "E" * 80}), received_at, limits)
    [out] = translator.handle("x/inv-1", orjson.dumps({**body, "fault": "E" * 80}), received_at)
    assert getattr(out, "reason", None) == "payload_too_large"


def test_a_label_the_contract_refuses_gives_no_plan() -> None:
    mapping = written(_TMP, "pir-any", PIR_EPOCH_MS)
    translator = Translator(mapping, zero_seq, LIMITS)
    body = orjson.dumps(CASES["epoch_ms"][2])
    for _ in range(2):
        [out] = translator.handle("zigbee2mqtt/a\\b", body, NOW)
        assert getattr(out, "reason", None) in ("bad_device_id", "bad_label")
    assert translator.planned == 0


_leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.integers(-5, 20_000),
                    st.floats(), st.floats(-1, 2),
                    st.sampled_from(["ON", "OFF", "Line", "Solar/Battery", "7", "°F", "°C", "K", "kW", " 12.5 ", "",
                                     "2026-01-15T14:30:05", "2026-01-15T14:30:05+05:00", "online", "\u200c"]),
                    st.text(max_size=8))
_values = st.recursive(_leaves, lambda inner: st.dictionaries(st.sampled_from(["power", "x"]), inner, max_size=2) |
                       st.lists(inner, max_size=2), max_leaves=4)


@settings(max_examples=400, deadline=None)
@given(case=st.sampled_from(list(CASES)), data=st.data(),
       skew_s=st.sampled_from([0.0, 0.5, -299.0, 301.0, -901.0, 3_600.0, -40 * 86_400.0]),
       max_payload=st.sampled_from([16_384, 120]))
def test_any_change_to_a_valid_payload_gets_the_general_paths_answer(case: str, data: st.DataObject, skew_s: float,
                                                                     max_payload: int) -> None:
    _, _, body, received_at = CASES[case]
    changed = dict(body)
    for key in data.draw(st.lists(st.sampled_from([*body, "junk"]), max_size=4, unique=True)):
        if data.draw(st.booleans()):
            changed.pop(key, None)
        else:
            changed[key] = data.draw(_values)
    limits = DecodeLimits(max_payload_bytes=max_payload)
    translator = Translator(CASES[case][0], zero_seq, limits)
    translator.handle(CASES[case][1], orjson.dumps(body), received_at)  # plans the topic (even if refused)
    # json, not orjson: a device may send integers beyond 64 bits and NaN, which orjson cannot write
    assert_agrees(translator, case, json.dumps(changed, ensure_ascii=False).encode(), received_at + skew_s, limits)


@settings(max_examples=200, deadline=None)
@given(case=st.sampled_from(list(CASES)), raw=st.one_of(st.binary(max_size=40), st.sampled_from(
    [b"", b"null", b"[1]", b'"x"', b"{", b'{"battery": NaN}', b'{"occupancy": true, "battery": Infinity}',
     b'{"occupancy":true,"battery":1e400}', b"\xff\xfe"])))
def test_bytes_that_are_no_json_object_get_the_general_paths_answer(case: str, raw: bytes) -> None:
    assert not assert_agrees(planned(case), case, raw, CASES[case][3])

