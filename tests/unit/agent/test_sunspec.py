"""SunSpec without a server: the model chain walked from a register table, a map placed on it (the usual
layout's fixed addresses are the oracle for any other chain), and the `sunspec:` section's mistakes
refused with file:line."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import DeviceError, DeviceRefused, RegisterMapError, SunSpecMismatch
from agent.registers import load_register_map
from agent.sunspec import DeviceModel, place_models, walk_model_chain
from tests.fixtures.sunspec import SUNSPEC_METRICS, USUAL_CHAIN, Chain, sunspec_registers


class Device:
    """Holding registers in `ranges` (zeros where unset); a read outside them is refused, as a Modbus
    device answers an exception. `reads` records each (start, count)."""

    def __init__(self, registers: dict[int, int], ranges: Sequence[range] = (range(0, 41_000),)) -> None:
        self.registers = registers
        self.ranges = ranges
        self.reads: list[tuple[int, int]] = []

    def read(self, start: int, count: int) -> list[int]:
        self.reads.append((start, count))
        if not any(start in r and start + count - 1 in r for r in self.ranges):
            raise DeviceRefused(f"refused {start}+{count}")
        return [self.registers.get(a, 0) for a in range(start, start + count)]


def test_the_usual_chain_is_walked_header_by_header() -> None:
    device = Device(sunspec_registers(40000, USUAL_CHAIN))
    assert walk_model_chain(device.read) == (DeviceModel(1, 40002, 65), DeviceModel(103, 40069, 50),
                                             DeviceModel(802, 40121, 62))
    assert device.reads == [(40000, 2), (40002, 2), (40069, 2), (40121, 2), (40185, 2)]


@pytest.mark.parametrize(("base", "ranges", "reads_before"), [
    (0, [range(0, 300)], [(40000, 2)]),                               # 40000 refused
    (0, [range(0, 41_000)], [(40000, 2)]),                            # 40000 holds no marker
    (50000, [range(50000, 50300)], [(40000, 2), (0, 2)]),
])
def test_the_marker_is_found_at_0_or_50000(base: int, ranges: list[range],
                                           reads_before: list[tuple[int, int]]) -> None:
    device = Device(sunspec_registers(base, [(1, 66), (101, 50)]), ranges)
    assert walk_model_chain(device.read) == (DeviceModel(1, base + 2, 66), DeviceModel(101, base + 70, 50))
    assert device.reads[:len(reads_before) + 1] == [*reads_before, (base, 2)]


def test_a_gone_device_fails_at_the_first_base_not_after_three_timeouts() -> None:
    reads = []

    def gone(start: int, count: int) -> list[int]:
        reads.append(start)
        raise DeviceError("modbus tcp 10.0.0.9:502 unit 1: no answer (timeout)")

    with pytest.raises(DeviceError, match="timeout") as err:
        walk_model_chain(gone)
    assert reads == [40000] and not isinstance(err.value, SunSpecMismatch)


def test_no_marker_anywhere_says_what_each_base_held() -> None:
    device = Device({40000: 0x1234}, [range(0, 41_000)])
    with pytest.raises(SunSpecMismatch, match=r'no SunSpec marker \("SunS", 0x5375 0x6e53\) at 40000 holds 0x1234 '
                                              r"0x0000, 0 holds 0x0000 0x0000, 50000 refused; the device is not"):
        walk_model_chain(device.read)


@pytest.mark.parametrize(("registers", "words"), [
    ({40002: 1, 40003: 65, 40069: 103, 40070: 65000},
     "SunSpec model 103 at 40069 says it is 65000 registers long, past register 65535"),
    ({40002: 1, 40003: 65},  # zeros after the common model: no end marker
     "register 40069 holds model id 0 where the SunSpec chain (1 (common) at 40002) puts the next model header"),
    ({40002: 1, 40003: 65, 40069: 7, 40070: 65535 - 40071},  # its last model ends at 65534: no room for the end
     "the SunSpec chain (1 (common) at 40002, 7 at 40069) runs to register 65535 without its end model"),
    (dict.fromkeys(range(40002, 40300, 2), 7),  # model 7 of length 7 at 40002, 40004…: no length-0 end
     "no end model"),
    ({40002: 1, 40003: 65000 - 40004},  # the next header would be past the device's registers
     "the device refused register 65000, where its SunSpec chain (1 (common) at 40002) puts"),
])
def test_a_garbage_chain_says_what_the_device_answered(registers: dict[int, int], words: str) -> None:
    device = Device({40000: 0x5375, 40001: 0x6E53} | registers, [range(0, 65_000)])
    with pytest.raises(SunSpecMismatch) as err:
        walk_model_chain(device.read)
    assert words in str(err.value)
    assert len(device.reads) <= 102  # bounded: the marker and at most 101 headers


def test_a_chain_of_100_models_without_end_stops_there() -> None:
    registers = {40000: 0x5375, 40001: 0x6E53} | {40002 + 2 * i: 7 for i in range(200)}  # all length 0
    device = Device(registers)
    with pytest.raises(SunSpecMismatch, match=r"no end model \(0xFFFF\) within 100 SunSpec models \(7 at 40002, "):
        walk_model_chain(device.read)
    assert len(device.reads) == 101


SUNSPEC_MAP = load_register_map("sunspec_hybrid")


def read_placed(chain: Chain, base: int = 40000) -> dict[str, object]:
    device = Device(sunspec_registers(base, chain), [range(0, 65_536)])
    placed = place_models(SUNSPEC_MAP, walk_model_chain(device.read))
    registers = {a: device.registers.get(a, 0) for b in placed.blocks for a in range(b.start, b.start + b.count)}
    return placed.decode(registers)


def test_on_the_usual_layout_the_map_stays_where_its_file_puts_it() -> None:
    placed = place_models(SUNSPEC_MAP, walk_model_chain(Device(sunspec_registers(40000, USUAL_CHAIN)).read))
    assert (placed.blocks, placed.metrics, placed.sunspec) == (SUNSPEC_MAP.blocks, SUNSPEC_MAP.metrics, None)
    assert read_placed(USUAL_CHAIN) == SUNSPEC_METRICS


_other = st.sampled_from([(1, 65), (1, 66), (120, 26), (121, 30), (122, 44), (123, 24), (160, 48), (701, 153)])


@given(before=st.lists(_other, max_size=4), between=st.lists(_other, max_size=3),
       inverter=st.sampled_from([101, 102, 103]), inverter_length=st.integers(50, 60),
       battery_length=st.integers(60, 70), battery_first=st.booleans(), base=st.sampled_from([0, 40000, 50000]))
def test_any_chain_reads_what_the_usual_layout_reads(before: Chain, between: Chain, inverter: int,
                                                     inverter_length: int, battery_length: int, battery_first: bool,
                                                     base: int) -> None:
    models = [(inverter, inverter_length), *between, (802, battery_length)]
    chain = before + (models[::-1] if battery_first else models)
    assert read_placed(chain, base) == read_placed(USUAL_CHAIN) == SUNSPEC_METRICS


def test_every_address_moves_with_its_own_model(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(FLOW_MAP.replace("battery_a: {address: 40165, type: s16, scale_factor: 40182}",
                                     "battery_a: {address: 40165, type: s16, per: {address: 40155, "
                                     "scale_factor: 40180}}"))
    register_map = load_register_map(str(path))
    chain = (DeviceModel(1, 40002, 65), DeviceModel(802, 40069, 62), DeviceModel(101, 40133, 50))
    placed = place_models(register_map, chain)
    assert [(b.start, b.count) for b in placed.blocks] == [(40133, 52), (40069, 62)]  # 103 +64, 802 -52
    assert placed.metrics["pv_w"].address == [40164, 40165]
    assert placed.metrics["grid_v"].scale_factor == 40146
    flow = placed.metrics["mode"].power_flow
    assert (flow.grid_w.address, flow.grid_w.scale_factor, flow.fault.address) == (40147, 40148, 40171)
    assert placed.metrics["battery_v"].address == 40103
    per = placed.metrics["battery_a"].per  # a divisor moves with its own model too
    assert (placed.metrics["battery_a"].address, per.address, per.scale_factor) == (40113, 40103, 40128)


def test_a_missing_or_short_model_names_what_the_device_has() -> None:
    lacking = (DeviceModel(1, 40002, 65), DeviceModel(101, 40069, 50), DeviceModel(160, 40121, 48))
    with pytest.raises(SunSpecMismatch) as err:
        place_models(SUNSPEC_MAP, lacking)
    assert str(err.value) == (
        "the device's SunSpec models are 1 (common) at 40002, 101 (single-phase inverter) at 40069, 160 (MPPT) at "
        f"40121; this map ({SUNSPEC_MAP.name}) reads 802 (battery); choose a map for this device or add the model "
        "to the file")
    short = (DeviceModel(1, 40002, 65), DeviceModel(103, 40069, 50), DeviceModel(802, 40121, 59))
    with pytest.raises(SunSpecMismatch, match=r"the device's SunSpec model 802 at 40121 has 59 registers; this map "
                                              r"\(.*\) reads 60 of it"):
        place_models(SUNSPEC_MAP, short)
    assert place_models(SUNSPEC_MAP, (*short[:2], DeviceModel(802, 40121, 60))).blocks == SUNSPEC_MAP.blocks


def test_a_map_without_sunspec_is_not_moved() -> None:
    deye = load_register_map("deye_hybrid")
    assert place_models(deye, ()) is deye


FLOW_MAP = """name: flow test
kind: inverter
sunspec:
  models:
    - {id: [101, 102, 103], at: 40069, length: 50}
    - {id: 802, at: 40121, length: 62}
blocks:
  - {start: 40069, count: 52}
  - {start: 40121, count: 62}
metrics:
  grid_v: {address: 40079, scale_factor: 40082}
  grid_ok: {address: 40079, scale_factor: 40082, above: 180}
  battery_soc_pct: {address: 40132, scale_factor: 40177}
  battery_v: {address: 40155, scale_factor: 40180}
  battery_a: {address: 40165, type: s16, scale_factor: 40182}
  pv_w: {address: [40100, 40101]}
  load_w: {address: 40083, type: s16, scale_factor: 40084}
  mode:
    power_flow:
      grid_w: {address: 40083, type: s16, scale_factor: 40084}
      fault: {address: 40107, equals: [7]}
"""


def _replacing(old: str, new: str) -> Callable[[str], str]:
    def change(text: str) -> str:
        assert old in text, old
        return text.replace(old, new)
    return change


@pytest.mark.parametrize(("change", "line", "expected"), [
    (_replacing("kind: inverter\n", "kind: inverter\ncheck: {address: 40069, equals: [103]}\n"), 3,
     "check: a sunspec map finds the SunS marker itself; remove check:"),
    (_replacing("kind: inverter\n", "kind: inverter\ntable: input\n"), 3,
     "table: SunSpec models are holding registers; remove table: or make it holding"),
    (_replacing("{start: 40069, count: 52}", "{start: 40069, count: 60}"), 8,
     "blocks.0: registers 40069…40128 are not inside one declared SunSpec model (101/102/103 at 40069…40120, "
     "802 at 40121…40184); models move independently, so split the block"),
    (_replacing("{id: 802, at: 40121, length: 62}", "{id: 802, at: 40110, length: 62}"), 6,
     "sunspec.models.1: overlaps the model at 40069 (which runs to 40120)"),
    (_replacing("{id: 802, at: 40121", "{id: [802, 103], at: 40121"), 6,
     "sunspec.models.1: model 103 is declared twice (also at 40069)"),
    (_replacing("{id: 802, at: 40121, length: 62}", "{id: 802, at: 65500, length: 62}"), 6,
     "sunspec.models.1: at + 2 + length is 65564, past the last register 65535"),
    (_replacing("{id: 802, at: 40121", "{id: 65535, at: 40121"), 6,
     "sunspec.models.1.id: a SunSpec model id is 1…65534 (65535 ends the chain)"),
    (_replacing("battery_a: {address: 40165, type: s16,", "battery_a: {address: 40120, type: s32,"), 15,
     "metrics.battery_a: registers 40120…40121 straddle two SunSpec models"),
])
def test_sunspec_section_mistakes_are_refused_with_file_and_line(tmp_path: Path, change: Callable[[str], str],
                                                                 line: int, expected: str) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(change(FLOW_MAP))
    with pytest.raises(RegisterMapError) as err:
        load_register_map(str(path))
    assert f"{path}:{line}: {expected}" in str(err.value)
