from pathlib import Path

from collector.spool import Spool


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
