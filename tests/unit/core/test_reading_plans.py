"""core.reading_plans: the fused fast path gives exactly what `decode_message` + `reading_to_line`
give, or None (general path) — never a different answer, never an exception. Checked on the valid
readings of every kind, on readings the contract refuses, on randomly mutated and random payloads,
and on valid readings of any shape (optional metrics left out, nulls, labels in any script)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from core.contract import Kind, Reading, encode_reading
from core.decode import DecodeLimits, Reject, decode_message
from core.line_protocol import reading_to_line
from core.reading_plans import fast_reading_line
from tests.unit.core.strategies import readings
from tests.unit.core.test_decode import DEVICES, LIMITS, NOW, VALID, near_valid_messages, with_


def general(topic: str, payload: bytes, received_at: float = NOW,
            limits: DecodeLimits = LIMITS) -> tuple[Reading, str] | Reject | object:
    decoded = decode_message(topic, payload, received_at, limits)
    return (decoded, reading_to_line(decoded)) if isinstance(decoded, Reading) else decoded


def assert_agrees(topic: str, payload: bytes, received_at: float = NOW, limits: DecodeLimits = LIMITS) -> bool:
    """The fast path's answer is the general path's, or None. True if the fast path answered."""
    fast = fast_reading_line(topic, payload, received_at, limits)
    if fast is None:
        return False
    assert fast == general(topic, payload, received_at, limits), payload
    return True


def payload_of(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def test_each_kind_as_facmon_devices_send_it_takes_the_fast_path_with_the_same_answer() -> None:
    for kind, device in DEVICES.items():
        body = dict(VALID[kind])
        # What facmon's own devices send: float metrics as floats.
        body = {k: float(v) if k in ("battery_soc_pct", "pv_w", "loss_pct") else v for k, v in body.items()}
        for _ in range(3):  # the first message builds the plan, the next ones use it
            assert assert_agrees(device.reading_topic(), payload_of(body)), kind


def test_a_float_metric_sent_as_a_whole_number_goes_the_general_path() -> None:
    topic = DEVICES[Kind.INVERTER].reading_topic()
    assert fast_reading_line(topic, payload_of(with_(Kind.INVERTER, pv_w=1520)), NOW, LIMITS) is None
    assert isinstance(general(topic, payload_of(with_(Kind.INVERTER, pv_w=1520))), tuple)


def test_rejects_never_take_the_fast_path() -> None:
    topic = DEVICES[Kind.INVERTER].reading_topic()
    good = with_(Kind.INVERTER, battery_soc_pct=87.0, pv_w=1520.0)
    assert assert_agrees(topic, payload_of(good))  # the shape has a plan now
    for bad in (with_(Kind.INVERTER, battery_soc_pct=100.5, pv_w=1520.0),  # out of range, same shape
                with_(Kind.INVERTER, mode="turbo", battery_soc_pct=87.0, pv_w=1520.0),
                with_(Kind.INVERTER, seq=-1, battery_soc_pct=87.0, pv_w=1520.0),
                with_(Kind.INVERTER, ts="2025-12-31T23:59:00", battery_soc_pct=87.0, pv_w=1520.0),
                with_(Kind.INVERTER, ts="2035-12-31T23:59:00Z", battery_soc_pct=87.0, pv_w=1520.0),
                with_(Kind.INVERTER, fault_code="E\n1", battery_soc_pct=87.0, pv_w=1520.0)):
        assert fast_reading_line(topic, payload_of(bad), NOW, LIMITS) is None, bad
        assert isinstance(general(topic, payload_of(bad)), Reject), bad
    uplink = DEVICES[Kind.UPLINK].reading_topic()
    for label in ("", "   ", "a\\b", "x" * 65):
        body = with_(Kind.UPLINK, isp=label, loss_pct=0.0)
        assert fast_reading_line(uplink, payload_of(body), NOW, LIMITS) is None, label
        assert isinstance(general(uplink, payload_of(body)), Reject), label
    assert fast_reading_line(uplink.replace("/reading", "/status"), b"online", NOW, LIMITS) is None
    assert fast_reading_line(topic, payload_of(good), NOW, DecodeLimits(max_payload_bytes=20)) is None


@settings(max_examples=300, deadline=None)
@given(readings())
def test_valid_readings_of_any_shape_agree(reading: Reading) -> None:
    topic = reading.device.reading_topic()
    payload = encode_reading(reading)
    received_at = reading.ts_ms / 1000 + 1
    # Every valid reading facmon's own encoder writes has a plan (floats stay floats in its JSON).
    assert assert_agrees(topic, payload, received_at)
    assert assert_agrees(topic, payload, received_at)  # and with the plan cached


@settings(max_examples=400, deadline=None)
@given(near_valid_messages(), st.floats(min_value=0, max_value=4e9))
def test_mutated_messages_agree_or_fall_back(message: tuple[str, bytes], received_at: float) -> None:
    assert_agrees(*message, received_at)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.binary(max_size=300))
def test_arbitrary_topics_and_bytes_never_raise(topic: str, payload: bytes) -> None:
    assert_agrees(topic, payload, NOW, DecodeLimits(max_payload_bytes=200))
