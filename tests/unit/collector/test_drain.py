"""collector.drain.SpoolDrain without servers (a recording writer stands in for InfluxDB here; the
real InfluxDB is in tests/integration/collector): what one batch sends, and in which order."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from collector.drain import SpoolDrain
from collector.spool import Spool
from core.clock import FakeClock
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
    arrived = [f"inverter,device=inv-{d},site=park seq={t}i {1000 + t}" for t in range(3) for d in (2, 1, 3)]
    arrived.append(r"occupancy,device=r1,room=Hall\ A,site=park seq=9i 1000")
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
