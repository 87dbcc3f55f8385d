"""collector.device_table.DeviceTable: duplicates (same seq and ts) are recognised, a restarted counter is
not a duplicate, gaps and late arrivals are counted, status and last-seen are kept per device."""

from __future__ import annotations

from collector.device_table import DeviceTable, SeqVerdict
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


def test_a_seq_leaping_to_2_pow_62_is_a_jump_not_gigabytes_of_window() -> None:
    """seq 1 then 2^62 used to shift the window bitmap by 2^62 bits: MemoryError, the collector down."""
    table = DeviceTable(duplicate_window=256)
    table.observe(reading(1, T0), 1.0)
    assert table.observe(reading(2**62, T0 + 1000), 2.0) is SeqVerdict.NEW
    assert (table.counts.jumps, table.counts.gaps) == (1, 0)
    assert table.observe(reading(2**62 + 1, T0 + 2000), 3.0) is SeqVerdict.NEW  # counting on from there
    assert table.observe(reading(2**62, T0 + 1000), 4.0) is SeqVerdict.DUPLICATE
    assert table.observe(reading(1, T0), 5.0) is SeqVerdict.DUPLICATE  # far below the seq window, but recent
    assert table.observe(reading(2, T0 - 1), 5.0) is SeqVerdict.NEW  # far below the window: stored
    assert (table.counts.jumps, table.counts.gaps, table.counts.duplicates) == (1, 0, 2)
    [snapshot] = table.snapshot()
    assert snapshot.latest == reading(2**62 + 1, T0 + 2000)


def test_a_gap_is_counted_while_the_device_could_have_numbered_it() -> None:
    """A device counts at most one stored reading a millisecond: 7,199 missing readings over two hours
    of an outage are gaps; 10,000 missing in one second are a jump (and so is a window's worth more)."""
    table = DeviceTable(duplicate_window=16)
    table.observe(reading(1, T0), 1.0)
    table.observe(reading(7201, T0 + 7_200_000), 2.0)
    assert (table.counts.gaps, table.counts.jumps) == (7199, 0)
    table.observe(reading(17_202, T0 + 7_201_000), 3.0)
    assert (table.counts.gaps, table.counts.jumps) == (7199, 1)
    table.observe(reading(17_212, T0 + 7_201_001), 4.0)  # 9 skipped in 1 ms: within the window's tolerance
    assert (table.counts.gaps, table.counts.jumps) == (7208, 1)


def test_another_seq_with_the_newest_ts_is_a_conflict_and_changes_nothing() -> None:
    """Two readings of one device with one ts: InfluxDB would keep one point, silently."""
    table = DeviceTable(duplicate_window=16)
    table.observe(reading(1, T0), 1.0)
    assert table.observe(reading(2, T0), 2.0) is SeqVerdict.TS_CONFLICT
    assert table.observe(reading(0, T0), 3.0) is SeqVerdict.TS_CONFLICT  # a late one, or a reboot, with that ts
    assert table.observe(reading(1, T0), 4.0) is SeqVerdict.DUPLICATE   # the same reading again is not
    assert table.counts.ts_conflicts == 2 and table.counts.restarts == 0
    assert table.observe(reading(2, T0 + 1), 5.0) is SeqVerdict.NEW
    assert table.counts.gaps == 0
    [snapshot] = table.snapshot()
    assert snapshot.latest == reading(2, T0 + 1)


def test_the_first_reading_of_a_device_is_never_a_conflict() -> None:
    table = DeviceTable(duplicate_window=16)
    assert table.observe(reading(5, -1), 1.0) is SeqVerdict.NEW


def _reboot(clock_shift_ms: int) -> tuple[DeviceTable, list[SeqVerdict]]:
    """seq 0-199 a second apart, then the device reboots and sends seq 0-199 again from its reboot
    time shifted by `clock_shift_ms` (negative: its clock is behind)."""
    table = DeviceTable(duplicate_window=1024)
    verdicts = [table.observe(reading(seq, T0 + seq * 1000), 1.0) for seq in range(200)]
    rebooted_at = T0 + 200 * 1000 + clock_shift_ms
    verdicts += [table.observe(reading(seq, rebooted_at + seq * 1000), 2.0) for seq in range(200)]
    return table, verdicts


def test_a_reboot_with_the_clock_an_hour_behind_loses_nothing() -> None:
    """It used to store 200 of the 400 distinct readings and count the rest as duplicates, silently."""
    table, verdicts = _reboot(-3_600_000)
    assert verdicts.count(SeqVerdict.NEW) == 400
    assert (table.counts.restarts, table.counts.clock_steps_back, table.counts.duplicates) == (1, 1, 0)
    [snapshot] = table.snapshot()
    assert snapshot.clock_steps_back == 1 and snapshot.latest == reading(199, T0 + 200_000 - 3_600_000 + 199_000)


def test_a_reboot_that_corrects_a_clock_10_s_ahead_refuses_only_what_would_overwrite() -> None:
    """The second run starts 10 s before the first run's first reading: its seq 10-199 fall on the
    very milliseconds of the first run's seq 0-189, where InfluxDB keeps one point. They used to
    overwrite those silently; now they are refused (dead-lettered by the collector), the rest stored."""
    table, verdicts = _reboot(-210_000)
    assert (verdicts.count(SeqVerdict.NEW), verdicts.count(SeqVerdict.TS_CONFLICT)) == (200 + 10, 190)
    assert (table.counts.restarts, table.counts.clock_steps_back, table.counts.duplicates) == (1, 1, 0)


def test_a_late_reading_on_the_millisecond_of_a_stored_one_is_a_conflict() -> None:
    table = DeviceTable(duplicate_window=16)
    for seq in range(5):
        table.observe(reading(seq, T0 + seq * 1000), 1.0)
    assert table.observe(reading(7, T0 + 2000), 2.0) is SeqVerdict.TS_CONFLICT  # seq 2's ts
    assert table.observe(reading(1, T0 + 1000), 2.0) is SeqVerdict.DUPLICATE


def test_a_reboot_with_the_clock_ahead_is_a_restart_without_a_step_back() -> None:
    table, verdicts = _reboot(+60_000)
    assert verdicts.count(SeqVerdict.NEW) == 400
    assert (table.counts.restarts, table.counts.clock_steps_back) == (1, 0)


def test_the_same_readings_again_are_duplicates_however_late() -> None:
    """A device re-sending what it sent (same seq and ts): nothing stored twice."""
    table = DeviceTable(duplicate_window=1024)
    for _ in range(2):
        for seq in range(200):
            table.observe(reading(seq, T0 + seq * 1000), 1.0)
    assert (table.counts.duplicates, table.counts.restarts, table.counts.clock_steps_back) == (200, 0, 0)
