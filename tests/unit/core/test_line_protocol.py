"""core.line_protocol: the exact lines for readings and rejects, and tag escaping as InfluxDB 1.x
parses it (the round trip through a real influxd is tests/integration/collector/test_line_protocol_roundtrip.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contract import DeviceKey, Kind, Reading
from core.line_protocol import escape_string_field, escape_tag, reading_to_line, reject_to_line
from tests.unit.core.strategies import readings

TS_MS = 1_767_225_600_000


def test_inverter_line_has_sorted_tags_float_fields_and_ns_time() -> None:
    reading = Reading(DeviceKey("park", Kind.INVERTER, "inv-1"), TS_MS, 42, {
        "grid_v": 230, "grid_ok": False, "mode": "battery", "battery_soc_pct": 55.5, "battery_v": 51.0,
        "battery_a": -12.0, "pv_w": 0.0, "load_w": 800.0, "fault_code": None})
    assert reading_to_line(reading) == (
        "inverter,device=inv-1,site=park grid_v=230.0,grid_ok=false,mode=\"battery\",battery_soc_pct=55.5,"
        "battery_v=51.0,battery_a=-12.0,pv_w=0.0,load_w=800.0,seq=42i 1767225600000000000")


def test_uplink_label_is_an_escaped_tag_and_text_a_quoted_field() -> None:
    reading = Reading(DeviceKey("park", Kind.UPLINK, "wan-a"), TS_MS, 1, {
        "isp": "Nayatel, Fiber=1 G", "iface": 'e"th\\1', "link_up": True, "rtt_ms": None, "jitter_ms": None,
        "loss_pct": 100.0})
    assert reading_to_line(reading) == (
        'uplink,device=wan-a,isp=Nayatel\\,\\ Fiber\\=1\\ G,site=park iface="e\\"th\\\\1",link_up=true,'
        "loss_pct=100.0,seq=1i 1767225600000000000")


def test_occupancy_count_is_an_integer_field() -> None:
    reading = Reading(DeviceKey("park", Kind.OCCUPANCY, "r1"), TS_MS, 0,
                      {"room": "کمرہ 3", "occupied": True, "people": 3})
    assert reading_to_line(reading) == (
        "occupancy,device=r1,room=کمرہ\\ 3,site=park occupied=true,people=3i,seq=0i 1767225600000000000")


@pytest.mark.parametrize(("value", "escaped"), [
    ("plain", "plain"),
    ("a b,c=d", "a\\ b\\,c\\=d"),
    ("a\\b", "a\\b"),              # InfluxDB 1.x keeps a backslash that escapes nothing: not doubled
    ("a\\\\b", "a\\\\b"),
    ("a\\,b", "a\\\\\\,b"),         # odd run before a separator: made even, or it would eat the comma
    ("x\\\\ y", "x\\\\\\ y"),       # even run: exact
    ("abc\\", "abc"),              # InfluxDB refuses any tag ending in a backslash
    ("line\nbreak\ttab", "line\\ break\\ tab"),  # control whitespace never ends the tag set
    ('quote"', 'quote"'),
])
def test_escape_tag(value: str, escaped: str) -> None:
    assert escape_tag(value) == escaped


def test_escape_string_field() -> None:
    assert escape_string_field('say "hi" \\ ok') == '"say \\"hi\\" \\\\ ok"'
    assert escape_string_field("trailing\\") == '"trailing\\\\"'


def test_reject_line_leaves_out_empty_tags() -> None:
    line = reject_to_line("bad_json", 'payload is not JSON: "x"', "facmon/v1/park/inverter/i 1/reading", "{x",
                          "park", "inverter", None, 1_767_225_600_000_000_123)
    assert line == ('facmon_rejects,kind=inverter,reason=bad_json,site=park count=1i,'
                    'detail="payload is not JSON: \\"x\\"",topic="facmon/v1/park/inverter/i 1/reading",'
                    'payload="{x" 1767225600000000123')


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split where line protocol would: at separators not preceded by an escaping backslash."""
    parts, current, i = [], "", 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            current += text[i:i + 2]
            i += 2
            continue
        if text[i] == separator:
            parts.append(current)
            current = ""
        else:
            current += text[i]
        i += 1
    return [*parts, current]


@settings(max_examples=150, deadline=None)
@given(readings())
def test_every_valid_reading_is_one_line_of_three_sections(reading: Reading) -> None:
    """Structure only (the values are checked against InfluxDB itself in the integration round trip)."""
    line = reading_to_line(reading)
    assert "\n" not in line
    key, fields, timestamp = _sections(line)
    assert timestamp == str(reading.ts_ms * 1_000_000)
    tags = _split_unescaped(key, ",")
    assert tags[0] == reading.device.kind.value
    assert [t.split("=", 1)[0] for t in tags[1:]] == sorted(t.split("=", 1)[0] for t in tags[1:])
    assert fields.endswith(f"seq={reading.seq}i")


def _sections(line: str) -> tuple[str, str, str]:
    """Measurement+tags, fields, timestamp of a line whose string fields may hold spaces."""
    key = _split_unescaped(line, " ")[0]
    rest = line[len(key) + 1:]
    fields, _, timestamp = rest.rpartition(" ")
    return key, fields, timestamp


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_escaped_tags_never_hold_an_unescaped_separator_or_end_in_a_backslash(value: str) -> None:
    escaped = escape_tag(value)
    assert len(_split_unescaped(escaped, ",")) == 1
    assert len(_split_unescaped(escaped, " ")) == 1
    assert "\n" not in escaped and not escaped.endswith("\\")
