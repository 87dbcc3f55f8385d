"""The writer: drains the spool into InfluxDB, batch by batch, deleting only what InfluxDB confirmed.

    keep up to `concurrency` batches in flight → wait for the oldest
        ok                      → confirm it (the spool advances its cursor; always in spool order)
        InfluxDB unreachable    → let the others finish, keep them all, back off (doubling up to
                                  retry_max_s) and send again from the cursor
        database missing        → create it where allowed, else back off and say what is missing
        points refused (400)    → split the batch to isolate the refused lines; write the rest;
                                  dead-letter each refused line with InfluxDB's reason
        batch too large (413)   → split

Runs in its own thread (and `concurrency` sender threads) so a slow or absent InfluxDB never stalls
MQTT intake (the spool absorbs it). At a trickle with InfluxDB answering quickly, the collector's
own thread writes its commit's few lines instead (`write_here`), one thread waking instead of two.
A batch sent again after a failure may already be stored: harmless, InfluxDB overwrites a point with
the same series and time.

Two batches in flight: influxd 1.6.7 handles a write request on one core, so with one batch at a
time a backlog drained at the speed of one core of InfluxDB plus the writer's own work in between.

A batch is sent grouped by series (a stable sort, so a series' points keep their arrival order and the
last of two points with the same series and time still wins): influxd 1.6.7 spent 14-20 % less CPU per
point on 5,000-line batches grouped this way than on lines interleaved by device (measured with a
write-only script, 100,000 inverter points from 1,000 devices).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from collector.spool import Batch, Position, Spool
from core.clock import Clock
from core.influx_write import (
    InfluxBatchTooLarge,
    InfluxDatabaseMissing,
    InfluxPointsRefused,
    InfluxWriteError,
    LineWriter,
)
from core.logs import RateLimiter
from core.settings.collector import WriterSettings

TRICKLE_LINES_PER_S = 400.0
"""Lines committed slower than this are a trickle: the writer lingers after writing them
(`writer.linger_s`); the collector's BUSY_RATE_PER_S, for the same reason."""

WRITE_HERE_MAX_S = 0.2
TRICKLE_MAX_BYTES = 64 * 1024
"""The collector's own thread writes to InfluxDB (`write_here`, `write_through`) only when the last
write took at most WRITE_HERE_MAX_S and at most TRICKLE_MAX_BYTES wait: a trickle. Intake waits
while it writes, so a slow InfluxDB or a backlog stays with the writer thread."""

GROUP_BY_SERIES_FROM = 64
"""Batches longer than this are sent grouped by series (see above); a trickle's few lines gain nothing
from it, and sorting them is a measurable part of a park's writes."""

log = logging.getLogger("facmon.collector.writer")
T = TypeVar("T")


@dataclass
class DrainCounts:
    lines_written: int = 0
    batches_written: int = 0
    lines_refused: int = 0
    write_failures: int = 0
    write_seconds_total: float = 0.0
    influx_up: bool = False
    last_error: str | None = None
    last_write_at: float = 0.0
    """Wall-clock time InfluxDB last confirmed a batch (0: never)."""


def _series_of(line: str) -> str:
    """What groups a line with the others of its series: the text before the first space (an escaped
    space in a tag only cuts the key shorter, the same way for every line of that series)."""
    return line.partition(" ")[0]


StoredHandler = Callable[[Sequence[str], float], None]
"""Called with (lines, wall-clock time) after InfluxDB confirmed a batch."""

RefusedHandler = Callable[[str, str], None]
"""Called with (line, InfluxDB's reason) for each line InfluxDB refused on its own."""


class SpoolDrain:
    def __init__(self, spool: Spool, writer: LineWriter, settings: WriterSettings, on_refused: RefusedHandler,
                 limiter: RateLimiter, clock: Clock, on_stored: StoredHandler | None = None) -> None:
        self._clock = clock
        self._on_stored = on_stored
        self._spool = spool
        self._writer = writer
        self._settings = settings
        self._on_refused = on_refused
        self._limiter = limiter
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="influx-writer", daemon=True)
        self._senders = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="influx-send")
        self._in_flight: deque[tuple[Batch, Future[float]]] = deque()
        self._read_to: Position | None = None
        self._last_batch_trickle = False
        """The latest batch read came as a trickle (lines committed slower than TRICKLE_LINES_PER_S)."""
        self._last_read_at = 0.0
        """End of the last batch sent and not yet confirmed (None: read from the spool's cursor)."""
        self._refused_lock = threading.Lock()
        self._last_write_s = 0.0
        self._drain_lock = threading.Lock()
        """Held by whoever runs `drain_once`: the writer thread, or the collector's (`write_here`)."""
        self._database_ready = False
        self.counts = DrainCounts()

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain_timeout_s: float) -> None:
        """Keep writing for up to `drain_timeout_s` while lines remain, then stop. What is left stays
        in the spool for the next start."""
        deadline = self._clock.monotonic() + drain_timeout_s
        while self._clock.monotonic() < deadline and self._spool.pending_bytes > 0 and self.counts.influx_up:
            self._spool.wait_for_data(0.02)
            self._clock.sleep(0.02)
        self._stop.set()
        self._spool.wake_reader()  # an idle writer waits up to idle_poll_s otherwise
        if self._thread.ident is not None:
            self._thread.join(timeout=self._settings.retry_max_s + 5)  # it settles what is in flight
        else:
            self._settle_in_flight()  # driven by drain_once() calls alone (tests)
        self._senders.shutdown(wait=True)

    def _run(self) -> None:
        backoff = self._settings.retry_min_s
        try:
            while not self._stop.is_set():
                try:
                    with self._drain_lock:
                        progressed = self.drain_once()
                    backoff = self._settings.retry_min_s
                    if not progressed:
                        self._spool.wait_for_data(self._settings.idle_poll_s)
                    elif self._last_batch_trickle and self._settings.linger_s:
                        self._stop.wait(self._settings.linger_s)  # let a few more readings gather
                except InfluxWriteError as err:
                    self.counts.write_failures += 1
                    self.counts.influx_up = False
                    self.counts.last_error = str(err)
                    if self._limiter.allow("influx-write-failed") is not None:
                        log.warning("influx write failed; keeping the batch and retrying",
                                    extra={"error": str(err), "retry_in_s": round(backoff, 2),
                                           "spool_bytes": self._spool.pending_bytes})
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self._settings.retry_max_s)
        finally:
            self._settle_in_flight()

    def drain_once(self, here: bool = False) -> bool:
        """Send batches until `concurrency` are in flight, then wait for the oldest and confirm it
        (`here`: one batch, sent on this thread). True if the spool advanced. Raises `InfluxWriteError`
        when the batches in flight must be sent again later (they are dropped from flight; the spool
        still has them)."""
        if not self._database_ready:
            self._writer.ensure_database()
            self._database_ready = True
        while len(self._in_flight) < self._settings.concurrency:
            batch = self._spool.read_batch(self._settings.batch_max_lines, self._settings.batch_max_bytes,
                                           self._read_to)
            if batch is None:
                break
            self._read_to = batch.end
            # Linger only after a trickle (lines committed slower than BUSY_RATE_PER_S since the last
            # read); a backlog or a busy fleet is written at full speed.
            now = self._clock.monotonic()
            rate = len(batch.lines) / max(now - self._last_read_at, 1e-3)
            self._last_read_at = now
            self._last_batch_trickle = rate < TRICKLE_LINES_PER_S
            if (here or self._last_batch_trickle) and not self._in_flight:
                self._in_flight.append((batch, self._send_here(batch.lines)))
                break
            self._in_flight.append((batch, self._senders.submit(self._send, batch.lines)))
        if not self._in_flight:
            return False
        batch, sent = self._in_flight[0]
        try:
            elapsed = sent.result()
        except InfluxWriteError as err:
            self._settle_in_flight(confirm=False)
            if isinstance(err, InfluxDatabaseMissing):
                self._database_ready = False
            raise
        self._in_flight.popleft()
        self._confirm(batch, elapsed)
        return True

    @property
    def last_write_s(self) -> float:
        """How long InfluxDB took to confirm the last batch written."""
        return self._last_write_s

    def can_write_through(self) -> bool:
        """A trickle's points may go straight to InfluxDB (`write_through`): it is up and answered its
        last write quickly, nothing older waits in the spool, and the writer thread is idle."""
        return self._trickle_ready(max_spooled_bytes=0)

    def _trickle_ready(self, max_spooled_bytes: int) -> bool:
        """InfluxDB is up and answered its last write within WRITE_HERE_MAX_S, no batch is in flight,
        and the spool holds at most `max_spooled_bytes`: this thread may write now."""
        return (self.counts.influx_up and not self._in_flight and self._last_write_s <= WRITE_HERE_MAX_S
                and self._spool.pending_bytes <= max_spooled_bytes)

    def write_through(self, lines: list[str]) -> bool:
        """Write `lines`, which never entered the spool, on the calling thread; True once InfluxDB
        confirmed every one (lines it refused on their own are dead-lettered, as the writer does).
        False when not `can_write_through`, or when the write failed (InfluxDB is then marked down):
        the caller spools the lines, and the writer thread owns retrying."""
        if not self.can_write_through():
            return False
        elapsed = self._on_this_thread(lambda: self._send(lines))
        if elapsed is None:
            return False
        self._count_stored(lines, elapsed)
        return True

    def write_here(self) -> bool:
        """Write what the spool has committed on the calling thread; True if the spool is then empty.
        At a trickle the collector's thread calls it right after a commit: waking the writer thread
        for a few lines cost more CPU than the write itself (benchmarks/README.md, issue 16). Only
        while InfluxDB is up and answered the last write quickly, and only a trickle's few bytes: a
        backlog, a slow or failing InfluxDB stay with the writer thread, which owns retrying (a write
        that fails here marks InfluxDB down and hands the lines back to it)."""
        if not self._trickle_ready(max_spooled_bytes=TRICKLE_MAX_BYTES):
            return False
        if self._on_this_thread(lambda: self.drain_once(here=True)) is None:
            return False
        return self._spool.pending_bytes == 0

    def _on_this_thread(self, write: Callable[[], T]) -> T | None:
        """`write()` on the calling thread unless the writer thread is draining; None if it could not
        run or failed. A failure marks InfluxDB down, so the writer thread, which owns retrying, takes
        the lines; a bug is logged and must not stop the collector's intake."""
        if not self._drain_lock.acquire(blocking=False):
            return None
        try:
            return write()
        except InfluxWriteError as err:
            self.counts.write_failures += 1
            self.counts.influx_up = False
            self.counts.last_error = str(err)
            return None
        except Exception:
            log.exception("writing on the collector's thread failed; the writer thread takes over")
            return None
        finally:
            self._drain_lock.release()

    def _send_here(self, lines: list[str]) -> Future[float]:
        """`_send` on this thread, for a trickle's lone batch: handing it to a sender and waiting for it
        costs two thread wake-ups a write, which at a park's rate are a good part of the writer's CPU."""
        sent: Future[float] = Future()
        try:
            sent.set_result(self._send(lines))
        except Exception as err:  # as a sender thread would: raised where the result is taken
            sent.set_exception(err)
        return sent

    def _send(self, lines: list[str]) -> float:
        """In a sender thread: write one batch (isolating refused lines); the seconds it took."""
        if not lines:
            return 0.0  # the end of a spool segment: nothing to send, only the cursor moves
        started = self._clock.monotonic()
        self._write_isolating(sorted(lines, key=_series_of) if len(lines) > GROUP_BY_SERIES_FROM else lines)
        return self._clock.monotonic() - started

    def _confirm(self, batch: Batch, elapsed: float) -> None:
        if batch.lines:
            self._count_stored(batch.lines, elapsed)
        self._spool.confirm(batch)

    def _count_stored(self, lines: list[str], elapsed: float) -> None:
        self._last_write_s = elapsed
        self.counts.write_seconds_total += elapsed
        self.counts.lines_written += len(lines)
        self.counts.batches_written += 1
        self.counts.influx_up = True
        self.counts.last_error = None
        self.counts.last_write_at = self._clock.now()
        if self._on_stored is not None:
            self._on_stored(lines, self.counts.last_write_at)

    def _settle_in_flight(self, confirm: bool = True) -> None:
        """Wait for every batch in flight. With `confirm`, confirm those that succeeded up to the first
        that did not; the rest stay in the spool, and sending resumes from its cursor."""
        for batch, sent in self._in_flight:
            try:
                elapsed = sent.result()
            except InfluxWriteError:  # reported by whoever waits on the oldest batch; this one stays
                confirm = False
                continue
            except Exception:
                log.exception("influx sender failed unexpectedly; the batch stays in the spool")
                confirm = False
                continue
            if confirm:
                self._confirm(batch, elapsed)
        self._in_flight.clear()
        self._read_to = None

    def write_direct(self, lines: Sequence[str]) -> None:
        """Write lines outside the spool (for the writer's own dead-letter points)."""
        self._writer.write(lines)

    def _write_isolating(self, lines: Sequence[str]) -> None:
        try:
            self._writer.write(lines)
        except (InfluxPointsRefused, InfluxBatchTooLarge) as err:
            if len(lines) == 1:
                with self._refused_lock:
                    self.counts.lines_refused += 1
                self._on_refused(lines[0], str(err))
                return
            middle = len(lines) // 2
            self._write_isolating(lines[:middle])
            self._write_isolating(lines[middle:])
