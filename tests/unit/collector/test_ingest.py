"""collector.ingest.Ingest: one message in, the lines to spool out, with counts per outcome and a
`facmon_rejects` point for every reject (no servers: the integration test is test_bad_input.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.device_table import DeviceTable
from collector.ingest import Ingest
from core import reading_plans
from core.contract import DeviceKey, Kind, Reading, encode_reading
from core.decode import DecodeLimits, RejectReason
from core.known_devices import KnownDevices
from core.site import load_site

NOW = 1_767_225_600.0
DEVICE = DeviceKey("park", Kind.OCCUPANCY, "r1")
READING = Reading(DEVICE, int(NOW * 1000) - 1000, 4, {"room": "Hall A", "occupied": True, "people": 2})


def make_ingest(excerpt_bytes: int = 16) -> Ingest:
    return Ingest(DecodeLimits(), DeviceTable(duplicate_window=8), excerpt_bytes)


def test_valid_reading_gives_its_point() -> None:
    ingest = make_ingest()
    result = ingest.handle(DEVICE.reading_topic(), encode_reading(READING), NOW)
    assert result.reject is None
    assert result.lines == ["occupancy,device=r1,room=Hall\\ A,site=park occupied=true,people=2i,seq=4i "
                            "1767225599000000000"]
    assert (ingest.counts.received, ingest.counts.readings) == (1, 1)


def test_repeated_reading_gives_nothing_the_second_time() -> None:
    ingest = make_ingest()
    ingest.handle(DEVICE.reading_topic(), encode_reading(READING), NOW)
    assert ingest.handle(DEVICE.reading_topic(), encode_reading(READING), NOW + 1).lines == []
    assert (ingest.counts.received, ingest.counts.readings) == (2, 1)


def test_status_updates_state_without_a_point() -> None:
    ingest = make_ingest()
    assert ingest.handle(DEVICE.status_topic(), b"offline", NOW).lines == []
    assert ingest.counts.statuses == 1


def test_a_cleared_status_forgets_the_device_on_every_path_and_is_no_reject() -> None:
    site = load_site(Path(__file__).resolve().parents[3] / "simulators" / "sites" / "park.yaml")
    described = DeviceKey("park", Kind.OCCUPANCY, "occ-room-1")
    for known in (None, KnownDevices([site])):
        table = DeviceTable(duplicate_window=8)
        ingest = Ingest(DecodeLimits(), table, 16, known)
        ingest.handle(described.status_topic(), b"online", NOW)
        assert [s.device for s in table.snapshot()] == [described]
        assert ingest.handle(described.status_topic(), b"", NOW) == ([], None)
        lines, rejects = ingest.handle_batch([described.status_topic()], [b""], NOW)
        assert (lines, rejects, table.snapshot()) == ([], [], [])
        assert (ingest.counts.statuses, dict(ingest.counts.rejected)) == (3, {})


def test_reject_is_counted_and_gives_a_dead_letter_point() -> None:
    ingest = make_ingest(excerpt_bytes=8)
    payload = json.dumps({"ts": int(NOW * 1000), "seq": 1, "room": "Hall", "occupied": "yes"}).encode()
    result = ingest.handle(DEVICE.reading_topic(), payload, NOW)
    assert result.reject is not None and result.reject.reason is RejectReason.WRONG_TYPE
    assert ingest.counts.rejected == {"wrong_type": 1} and ingest.counts.readings == 0
    [line] = result.lines
    assert line.startswith("facmon_rejects,device=r1,kind=occupancy,reason=wrong_type,site=park count=1i,"
                           'detail="occupied is a string; it must be true or false",'
                           'topic="facmon/v1/park/occupancy/r1/reading",payload="{\\"ts\\": 1…" ')
    assert line.endswith(f" {int(NOW * 1e6) * 1000 + 1}")


def test_rejects_in_the_same_microsecond_get_distinct_timestamps() -> None:
    ingest = make_ingest()
    lines = [ingest.handle("facmon/v1/park/pump/p1/reading", b"{}", NOW).lines[0] for _ in range(3)]
    assert len({line.rsplit(" ", 1)[1] for line in lines}) == 3
    assert ingest.counts.rejected == {"unknown_kind": 3}


def test_a_batch_gives_what_the_messages_give_one_by_one() -> None:
    """Fast-path readings, duplicates, statuses, rejects and general-path readings (a float metric
    sent as a whole number) mixed in one batch: the same lines in the same order, the same counts."""
    uplink = DeviceKey("park", Kind.UPLINK, "wan-a")
    messages: list[tuple[str, bytes]] = []
    for seq in range(6):
        reading = Reading(uplink, int(NOW * 1000) - 10_000 + seq, seq,
                          {"isp": "PTCL", "link_up": True, "rtt_ms": 20.5 + seq, "jitter_ms": None, "loss_pct": 0.0})
        messages.append((uplink.reading_topic(), encode_reading(reading)))
    messages.insert(3, messages[1])  # a redelivery
    messages.append((uplink.status_topic(), b"online"))
    messages.append((uplink.reading_topic(), b'{"ts": 1, "seq": 1}'))  # reject
    messages.append((DEVICE.reading_topic(), encode_reading(READING).replace(b'"people":2', b'"people":2.0')))
    messages.append((DEVICE.reading_topic(), encode_reading(READING)))  # duplicate of the line before
    one_by_one, batched = make_ingest(), make_ingest()
    expected_lines: list[str] = []
    expected_rejects = []
    for topic, payload in messages:
        result = one_by_one.handle(topic, payload, NOW)
        expected_lines.extend(result.lines)
        if result.reject is not None:
            expected_rejects.append(result.reject)
    lines, rejects = batched.handle_batch([t for t, _ in messages], [p for _, p in messages], NOW)
    assert lines == expected_lines and len(lines) == 6 + 1 + 1  # 6 uplink readings, a reject, people=2.0
    assert rejects == expected_rejects and len(rejects) == 1
    assert batched.counts == one_by_one.counts
    assert (batched.counts.received, batched.counts.readings, batched.counts.statuses) == (11, 7, 1)


@pytest.fixture(params=[True, False], ids=["C kernel", "Python only"])
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Whether the C kernel takes part, with reading plans and routes fresh for the test."""
    if request.param and not reading_plans.KERNEL_BUILT:
        pytest.skip("core._reading_kernel not built")
    monkeypatch.setattr(reading_plans, "_plans", {})
    monkeypatch.setattr(reading_plans, "_routes", {})
    if not request.param:
        monkeypatch.setattr(reading_plans, "_kernel", None)
    return request.param


def test_with_or_without_the_c_kernel_a_batch_gives_the_same_lines_counts_and_state(kernel: bool) -> None:
    """What a machine without a C compiler runs (core.reading_plans without `_reading_kernel`) and
    what it runs with one: the same answers for the same stream, repeated so that plans and routes
    exist for the later messages."""
    uplink = DeviceKey("park", Kind.UPLINK, "wan-a")
    messages: list[tuple[str, bytes]] = []
    for seq in range(5):
        for device, metrics in ((uplink, {"isp": "Nayatel, fibre", "iface": "eth 1", "link_up": True,
                                          "rtt_ms": 20.5 + seq, "jitter_ms": None, "loss_pct": 0.0}),
                                (DEVICE, {"room": "Hall A", "occupied": seq % 2 == 0, "people": seq})):
            reading = Reading(device, int(NOW * 1000) - 10_000 + seq, seq, metrics)
            messages.append((device.reading_topic(), encode_reading(reading)))
    messages += messages[-2:]  # redeliveries
    batched_table, one_by_one_table = DeviceTable(duplicate_window=8), DeviceTable(duplicate_window=8)
    batched, one_by_one = Ingest(DecodeLimits(), batched_table, 16), Ingest(DecodeLimits(), one_by_one_table, 16)
    lines, rejects = batched.handle_batch([t for t, _ in messages], [p for _, p in messages], NOW)
    expected = [line for topic, payload in messages for line in one_by_one.handle(topic, payload, NOW).lines]
    assert lines == expected and len(lines) == 10 and rejects == []
    assert batched.counts == one_by_one.counts
    assert batched_table.snapshot() == one_by_one_table.snapshot()
    assert (reading_plans.kernel_route(uplink.reading_topic()) is not None) is kernel


def test_a_second_seq_with_the_same_ts_is_a_ts_conflict_reject_on_every_path(kernel: bool) -> None:
    """It used to be counted as accepted and silently overwrite the first reading's point."""
    inverter = DeviceKey("park", Kind.INVERTER, "inv-1")
    metrics = {"grid_v": 230.5, "grid_ok": True, "mode": "grid", "battery_soc_pct": 50.5, "battery_v": 51.5,
               "battery_a": 1.5, "pv_w": 0.5, "load_w": 100.5}
    ts_ms = int(NOW * 1000) - 5000
    payloads = [encode_reading(Reading(inverter, ts_ms - 1000 * (3 - seq), seq, metrics)) for seq in range(3)]
    payloads.append(encode_reading(Reading(inverter, ts_ms - 1000, 3, metrics)))  # seq 2's ts again
    for general in (False, True):
        ingest = make_ingest()
        if general:
            results = [ingest.handle(inverter.reading_topic(), payload, NOW) for payload in payloads]
            lines = [line for result in results for line in result.lines]
            rejects = [result.reject for result in results if result.reject is not None]
        else:
            lines, rejects = ingest.handle_batch([inverter.reading_topic()] * 4, payloads, NOW)
        assert [r.reason for r in rejects] == [RejectReason.TS_CONFLICT]
        assert "seq 3 has the same ts" in rejects[0].detail and rejects[0].device == inverter
        assert len(lines) == 4 and lines[3].startswith("facmon_rejects,device=inv-1,kind=inverter,reason=ts_conflict")
        assert ingest.counts.readings == 3 and ingest.counts.rejected == {"ts_conflict": 1}
    if kernel:
        assert reading_plans.kernel_route(inverter.reading_topic()) is not None  # the batch took the C path


def test_a_message_facmon_fails_on_is_a_handler_failed_reject_and_the_batch_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Poison-message isolation: a bug in a handler costs that message (dead-lettered), not the collector."""
    ingest = make_ingest()
    real_observe = ingest._table._observe

    def observe_failing_on_seq_13(record: object, seq: int, *args: object) -> object:
        if seq == 13:
            raise ZeroDivisionError("a bug")
        return real_observe(record, seq, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest._table, "_observe", observe_failing_on_seq_13)  # under every path's observe
    readings = [Reading(DEVICE, READING.ts_ms + seq, seq, READING.metrics) for seq in (12, 13, 14)]
    lines, rejects = ingest.handle_batch([DEVICE.reading_topic()] * 3, [encode_reading(r) for r in readings], NOW)
    assert [r.reason for r in rejects] == [RejectReason.HANDLER_FAILED]
    assert "ZeroDivisionError" in rejects[0].detail and "please report" in rejects[0].detail
    assert [line.split(" ")[0].split(",")[0] for line in lines] == ["occupancy", "facmon_rejects", "occupancy"]
    assert ingest.counts.handler_failures == 1 and ingest.counts.rejected == {"handler_failed": 1}
    result = ingest.handle(DEVICE.reading_topic(), encode_reading(Reading(DEVICE, READING.ts_ms + 20, 13,
                                                                          READING.metrics)), NOW)
    assert result.reject is not None and result.reject.reason is RejectReason.HANDLER_FAILED


def test_with_known_devices_strangers_and_wrong_labels_are_refused_on_every_path(kernel: bool) -> None:
    site = load_site(Path(__file__).resolve().parents[3] / "simulators" / "sites" / "park.yaml")
    ingest = Ingest(DecodeLimits(), DeviceTable(duplicate_window=8), 16, KnownDevices([site]))
    metrics = {"grid_v": 230.5, "grid_ok": True, "mode": "grid", "battery_soc_pct": 50.5, "battery_v": 51.5,
               "battery_a": 1.5, "pv_w": 0.5, "load_w": 100.5}
    ts_ms = int(NOW * 1000) - 10_000
    known, stranger = DeviceKey("park", Kind.INVERTER, "inv-main"), DeviceKey("park", Kind.INVERTER, "inv-0")
    room = DeviceKey("park", Kind.OCCUPANCY, "occ-lab")  # described with room "Lab"
    spaced = DeviceKey("park", Kind.OCCUPANCY, "occ-room-1")  # room "کمرہ 1": escaped in the series key
    messages = []
    for seq in range(4):  # repeated, so that the fast paths have plans and routes for the later ones
        for device in (known, stranger):
            messages.append((device.reading_topic(), encode_reading(Reading(device, ts_ms + seq, seq, metrics))))
        label = "Lab" if seq % 2 == 0 else "Lab 2"
        messages.append((room.reading_topic(), encode_reading(Reading(room, ts_ms + seq, seq,
                                                                      {"room": label, "occupied": True}))))
        messages.append((spaced.reading_topic(), encode_reading(Reading(spaced, ts_ms + seq, seq,
                                                                        {"room": "کمرہ 1", "occupied": False}))))
    lines, rejects = ingest.handle_batch([t for t, _ in messages], [p for _, p in messages], NOW)
    assert [(r.reason.value, r.device.device) for r in rejects] == [
        ("unknown_device", "inv-0"), ("unknown_device", "inv-0"), ("unknown_label", "occ-lab")] * 2
    assert ingest.counts.readings == 4 + 2 + 4
    assert sorted({line.split(",")[1] for line in lines if not line.startswith("facmon_rejects")}) == [
        "device=inv-main", "device=occ-lab", "device=occ-room-1"]
    assert "room=کمرہ\\ 1,site=park occupied=false" in lines[-1]
    # Described labels take the fast paths too (a route is made there), wrong ones are still refused.
    for device in (known, room, spaced):
        assert (reading_plans.kernel_route(device.reading_topic()) is not None) is kernel
    assert reading_plans.kernel_route(stranger.reading_topic()) is None
