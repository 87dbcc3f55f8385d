"""A SunSpec device's model chain, and a register map moved onto it. Pure: the device is a `read`
function, so the walk is tested without a server and runs on any register source.

A SunSpec device describes itself. At a base address (40000 usually; the specification also allows 0
and 50000) it holds the marker "SunS" (0x5375 0x6E53); from base + 2 a chain of models follows, each a
header [model id, length L] and L data registers, the next header at header + 2 + L, until the end
model (id 0xFFFF, length 0). Which models come, in which order and how long the common model is
differs between makers and firmware, so a map cannot rely on fixed addresses: its file declares where
its own addresses put each model (`sunspec:` in agent/maps/sunspec_hybrid.yaml), and `place_models`
moves each model's addresses to where this device has it.

    walk_model_chain(read)            → the device's models (id, header address, length)
    place_models(register_map, chain) → the map with the device's addresses

Both raise SunSpecMismatch (a DeviceError) with what the device answered; `read` raises DeviceError
for I/O and DeviceRefused for a Modbus exception answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from agent import DeviceRefused, SunSpecMismatch
from agent.registers import (
    SUNSPEC_END_ID,
    BlockSpec,
    MetricSpec,
    ModeSpec,
    RegisterMap,
    RegisterSpec,
    SunSpecModelSpec,
)

MARKER = (0x5375, 0x6E53)
""""SunS" in two registers."""
BASE_ADDRESSES = (40000, 0, 50000)
"""Where the specification lets the marker be, most common first."""
MAX_MODELS = 100
"""A chain longer than this is garbage (real devices have a handful of models)."""
LAST_ADDRESS = 65535

ReadHolding = Callable[[int, int], Sequence[int]]
"""`read(start, count)`: `count` holding registers from `start`. Raises DeviceRefused for a Modbus
exception answer (no such register), DeviceError for anything else (timeout, connection gone)."""

MODEL_NAMES = {1: "common", 101: "single-phase inverter", 102: "split-phase inverter", 103: "three-phase inverter",
               120: "nameplate", 121: "settings", 122: "status", 123: "controls", 124: "storage", 160: "MPPT",
               701: "DER AC measurement", 802: "battery", 803: "lithium-ion bank", 804: "lithium-ion string"}
"""Names for messages only (an id without a name is shown as its number)."""


@dataclass(frozen=True, slots=True)
class DeviceModel:
    """One model of the device's chain: its id, the address of its header (ID register) and its length
    (data registers after the two-register header)."""

    id: int
    at: int
    length: int

    @property
    def end(self) -> int:
        """One past the model's last register."""
        return self.at + 2 + self.length


def walk_model_chain(read: ReadHolding) -> tuple[DeviceModel, ...]:
    """The device's SunSpec models in chain order. Finds the marker at 40000, 0 or 50000 (a base the
    device refuses is skipped; any other DeviceError propagates at once: a gone device must not cost a
    timeout per base), then follows the headers to the end model. Raises SunSpecMismatch for no marker
    or a garbage chain (a model id 0, a length past register 65535, no end within MAX_MODELS)."""
    return _follow_chain(read, find_marker(read) + 2)


def find_marker(read: ReadHolding) -> int:
    """The base address holding "SunS". Raises SunSpecMismatch naming what each base held."""
    answers = []
    for base in BASE_ADDRESSES:
        try:
            held = tuple(read(base, 2))
        except DeviceRefused:  # no such register on this device: the next base may have it
            answers.append(f"{base} refused")
            continue
        if held == MARKER:
            return base
        answers.append(f"{base} holds {_hex(held)}")
    raise SunSpecMismatch(f"no SunSpec marker (\"SunS\", 0x5375 0x6e53) at {', '.join(answers)}; the device is "
                          "not a SunSpec device or its SunSpec/Modbus TCP is off (enable it in its settings), "
                          "else choose a register map for this device")


def _follow_chain(read: ReadHolding, first_header: int) -> tuple[DeviceModel, ...]:
    models: list[DeviceModel] = []
    at = first_header
    while len(models) < MAX_MODELS:
        if at + 1 > LAST_ADDRESS:
            raise SunSpecMismatch(f"the SunSpec chain ({describe_chain(models)}) runs to register {at} without its "
                                  "end model (0xFFFF); the device answered garbage")
        try:
            model_id, length = read(at, 2)
        except DeviceRefused:
            raise SunSpecMismatch(f"the device refused register {at}, where its SunSpec chain "
                                  f"({describe_chain(models)}) puts the next model header; the device answered "
                                  "garbage or has no end model (0xFFFF)") from None
        if model_id == SUNSPEC_END_ID:
            return tuple(models)
        if model_id == 0:
            raise SunSpecMismatch(f"register {at} holds model id 0 where the SunSpec chain ({describe_chain(models)}) "
                                  "puts the next model header: no model has id 0, the chain has no end (0xFFFF)")
        model = DeviceModel(model_id, at, length)
        if model.end > LAST_ADDRESS + 1:
            raise SunSpecMismatch(f"SunSpec model {model_id} at {at} says it is {length} registers long, past "
                                  f"register {LAST_ADDRESS}; the device answered garbage")
        models.append(model)
        at = model.end
    raise SunSpecMismatch(f"no end model (0xFFFF) within {MAX_MODELS} SunSpec models ({describe_chain(models[:8])}, "
                          "…); the device answered garbage")


def place_models(register_map: RegisterMap, chain: Sequence[DeviceModel]) -> RegisterMap:
    """`register_map` with every address moved from where its file puts each declared model to where
    `chain` has the first device model of a declared id (a map without `sunspec` comes back as it is).
    The result has `sunspec=None`: its addresses are the device's. Raises SunSpecMismatch when the device
    lacks a declared model or has it shorter than the map reads."""
    if register_map.sunspec is None:
        return register_map
    shifts = [(declared, _found(register_map, declared, chain).at - declared.at)
              for declared in register_map.sunspec.models]

    def moved(address: int) -> int:
        for declared, shift in shifts:
            if declared.holds(address):
                return address + shift
        # The loader refuses a map with an address outside its declared models (registers._check_sunspec).
        raise ValueError(f"register {address} is in no declared SunSpec model of {register_map.name}")

    blocks = tuple(block.model_copy(update={"start": moved(block.start)}) for block in register_map.blocks)
    metrics = {name: _moved_metric(spec, moved) for name, spec in register_map.metrics.items()}
    return dataclasses.replace(register_map, blocks=blocks, metrics=metrics, sunspec=None)


def _found(register_map: RegisterMap, declared: SunSpecModelSpec, chain: Sequence[DeviceModel]) -> DeviceModel:
    """The device model the declared one is placed on: the first with a declared id, long enough."""
    model = next((m for m in chain if m.id in declared.ids), None)
    if model is None:
        raise SunSpecMismatch(f"the device's SunSpec models are {describe_chain(chain)}; this map "
                              f"({register_map.name}) reads {_describe_ids(declared.ids)}; choose a map for this "
                              "device or add the model to the file")
    needed = _length_read(register_map.blocks, declared)
    if model.length < needed:
        raise SunSpecMismatch(f"the device's SunSpec model {model.id} at {model.at} has {model.length} registers; "
                              f"this map ({register_map.name}) reads {needed} of it (the device's models are "
                              f"{describe_chain(chain)}); choose a map for this device or shorten the blocks")
    return model


def _length_read(blocks: Sequence[BlockSpec], declared: SunSpecModelSpec) -> int:
    """How many of the model's data registers the blocks reach (the highest block end inside it)."""
    ends = [block.start + block.count for block in blocks if declared.holds(block.start)]
    return max(ends, default=declared.at + 2) - declared.at - 2


_Register = TypeVar("_Register", bound=RegisterSpec)


def _moved_register(spec: _Register, moved: Callable[[int], int]) -> _Register:
    address = [moved(a) for a in spec.address] if isinstance(spec.address, list) else moved(spec.address)
    scale_factor = None if spec.scale_factor is None else moved(spec.scale_factor)
    return spec.model_copy(update={"address": address, "scale_factor": scale_factor})


def _moved_metric(spec: MetricSpec | ModeSpec, moved: Callable[[int], int]) -> MetricSpec | ModeSpec:
    if isinstance(spec, MetricSpec):
        placed = _moved_register(spec, moved)
        return placed if spec.per is None else placed.model_copy(update={"per": _moved_register(spec.per, moved)})
    flow = spec.power_flow
    return spec.model_copy(update={"power_flow": flow.model_copy(update={
        "grid_w": None if flow.grid_w is None else _moved_register(flow.grid_w, moved),
        "fault": None if flow.fault is None else _moved_register(flow.fault, moved)})})


def describe_chain(chain: Sequence[DeviceModel]) -> str:
    """`1 (common) at 40002, 101 (single-phase inverter) at 40070`, or `none` for an empty chain."""
    return ", ".join(f"{_describe_ids((m.id,))} at {m.at}" for m in chain) or "none"


def _describe_ids(ids: Sequence[int]) -> str:
    return " or ".join(f"{i} ({MODEL_NAMES[i]})" if i in MODEL_NAMES else str(i) for i in ids)


def _hex(values: Sequence[int]) -> str:
    return " ".join(f"0x{v:04x}" for v in values)
