"""The bridge's state and bookkeeping: seq kept across restarts, drops counted and logged sparingly."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bridge import SeqStateError
from bridge.rejects import RejectLog
from bridge.seq import SeqStore
from bridge.translate import Dropped
from core.clock import FakeClock
from core.contract import DeviceKey, Kind

PIR = DeviceKey("park", Kind.OCCUPANCY, "pir-hall")
INV = DeviceKey("park", Kind.INVERTER, "inv-1")


def test_seq_continues_after_a_clean_restart_without_a_gap(tmp_path: Path) -> None:
    store = SeqStore(tmp_path / "seq.json", block=4)
    assert [store.next(PIR) for _ in range(6)] == [0, 1, 2, 3, 4, 5]
    assert store.next(INV) == 0
    store.settle()
    assert store.writes == 1  # blocks reserved at 0 and 4 for PIR, at 0 for INV, written once for the batch
    store.settle()
    assert store.writes == 1  # no mark moved since
    store.close()
    again = SeqStore(tmp_path / "seq.json", block=4)
    assert (again.next(PIR), again.next(INV)) == (6, 1)


def test_after_a_crash_seq_resumes_past_every_seq_handed_out(tmp_path: Path) -> None:
    store = SeqStore(tmp_path / "seq.json", block=4)
    handed_out = [store.next(PIR) for _ in range(3)]
    store.settle()  # what the service does before it publishes a batch
    handed_out += [store.next(PIR) for _ in range(3)]  # past the first block: a new mark
    store.settle()
    # no close(): the process died; the reserved mark is on disk
    resumed = SeqStore(tmp_path / "seq.json", block=4).next(PIR)
    assert resumed > max(handed_out) and resumed - max(handed_out) <= 4


def test_strangers_cannot_grow_the_state_without_bound(tmp_path: Path) -> None:
    from bridge.seq import TooManyDevices

    store = SeqStore(tmp_path / "seq.json", block=4, max_devices=2)
    store.next(PIR)
    store.next(INV)
    with pytest.raises(TooManyDevices, match="only_listed_devices"):
        store.next(DeviceKey("park", Kind.OCCUPANCY, "stranger"))
    assert store.next(PIR) == 1  # the known ones go on


@pytest.mark.parametrize("content", [b"{not json", b'{"park/occupancy/pir-hall": -1}', b"[1, 2]"])
def test_a_state_file_that_is_not_ours_is_refused_with_what_to_do(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "seq.json").write_bytes(content)
    with pytest.raises(SeqStateError, match="move it aside"):
        SeqStore(tmp_path / "seq.json")


def test_one_broken_sensor_cannot_flood_the_log_but_every_drop_is_counted_and_listed(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    rejects = RejectLog(clock, logging.getLogger("test.bridge"), keep=50, log_every_s=60)
    with caplog.at_level(logging.WARNING, "test.bridge"):
        for i in range(1000):
            rejects.add(Dropped("bad_json", "payload is not JSON", "zigbee2mqtt/hall_pir", b"{broken %d" % i, "pir"))
            clock.advance(0.1)  # ten a second for 100 s
        rejects.add(Dropped("unmapped", "no source", "x/y", b"{}"))
    lines = [r for r in caplog.records if r.name == "test.bridge"]
    assert [(r.reason, r.suppressed_since_last) for r in lines] == [("bad_json", 0), ("bad_json", 599), ("unmapped", 0)]
    assert rejects.by_reason == {"bad_json": 1000, "unmapped": 1}
    assert rejects.by_source[("pir", "bad_json")] == 1000
    recent = rejects.recent(limit=3)
    assert [e.excerpt for e in recent] == ["{}", "{broken 999", "{broken 998"]
    assert len(rejects.recent(limit=500)) == 50
    assert [e.reason for e in rejects.recent(limit=5, reason="unmapped")] == ["unmapped"]
