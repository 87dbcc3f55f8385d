"""The agent's pure parts: register maps (validated with file:line, decoded by type, scale and sunssf)
and the PI30 codec (CRC, frames, QPIGS/QMOD)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import RegisterMapError
from agent.pi30 import (
    Pi30Error,
    crc_xmodem,
    decode_answer,
    encode_command,
    parse_qmod,
    parse_qpigs,
    pi30_crc,
)
from agent.registers import DecodeProblem, RegisterSpec, load_register_map, register_value

MAP = """name: test
kind: inverter
blocks: [{start: 0, count: 20}]
metrics:
  grid_v: {address: 0, scale: 0.1}
  grid_ok: {address: 0, scale: 0.1, above: 180}
  battery_soc_pct: {address: 1}
  battery_v: {address: 2, scale: 0.01}
  battery_a: {address: 3, type: s16, scale: 0.1}
  pv_w: {address: [4, 5]}
  load_w: {address: 6, type: u32}
  mode: {address: 8, values: {0: grid, 1: battery}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "map.yaml"
    path.write_text(text)
    return path


def test_a_map_decodes_types_scales_sums_and_tables(tmp_path: Path) -> None:
    register_map = load_register_map(str(write(tmp_path, MAP)))
    registers = dict.fromkeys(range(20), 0) | {0: 2301, 1: 76, 2: 5234, 3: 0xFFFF - 104, 4: 1200, 5: 640,
                                                 6: 1, 7: 0x86A0, 8: 1}
    assert register_map.decode(registers) == {"grid_v": 230.1, "grid_ok": True, "battery_soc_pct": 76.0,
                                              "battery_v": 52.34, "battery_a": -10.5, "pv_w": 1840.0,
                                              "load_w": 100_000.0, "mode": "battery"}
    with pytest.raises(DecodeProblem, match="register value 7 is not in the map's values"):
        register_map.decode(registers | {8: 7})


@pytest.mark.parametrize(("change", "expected"), [
    (("grid_v: {address: 0", "grid_volts: {address: 0"), "'grid_volts' is not a metric of inverter"),
    (("pv_w: {address: [4, 5]}", "pv_w: {address: [4, 50]}"), "metrics.pv_w: register 50 is in no block"),
    (("load_w: {address: 6, type: u32}", "load_w: {address: 19, type: u32}"), "register 20 is in no block"),
    (("  battery_v: {address: 2, scale: 0.01}\n", ""), "inverter readings need battery_v"),
    (("count: 20", "count: 200"), "less than or equal to 125"),
    (("battery_a: {address: 3, type: s16, scale: 0.1}", "battery_a: {address: 3, per: {address: 40}}"),
     "metrics.battery_a: register 40 is in no block"),
])
def test_map_mistakes_are_refused_with_file_and_line(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    with pytest.raises(RegisterMapError) as err:
        load_register_map(str(write(tmp_path, MAP.replace(*change))))
    assert expected in str(err.value) and str(tmp_path / "map.yaml") + ":" in str(err.value)


def test_an_unknown_map_name_lists_the_shipped_ones() -> None:
    with pytest.raises(RegisterMapError, match="shipped: deye_hybrid, growatt_spf, sunspec_hybrid"):
        load_register_map("huawei_sun2000")


def test_sunspec_scale_factors_are_signed_powers_of_ten() -> None:
    spec = RegisterSpec(address=0, scale_factor=1)
    assert register_value(spec, {0: 2312, 1: 0xFFFF}) == pytest.approx(231.2)
    assert register_value(spec, {0: 32, 1: 2}) == 3200
    with pytest.raises(DecodeProblem, match="not a sunssf"):
        register_value(spec, {0: 1, 1: 0x8000})  # SunSpec's "not implemented"


def test_pi30_crc_matches_the_known_frames() -> None:
    # The frames every PI30 document shows for these queries
    assert encode_command("QPIGS") == b"QPIGS\xb7\xa9\r"
    assert encode_command("QMOD") == b"QMOD\x49\xc1\r"
    assert crc_xmodem(b"123456789") == 0x31C3  # CRC-16/XMODEM's check value


@given(st.text(alphabet="0123456789. ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=120))
def test_pi30_frames_round_trip_and_their_crc_never_holds_a_frame_byte(text: str) -> None:
    body = ("(" + text).encode()
    crc = pi30_crc(body)
    assert not {0x28, 0x0D, 0x0A} & set(crc)
    if text.startswith("NAK"):  # the inverter's "I do not know this query", whatever follows
        with pytest.raises(Pi30Error, match="NAK"):
            decode_answer(body + crc + b"\r")
    else:
        assert decode_answer(body + crc + b"\r") == text


@pytest.mark.parametrize(("frame", "words"), [
    (b"garbage\r", "not a PI30 answer"), (b"(230.0 50.0\x00\x00\r", "CRC mismatch"), (b"(230", "not a PI30 answer"),
])
def test_pi30_garbage_is_refused(frame: bytes, words: str) -> None:
    with pytest.raises(Pi30Error, match=words):
        decode_answer(frame)


def test_qpigs_without_pv_power_field_multiplies_pv_current_and_voltage() -> None:
    short = "000.0 00.0 230.0 50.0 0300 0250 006 380 51.20 000 055 0038 0002 150.0 51.10 00008 00010000"
    metrics = parse_qpigs(short)
    assert (metrics["grid_ok"], metrics["pv_w"], metrics["battery_a"]) == (False, 300.0, -8.0)
    with pytest.raises(Pi30Error, match="17 expected"):
        parse_qpigs("230.0 50.0")
    with pytest.raises(Pi30Error, match="not a number"):
        parse_qpigs(short.replace("51.20", "xx.xx"))
    assert parse_qmod("B", metrics) == "solar"  # 300 W of PV covers the 250 W load
    with pytest.raises(Pi30Error, match="not a known mode letter"):
        parse_qmod("Z", metrics)
