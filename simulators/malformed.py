"""The catalog of deliberately broken messages a `malformed_burst` publishes, each with the reject
reason the collector must give (core.decode.RejectReason), built from one valid reading of a device."""

from __future__ import annotations

import json
from dataclasses import dataclass

from core.contract import METRICS, TOPIC_PREFIX, Reading, encode_reading, format_ts


@dataclass(frozen=True, slots=True)
class MalformedMessage:
    topic: str
    payload: bytes
    expected_reason: str
    what: str


def _json(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def malformed_messages(reading: Reading) -> list[MalformedMessage]:
    """Every way this reading can be broken, in a fixed order. The payloads are deterministic."""
    key = reading.device
    topic = key.reading_topic()
    good: dict[str, object] = json.loads(encode_reading(reading))
    first_number = next(name for name, value in good.items()
                        if name not in ("ts", "seq") and isinstance(value, int | float) and not isinstance(value, bool))
    first_required = next(m.name for m in METRICS[key.kind] if m.required)
    first_bool = next(name for name, value in good.items() if isinstance(value, bool))
    local_ts = format_ts(reading.ts_ms).removesuffix("Z")
    unknown_kind = f"{TOPIC_PREFIX}/{key.site}/toaster/{key.device}/reading"
    bad_id = f"{TOPIC_PREFIX}/{key.site}/{key.kind.value}/{key.device.upper()}-X/reading"
    out = [
        MalformedMessage(topic, encode_reading(reading)[:-7], "bad_json", "truncated JSON"),
        MalformedMessage(topic, b"\xff\xfe" + encode_reading(reading)[2:], "bad_encoding", "not UTF-8"),
        MalformedMessage(topic, b"[1,2,3]", "not_an_object", "a JSON array"),
        MalformedMessage(topic, _json({k: v for k, v in good.items() if k != first_required}), "missing_field",
                         f"no {first_required}"),
        MalformedMessage(topic, _json({**good, "colour": "blue"}), "unknown_field", "an unknown field"),
        MalformedMessage(topic, _json({**good, first_bool: "yes"}), "wrong_type", f"{first_bool} as a string"),
        MalformedMessage(topic, _json({**good, first_number: "NaN"}).replace(b'"NaN"', b"NaN"), "non_finite",
                         f"{first_number} NaN"),
        MalformedMessage(topic, _json({**good, first_number: -1e9}), "out_of_range", f"{first_number} -1e9"),
        MalformedMessage(topic, _json({**good, "seq": -5}), "bad_seq", "negative seq"),
        MalformedMessage(topic, _json({**good, "ts": "yesterday"}), "bad_ts", "ts not RFC 3339"),
        MalformedMessage(topic, _json({**good, "ts": local_ts}), "ts_without_offset", "ts without offset"),
        MalformedMessage(unknown_kind, encode_reading(reading), "unknown_kind", "unknown kind in topic"),
        MalformedMessage(bad_id, encode_reading(reading), "bad_id", "upper-case device id in topic"),
        MalformedMessage(topic, _json({**good, "pad": "x" * 17_000}), "payload_too_large", "17 kB payload"),
        MalformedMessage(key.status_topic(), b"maybe", "bad_status", "status neither online nor offline"),
    ]
    if key.kind.value == "inverter":
        out.append(MalformedMessage(topic, _json({**good, "mode": "turbo"}), "bad_choice", "mode 'turbo'"))
    return out

