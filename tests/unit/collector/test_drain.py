"""collector.drain.SpoolDrain without servers (a recording writer stands in for InfluxDB here; the
real InfluxDB is in tests/integration/collector): what one batch sends, and in which order; two
batches in flight, confirmed in spool order whatever order InfluxDB answers in."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from collector.drain import GROUP_BY_SERIES_FROM, SpoolDrain
from collector.spool import Spool
from core.clock import FakeClock
from core.influx_write import InfluxUnavailable
from core.logs import RateLimiter
from core.settings.collector import WriterSettings


class RecordingWriter:
    def __init__(self) -> None:
        self.writes: list[list[str]] = []

    def write(self, lines: Sequence[str]) -> None:
        self.writes.append(list(lines))

    def ensure_database(self) -> None:
        return

    def close(self) -> None:
        return


def test_a_batch_goes_out_grouped_by_series_each_series_in_arrival_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1 << 20, 1 << 16, fsync=False)
    arrived = [f"inverter,device=inv-{d},site=park seq={t}i {1000 + t}" for t in range(30) for d in (2, 1, 3)]
    arrived.append(r"occupancy,device=r1,room=Hall\ A,site=park seq=9i 1000")
    assert len(arrived) > GROUP_BY_SERIES_FROM
    arrived.append("inverter,device=inv-1,site=park seq=0i 1000")  # same series and time again: must stay last
    spool.append(arrived)
    spool.commit()
    writer, clock = RecordingWriter(), FakeClock()
    stored: list[list[str]] = []
    drain = SpoolDrain(spool, writer, WriterSettings(), lambda line, why: None, RateLimiter(clock, 10.0), clock,
                       lambda lines, _at: stored.append(list(lines)))
    assert drain.drain_once()
    [sent] = writer.writes
    assert sorted(sent) == sorted(arrived) and stored == [arrived]
    series = [line.partition(" ")[0] for line in sent]
    assert series == sorted(series)  # grouped
    for name in set(series):  # and each series' points in the order they arrived
        assert [line for line in sent if line.startswith(name + " ")] == \
               [line for line in arrived if line.startswith(name + " ")]
    spool.close()


def test_a_trickle_goes_out_in_arrival_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1 << 20, 1 << 16, fsync=False)
    arrived = [f"inverter,device=inv-{d},site=park seq=0i 1000" for d in (2, 1, 3)]
    spool.append(arrived)
    spool.commit()
    writer, clock = RecordingWriter(), FakeClock()
    drain = SpoolDrain(spool, writer, WriterSettings(), lambda line, why: None, RateLimiter(clock, 10.0), clock)
    assert drain.drain_once()
    assert writer.writes == [arrived]
    spool.close()


class GatedWriter(RecordingWriter):
    """Each write waits until the test opens its gate (by call number), or fails if told to."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.gates = [threading.Event() for _ in range(calls)]
        self.done = [threading.Event() for _ in range(calls)]
        self.fail: set[int] = set()
        self._lock = threading.Lock()

    def write(self, lines: Sequence[str]) -> None:
        with self._lock:
            call = len(self.writes)
            self.writes.append(list(lines))
        assert self.gates[call].wait(10), "the test never opened this write's gate"
        self.done[call].set()
        if call in self.fail:
            raise InfluxUnavailable("InfluxDB at test answered 503")


def six_lines_in_three_batches(tmp_path: Path, writer: RecordingWriter) -> tuple[Spool, SpoolDrain, list[str]]:
    spool = Spool(tmp_path / "spool", 1 << 20, 1 << 16, fsync=False)
    lines = [f"inverter,device=inv-1,site=park seq={i}i {1000 + i}" for i in range(6)]
    spool.append(lines)
    spool.commit()
    clock = FakeClock()
    drain = SpoolDrain(spool, writer, WriterSettings(batch_max_lines=2, concurrency=2), lambda line, why: None,
                       RateLimiter(clock, 10.0), clock)
    return spool, drain, lines


def in_thread(call: Callable[[], bool]) -> tuple[threading.Thread, list[bool | BaseException]]:
    result: list[bool | BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as err:  # handed to the test thread
            result.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_two_batches_fly_at_once_and_are_confirmed_in_spool_order(tmp_path: Path) -> None:
    writer = GatedWriter(calls=3)
    spool, drain, lines = six_lines_in_three_batches(tmp_path, writer)
    pending = spool.pending_bytes
    thread, result = in_thread(drain.drain_once)
    writer.gates[1].set()  # the second batch is answered first
    assert writer.done[1].wait(10)
    thread.join(0.2)
    assert thread.is_alive() and spool.pending_bytes == pending  # nothing confirmed past the first batch
    writer.gates[0].set()
    thread.join(10)
    assert result == [True] and drain.counts.lines_written == 2
    assert drain.drain_once() and drain.counts.lines_written == 4  # the second was already answered
    writer.gates[2].set()
    assert drain.drain_once() and drain.counts.lines_written == 6 and spool.pending_bytes == 0
    assert writer.writes == [lines[0:2], lines[2:4], lines[4:6]]
    drain.stop(0)
    spool.close()


def test_a_failed_batch_sends_it_and_those_after_it_again(tmp_path: Path) -> None:
    writer = GatedWriter(calls=6)
    spool, drain, lines = six_lines_in_three_batches(tmp_path, writer)
    pending = spool.pending_bytes
    writer.fail.add(0)  # the first batch fails, the second (in flight with it) succeeds
    for gate in writer.gates:
        gate.set()
    with pytest.raises(InfluxUnavailable):
        drain.drain_once()
    assert spool.pending_bytes == pending and drain.counts.lines_written == 0
    while drain.drain_once():
        pass
    assert writer.writes == [lines[0:2], lines[2:4], lines[0:2], lines[2:4], lines[4:6]]
    assert drain.counts.lines_written == 6 and spool.pending_bytes == 0
    drain.stop(0)
    spool.close()


class ScriptedWriter(RecordingWriter):
    """Records each write's thread; fails while `down`; takes `takes_s` of the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.threads: list[int] = []
        self.down = False
        self.takes_s = 0.001

    def write(self, lines: Sequence[str]) -> None:
        self.threads.append(threading.get_ident())
        self.clock.advance(self.takes_s)
        if self.down:
            raise InfluxUnavailable("InfluxDB at test: connection refused")
        super().write(lines)


def test_a_trickle_is_written_on_the_committing_thread_only_while_influxdb_is_up_and_quick(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1 << 20, 1 << 16, fsync=False)
    clock = FakeClock()
    writer = ScriptedWriter(clock)
    drain = SpoolDrain(spool, writer, WriterSettings(), lambda line, why: None, RateLimiter(clock, 10.0), clock)

    def commit(seq: int) -> None:
        spool.append([f"inverter,device=inv-1,site=park seq={seq}i {1000 + seq}"])
        spool.commit(wake_reader=False)

    commit(0)
    assert not drain.write_here() and writer.writes == []  # InfluxDB not known to be up yet
    assert drain.drain_once()  # as the writer thread would
    commit(1)
    assert drain.write_here() and writer.writes[-1] == ["inverter,device=inv-1,site=park seq=1i 1001"]
    assert writer.threads[-1] == threading.get_ident() and spool.pending_bytes == 0
    writer.down = True
    commit(2)
    assert not drain.write_here()  # failed: InfluxDB marked down, the lines stay for the writer thread
    assert not drain.counts.influx_up and spool.pending_bytes > 0
    commit(3)
    assert not drain.write_here() and len(writer.threads) == 3  # not even tried while down
    writer.down, writer.takes_s = False, 0.5
    assert drain.drain_once()  # the writer thread's retry: InfluxDB up again, but slow
    assert writer.writes[-1] == ["inverter,device=inv-1,site=park seq=2i 1002",
                                 "inverter,device=inv-1,site=park seq=3i 1003"]
    commit(4)
    assert not drain.write_here() and spool.pending_bytes > 0  # slow: left to the writer thread
    spool.close()
