"""The standing hostile-input suite for the three stages that decode readings: the same fuzzed
messages go to the collector's ingest (C kernel, fused and general paths), the rules engine (the
park's own rule pack and site, ticking on a fake clock) and the API's device state (and the JSON it
serves of it). No stage may raise, and the collector's fast paths must agree with its general one.

The messages are aimed where the stages once broke or could: numbers at and past every bound
(401-digit integers, 1e308, -0.0), seq leaps and repeats, timestamps at InfluxDB's limits with the
acceptance window opened wide (a backfill configuration), labels in any script with joiners and
format characters, deep nesting, damaged bytes; on the park's real device topics, so that the
rules with site-specific conditions evaluate them. Each run sends `FUZZ_MESSAGES_PER_RUN` payloads
through each stage (docs/security.md).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.device_states import DeviceStates
from api.models import device_out
from api.sites import SiteTree
from collector.device_table import DeviceTable
from collector.ingest import Ingest
from core.clock import FakeClock
from core.contract import DeviceKey, Kind, Reading
from core.decode import DecodeLimits, StatusChange, decode_message
from core.reading_plans import KERNEL_BUILT, kernel_route
from core.site import load_site
from rules.engine import Engine
from rules.model import load_rule_files
from rules.route import Route
from rules.store import AlertStore
from tests.unit.core.test_decode import VALID

ROOT = Path(__file__).resolve().parents[2]
SITE = load_site(ROOT / "simulators" / "sites" / "park.yaml")
PACK = load_rule_files([ROOT / "rules" / "packs" / "park.yaml"])
NOW = 1_767_225_600.0
WIDE = DecodeLimits(max_future_s=1e13, max_age_s=1e13)  # a backfill: every ts InfluxDB can store gets through
EXAMPLES = 250
MESSAGES_PER_EXAMPLE = 6
FUZZ_MESSAGES_PER_RUN = EXAMPLES * MESSAGES_PER_EXAMPLE
DEVICES = {Kind.INVERTER: ["inv-main", "inv-lab"], Kind.UPLINK: ["uplink-ptcl", "uplink-jazz"],
           Kind.OCCUPANCY: ["occ-room-1", "occ-meeting"], Kind.GENERATOR: ["gen-main"], Kind.PLUG: ["plug-router"]}

_EXTREME_NUMBERS = st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, 10**400, -(10**400), 2**63 - 1, 2**63, 2**64,
                                    9_223_372_036_854, -9_223_372_036_854, 9_223_372_036_855, 100, 100.0000001,
                                    1_000_000, 60_000, 500, 70, 2000, -2000, -40, 150, 10_000, 10_001])
_HOSTILE_TEXT = st.sampled_from(["", " ", "\u200c", "کمرہ\u200cتین", "a\u202eb", "a\\b", "x" * 64, "x" * 65,
                                 "y" * 257, "\x00", "\ud7ff", "𓀀", "=,\" '", "fault", "grid", "NaN"])
_TIMESTAMPS = st.one_of(
    st.sampled_from(["2262-04-11T23:47:16.854Z", "1677-09-21T00:12:43.146Z", "9999-12-31T23:59:59.999999999Z",
                     "0001-01-01T00:00:00+23:59", "2025-12-31t23:59:00z", "2025-12-31T23:59:60Z",
                     "20251231T235900Z", "2025-12-31T23:59:00.1234567890Z"]),
    st.integers(-9_223_372_036_855, 9_223_372_036_855), _EXTREME_NUMBERS)
_VALUES = st.one_of(_EXTREME_NUMBERS, _HOSTILE_TEXT, st.none(), st.booleans(),
                    st.floats(allow_nan=False, allow_infinity=False), st.integers(),
                    st.recursive(st.none(), lambda inner: st.lists(inner, max_size=2), max_leaves=4))


@st.composite
def hostile_message(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(list(Kind)))
    device = DeviceKey(SITE.id, kind, draw(st.sampled_from(DEVICES[kind])))
    if draw(st.integers(0, 9)) == 0:
        return device.status_topic(), draw(st.sampled_from([b"online", b"offline", b'"online"', b"\xff", b""]))
    body = dict(VALID[kind])
    body["ts"] = draw(_TIMESTAMPS)
    body["seq"] = draw(st.one_of(st.integers(0, 8), st.sampled_from([2**62, 2**63 - 1, 2**63, -1, 10**400])))
    for _ in range(draw(st.integers(0, 3))):
        body[draw(st.sampled_from(sorted(body)))] = draw(_VALUES)
    text = json.dumps(body, ensure_ascii=draw(st.booleans()), allow_nan=False)
    if draw(st.integers(0, 19)) == 0:
        text = text.replace('"seq": ', '"seq": ' + "[" * 950, 1) + "]" * 950
    payload = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0 and payload:
        at = draw(st.integers(0, len(payload) - 1))
        payload = payload[:at] + bytes([payload[at] ^ draw(st.integers(1, 255))]) + payload[at + 1:]
    return device.reading_topic(), payload


class Stages:
    """One of each stage, fed the same messages; state carries over between messages and examples
    (as in a running process), so leaps and repeats meet what earlier messages left behind."""

    def __init__(self, tmp: Path) -> None:
        self.clock = FakeClock(NOW)
        self.batched = Ingest(WIDE, DeviceTable(duplicate_window=64), 64)
        self.one_by_one = Ingest(WIDE, DeviceTable(duplicate_window=64), 64)
        self.engine = Engine(PACK, {SITE.id: SITE}, AlertStore(tmp / "alerts.db", self.clock),
                             [Route("oncall", group_wait_s=0, group_interval_s=60, repeat_interval_s=3600)],
                             self.clock, {"oncall": ["oncall:hook"]})
        self.engine.source_connected(True)
        self.states = DeviceStates(stale_after_s=120)
        self.tree = SiteTree({SITE.id: SITE})
        self.kernel_routed = 0
        """Messages whose topic had a C kernel route when they came (the kernel was asked first)."""

    def feed(self, messages: list[tuple[str, bytes]]) -> None:
        self.clock.advance(1.0)
        now = self.clock.now()
        self.kernel_routed += sum(kernel_route(topic) is not None for topic, _ in messages)
        lines, rejects = self.batched.handle_batch([t for t, _ in messages], [p for _, p in messages], now)
        one_by_one = [self.one_by_one.handle(t, p, now) for t, p in messages]
        assert lines == [line for result in one_by_one for line in result.lines]
        assert [r.reason for r in rejects] == [result.reject.reason for result in one_by_one if result.reject]
        assert self.batched.counts.handler_failures == self.one_by_one.counts.handler_failures == 0
        for topic, payload in messages:
            decoded = decode_message(topic, payload, now, WIDE)
            if not isinstance(decoded, Reading | StatusChange):
                continue
            self.engine.handle(decoded)  # unguarded here: any exception fails the test
            for event in self.states.observe(decoded, now):
                configured = self.tree.device(event.state.device.site, event.state.device.device)
                served = device_out(event.state, configured).model_dump_json()
                assert "NaN" not in served or not isinstance(decoded, Reading)
                runtime = json.loads(served)["battery_runtime_s"]
                assert runtime is None or math.isfinite(runtime)
        self.engine.tick()
        self.states.sweep(now)


@pytest.fixture(scope="module")
def stages() -> Iterator[Stages]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Stages(Path(tmp))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(hostile_message(), min_size=MESSAGES_PER_EXAMPLE, max_size=MESSAGES_PER_EXAMPLE))
def test_no_stage_raises_on_hostile_messages_and_the_collector_paths_agree(
        stages: Stages, messages: list[tuple[str, bytes]]) -> None:
    stages.feed(messages)


def test_the_fuzzing_reached_the_c_kernel(stages: Stages) -> None:
    """Runs after the fuzz test (file order): the C kernel was asked, not only the Python paths."""
    if not KERNEL_BUILT:
        pytest.skip("core._reading_kernel not built")
    assert stages.kernel_routed > FUZZ_MESSAGES_PER_RUN // 20, stages.kernel_routed
