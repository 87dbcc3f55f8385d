"""core.decode: every way a message can be unusable gives its own reason and a detail an integrator
can act on; valid readings and statuses decode to exactly what was sent. Plus the property that no
input, however broken, makes `decode_message` raise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contract import DeviceKey, Kind, Reading
from core.decode import DecodeLimits, Reject, RejectReason, StatusChange, StatusCleared, decode_message
from core.known_devices import KnownDevices
from core.site import load_site

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the collector's clock in these tests
NOW_MS = int(NOW * 1000)
LIMITS = DecodeLimits()
INVERTER = DeviceKey("park", Kind.INVERTER, "inv-1")
UPLINK = DeviceKey("park", Kind.UPLINK, "wan-a")
OCCUPANCY = DeviceKey("park", Kind.OCCUPANCY, "room-3")
GENERATOR = DeviceKey("park", Kind.GENERATOR, "gen-1")
PLUG = DeviceKey("park", Kind.PLUG, "plug-router")

VALID: dict[Kind, dict[str, Any]] = {
    Kind.INVERTER: {"ts": "2025-12-31T23:59:00Z", "seq": 7, "grid_v": 231.5, "grid_hz": 50.02, "grid_ok": True,
                    "mode": "grid", "battery_soc_pct": 87, "battery_v": 52.1, "battery_a": -4.25,
                    "battery_temp_c": 29.5, "pv_w": 1520, "load_w": 940.5, "inverter_temp_c": 41.0,
                    "fault_code": None},
    Kind.UPLINK: {"ts": NOW_MS - 60_000, "seq": 3, "isp": "PTCL Fiber", "iface": "eth1", "link_up": True,
                  "rtt_ms": 23.4, "jitter_ms": 2.1, "loss_pct": 0, "down_mbps": 48.5},
    Kind.OCCUPANCY: {"ts": "2026-01-01T04:59:00+05:00", "seq": 0, "room": "کمرہ 3", "occupied": False,
                     "people": 0, "sensor_battery_pct": 91.0},
    Kind.GENERATOR: {"ts": "2025-12-31T23:59:00Z", "seq": 12, "running": True, "state": "running",
                     "output_w": 5210.5, "fuel_pct": 61.2, "engine_hours": 1234.5, "coolant_temp_c": 84.0,
                     "starter_battery_v": 13.7, "fault_code": None},
    Kind.PLUG: {"ts": "2025-12-31T23:59:00Z", "seq": 4, "relay_on": True, "power_w": 17.5, "energy_kwh": 412.37,
                "voltage_v": 228.4, "wifi_signal_dbm": -61.0, "uptime_s": 1839200},
}
DEVICES = {Kind.INVERTER: INVERTER, Kind.UPLINK: UPLINK, Kind.OCCUPANCY: OCCUPANCY, Kind.GENERATOR: GENERATOR,
           Kind.PLUG: PLUG}


def decode(body: dict[str, Any] | bytes, kind: Kind = Kind.INVERTER, *, topic: str | None = None,
           limits: DecodeLimits = LIMITS) -> Reading | StatusChange | Reject:
    payload = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return decode_message(DEVICES[kind].reading_topic() if topic is None else topic, payload, NOW, limits)


def with_(kind: Kind, **changes: Any) -> dict[str, Any]:
    return {**VALID[kind], **changes}


def without(kind: Kind, name: str) -> dict[str, Any]:
    return {k: v for k, v in VALID[kind].items() if k != name}


def rejected(result: object, reason: RejectReason, *in_detail: str) -> Reject:
    """Assert `result` is a Reject for `reason` whose detail mentions each of `in_detail`."""
    assert isinstance(result, Reject), f"expected a {reason} reject, got {result!r}"
    assert result.reason is reason, result.detail
    for text in in_detail:
        assert text in result.detail, f"{text!r} not in {result.detail!r}"
    return result


# --- valid input -------------------------------------------------------------------------------------------


def test_valid_inverter_reading_decodes_to_exact_reading() -> None:
    assert decode(VALID[Kind.INVERTER]) == Reading(INVERTER, NOW_MS - 60_000, 7, {
        "grid_v": 231.5, "grid_hz": 50.02, "grid_ok": True, "mode": "grid", "battery_soc_pct": 87.0,
        "battery_v": 52.1, "battery_a": -4.25, "battery_temp_c": 29.5, "pv_w": 1520.0, "load_w": 940.5,
        "inverter_temp_c": 41.0, "fault_code": None})


def test_valid_uplink_reading_decodes_to_exact_reading() -> None:
    assert decode(VALID[Kind.UPLINK], Kind.UPLINK) == Reading(UPLINK, NOW_MS - 60_000, 3, {
        "isp": "PTCL Fiber", "iface": "eth1", "link_up": True, "rtt_ms": 23.4, "jitter_ms": 2.1,
        "loss_pct": 0.0, "down_mbps": 48.5})


def test_valid_occupancy_reading_decodes_to_exact_reading() -> None:
    assert decode(VALID[Kind.OCCUPANCY], Kind.OCCUPANCY) == Reading(OCCUPANCY, NOW_MS - 60_000, 0, {
        "room": "کمرہ 3", "occupied": False, "people": 0, "sensor_battery_pct": 91.0})


def test_whole_numbers_become_floats_for_float_metrics_and_ints_for_counts() -> None:
    reading = decode(VALID[Kind.OCCUPANCY] | {"people": 4.0, "sensor_battery_pct": 90}, Kind.OCCUPANCY)
    assert isinstance(reading, Reading)
    assert type(reading.metrics["people"]) is int and reading.metrics["people"] == 4
    assert type(reading.metrics["sensor_battery_pct"]) is float


def test_nullable_metrics_accept_null() -> None:
    reading = decode(with_(Kind.UPLINK, rtt_ms=None, jitter_ms=None, loss_pct=100), Kind.UPLINK)
    assert isinstance(reading, Reading)
    assert reading.metrics["rtt_ms"] is None and reading.metrics["jitter_ms"] is None


@pytest.mark.parametrize(("payload", "online"), [(b"online", True), (b"offline", False), (b'"online"', True),
                                                 (b" OFFLINE\n", False)])
def test_status_online_offline(payload: bytes, online: bool) -> None:
    assert decode_message(INVERTER.status_topic(), payload, NOW, LIMITS) == StatusChange(INVERTER, online)


# --- topics and ids ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("topic", "expected"), [
    ("facmon/v1/park/inverter/inv-1", "is not facmon/v1/<site>/<kind>/<device>/<channel>"),
    ("facmon/v1/park/inverter/inv-1/reading/x", "is not facmon/v1/<site>/<kind>/<device>/<channel>"),
    ("other/v1/park/inverter/inv-1/reading", "is not facmon/v1/<site>/<kind>/<device>/<channel>"),
    ("", "topic '' is not facmon/v1/"),
    ("facmon/v2/park/inverter/inv-1/reading", "contract version 'v2' is not 'v1'"),
    ("facmon/v1/park/inverter/inv-1/telemetry", "channel 'telemetry' is not 'reading' or 'status'"),
])
def test_bad_topic(topic: str, expected: str) -> None:
    rejected(decode(VALID[Kind.INVERTER], topic=topic), RejectReason.BAD_TOPIC, expected)


def test_unknown_kind_lists_the_kinds() -> None:
    rejected(decode(VALID[Kind.INVERTER], topic="facmon/v1/park/chiller/ch-1/reading"),
             RejectReason.UNKNOWN_KIND, "'chiller'", "inverter, uplink, occupancy, generator")


@pytest.mark.parametrize(("site", "device", "what"), [
    ("Park", "inv-1", "site"), ("park", "INV-1", "device"), ("park", "x" * 65, "device"),
    ("-park", "inv-1", "site"), ("park", "-inv", "device"), ("park", "inv 1", "device"), ("park", "inv.1", "device"),
    ("", "inv-1", "site"), ("park", "ïnv", "device"),
])
def test_ids_outside_the_contract(site: str, device: str, what: str) -> None:
    result = decode(VALID[Kind.INVERTER], topic=f"facmon/v1/{site}/inverter/{device}/reading")
    rejected(result, RejectReason.BAD_ID, f"{what} id", "[a-z0-9][a-z0-9_-]{0,63}")


def test_longest_id_is_accepted() -> None:
    device = "d" * 64
    assert isinstance(decode(VALID[Kind.INVERTER], topic=f"facmon/v1/park/inverter/{device}/reading"), Reading)


# --- bytes, JSON, shape -------------------------------------------------------------------------------------


def test_malformed_json() -> None:
    rejected(decode(b'{"ts": 1, "seq": '), RejectReason.BAD_JSON, "not JSON")


def test_non_utf8() -> None:
    rejected(decode(b'{"ts": "\xff\xfe"}'), RejectReason.BAD_ENCODING, "not UTF-8", "at byte 8")


@pytest.mark.parametrize(("payload", "json_type"), [(b"[1, 2]", "list"), (b'"online"', "str"), (b"42", "int"),
                                                    (b"null", "NoneType")])
def test_not_an_object(payload: bytes, json_type: str) -> None:
    rejected(decode(payload), RejectReason.NOT_AN_OBJECT, json_type, "not an object")


def test_deeply_nested_json_is_bad_json_not_a_crash() -> None:
    rejected(decode(b"[" * 100_000, limits=DecodeLimits(max_payload_bytes=200_000)), RejectReason.BAD_JSON)


def test_oversized_payload_names_size_and_limit() -> None:
    body = with_(Kind.INVERTER, fault_code="E" * 200)
    result = decode(body, limits=DecodeLimits(max_payload_bytes=128))
    size = len(json.dumps(body).encode())
    rejected(result, RejectReason.PAYLOAD_TOO_LARGE, f"{size} bytes", "limit of 128")
    assert result.device == INVERTER


@pytest.mark.parametrize("name", ["grid_v", "grid_ok", "mode", "battery_soc_pct", "pv_w"])
def test_missing_required_field_names_it(name: str) -> None:
    rejected(decode(without(Kind.INVERTER, name)), RejectReason.MISSING_FIELD, repr(name))


def test_missing_seq_and_ts() -> None:
    rejected(decode(without(Kind.INVERTER, "seq")), RejectReason.MISSING_FIELD, "'seq'")
    rejected(decode(without(Kind.INVERTER, "ts")), RejectReason.MISSING_FIELD, "'ts'", "epoch ms")


def test_optional_fields_may_be_left_out() -> None:
    body = {k: v for k, v in VALID[Kind.INVERTER].items()
            if k not in ("grid_hz", "battery_temp_c", "inverter_temp_c", "fault_code")}
    reading = decode(body)
    assert isinstance(reading, Reading)
    assert set(reading.metrics) == {"grid_v", "grid_ok", "mode", "battery_soc_pct", "battery_v", "battery_a",
                                    "pv_w", "load_w"}


def test_unknown_field_names_the_typo_and_the_known_fields() -> None:
    body = without(Kind.INVERTER, "battery_temp_c") | {"battery_tmp_c": 30.0}
    rejected(decode(body), RejectReason.UNKNOWN_FIELD, "'battery_tmp_c'", "known: grid_v")


# --- types and values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("grid_v", True, "is a boolean; it must be a number (V)"),      # bool is an int in Python: still refused
    ("pv_w", False, "is a boolean; it must be a number (W)"),
    ("grid_v", "231", "is a string; it must be a number (V)"),
    ("grid_v", [231], "is an array"),
    ("grid_ok", "true", "is a string; it must be true or false"),
    ("grid_ok", 1, "is a number; it must be true or false"),
    ("grid_ok", 0, "is a number; it must be true or false"),
    ("mode", 3, "is a number; it must be a string"),
    ("fault_code", {"code": 1}, "is an object; it must be a string"),
    ("grid_v", None, "is null; it must be a float"),
])
def test_wrong_type(name: str, value: object, expected: str) -> None:
    rejected(decode(with_(Kind.INVERTER, **{name: value})), RejectReason.WRONG_TYPE, f"{name} {expected}")


def test_fractional_count_is_wrong_type() -> None:
    rejected(decode(with_(Kind.OCCUPANCY, people=2.5), Kind.OCCUPANCY), RejectReason.WRONG_TYPE,
             "people is 2.5; it must be a whole number")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_constants(constant: str) -> None:
    payload = json.dumps(VALID[Kind.INVERTER]).replace('"grid_v": 231.5', f'"grid_v": {constant}').encode()
    rejected(decode(payload), RejectReason.NON_FINITE, constant, "send null or omit")


@pytest.mark.parametrize("number", ["1e400", "-1e400"])
def test_overflowing_number_is_non_finite(number: str) -> None:
    payload = json.dumps(VALID[Kind.INVERTER]).replace('"battery_a": -4.25', f'"battery_a": {number}').encode()
    rejected(decode(payload), RejectReason.NON_FINITE, "battery_a is")


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("battery_soc_pct", 101, "battery_soc_pct=101 is outside 0..100 %"),
    ("battery_soc_pct", -1, "battery_soc_pct=-1 is outside 0..100 %"),
    ("pv_w", -5.0, "pv_w=-5.0 is outside 0..1e+06 W"),
    ("load_w", -0.5, "load_w=-0.5 is outside 0..1e+06 W"),
    ("grid_v", 501, "grid_v=501 is outside 0..500 V"),
])
def test_out_of_physical_range(name: str, value: float, expected: str) -> None:
    rejected(decode(with_(Kind.INVERTER, **{name: value})), RejectReason.OUT_OF_RANGE, expected)


def test_range_limits_are_inclusive() -> None:
    for soc in (0, 100):
        assert isinstance(decode(with_(Kind.INVERTER, battery_soc_pct=soc)), Reading)


def test_negative_battery_current_is_discharging_not_out_of_range() -> None:
    assert isinstance(decode(with_(Kind.INVERTER, battery_a=-150.0)), Reading)


def test_bad_choice_lists_the_modes() -> None:
    rejected(decode(with_(Kind.INVERTER, mode="eco")), RejectReason.BAD_CHOICE,
             "mode='eco'", "grid, battery, solar, bypass, fault")


def test_choice_is_case_sensitive() -> None:
    rejected(decode(with_(Kind.INVERTER, mode="Grid")), RejectReason.BAD_CHOICE, "'Grid'")


@pytest.mark.parametrize("label", ["", "   ", "x" * 65, "line\nbreak", "tab\there", "bell\x07", "nbsp\u00a0x"])
def test_bad_label(label: str) -> None:
    rejected(decode(with_(Kind.UPLINK, isp=label), Kind.UPLINK), RejectReason.BAD_LABEL, "isp=",
             "1..64 printable characters")


@pytest.mark.parametrize("label", ["abc\\", "a\\b", "\\"])
def test_label_with_a_backslash_is_bad_label(label: str) -> None:
    """InfluxDB 1.x cannot store every backslash in a tag as sent, so the contract allows none."""
    rejected(decode(with_(Kind.OCCUPANCY, room=label), Kind.OCCUPANCY), RejectReason.BAD_LABEL, "without a backslash")


@pytest.mark.parametrize("label", ["Jazz 4G", "نیا ٹیل", "a,b=c d", 'say "hi"', "x" * 64, " padded "])
def test_labels_in_any_script_with_separators_are_valid(label: str) -> None:
    reading = decode(with_(Kind.UPLINK, isp=label), Kind.UPLINK)
    assert isinstance(reading, Reading) and reading.metrics["isp"] == label


def test_overlong_text_field_is_wrong_type() -> None:
    rejected(decode(with_(Kind.INVERTER, fault_code="E" * 257)), RejectReason.WRONG_TYPE,
             "fault_code must be at most 256 printable characters")


@pytest.mark.parametrize(("seq", "shown"), [(-1, "-1"), (1.5, "1.5"), (2**63, str(2**63)), (True, "True"),
                                            ("7", "7"), (None, "None")])
def test_bad_seq(seq: object, shown: str) -> None:
    rejected(decode(with_(Kind.INVERTER, seq=seq)), RejectReason.BAD_SEQ, f"seq={shown}", "0..2^63-1")


def test_largest_seq_is_accepted() -> None:
    reading = decode(with_(Kind.INVERTER, seq=2**63 - 1))
    assert isinstance(reading, Reading) and reading.seq == 2**63 - 1


# --- timestamps ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ts", "expected_ms"), [
    ("2025-12-31T23:59:00Z", NOW_MS - 60_000),
    ("2025-12-31T23:59:00.123Z", NOW_MS - 59_877),
    ("2026-01-01T04:59:00+05:00", NOW_MS - 60_000),     # Pakistan time, the devices' usual local offset
    ("2025-12-31T18:59:00-05:00", NOW_MS - 60_000),
    ("2025-12-31T23:59:00.123456+00:00", NOW_MS - 59_877),  # sub-millisecond truncated
    (NOW_MS - 1, NOW_MS - 1),                             # epoch milliseconds
])
def test_timestamp_forms_give_utc_milliseconds(ts: object, expected_ms: int) -> None:
    reading = decode(with_(Kind.INVERTER, ts=ts))
    assert isinstance(reading, Reading), reading
    assert reading.ts_ms == expected_ms


@pytest.mark.parametrize(("ts", "expected_ms"), [
    ("2025-12-31t23:59:00z", NOW_MS - 60_000),                # RFC 3339 allows lower case T and Z
    ("2025-12-31T23:59:00.123456789Z", NOW_MS - 59_877),     # nanoseconds, truncated to milliseconds
    ("2025-12-31T23:59:00.9+00:00", NOW_MS - 59_100),
    ("2025-12-31T23:59:00-00:00", NOW_MS - 60_000),          # "offset unknown", still UTC
])
def test_every_rfc3339_date_time_is_accepted(ts: str, expected_ms: int) -> None:
    reading = decode(with_(Kind.INVERTER, ts=ts))
    assert isinstance(reading, Reading), reading
    assert reading.ts_ms == expected_ms


@pytest.mark.parametrize("ts", [
    "20251231T235900Z",                   # ISO 8601 basic form
    "20251231T235900+0500",
    "2025-W53-3T23:59:00Z",               # week date
    "2025-365T23:59:00Z",                 # ordinal date
    "2025-12-31T23:59Z",                  # no seconds
    "2025-12-31T23Z",
    "2025-12-31T23:59:00+0500",           # offset without its colon
    "2025-12-31T23:59:00+05",
    "2025-12-31 23:59:00Z",               # a space for the T
    "2025-12-31T23:59:00,5Z",             # decimal comma
    "2025-12-31T23:59:00.Z",
    "2025-12-31T23:59:00.1234567890Z",    # below nanoseconds
    "2025-12-31T24:00:00Z",
    "2025-12-31T23:59:60Z",               # a leap second: no instant InfluxDB can store
    "2025-02-29T00:00:00Z",
    "2025-12-31T23:59:00+24:00",
    "٢٠٢٥-12-31T23:59:00Z",               # digits of another script
])
def test_iso_8601_forms_outside_rfc3339_are_bad_ts(ts: str) -> None:
    rejected(decode(with_(Kind.INVERTER, ts=ts)), RejectReason.BAD_TS, repr(ts)[:20])


@pytest.mark.parametrize("ts", [10**400, -(10**400), 2**63, 9_223_372_036_855, -9_223_372_036_855])
def test_integer_ts_beyond_what_influxdb_stores_is_bad_ts(ts: int) -> None:
    """A 401-digit ts used to raise OverflowError, which stopped the collector, the rules engine and the API."""
    payload = json.dumps(with_(Kind.INVERTER, ts=ts)).encode()
    result = rejected(decode(payload, limits=DecodeLimits(max_age_s=1e300, max_future_s=1e300)),
                      RejectReason.BAD_TS, "epoch milliseconds InfluxDB can store")
    assert len(result.detail) < 200


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+23:59", "1677-09-21T00:12:43.144Z", "2262-04-11T23:47:16.855Z",
                                "9999-12-31T23:59:59Z"])
def test_rfc3339_ts_beyond_what_influxdb_stores_is_bad_ts(ts: str) -> None:
    """Year 1 at +23:59 is in year 0 UTC, which not even Python's datetime holds."""
    rejected(decode(with_(Kind.INVERTER, ts=ts), limits=DecodeLimits(max_age_s=1e300, max_future_s=1e300)),
             RejectReason.BAD_TS, "InfluxDB can store")


def test_integer_ts_at_influxdbs_limits_is_judged_by_the_window() -> None:
    wide = DecodeLimits(max_age_s=1e300, max_future_s=1e300)
    for ts in (9_223_372_036_854, -9_223_372_036_854):
        assert isinstance(decode(with_(Kind.INVERTER, ts=ts), limits=wide), Reading)


def test_timestamp_without_offset_is_refused_with_the_fix() -> None:
    rejected(decode(with_(Kind.INVERTER, ts="2026-01-01T04:59:00")), RejectReason.TS_WITHOUT_OFFSET,
             "no UTC offset", "'+05:00'")


@pytest.mark.parametrize("ts", ["yesterday", "2026-13-01T00:00:00Z", "2026-01-01", "", "2026-01-01T00:00:00Z" * 3,
                                1.5e12, True, None, ["2026"]])
def test_garbage_timestamp_is_bad_ts(ts: object) -> None:
    rejected(decode(with_(Kind.INVERTER, ts=ts)), RejectReason.BAD_TS, "RFC 3339")


def test_epoch_seconds_are_too_old_with_a_hint() -> None:
    rejected(decode(with_(Kind.INVERTER, ts=int(NOW) - 60)), RejectReason.TS_TOO_OLD,
             "epoch *milliseconds*, this looks like seconds")


def test_too_far_in_the_future_against_received_at() -> None:
    limits = DecodeLimits(max_future_s=300)
    assert isinstance(decode(with_(Kind.INVERTER, ts=NOW_MS + 300_000), limits=limits), Reading)
    rejected(decode(with_(Kind.INVERTER, ts=NOW_MS + 301_000), limits=limits), RejectReason.TS_IN_FUTURE,
             "301 s ahead", "limit 300 s", "NTP")


def test_too_far_in_the_past_against_received_at() -> None:
    limits = DecodeLimits(max_age_s=3600)
    assert isinstance(decode(with_(Kind.INVERTER, ts=NOW_MS - 3_600_000), limits=limits), Reading)
    result = rejected(decode(with_(Kind.INVERTER, ts=NOW_MS - 3_601_000), limits=limits), RejectReason.TS_TOO_OLD,
                      "3601 s in the past", "limit 3600 s")
    assert "seconds" not in result.detail  # no epoch-seconds hint for a real millisecond timestamp


def test_limits_follow_received_at_not_a_hidden_clock() -> None:
    body = json.dumps(with_(Kind.INVERTER, ts=NOW_MS)).encode()
    assert isinstance(decode_message(INVERTER.reading_topic(), body, NOW - 299, LIMITS), Reading)
    rejected(decode_message(INVERTER.reading_topic(), body, NOW - 301, LIMITS), RejectReason.TS_IN_FUTURE)


@pytest.mark.parametrize("room", ["کمرہ\u200cتین", "ਕਮਰਾ\u200d3", "می\u200cخواهم"])
def test_labels_with_zero_width_joiners_are_accepted(room: str) -> None:
    """U+200C/U+200D are ordinary in Urdu, Persian and Indic typing, though Unicode files them as format characters."""
    reading = decode(with_(Kind.OCCUPANCY, room=room), Kind.OCCUPANCY)
    assert isinstance(reading, Reading), reading
    assert reading.metrics["room"] == room


@pytest.mark.parametrize("room", ["\u200c", "\u200c \u200d", "room\u202e3", "room\u2066a", "a\u200bb"])
def test_labels_of_joiners_alone_or_other_format_characters_are_bad_label(room: str) -> None:
    rejected(decode(with_(Kind.OCCUPANCY, room=room), Kind.OCCUPANCY), RejectReason.BAD_LABEL)


def test_a_seq_nested_deeper_than_repr_can_go_is_bad_seq() -> None:
    payload = json.dumps(with_(Kind.INVERTER, seq=0)).replace('"seq": 0', '"seq": ' + "[" * 900 + "]" * 900)
    rejected(decode(payload.encode()), RejectReason.BAD_SEQ, "seq=an array")


# --- status --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b" ", b"up", b"1", b'{"status": "online"}', b"\xff\xfe"])
def test_bad_status_payload(payload: bytes) -> None:
    result = decode_message(INVERTER.status_topic(), payload, NOW, LIMITS)
    rejected(result, RejectReason.BAD_STATUS, "is not 'online' or 'offline'")
    assert result.device == INVERTER


def test_an_empty_status_is_a_cleared_retained_status_even_of_a_device_no_site_file_describes() -> None:
    assert decode_message(INVERTER.status_topic(), b"", NOW, LIMITS) == StatusCleared(INVERTER)
    nobody = KnownDevices([])
    assert decode_message(INVERTER.status_topic(), b"", NOW, LIMITS, nobody) == StatusCleared(INVERTER)
    rejected(decode_message(INVERTER.status_topic(), b"online", NOW, LIMITS, nobody), RejectReason.UNKNOWN_DEVICE)
    rejected(decode_message(INVERTER.reading_topic(), b"", NOW, LIMITS), RejectReason.BAD_JSON)


def test_every_reason_but_influx_refused_is_covered_here() -> None:
    """A new RejectReason must get a test in this module (INFLUX_REFUSED is the writer's, tested on InfluxDB)."""
    source = Path(__file__).read_text(encoding="utf-8")
    not_decodes = {RejectReason.INFLUX_REFUSED, RejectReason.TS_CONFLICT, RejectReason.HANDLER_FAILED}  # collector's
    missing = [r.name for r in RejectReason if r not in not_decodes
               and f"RejectReason.{r.name}" not in source.replace("def test_every_reason", "")]
    assert missing == []


# --- never raises -----------------------------------------------------------------------------------------------

_JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                          st.integers(min_value=-(10**450), max_value=10**450),
                          st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=80))
_JSON_VALUES = st.recursive(_JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)


@st.composite
def near_valid_messages(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid reading with a few mutations: fields dropped, replaced by any JSON value, renamed or
    added; sometimes the topic's kind swapped or the serialised bytes cut or corrupted."""
    kind = draw(st.sampled_from(list(Kind)))
    body = dict(VALID[kind])
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["drop", "replace", "add", "rename"]))
        key = draw(st.sampled_from(sorted(body))) if body else "ts"
        if action == "drop":
            body.pop(key, None)
        elif action == "replace":
            body[key] = draw(_JSON_VALUES)
        elif action == "add":
            body[draw(st.text(max_size=12))] = draw(_JSON_VALUES)
        else:
            body[key + draw(st.text(min_size=1, max_size=3))] = body.pop(key, None)
    text = json.dumps(body, ensure_ascii=draw(st.booleans()), allow_nan=True)
    payload = text.encode()
    damage = draw(st.sampled_from(["none", "none", "cut", "flip", "splice"]))
    if damage == "cut" and payload:
        payload = payload[:draw(st.integers(0, len(payload) - 1))]
    elif damage == "flip" and payload:
        at = draw(st.integers(0, len(payload) - 1))
        payload = payload[:at] + bytes([payload[at] ^ draw(st.integers(1, 255))]) + payload[at + 1:]
    elif damage == "splice":
        at = draw(st.integers(0, len(payload)))
        payload = payload[:at] + draw(st.binary(max_size=8)) + payload[at:]
    topic_kind = draw(st.sampled_from([kind.value, kind.value, "inverter", "uplink", "occupancy", "pump"]))
    channel = draw(st.sampled_from(["reading", "reading", "reading", "status"]))
    return f"facmon/v1/park/{topic_kind}/dev-1/{channel}", payload


@settings(max_examples=400, deadline=None)
@given(near_valid_messages(), st.floats(min_value=0, max_value=4e9))
def test_decode_never_raises_on_near_valid_messages(message: tuple[str, bytes], received_at: float) -> None:
    topic, payload = message
    result = decode_message(topic, payload, received_at, LIMITS)
    assert isinstance(result, Reading | StatusChange | StatusCleared | Reject)
    if isinstance(result, Reject):
        assert result.detail and result.reason is not RejectReason.INFLUX_REFUSED


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.binary(max_size=300))
def test_decode_never_raises_on_arbitrary_topics_and_bytes(topic: str, payload: bytes) -> None:
    assert isinstance(decode_message(topic, payload, NOW, DecodeLimits(max_payload_bytes=200)),
                      Reading | StatusChange | StatusCleared | Reject)


# --- known devices ------------------------------------------------------------------------------------------


def _known_park() -> KnownDevices:
    return KnownDevices([load_site(Path(__file__).resolve().parents[3] / "simulators" / "sites" / "park.yaml")])


def test_a_device_no_site_file_describes_is_unknown_device_before_its_payload_is_read() -> None:
    stranger = DeviceKey("park", Kind.INVERTER, "inv-typo")
    elsewhere = "facmon/v1/elsewhere/inverter/inv-main/reading"
    for topic, payload in ((stranger.reading_topic(), b"not even JSON"), (stranger.status_topic(), b"online"),
                           (elsewhere, json.dumps(VALID[Kind.INVERTER]).encode())):
        result = rejected(decode_message(topic, payload, NOW, LIMITS, _known_park()), RejectReason.UNKNOWN_DEVICE,
                          "no site file describes", "sites.files")
        assert result.device is not None


def test_a_label_other_than_the_site_file_gives_is_unknown_label() -> None:
    known = _known_park()
    room = DeviceKey("park", Kind.OCCUPANCY, "occ-room-1")  # described with room "کمرہ 1"
    body = with_(Kind.OCCUPANCY, room="کمرہ 1")
    assert isinstance(decode_message(room.reading_topic(), json.dumps(body).encode(), NOW, LIMITS, known), Reading)
    result = decode_message(room.reading_topic(), json.dumps({**body, "room": "Room 1"}).encode(), NOW, LIMITS, known)
    rejected(result, RejectReason.UNKNOWN_LABEL, "'Room 1'", "'کمرہ 1'")
    uplink = DeviceKey("park", Kind.UPLINK, "uplink-ptcl")
    body = with_(Kind.UPLINK, isp="Jazz 4G")
    rejected(decode_message(uplink.reading_topic(), json.dumps(body).encode(), NOW, LIMITS, known),
             RejectReason.UNKNOWN_LABEL, "isp is 'Jazz 4G'")


def test_known_devices_leave_every_other_judgement_as_it_was() -> None:
    inverter = DeviceKey("park", Kind.INVERTER, "inv-main")
    body = json.dumps(with_(Kind.INVERTER, battery_soc_pct=101)).encode()
    rejected(decode_message(inverter.reading_topic(), body, NOW, LIMITS, _known_park()), RejectReason.OUT_OF_RANGE)
    body = json.dumps(VALID[Kind.INVERTER]).encode()
    assert decode_message(inverter.reading_topic(), body, NOW, LIMITS, _known_park()) == decode_message(
        inverter.reading_topic(), body, NOW, LIMITS)
