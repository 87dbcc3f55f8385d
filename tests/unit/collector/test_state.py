"""collector.state.DeviceTable: duplicates (same seq and ts) are recognised, a restarted counter is
not a duplicate, gaps and late arrivals are counted, status and last-seen are kept per device."""

from __future__ import annotations

from collector.state import DeviceTable, SeqVerdict
from core.contract import DeviceKey, Kind, Reading

DEVICE = DeviceKey("park", Kind.OCCUPANCY, "r1")
OTHER = DeviceKey("park", Kind.OCCUPANCY, "r2")
T0 = 1_767_225_600_000


def reading(seq: int, ts_ms: int, device: DeviceKey = DEVICE) -> Reading:
    return Reading(device, ts_ms, seq, {"room": "Hall", "occupied": True})


def test_same_seq_and_ts_is_a_duplicate() -> None:
    table = DeviceTable(duplicate_window=16)
    assert table.observe(reading(1, T0), 10.0) is SeqVerdict.NEW
    assert table.observe(reading(1, T0), 11.0) is SeqVerdict.DUPLICATE
    assert table.counts.duplicates == 1


def test_same_seq_on_another_device_is_not_a_duplicate() -> None:
    table = DeviceTable(duplicate_window=16)
    table.observe(reading(1, T0), 10.0)
    assert table.observe(reading(1, T0, OTHER), 10.0) is SeqVerdict.NEW
    assert table.counts.duplicates == 0


def test_restarted_counter_is_new_and_counted_as_a_restart() -> None:
    table = DeviceTable(duplicate_window=16)
    for seq in range(5):
        table.observe(reading(seq, T0 + seq * 1000), 10.0)
    assert table.observe(reading(0, T0 + 60_000), 70.0) is SeqVerdict.NEW
    assert (table.counts.restarts, table.counts.duplicates) == (1, 0)
    [snapshot] = table.snapshot()
    assert snapshot.latest == reading(0, T0 + 60_000) and snapshot.last_seen == 70.0
    assert table.observe(reading(1, T0 + 61_000), 71.0) is SeqVerdict.NEW  # counting on after the reboot
    assert table.counts.gaps == 0


def test_gaps_count_the_missing_readings() -> None:
    table = DeviceTable(duplicate_window=16)
    table.observe(reading(1, T0), 1.0)
    table.observe(reading(5, T0 + 4000), 2.0)
    assert table.counts.gaps == 3


def test_late_arrival_is_stored_but_does_not_replace_the_latest_state() -> None:
    table = DeviceTable(duplicate_window=16)
    table.observe(reading(2, T0 + 2000), 1.0)
    assert table.observe(reading(1, T0 + 1000), 2.0) is SeqVerdict.NEW
    assert table.counts.out_of_order == 1 and table.counts.restarts == 0
    [snapshot] = table.snapshot()
    assert snapshot.latest == reading(2, T0 + 2000) and snapshot.last_seen == 2.0


def test_duplicates_older_than_the_window_are_forgotten() -> None:
    table = DeviceTable(duplicate_window=3)
    for seq in range(4):
        table.observe(reading(seq, T0 + seq * 1000), 1.0)
    assert table.observe(reading(0, T0), 2.0) is SeqVerdict.NEW  # stored again: an idempotent overwrite
    assert table.observe(reading(3, T0 + 3000), 2.0) is SeqVerdict.DUPLICATE


def test_status_changes_are_timed_and_repeats_keep_the_first_time() -> None:
    table = DeviceTable(duplicate_window=4)
    table.set_status(DEVICE, True, 5.0)
    table.set_status(DEVICE, True, 9.0)
    [snapshot] = table.snapshot()
    assert (snapshot.online, snapshot.status_changed_at, snapshot.latest) == (True, 5.0, None)
    table.set_status(DEVICE, False, 12.0)
    assert table.snapshot()[0].online is False and table.snapshot()[0].status_changed_at == 12.0
    assert len(table) == 1


def test_a_reading_known_by_its_payload_counts_the_same_and_snapshots_as_its_reading() -> None:
    by_reading, by_payload = DeviceTable(duplicate_window=16), DeviceTable(duplicate_window=16)
    for seq, ts in ((1, T0), (2, T0 + 1000), (2, T0 + 1000), (0, T0 + 5000)):
        payload = b'{"ts": %d, "seq": %d, "room": "Hall", "occupied": true}' % (ts, seq)
        assert by_payload.observe_payload(DEVICE, seq, ts, payload, 10.0) is by_reading.observe(reading(seq, ts), 10.0)
    assert by_payload.counts == by_reading.counts
    assert by_payload.snapshot() == by_reading.snapshot()
    assert by_payload.snapshot()[0].latest == reading(0, T0 + 5000)
