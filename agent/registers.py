"""Register maps as data: which registers a device model has and how they become contract metrics.
Adding a model is a YAML file in agent/maps/ (or anywhere, named by path). Pure apart from
`load_register_map`.

    name: Deye / Sunsynk hybrid
    kind: inverter
    table: holding                      # holding or input registers
    blocks: [{start: 59, count: 50}]    # what one poll reads (≤ 125 registers a request)
    check: {address: 1, equals: [3]}   # optional: refuse a device whose register 1 does not hold 3
    metrics:
      grid_v: {address: 150, scale: 0.1}
      pv_w: {address: [186, 187]}       # several registers: summed
      battery_a: {address: 191, type: s16, scale: -0.01}
      grid_ok: {address: 150, scale: 0.1, above: 180}
      mode: {power_flow: {grid_w: {address: 169, type: s16}, fault: {address: 59, equals: [4]}}}
      # a device without a current register: watts / volts
      # battery_a: {address: 77, type: s32, scale: -0.1, per: {address: 17, scale: 0.01}}
      pv_w_sf: ...                      # SunSpec scale factors: {address: 40084, scale_factor: 40085}

A SunSpec map adds `sunspec:`, where its own addresses put each model; the device's model chain (walked
by agent/sunspec.py) says where they really are, and the map is moved there before it is read:

    sunspec:
      models:
        - {id: [101, 102, 103], at: 40069, length: 50}   # header (ID register) at 40069, 50 data registers
        - {id: 802, at: 40121, length: 62}
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from agent import RegisterMapError
from core.contract import METRICS_BY_NAME, FieldValue, Kind, MetricType
from core.site import SiteFileError, describe_validation_error, read_yaml_with_lines

MAPS_DIR = Path(__file__).resolve().parent / "maps"
MAX_REGISTERS_PER_READ = 125
"""Modbus allows 125 holding/input registers in one request."""
_WIDTH = {"u16": 1, "s16": 1, "u32": 2, "s32": 2}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterSpec(_Spec):
    address: int | list[int] = Field(union_mode="left_to_right")
    """One register (or the first of a 32-bit pair); a list: several summed (PV strings)."""
    type: Literal["u16", "s16", "u32", "s32"] = "u16"
    scale: float = 1.0
    offset: float = 0.0
    scale_factor: int | None = None
    """SunSpec: the register holding a power-of-ten exponent (sunssf) applied after `scale`."""

    @property
    def addresses(self) -> tuple[int, ...]:
        return tuple(self.address) if isinstance(self.address, list) else (self.address,)


class MetricSpec(RegisterSpec):
    per: RegisterSpec | None = None
    """The value is divided by this register's: a current from a power and a voltage, for a device that
    reports no current (`battery_a: {address: 77, type: s32, scale: -0.1, per: {address: 17, scale: 0.01}}`)."""
    above: float | None = None
    """For a true/false metric: true when the value is above this (grid present above 180 V)."""
    values: dict[int, FieldValue] | None = None
    """Register value → contract value (state codes → a mode)."""


class StateSpec(RegisterSpec):
    equals: list[int] = Field(min_length=1)


class PowerFlowSpec(_Spec):
    grid_w: RegisterSpec | None = None
    """Power from the grid (positive: importing); absent: an inverter with the grid present runs on it."""
    fault: StateSpec | None = None
    """The inverter is in fault when this register holds one of `equals`."""
    import_threshold_w: float = 50.0


class ModeSpec(_Spec):
    power_flow: PowerFlowSpec


class BlockSpec(_Spec):
    start: int = Field(ge=0, le=65535)
    count: int = Field(ge=1, le=MAX_REGISTERS_PER_READ)


class CheckSpec(_Spec):
    address: int = Field(ge=0, le=65535)
    equals: list[int] = Field(min_length=1)


SUNSPEC_END_ID = 0xFFFF
"""The model id that ends a SunSpec chain."""


class SunSpecModelSpec(_Spec):
    id: int | list[int] = Field(union_mode="left_to_right")
    """The SunSpec model id this part of the file reads; a list: models sharing one layout (101, 102 and
    103 are the single-, split- and three-phase inverter, with the same points at the same offsets)."""
    at: int = Field(ge=0, le=65535)
    """Where the file's own addresses put the model's header (its ID register)."""
    length: int = Field(ge=0, le=65533)
    """The model's length L as the file's addresses assume it: the model is [at, at + 2 + L)."""

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(self.id) if isinstance(self.id, list) else (self.id,)

    @property
    def end(self) -> int:
        """One past the model's last register."""
        return self.at + 2 + self.length

    def holds(self, address: int) -> bool:
        return self.at <= address < self.end

    @field_validator("id")
    @classmethod
    def _model_ids(cls, value: int | list[int]) -> int | list[int]:
        ids = value if isinstance(value, list) else [value]
        if not ids or not all(1 <= i < SUNSPEC_END_ID for i in ids):
            raise ValueError("a SunSpec model id is 1…65534 (65535 ends the chain); use the model's number from "
                             "the SunSpec specification or the device's documentation")
        return value

    @model_validator(mode="after")
    def _within_the_address_space(self) -> SunSpecModelSpec:
        if self.end > 65536:
            raise ValueError(f"at + 2 + length is {self.end}, past the last register 65535")
        return self


class SunSpecSpec(_Spec):
    models: list[SunSpecModelSpec] = Field(min_length=1, max_length=32)


class RegisterMapSpec(_Spec):
    name: str = Field(min_length=1, max_length=200)
    kind: Kind
    table: Literal["holding", "input"] = "holding"
    blocks: list[BlockSpec] = Field(min_length=1, max_length=64)
    check: CheckSpec | None = None
    sunspec: SunSpecSpec | None = None
    """Present: the device is walked for its SunSpec models and the map moved onto them (agent/sunspec.py)."""
    metrics: dict[str, MetricSpec | ModeSpec]

    @model_validator(mode="after")
    def _consistent(self) -> RegisterMapSpec:
        known = METRICS_BY_NAME[self.kind]
        covered = {a for b in self.blocks for a in range(b.start, b.start + b.count)}
        for name, spec in self.metrics.items():
            metric = known.get(name)
            if metric is None or metric.is_tag:
                raise ValueError(f"metrics: {name!r} is not a metric of {self.kind.value} "
                                 f"({', '.join(n for n, m in known.items() if not m.is_tag)})")
            if isinstance(spec, ModeSpec) and metric.type is not MetricType.CHOICE:
                raise ValueError(f"metrics.{name}: power_flow makes a mode; {name} is not one")
            for register in _registers_of(spec):
                needed = {a + i for a in register.addresses for i in range(_WIDTH[register.type])}
                if register.scale_factor is not None:
                    needed.add(register.scale_factor)
                missing = sorted(needed - covered)
                if missing:
                    raise ValueError(f"metrics.{name}: register {missing[0]} is in no block; add it to blocks:")
        if self.check is not None and not set(range(self.check.address, self.check.address + len(self.check.equals))
                                              ) <= covered:
            raise ValueError("check: its registers must be in a block")
        missing = [n for n, m in known.items() if m.required and not m.is_tag and n not in self.metrics]
        if missing:
            raise ValueError(f"metrics: {self.kind.value} readings need {', '.join(missing)}; map them")
        if self.sunspec is not None:
            _check_sunspec(self, self.sunspec)
        return self


def _check_sunspec(spec: RegisterMapSpec, sunspec: SunSpecSpec) -> None:
    """Each model moves on its own when placed on a device, so everything read must sit inside exactly one
    declared model. Raises a ValidationError located at the offending key (its file line)."""
    if spec.check is not None:
        _refuse(("check",), "a sunspec map finds the SunS marker itself; remove check:", spec.check.model_dump())
    if spec.table != "holding":
        _refuse(("table",), "SunSpec models are holding registers; remove table: or make it holding", spec.table)
    models = sorted(enumerate(sunspec.models), key=lambda m: m[1].at)
    for (_, before), (j, after) in itertools.pairwise(models):
        if after.at < before.end:
            _refuse(("sunspec", "models", j), f"overlaps the model at {before.at} (which runs to {before.end - 1}); "
                    "declared models cannot share registers", after.model_dump())
    seen: dict[int, int] = {}
    for j, model in enumerate(sunspec.models):
        for model_id in model.ids:
            if model_id in seen:
                _refuse(("sunspec", "models", j), f"model {model_id} is declared twice (also at "
                        f"{sunspec.models[seen[model_id]].at}); a device model can be placed once", model.model_dump())
            seen[model_id] = j
    for i, block in enumerate(spec.blocks):
        if _model_of(sunspec, range(block.start, block.start + block.count)) is None:
            _refuse(("blocks", i), f"registers {block.start}…{block.start + block.count - 1} are not inside one "
                    f"declared SunSpec model ({_ranges(sunspec)}); models move independently, so split the block "
                    "at the model boundary or declare the model", block.model_dump())
    for name, metric in spec.metrics.items():
        for register in _registers_of(metric):
            for address in register.addresses:
                if _model_of(sunspec, range(address, address + _WIDTH[register.type])) is None:
                    _refuse(("metrics", name), f"registers {address}…{address + _WIDTH[register.type] - 1} "
                            "straddle two SunSpec models; one value is read from one model", metric.model_dump())


def _model_of(sunspec: SunSpecSpec, addresses: range) -> SunSpecModelSpec | None:
    """The declared model holding all of `addresses`, if one does."""
    return next((m for m in sunspec.models if m.holds(addresses[0]) and m.holds(addresses[-1])), None)


def _ranges(sunspec: SunSpecSpec) -> str:
    return ", ".join(f"{'/'.join(map(str, m.ids))} at {m.at}…{m.end - 1}" for m in sunspec.models)


def _refuse(loc: tuple[str | int, ...], message: str, value: object) -> None:
    """Raise a one-problem ValidationError at `loc`, so the file:line points at the key to fix (a plain
    ValueError from a model validator has no location beyond the whole file)."""
    error = PydanticCustomError("sunspec_layout", message)  # type: ignore[call-arg]
    raise ValidationError.from_exception_data("RegisterMapSpec", [InitErrorDetails(type=error, loc=loc, input=value)])


def _registers_of(spec: MetricSpec | ModeSpec) -> list[RegisterSpec]:
    if isinstance(spec, ModeSpec):
        flow = spec.power_flow
        return [r for r in (flow.grid_w, flow.fault) if r is not None]
    return [spec] if spec.per is None else [spec, spec.per]


# --- decoding (pure) -------------------------------------------------------------------------------

Registers = Mapping[int, int]
"""Register address → its 16-bit value, for every address the map's blocks cover."""


class DecodeProblem(ValueError):
    """The registers do not make a reading (a value outside what the register type can mean)."""


def register_value(spec: RegisterSpec, registers: Registers) -> float:
    total = 0.0
    for address in spec.addresses:
        if spec.type in ("u16", "s16"):
            raw = registers[address]
            if spec.type == "s16" and raw >= 0x8000:
                raw -= 0x10000
        else:
            raw = registers[address] << 16 | registers[address + 1]
            if spec.type == "s32" and raw >= 0x8000_0000:
                raw -= 0x1_0000_0000
        total += raw
    value = total * spec.scale + spec.offset
    if spec.scale_factor is not None:
        exponent = registers[spec.scale_factor]
        exponent = exponent - 0x10000 if exponent >= 0x8000 else exponent
        if not -10 <= exponent <= 10:
            raise DecodeProblem(f"scale factor register {spec.scale_factor} holds {exponent}, not a sunssf (-10…10)")
        value *= 10.0 ** exponent
    return value


@dataclass(frozen=True, slots=True)
class RegisterMap:
    name: str
    kind: Kind
    table: str
    blocks: tuple[BlockSpec, ...]
    check: CheckSpec | None
    metrics: Mapping[str, MetricSpec | ModeSpec]
    sunspec: SunSpecSpec | None = None
    """Where the addresses above put each SunSpec model; None: the addresses are the device's."""

    @property
    def register_count(self) -> int:
        return sum(b.count for b in self.blocks)

    def decode(self, registers: Registers) -> dict[str, FieldValue]:
        """The contract metrics the registers hold. Raises DecodeProblem when the device is not this
        model (`check`) or a value cannot be meant."""
        if self.check is not None:
            got = [registers[self.check.address + i] for i in range(len(self.check.equals))]
            if got != self.check.equals:
                raise DecodeProblem(f"registers {self.check.address}… hold {got}, not {self.check.equals}: the device "
                                    f"is not a {self.name}; choose another register map")
        metrics: dict[str, FieldValue] = {}
        modes: dict[str, ModeSpec] = {}
        for name, spec in self.metrics.items():
            if isinstance(spec, ModeSpec):
                modes[name] = spec
            else:
                metrics[name] = self._metric(name, spec, registers)
        for name, spec in modes.items():
            metrics[name] = power_flow_mode(metrics, spec.power_flow, registers)
        return metrics

    def _metric(self, name: str, spec: MetricSpec, registers: Registers) -> FieldValue:
        metric = METRICS_BY_NAME[self.kind][name]
        value = register_value(spec, registers)
        if spec.per is not None:
            divisor = register_value(spec.per, registers)
            if divisor == 0:
                raise DecodeProblem(f"{name}: register {spec.per.addresses[0]} is 0, and {name} is divided by it")
            value /= divisor
        if spec.values is not None:
            if int(value) not in spec.values:
                raise DecodeProblem(f"{name}: register value {int(value)} is not in the map's values "
                                    f"({', '.join(map(str, spec.values))})")
            return spec.values[int(value)]
        if metric.type is MetricType.BOOL:
            return value > (spec.above if spec.above is not None else 0)
        if metric.type is MetricType.TEXT:
            return None if value == 0 else f"0x{int(value):08x}"  # vendor fault words: 0 means no fault
        if metric.type is MetricType.INT:
            return int(value)
        return round(value, 6)


def power_flow_mode(metrics: Mapping[str, FieldValue], flow: PowerFlowSpec, registers: Registers) -> str:
    """What powers the load, from the flows: fault; the grid when importing; else the sun when PV covers
    the load; else the battery."""
    if flow.fault is not None and int(register_value(flow.fault, registers)) in flow.fault.equals:
        return "fault"
    if metrics.get("grid_ok") and (flow.grid_w is None
                                   or register_value(flow.grid_w, registers) > flow.import_threshold_w):
        return "grid"
    pv, load = metrics.get("pv_w"), metrics.get("load_w")
    if isinstance(pv, float) and isinstance(load, float) and pv >= load:
        return "solar"
    return "battery"


def load_register_map(name_or_path: str) -> RegisterMap:
    """A shipped map by name (`deye_hybrid`) or a map file by path. Raises RegisterMapError."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = MAPS_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            shipped = ", ".join(sorted(p.stem for p in MAPS_DIR.glob("*.yaml")))
            raise RegisterMapError(f"no register map {name_or_path!r}; shipped: {shipped}, or give a .yaml path")
    try:
        data, lines = read_yaml_with_lines(path, "register map")
    except SiteFileError as err:
        raise RegisterMapError(str(err)) from None
    if not isinstance(data, dict):
        raise RegisterMapError(f"{path}:1: a register map is a mapping (name:, kind:, blocks:, metrics:)")
    try:
        spec = RegisterMapSpec.model_validate(data)
    except ValidationError as err:
        raise RegisterMapError(describe_validation_error(err, path, lines)) from None
    return RegisterMap(spec.name, spec.kind, spec.table, tuple(spec.blocks), spec.check, dict(spec.metrics),
                       spec.sunspec)
