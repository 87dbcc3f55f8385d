import errno
import os
import shutil
from pathlib import Path

import pytest

from collector.spool import DISK_RESERVE_BYTES, Spool, SpoolWriteError, bound_by_disk


def drain(spool: Spool, max_lines: int = 1000, max_bytes: int = 1 << 20) -> list[str]:
    out: list[str] = []
    for _ in range(10_000):
        batch = spool.read_batch(max_lines, max_bytes)
        if batch is None:
            return out
        out.extend(batch.lines)
        spool.confirm(batch)
    raise AssertionError("spool never ran dry")


def test_lines_become_visible_only_after_commit(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    spool.append(["a 1", "b 2"])
    assert spool.read_batch(10, 1000) is None
    spool.commit()
    batch = spool.read_batch(10, 1000)
    assert batch is not None and batch.lines == ["a 1", "b 2"]


def test_confirmed_lines_are_not_read_again_after_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    spool.append([f"m v={i}" for i in range(10)])
    spool.commit()
    batch = spool.read_batch(4, 1 << 20)
    assert batch is not None and len(batch.lines) == 4
    spool.confirm(batch)
    spool.close()
    reopened = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    assert drain(reopened) == [f"m v={i}" for i in range(4, 10)]
    assert reopened.pending_bytes == 0


def test_unconfirmed_batch_is_read_again_after_crash(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    spool.append(["x v=1", "x v=2"])
    spool.commit()
    assert spool.read_batch(10, 1000) is not None  # read but never confirmed: the "crash"
    reopened = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    assert drain(reopened) == ["x v=1", "x v=2"]


def test_torn_tail_is_cut_on_recovery(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    spool.append(["ok v=1"])
    spool.commit()
    segment = next(tmp_path.glob("*.lp"))
    with open(segment, "ab") as handle:
        handle.write(b"torn v=")  # a crash in the middle of an uncommitted write
    reopened = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    assert drain(reopened) == ["ok v=1"]


def test_segments_rotate_and_are_deleted_once_confirmed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=100)
    expected = [f"measurement value={i:04d}" for i in range(50)]
    for line in expected:
        spool.append([line])
        spool.commit()
    assert len(list(tmp_path.glob("*.lp"))) > 5
    assert drain(spool, max_lines=7) == expected
    assert len(list(tmp_path.glob("*.lp"))) == 1
    assert spool.pending_bytes == 0


def test_pending_bytes_reach_the_bound(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1000, segment_bytes=300)
    line = "m v=" + "1" * 95  # 100 bytes with its newline
    for _ in range(9):
        spool.append([line])
    spool.commit()
    assert spool.pending_bytes == 900 and not spool.is_full()
    spool.append([line])
    assert spool.is_full()
    batch = spool.read_batch(3, 1 << 20)
    assert batch is not None
    spool.confirm(batch)
    assert spool.pending_bytes == 700 and not spool.is_full()


def test_batch_respects_max_bytes_but_always_makes_progress(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    spool.append(["short v=1", "long v=" + "9" * 500, "short v=2"])
    spool.commit()
    assert drain(spool, max_bytes=64) == ["short v=1", "long v=" + "9" * 500, "short v=2"]


def test_the_bound_is_what_the_disk_can_hold_when_that_is_less() -> None:
    mib = 1024 * 1024
    assert bound_by_disk(512 * mib, 0, 10_000 * mib, 8 * mib) == 512 * mib      # room enough: as configured
    assert bound_by_disk(512 * mib, 0, 100 * mib, 8 * mib) == 76 * mib         # 100 MiB free less 24 reserved
    assert bound_by_disk(512 * mib, 50 * mib, 100 * mib, 8 * mib) == 126 * mib  # what is pending is on disk too
    assert bound_by_disk(512 * mib, 0, 10 * mib, 8 * mib) == 0                  # no room: hold everything


def test_a_spool_configured_larger_than_its_disk_is_bounded_by_the_disk(tmp_path: Path) -> None:
    """issue 18: with max_bytes above the disk's free space, InfluxDB down filled the disk and the
    collector crash-looped, losing 38,832 readings; below it, nothing was lost."""
    free = shutil.disk_usage(tmp_path).free
    spool = Spool(tmp_path / "spool", free + 10 * 1024**3, 1024 * 1024, fsync=False)
    try:
        assert spool.configured_max_bytes == free + 10 * 1024**3
        # The disk's free space moves with every other writer: bounded well below the setting, not exactly.
        assert 0 < spool.max_bytes < free + 5 * 1024**3 - DISK_RESERVE_BYTES
        assert spool.free_bytes() == spool.max_bytes
    finally:
        spool.close()


def test_a_failed_sync_keeps_the_lines_and_the_segment_as_committed(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """EIO cannot be had from a real disk here: injected at the spool's write edge (its fsync), after
    the bytes were written, so the roll-back must cut them off again."""
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    spool.append(["kept v=1"])
    spool.commit()
    segment = next(tmp_path.glob("*.lp"))
    committed_size = segment.stat().st_size

    def failing_fsync(_fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    spool.append(["held v=2", "held v=3"])
    with pytest.raises(SpoolWriteError, match="EIO"):
        spool.commit()
    assert not spool.writable and spool.write_failures == 1 and spool.last_error and "EIO" in spool.last_error
    assert segment.stat().st_size == committed_size  # the half-done write is gone from the disk
    assert spool.unwritten_bytes == len(b"held v=2\nheld v=3\n")
    spool.append(["later v=4"])
    with pytest.raises(SpoolWriteError):
        spool.commit()
    assert drain(spool) == ["kept v=1"]  # the reader never sees what was not synced
    monkeypatch.undo()
    spool.commit()
    assert spool.writable and spool.unwritten_bytes == 0
    assert drain(spool) == ["held v=2", "held v=3", "later v=4"]  # each once, in order
    spool.close()
    assert drain(Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)) == []

