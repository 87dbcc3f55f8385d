"""The probe's pure parts: round statistics, link state, ICMP packets, settings validation, and the
round/publish loop driven by a FakeClock with fake probers."""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.clock import FakeClock
from core.contract import Reading
from core.settings.probe import ProbeSettings, ProbeTarget, ProbeUplink
from probe import LinkStateError, ProbeSetupError
from probe.agent import ProbeAgent, run_rounds
from probe.link import link_state_from, read_link_state
from probe.probers import Binding, checksum, echo_request, is_echo_reply, prober_for
from probe.stats import RoundStats, summarise


def test_summary_of_a_round() -> None:
    stats = summarise({"a": [10.0, 14.0, None, 12.0], "b": [30.0, None, None, 30.0]})
    # answered 10, 14, 12, 30, 30 → median 14; steps |14-10|, |12-14|, |30-30| → mean 2; 3 of 8 lost
    assert stats == RoundStats(rtt_ms=14.0, jitter_ms=2.0, loss_pct=37.5)


def test_nothing_answered_is_null_rtt_and_full_loss() -> None:
    assert summarise({"a": [None, None]}) == RoundStats(None, None, 100.0)


def test_one_answer_has_zero_jitter() -> None:
    assert summarise({"a": [None, 7.5]}) == RoundStats(7.5, 0.0, 50.0)


def test_an_empty_round_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one probe"):
        summarise({"a": []})


@pytest.mark.parametrize(("operstate", "carrier", "up"), [
    ("up\n", "1\n", True), ("unknown\n", "1\n", True), ("down\n", "0\n", False), ("up\n", "0\n", False),
    ("lowerlayerdown\n", "1\n", False), ("down\n", None, False), ("dormant\n", "1\n", False)])
def test_link_state(operstate: str, carrier: str | None, up: bool) -> None:
    assert link_state_from(operstate, carrier).up is up


def _fake_iface(root: Path, name: str, operstate: str, carrier: str | None) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "operstate").write_text(operstate + "\n")
    if carrier is not None:
        (root / name / "carrier").write_text(carrier + "\n")


def test_link_state_from_sysfs_files(tmp_path: Path) -> None:
    _fake_iface(tmp_path, "wan0", "up", "1")
    _fake_iface(tmp_path, "wan1", "down", None)  # admin down: carrier unreadable
    assert read_link_state("wan0", tmp_path).up is True
    assert read_link_state("wan1", tmp_path).up is False
    assert read_link_state("gone0", tmp_path).operstate == "notpresent"


def test_echo_request_checksum_verifies_and_reply_matching() -> None:
    request = echo_request(0x1234, 7, b"payload!")
    assert checksum(request) == 0  # a packet with its checksum in place sums to zero
    reply = b"\x00" + request[1:]
    ip_header = bytes([0x45]) + bytes(19)
    assert is_echo_reply(ip_header + reply, 7, b"payload!", 0x1234, with_ip_header=True)
    assert not is_echo_reply(ip_header + request, 7, b"payload!", 0x1234, with_ip_header=True)  # our own request
    assert not is_echo_reply(ip_header + reply, 8, b"payload!", 0x1234, with_ip_header=True)
    assert not is_echo_reply(ip_header + reply, 7, b"payload!", 0x9999, with_ip_header=True)
    kernel_ident = reply[:4] + struct.pack("!H", 0x4321) + reply[6:]
    assert is_echo_reply(kernel_ident, 7, b"payload!", None, with_ip_header=False)


@pytest.mark.parametrize(("target", "message"), [
    ({}, "exactly one of host"), ({"host": "a", "url": "http://b/"}, "exactly one of host"),
    ({"url": "http://b/", "method": "icmp"}, "needs a host"), ({"host": "a", "method": "http"}, "needs a url")])
def test_target_mistakes_are_named(target: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProbeTarget.model_validate(target)


def test_icmp_target_without_permission_says_how_to_fix() -> None:
    with pytest.raises(ProbeSetupError, match="ping_group_range"):
        prober_for(ProbeTarget(host="192.0.2.1", method="icmp"), Binding(), 1.0, FakeClock(), None)
    auto = prober_for(ProbeTarget(host="192.0.2.1", port=53), Binding(), 1.0, FakeClock(), None)
    assert auto.target == "tcp:192.0.2.1:53"


class _Scripted:
    """A prober that answers from a script and takes `cost_s` of clock time per probe."""

    def __init__(self, clock: FakeClock, answers: list[float | None], cost_s: float = 0.0) -> None:
        self.target = "scripted"
        self._clock, self._answers, self._cost_s = clock, list(answers), cost_s

    def probe(self, seq: int) -> float | None:
        self._clock.advance(self._cost_s)
        return self._answers[seq % len(self._answers)]


def _settings(**changes: object) -> ProbeSettings:
    uplink = ProbeUplink(device="wan-a", isp="ISP A", iface="wan0", targets=(ProbeTarget(host="192.0.2.1"),))
    return ProbeSettings.model_validate({"uplinks": (uplink,), "probes_per_target": 3, "spacing_s": 0.5,
                                         "interval_s": 10, **changes})


def test_rounds_are_paced_by_the_clock_and_readings_carry_seq_and_time(tmp_path: Path) -> None:
    _fake_iface(tmp_path, "wan0", "up", "1")
    clock = FakeClock(1_767_225_600.0)
    agent = ProbeAgent(_settings(), clock, None, tmp_path)
    agent.uplinks[0].probers = [_Scripted(clock, [20.0, None, 24.0], cost_s=0.1)]
    published: list[tuple[float, Reading]] = []
    done = run_rounds(agent, lambda r: published.append((clock.monotonic(), r)), clock, 10.0, threading.Event(), 3)
    assert done == 3
    # a round: 3 probes × 0.1 s + 2 spacings × 0.5 s = 1.3 s; rounds start 10 s apart
    assert [round(t, 6) for t, _ in published] == [1.3, 11.3, 21.3]
    readings = [r for _, r in published]
    assert [r.seq for r in readings] == [0, 1, 2]
    assert readings[0].ts_ms == 1_767_225_601_300
    assert dict(readings[0].metrics) == {"isp": "ISP A", "iface": "wan0", "link_up": True, "rtt_ms": 22.0,
                                         "jitter_ms": 4.0, "loss_pct": 33.333}


def test_a_link_that_is_down_is_not_probed(tmp_path: Path) -> None:
    _fake_iface(tmp_path, "wan0", "down", "0")
    clock = FakeClock()
    agent = ProbeAgent(_settings(), clock, None, tmp_path)
    agent.uplinks[0].probers = [_Scripted(clock, [5.0], cost_s=1.0)]
    (reading,) = agent.round()
    assert clock.monotonic() == 0.0
    assert dict(reading.metrics) == {"isp": "ISP A", "iface": "wan0", "link_up": False, "rtt_ms": None,
                                     "jitter_ms": None, "loss_pct": 100.0}


def test_a_missing_interface_is_refused_at_start(tmp_path: Path) -> None:
    _fake_iface(tmp_path, "eth0", "up", "1")
    with pytest.raises(LinkStateError, match=r"'wan0' does not exist on this host \(present: eth0\)"):
        ProbeAgent(_settings(), FakeClock(), None, tmp_path)


def test_stop_ends_the_loop_between_rounds(tmp_path: Path) -> None:
    _fake_iface(tmp_path, "wan0", "up", "1")
    clock = FakeClock()
    agent = ProbeAgent(_settings(), clock, None, tmp_path)
    agent.uplinks[0].probers = [_Scripted(clock, [5.0])]
    stop = threading.Event()
    done = run_rounds(agent, lambda r: stop.set(), clock, 10.0, stop)
    assert done == 1
