"""core.contract: topics and ids, and that what `encode_reading` publishes decodes back to the very
same reading (what simulators send is what the collector stores)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings

from core.contract import (
    METRICS,
    Channel,
    DeviceKey,
    Kind,
    Reading,
    Topic,
    TopicError,
    encode_reading,
    format_ts,
    parse_topic,
    reading_subscription,
    status_subscription,
)
from core.decode import DecodeLimits, decode_message
from docs.generate import metrics_table, render
from tests.unit.core.strategies import readings

ANY_TIME = DecodeLimits(max_future_s=1e12, max_age_s=1e12)


def test_device_topics_and_parse_topic_are_inverse() -> None:
    device = DeviceKey("park", Kind.UPLINK, "wan_b-2")
    assert device.reading_topic() == "facmon/v1/park/uplink/wan_b-2/reading"
    assert device.status_topic() == "facmon/v1/park/uplink/wan_b-2/status"
    assert parse_topic(device.reading_topic()) == Topic(device, Channel.READING)
    assert parse_topic(device.status_topic()) == Topic(device, Channel.STATUS)
    assert str(device) == "park/uplink/wan_b-2"


def test_subscriptions_match_one_channel_of_every_device() -> None:
    assert reading_subscription() == "facmon/v1/+/+/+/reading"
    assert status_subscription("park") == "facmon/v1/park/+/+/status"


@pytest.mark.parametrize(("topic", "reason"), [("facmon/v1/park/pump/p1/reading", "unknown_kind"),
                                               ("facmon/v1/Park/inverter/p1/reading", "bad_id"),
                                               ("facmon/v1/park/inverter/p1", "bad_topic")])
def test_parse_topic_raises_with_a_reason_code(topic: str, reason: str) -> None:
    with pytest.raises(TopicError) as caught:
        parse_topic(topic)
    assert caught.value.reason == reason


def test_format_ts_is_rfc3339_utc_milliseconds() -> None:
    assert format_ts(1_767_225_600_042) == "2026-01-01T00:00:00.042Z"
    assert format_ts(0) == "1970-01-01T00:00:00.000Z"


def test_encode_reading_is_compact_json_in_contract_order() -> None:
    reading = Reading(DeviceKey("park", Kind.OCCUPANCY, "r1"), 1_767_225_600_000, 5,
                      {"sensor_battery_pct": 80.5, "occupied": True, "room": "Hall A"})
    assert encode_reading(reading) == (b'{"ts":"2026-01-01T00:00:00.000Z","seq":5,"room":"Hall A",'
                                       b'"occupied":true,"sensor_battery_pct":80.5}')


def _general_encoding(reading: Reading) -> bytes:
    """What encode_reading promises, written the slow, obvious way (orjson's float format, as the wire's)."""
    body = {"ts": format_ts(reading.ts_ms), "seq": reading.seq}
    body.update((m.name, reading.metrics[m.name]) for m in METRICS[reading.device.kind] if m.name in reading.metrics)
    return orjson.dumps(body)


@settings(max_examples=150, deadline=None)
@given(readings())
def test_encoding_does_not_depend_on_metric_order_or_unknown_keys(reading: Reading) -> None:
    # In contract order (the fast path), reversed and with an unknown key (the general path): same bytes.
    shuffled = Reading(reading.device, reading.ts_ms, reading.seq,
                       {"colour": "blue", **dict(reversed(list(reading.metrics.items())))})
    assert encode_reading(reading) == encode_reading(shuffled) == _general_encoding(reading)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_raise_even_beside_a_null(bad: float) -> None:
    # fault_code null beside a NaN: orjson writes both as null, so counting nulls alone would miss it.
    metrics = {"grid_v": 230.0, "grid_ok": True, "mode": "grid", "battery_soc_pct": bad, "battery_v": 51.0,
               "battery_a": 0.0, "pv_w": 0.0, "load_w": 100.0, "fault_code": None}
    with pytest.raises(ValueError, match="battery_soc_pct"):
        encode_reading(Reading(DeviceKey("park", Kind.INVERTER, "inv-1"), 0, 1, metrics))


def test_every_metric_has_a_unit_or_is_unitless_by_type_and_ranges_are_ordered() -> None:
    for kind, metrics in METRICS.items():
        names = [m.name for m in metrics]
        assert len(names) == len(set(names)), kind
        for metric in metrics:
            assert metric.name not in ("ts", "seq")
            if metric.minimum is not None or metric.maximum is not None:
                assert metric.minimum is not None and metric.maximum is not None
                assert metric.minimum < metric.maximum, metric.name


@settings(max_examples=150, deadline=None)
@given(readings())
def test_a_valid_reading_survives_encode_then_decode_unchanged(reading: Reading) -> None:
    payload = encode_reading(reading)
    json.loads(payload)  # plain JSON: no NaN, no Infinity
    decoded = decode_message(reading.device.reading_topic(), payload, reading.ts_ms / 1000, ANY_TIME)
    assert decoded == reading


# --- docs/contract.md cannot drift from the contract ----------------------------------------------------------

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_contract_doc_metric_tables_match_metrics() -> None:
    path = DOCS / "contract.md"
    assert render(path) == path.read_text(encoding="utf-8"), "run: .venv/bin/python -m docs.generate"
    for kind in Kind:
        assert metrics_table(kind) in path.read_text(encoding="utf-8")


def test_metrics_table_shows_type_unit_range_and_required() -> None:
    assert ("| `battery_soc_pct` | number | % | 0 … 100 | yes |  | battery state of charge |"
            in metrics_table(Kind.INVERTER))
    assert "| `mode` | string (one of) |  | `grid` \\| `battery`" in metrics_table(Kind.INVERTER)


@pytest.mark.parametrize("kind", list(Kind))
def test_documented_example_payloads_are_valid_readings(kind: Kind) -> None:
    payload = (DOCS / "examples" / f"{kind.value}.json").read_bytes()
    body = json.loads(payload)
    received_at = body["ts"] / 1000 if isinstance(body["ts"], int) else datetime.fromisoformat(body["ts"]).timestamp()
    decoded = decode_message(DeviceKey("park", kind, "example").reading_topic(), payload, received_at, DecodeLimits())
    assert isinstance(decoded, Reading), decoded
    assert set(decoded.metrics) == set(body) - {"ts", "seq"}
    # The doc shows each example file verbatim.
    assert payload.decode().strip() in (DOCS / "contract.md").read_text(encoding="utf-8")
