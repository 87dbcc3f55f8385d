"""core.reading_plans: the fused fast path, and its C kernel, give exactly what `decode_message` +
`reading_to_line` give, or None (general path) — never a different answer, never an exception.
Checked on the valid readings of every kind, on readings the contract refuses, on randomly mutated
and random payloads, on valid readings of any shape (optional metrics left out, nulls, labels in any
script), and for the kernel on byte-level damage, every spelling of a number and of a timestamp."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core.contract import Kind, Reading, encode_reading
from core.decode import DecodeLimits, Reject, decode_message
from core.line_protocol import reading_to_line
from core.reading_plans import KERNEL_BUILT, fast_reading_line, kernel_reading_line, kernel_route
from tests.unit.core.strategies import readings
from tests.unit.core.test_decode import DEVICES, LIMITS, NOW, NOW_MS, VALID, near_valid_messages, with_


def general(topic: str, payload: bytes, received_at: float = NOW,
            limits: DecodeLimits = LIMITS) -> tuple[Reading, str] | Reject | object:
    decoded = decode_message(topic, payload, received_at, limits)
    return (decoded, reading_to_line(decoded)) if isinstance(decoded, Reading) else decoded


def assert_kernel_agrees(topic: str, payload: bytes, received_at: float = NOW, limits: DecodeLimits = LIMITS) -> bool:
    """The kernel's answer (with the route its topic has now) is the general path's, or None. True if
    the kernel answered."""
    kernel = kernel_reading_line(topic, payload, received_at, limits)
    if kernel is None:
        return False
    expected = general(topic, payload, received_at, limits)
    assert isinstance(expected, tuple), (payload, expected)
    reading, line = expected
    assert kernel == (reading.device, reading.seq, reading.ts_ms, line), payload
    return True


def assert_agrees(topic: str, payload: bytes, received_at: float = NOW, limits: DecodeLimits = LIMITS) -> bool:
    """The fast path's answer is the general path's, or None, and so is the kernel's (before and
    after the fast path, which may give the topic a new route). True if the fast path answered."""
    assert_kernel_agrees(topic, payload, received_at, limits)
    fast = fast_reading_line(topic, payload, received_at, limits)
    if fast is None:
        return False
    assert fast == general(topic, payload, received_at, limits), payload
    assert_kernel_agrees(topic, payload, received_at, limits)
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


# --- the C kernel -----------------------------------------------------------------------------------

kernel_only = pytest.mark.skipif(not KERNEL_BUILT, reason="core._reading_kernel not built (no C compiler)")
INVERTER_TOPIC = DEVICES[Kind.INVERTER].reading_topic()
AS_SENT = {**VALID[Kind.INVERTER], "battery_soc_pct": 87.0, "pv_w": 1520.0}
"""An inverter reading as facmon's devices send it (floats as floats): a shape the kernel takes."""


def test_the_kernel_is_built_where_the_test_command_installs_a_compiler() -> None:
    # scripts/bootstrap.sh installs gcc and python3-dev; a silent fallback would hide a broken build.
    assert KERNEL_BUILT


@kernel_only
def test_the_kernel_takes_a_planned_topic_and_agrees() -> None:
    payload = payload_of(AS_SENT)
    assert assert_agrees(INVERTER_TOPIC, payload)
    assert kernel_route(INVERTER_TOPIC) is not None
    assert assert_kernel_agrees(INVERTER_TOPIC, payload)
    for ts in (NOW_MS - 5000, "2025-12-31T23:59:00.5Z", "2026-01-01T04:59:00.123456+05:00"):
        assert assert_kernel_agrees(INVERTER_TOPIC, payload_of({**AS_SENT, "ts": ts})), ts
    spaced = json.dumps(AS_SENT, indent=2).encode()
    assert assert_kernel_agrees(INVERTER_TOPIC, spaced)


@kernel_only
def test_labelled_and_free_text_shapes_take_the_kernel_too() -> None:
    uplink, occupancy = DEVICES[Kind.UPLINK].reading_topic(), DEVICES[Kind.OCCUPANCY].reading_topic()
    uplink_body = {**VALID[Kind.UPLINK], "loss_pct": 0.0}
    assert assert_agrees(uplink, payload_of(uplink_body))
    assert kernel_route(uplink) is not None
    for isp, iface in (("PTCL", "eth1"), ("Nayatel, fibre=1 ", "wan 2"), ("x" * 64, "y" * 256), ("  a", "")):
        assert assert_kernel_agrees(uplink, payload_of({**uplink_body, "isp": isp, "iface": iface})), isp
    for isp, iface in (("", "eth1"), ("   ", "eth1"), ("x" * 65, "eth1"), ("PTCL", "y" * 257), ("Jazz\u00e9", "eth1"),
                       ("a\\b", "eth1"), ("PTCL", "tab\there")):
        payload = payload_of({**uplink_body, "isp": isp, "iface": iface})
        assert kernel_reading_line(uplink, payload, NOW, LIMITS) is None, isp
    assert assert_agrees(occupancy, payload_of(VALID[Kind.OCCUPANCY]))
    assert assert_kernel_agrees(occupancy, payload_of({**VALID[Kind.OCCUPANCY], "room": "Hall A=1"}))
    assert assert_kernel_agrees(occupancy, payload_of({**VALID[Kind.OCCUPANCY], "room": "کمرہ"})) is False


@kernel_only
def test_the_kernel_answers_none_for_every_reject_of_a_planned_shape() -> None:
    assert assert_agrees(INVERTER_TOPIC, payload_of(AS_SENT))
    for changes in ({"battery_soc_pct": 100.5}, {"battery_a": -2000.5}, {"mode": "turbo"}, {"seq": -1},
                    {"ts": "2025-12-31T23:59:00"}, {"ts": "2035-12-31T23:59:00Z"}, {"ts": "2025-02-29T10:00:00Z"},
                    {"ts": "2025-12-31T24:00:00Z"}, {"ts": NOW_MS + 301_000}, {"ts": NOW_MS - 31 * 86_400_000},
                    {"grid_ok": 1}):
        assert kernel_reading_line(INVERTER_TOPIC, payload_of({**AS_SENT, **changes}), NOW, LIMITS) is None, changes
    escaped = payload_of(AS_SENT).replace(b'"grid"', b'"gr\\u0069d"')  # valid JSON for "grid": Python's call
    assert b"\\u0069" in escaped and kernel_reading_line(INVERTER_TOPIC, escaped, NOW, LIMITS) is None
    assert kernel_reading_line(INVERTER_TOPIC, payload_of(AS_SENT) + b"x", NOW, LIMITS) is None
    assert kernel_reading_line(INVERTER_TOPIC, payload_of(AS_SENT).replace(b"}", b",}"), NOW, LIMITS) is None
    assert kernel_reading_line(INVERTER_TOPIC, payload_of(AS_SENT), NOW, DecodeLimits(max_payload_bytes=20)) is None


@kernel_only
@pytest.mark.parametrize("kind", list(Kind))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_byte_damage_to_a_planned_payload_agrees_or_falls_back(kind: Kind, data: st.DataObject) -> None:
    topic = DEVICES[kind].reading_topic()
    body = {**VALID[kind], "isp": "Nayatel, fibre=1"} if kind is Kind.UPLINK else VALID[kind]
    payload = payload_of(AS_SENT if kind is Kind.INVERTER else {**body, "loss_pct": 0.0} if kind is Kind.UPLINK
                         else body)
    assert assert_agrees(topic, payload) and kernel_route(topic) is not None
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(payload)))
        action = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        piece = data.draw(st.sampled_from([b"", b" ", b"0", b"9", b".", b"-", b"e", b"E", b"+", b'"', b",", b":",
                                           b"}", b"{", b"\\", b"\x00", b"\xff", b"null", b"1e999"])
                          | st.binary(max_size=3))
        end = at + (action != "insert") * data.draw(st.integers(0, 3))
        payload = payload[:at] + (b"" if action == "delete" else piece) + payload[end:]
    assert_kernel_agrees(topic, payload)


@kernel_only
@settings(max_examples=500, deadline=None)
@given(st.floats(min_value=-2000, max_value=2000, allow_nan=False), st.sampled_from(
    ["{!r}", "{:.17g}", "{:.3f}", "{:.1f}", "{:e}", "{:E}", "{:.15g}", "{:.20f}"]))
def test_every_spelling_of_a_number_gives_the_line_python_gives(value: float, spelling: str) -> None:
    text = spelling.format(value)
    assume("." in text or "e" in text.lower())  # a JSON float, as the plan expects
    body = payload_of(AS_SENT).replace(b'"battery_a": -4.25', b'"battery_a": ' + text.encode())
    assert text.encode() in body
    assert assert_agrees(INVERTER_TOPIC, payload_of(AS_SENT))
    assert assert_kernel_agrees(INVERTER_TOPIC, body) or not isinstance(general(INVERTER_TOPIC, body), tuple)


@kernel_only
@settings(max_examples=500, deadline=None)
@given(st.datetimes(min_value=datetime(2025, 12, 1), max_value=datetime(2026, 1, 2)),
       st.integers(-23 * 60, 23 * 60), st.sampled_from(["Z", "offset", "none", "z"]), st.integers(0, 7))
def test_every_spelling_of_a_timestamp_gives_the_ts_python_gives(moment: datetime, offset_min: int, zone: str,
                                                                digits: int) -> None:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + ("." + f"{moment.microsecond:06d}1"[:digits] if digits else "")
    if zone == "offset":
        text += datetime.now(timezone(timedelta(minutes=offset_min))).strftime("%z")[:3] + ":" + \
            f"{abs(offset_min) % 60:02d}"
    elif zone in ("Z", "z"):
        text += zone
    assert assert_agrees(INVERTER_TOPIC, payload_of(AS_SENT))
    payload = payload_of({**AS_SENT, "ts": text})
    answered = assert_kernel_agrees(INVERTER_TOPIC, payload)
    if zone in ("Z", "offset") and digits <= 6 and isinstance(general(INVERTER_TOPIC, payload), tuple):
        assert answered, text  # the form devices send is the kernel's to take
    epoch_ms = int(moment.replace(tzinfo=UTC).timestamp() * 1000)
    assert_kernel_agrees(INVERTER_TOPIC, payload_of({**AS_SENT, "ts": epoch_ms}))
