"""The collector, assembled: MQTT source → ingest → spool (group commit, then ack) → writer → InfluxDB.

    message ──► ingest (decode, duplicates, state) ──► spool.append ──► … ──► spool.commit ──► MQTT ack
                   └─ reject ──► dead-letter file + `facmon_rejects` point (through the same spool)

An acknowledgement is sent only after the message's points are fsynced in the spool, or, at a
trickle with InfluxDB answering quickly (`collector.spool.write_through`), after InfluxDB confirmed
them: InfluxDB syncs its WAL before it answers, and the spool's own write and fsync were a fifth of
a park's collector CPU. A write-through that fails spools the points as usual. When the spool
holds `max_bytes` of unconfirmed data, new messages are held in memory unacknowledged (at most the
MQTT receive window) and the broker keeps the rest: back-pressure, not loss.

A spool that cannot be written (disk full, I/O error) is back-pressure too: the lines of the failed
commit stay in memory (collector.spool), their acks wait, new messages are held as above, and the
commit is tried again with a growing pause (up to SPOOL_RETRY_MAX_S) until the disk takes it; then
everything is acknowledged and intake resumes. Nothing the collector judged (the device table's
duplicate check) is ever dropped in between, so the broker's redeliveries after a reconnect are
recognised as readings already held, not lost. `back_pressure` says why acks are withheld, for
/metrics, /state and the log.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections import deque

from collector.dead_letters import DeadLetterFile
from collector.device_table import DeviceTable
from collector.drain import TRICKLE_MAX_BYTES, SpoolDrain
from collector.ingest import Ingest, reject_point
from collector.mqtt_source import AckRun, InboundBatch, MqttSource
from collector.spool import Spool, SpoolWriteError
from core.clock import Clock
from core.decode import Reject, RejectReason
from core.influx_write import InfluxWriteError, LineWriter
from core.known_devices import KnownDevices
from core.line_protocol import REJECTS_MEASUREMENT
from core.logs import RateLimiter
from core.reading_plans import KERNEL_BUILT
from core.settings.collector import CollectorSettings
from core.settings.mqtt import MqttSettings

log = logging.getLogger("facmon.collector")

SPOOL_RETRY_MIN_S = 0.1
SPOOL_RETRY_MAX_S = 5.0
"""Pauses between commits of a spool whose disk failed: short at first (a moment's ENOSPC while
another writer's file is deleted), then at most 5 s, so a full disk costs a statvfs and a write a few
times a minute, not a busy loop."""
BOUND_CHECK_EVERY_S = 1.0
"""How often a full spool looks at its disk again: space freed by others raises the bound back."""

LAG_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


IDLE_POLL_S = 0.5
"""How long the collector's loop waits on the broker's socket when nothing is waiting for a commit
(while busy, holding messages or retrying a failed spool)."""
IDLE_GATHER_S = 2.0
"""The same at a trickle or idle: each wake-up of an idle loop costs ~0.2 ms of CPU, a stop wakes it
at once (`wake`), and paho's keep-alive (mqtt.keepalive_s, at least 5 s) is served at each."""
BUSY_RATE_PER_S = 400.0
"""Messages arriving faster than this (measured over a commit's wait, or between two writes) mark the
collector busy: the next commit or write is not held for the linger (`collector.spool.commit_interval_ms`,
`collector.writer.linger_s`), which is for a park's few readings a second; a backlog or a fleet goes
at full speed. 400/s: a quarter second then gathers 100 messages, past which a longer wait saves
little."""
BUSY_COMMIT_S = 0.01
"""The group commit's wait while busy (the linger before 2026-12-03)."""


class StoreLag:
    """How old readings are when InfluxDB confirms them: device `ts` to confirmation, as a histogram
    (cumulative counts per upper bound, seconds). With live devices and a sane clock this is the
    end-to-end delay; replayed or backfilled data lands in the top bucket."""

    def __init__(self) -> None:
        self.bucket_counts = [0] * (len(LAG_BUCKETS_S) + 1)
        self.sum_s = 0.0
        self.count = 0

    def observe(self, lines: list[str] | tuple[str, ...], confirmed_at: float) -> None:
        confirmed_ns = int(confirmed_at * 1e9)
        counts = self.bucket_counts
        total = 0.0
        for line in lines:
            lag_s = (confirmed_ns - int(line[line.rfind(" ") + 1:])) / 1e9
            total += lag_s
            counts[bisect.bisect_left(LAG_BUCKETS_S, lag_s)] += 1
        self.sum_s += total
        self.count += len(lines)


class CollectorService:
    """One collector process. Call `run(stop)` from one thread; everything else is read-only for others."""

    def __init__(self, settings: CollectorSettings, mqtt_settings: MqttSettings, writer: LineWriter,
                 clock: Clock, known: KnownDevices | None = None) -> None:
        """`known`: the devices that may publish (`sites.known_devices_only`); None: any device."""
        self._settings = settings
        self._clock = clock
        decode = settings.decode
        self.table = DeviceTable(decode.duplicate_window)
        self.ingest = Ingest(decode.limits(), self.table, settings.dead_letters.payload_excerpt_bytes, known)
        self.spool = Spool(settings.spool.dir, settings.spool.max_bytes, settings.spool.segment_bytes,
                           settings.spool.fsync)
        self.dead_letters = DeadLetterFile(settings.dead_letters.file, settings.dead_letters.max_bytes,
                                           settings.dead_letters.payload_excerpt_bytes)
        self._limiter = RateLimiter(clock, settings.log_reject_every_s)
        self.store_lag = StoreLag()
        self.drain = SpoolDrain(self.spool, writer, settings.writer, self._on_refused_by_influx,
                                RateLimiter(clock, 10.0), clock, self.store_lag.observe)
        self.source = MqttSource(mqtt_settings, settings.mqtt, self._on_messages, clock, self._on_connection_change)
        self._pending_acks: list[AckRun] = []
        self._pending_count = 0
        self._pending_since: float | None = None
        self._held: deque[InboundBatch] = deque()
        self._held_count = 0
        self._commit_interval_s = settings.spool.commit_interval_ms / 1000
        self._busy = False
        self._write_through = settings.spool.write_through
        self._through: list[str] = []
        """A trickle's points held for the commit to write straight to InfluxDB (`_holds_through`)."""
        self._through_bytes = 0
        # Besides twice its payload, the most spool one message can take: a reject's point carries
        # its detail (500), topic (300) and an escaped payload excerpt.
        self._message_spool_bytes_bound = 1024 + 2 * settings.dead_letters.payload_excerpt_bytes
        self._refused_lock = threading.Lock()
        self.acked = 0
        self.commits = 0
        self.held_peak = 0
        self._spool_retry_at = 0.0
        self._spool_retry_s = SPOOL_RETRY_MIN_S
        self._bound_checked_at = float("-inf")
        self._back_pressure_logged: str | None = None
        self.dead_letter_write_failures = 0

    # -- intake ---------------------------------------------------------------------------------------
    @property
    def held_messages(self) -> int:
        """Messages received and held unacknowledged until the spool can take them."""
        return self._held_count

    def back_pressure(self) -> str | None:
        """Why the collector is not taking new messages: `spool_unwritable` (its disk refuses writes),
        `spool_full` (`max_bytes`, or the disk's room, reached), or None."""
        if not self.spool.writable:
            return "spool_unwritable"
        if self.spool.is_full():
            return "spool_full"
        return None

    def _on_messages(self, batch: InboundBatch) -> None:
        if not self._held and self.back_pressure() is None:
            batch = self._admit(batch)
            if batch is None:
                return
        self._held.append(batch)
        self._held_count += len(batch.topics)
        self.held_peak = max(self.held_peak, self._held_count)

    def _admit(self, batch: InboundBatch) -> InboundBatch | None:
        """Process what the spool has room for; give back the rest (None when all fitted). Near the
        bound a batch goes one message at a time, so the spool passes `max_bytes` by one message at
        most, as with per-message intake."""
        room = self.spool.free_bytes()
        if room > self._message_spool_bytes_bound * len(batch.topics) + 2 * sum(map(len, batch.payloads)):
            self._process(batch)
            return None
        for i in range(len(batch.topics)):
            if self.back_pressure() is not None:
                return batch.part(i)
            self._process(batch.part(i, i + 1))
        return None

    def _process(self, batch: InboundBatch) -> None:
        """Spool a batch's points and queue its acks."""
        received_at = self._clock.now()
        lines, rejects = self.ingest.handle_batch(batch.topics, batch.payloads, received_at)
        if lines:
            if batch.ack is not None and self._holds_through():
                self._through.extend(lines)
                self._through_bytes += sum(map(len, lines))
            else:
                self.spool.append(lines)
        for reject in rejects:
            self._dead_letter(reject, received_at)
        if batch.ack is not None:
            if self._pending_since is None:
                self._pending_since = self._clock.monotonic()
            self._pending_acks.append(batch.ack)
            self._pending_count += len(batch.ack.mids)
            if self._pending_count >= self._settings.spool.commit_max_messages:
                self.commit()

    def _holds_through(self) -> bool:
        """Whether a trickle's points wait in memory for the commit to write them through to InfluxDB
        (`collector.spool.write_through`) instead of entering the spool: up to TRICKLE_MAX_BYTES,
        past which what was held is spooled after all and the rest goes the spool's way."""
        if not self._write_through or self._busy:
            return False
        if not self._through:
            return self.drain.can_write_through()
        if self._through_bytes <= TRICKLE_MAX_BYTES:
            return True
        self._spool_through()
        return False

    def _spool_through(self) -> None:
        if self._through:
            self.spool.append(self._through)
            self._through, self._through_bytes = [], 0

    def _dead_letter(self, reject: Reject, received_at: float) -> None:
        try:
            self.dead_letters.record(reject, received_at)
        except OSError as err:  # the spool carries its facmon_rejects point regardless
            self._dead_letter_file_failed(err)
        suppressed = self._limiter.allow(reject.reason.value)
        if suppressed is not None:
            log.warning("message rejected", extra={"reason": reject.reason.value, "detail": reject.detail,
                                                   "topic": reject.topic[:200], "suppressed_since_last": suppressed})

    def _on_refused_by_influx(self, line: str, why: str) -> None:
        """Runs in the writer thread: InfluxDB refused one line on its own. Dead-letter it; its
        `facmon_rejects` point goes straight to InfluxDB (best effort: the file has it regardless)."""
        reject = Reject(RejectReason.INFLUX_REFUSED, why, topic="", payload=line.encode())
        received_at = self._clock.now()
        with self._refused_lock:
            try:
                self.dead_letters.record(reject, received_at)
                self.dead_letters.flush()
            except OSError as err:  # its facmon_rejects point below still goes to InfluxDB
                self._dead_letter_file_failed(err)
            point = None if line.startswith(REJECTS_MEASUREMENT) else reject_point(
                reject, received_at, self._settings.dead_letters.payload_excerpt_bytes, 0)
        log.error("influx refused a point; dead-lettered", extra={"line": line[:300], "why": why[:300]})
        if point is not None:
            try:
                self.drain.write_direct([point])
            except InfluxWriteError as err:  # best effort: the dead-letter file already has it
                log.warning("could not store the influx refusal in facmon_rejects", extra={"error": str(err)})

    def _dead_letter_file_failed(self, err: OSError) -> None:
        self.dead_letter_write_failures += 1
        if self._limiter.allow("dead-letter-file-failed") is not None:
            log.warning("cannot write the dead-letter file; rejects still go to facmon_rejects in InfluxDB",
                        extra={"file": str(self._settings.dead_letters.file), "error": err.strerror or str(err),
                               "failures": self.dead_letter_write_failures})

    def _on_connection_change(self, connected: bool) -> None:
        if not connected:
            # Acks for the lost connection are void: the broker re-sends those messages, and their
            # points are already in the spool (a harmless re-write), so nothing is lost or doubled.
            self._pending_acks.clear()
            self._pending_count = 0
            self._pending_since = None
            self._held.clear()
            self._held_count = 0

    # -- commit --------------------------------------------------------------------------------------------
    def commit(self) -> None:
        """fsync the spool, then acknowledge everything it now holds. While the spool's disk fails,
        this tries again only when the retry is due, and acknowledges nothing until it succeeds.
        At a trickle, the commit's lines are then written to InfluxDB on this thread
        (`SpoolDrain.write_here`), without waking the writer thread; else the writer thread is woken."""
        if self._through:
            through, self._through, self._through_bytes = self._through, [], 0
            if not self.drain.write_through(through):
                self.spool.append(through)  # spooled and synced below, as any other commit's lines
        trickle = not self._busy and self.drain.counts.influx_up
        if not self._sync_spool(wake_writer=not trickle):
            return
        self.commits += 1
        # Messages arriving faster than BUSY_RATE_PER_S mean a busy collector: it commits the next ones
        # as soon as they are due (BUSY_COMMIT_S), the linger being for a park's trickle, not a backlog.
        if self._pending_since is not None:
            waited_s = max(self._clock.monotonic() - self._pending_since, 1e-3)
            self._busy = self._pending_count / waited_s >= BUSY_RATE_PER_S
        if self._pending_acks:
            self.acked += self.source.ack(self._pending_acks)
            self._pending_acks = []
            self._pending_count = 0
        self._pending_since = None
        if trickle and self.spool.pending_bytes and not self.drain.write_here():
            self.spool.wake_reader()

    def _sync_spool(self, retry_now: bool = False, wake_writer: bool = True) -> bool:
        """Commit the spool (and flush the dead-letter file); False while its disk refuses."""
        if not self.spool.writable and not retry_now and self._clock.monotonic() < self._spool_retry_at:
            return False
        try:
            self.spool.commit(wake_reader=wake_writer)
        except SpoolWriteError as err:
            self._spool_failed(err)
            return False
        self._spool_retry_s = SPOOL_RETRY_MIN_S
        try:
            self.dead_letters.flush()
        except OSError as err:
            self._dead_letter_file_failed(err)
        return True

    def _spool_failed(self, err: SpoolWriteError) -> None:
        self._spool_retry_at = self._clock.monotonic() + self._spool_retry_s
        self._spool_retry_s = min(self._spool_retry_s * 2, SPOOL_RETRY_MAX_S)
        self.spool.refresh_bound()
        if self._limiter.allow("spool-write-failed") is not None:
            log.error("spool write failed; acknowledgements stopped, the broker keeps the messages",
                      extra={"error": str(err), "unwritten_bytes": self.spool.unwritten_bytes,
                             "unacknowledged": self._pending_count, "held": self._held_count,
                             "failures": self.spool.write_failures})

    def _check_bound(self) -> None:
        """A full spool looks at its disk again now and then: the room others freed counts again."""
        now = self._clock.monotonic()
        if self.spool.is_full() and now - self._bound_checked_at >= BOUND_CHECK_EVERY_S:
            self._bound_checked_at = now
            self.spool.refresh_bound()

    def _log_back_pressure(self) -> None:
        reason = self.back_pressure()
        if reason == self._back_pressure_logged:
            return
        if reason is None:
            log.info("back-pressure over; acknowledging again", extra={"was": self._back_pressure_logged,
                                                                         "spool_bytes": self.spool.pending_bytes})
        else:
            log.warning("back-pressure: not acknowledging new messages; the broker keeps them",
                        extra={"reason": reason, "spool_bytes": self.spool.pending_bytes,
                               "max_bytes": self.spool.max_bytes, "spool_error": self.spool.last_error})
        self._back_pressure_logged = reason

    def _release_held(self) -> None:
        while self._held and self.back_pressure() is None:
            batch = self._held.popleft()
            self._held_count -= len(batch.topics)
            rest = self._admit(batch)
            if rest is not None:
                self._held.appendleft(rest)
                self._held_count += len(rest.topics)
                return

    def step(self) -> None:
        """One turn of the loop: network, held messages, and a group commit when one is due."""
        waiting = self._pending_since is not None
        arrived_at = None
        # The trickle's wait is counted to InfluxDB's confirmation, not to the commit: the interval less
        # what the last write took, so a slower InfluxDB shortens the wait instead of the readings'
        # publish→stored delay growing past the interval.
        linger_s = BUSY_COMMIT_S if self._busy else max(0.0, self._commit_interval_s - self.drain.last_write_s)
        if waiting or self._busy or self._held or not self.spool.writable:
            self.source.poll(linger_s / 2 if waiting else IDLE_POLL_S)
        else:
            # A trickle: the first message of a group commit waits in the socket, not in the loop, and
            # the commit interval's messages are read, spooled, synced and acknowledged together. Idle,
            # the socket wakes the loop when a message comes: a long wait costs nothing but the latency
            # of a stop (and saves the wake-ups an idle site server would pay for in watts).
            arrived_at = self.source.gather(IDLE_GATHER_S, linger_s)
        if not self.spool.writable:
            self.commit()  # when its retry is due
        self._check_bound()
        if self._held:
            self.commit()  # the writer needs committed lines to make room
            self._release_held()
        if self._pending_since is not None:
            if arrived_at is not None:  # they lingered in the socket: commit now
                self._pending_since = min(self._pending_since, arrived_at)
                self.commit()
            elif self._clock.monotonic() - self._pending_since >= linger_s:
                self.commit()
        elif self.ingest.counts.received:
            self._sync_spool()  # QoS 0 input, rejects without acks: durable anyway
        self._log_back_pressure()

    def wake(self) -> None:
        """Make an idle loop look at its stop event now. Safe from any thread and from a signal handler."""
        self.source.wake()

    def run(self, stop: threading.Event) -> None:
        self.drain.start()
        if self.spool.max_bytes < self.spool.configured_max_bytes:
            log.warning("the spool's disk has less room than collector.spool.max_bytes: the spool is bounded "
                        "lower, so a full disk stops acknowledgements instead of losing readings; free space "
                        "or lower the setting", extra={"configured_max_bytes": self.spool.configured_max_bytes,
                                                       "max_bytes": self.spool.max_bytes})
        log.info("collector started", extra={"spool": str(self._settings.spool.dir),
                                             "pending_bytes": self.spool.pending_bytes, "c_kernel": KERNEL_BUILT})
        if not KERNEL_BUILT:
            log.warning("the C kernel core._reading_kernel is not built: readings take the Python path, at about "
                        "twice the collector's CPU; install gcc and python3-dev, then reinstall facmon "
                        "(scripts/bootstrap.sh does both)")
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        self._spool_through()  # their messages are not acknowledged yet: spooled, they are kept anyway
        if self._sync_spool(retry_now=True) and self._pending_acks:
            self.acked += self.source.ack(self._pending_acks)
        self.source.close()
        self.drain.stop(drain_timeout_s=5.0)
        try:
            self.spool.close()
        except SpoolWriteError as err:
            log.error("stopping with spool lines unwritten; their messages were never acknowledged, so the "
                      "broker sends them again", extra={"error": str(err)})
        try:
            self.dead_letters.close()
        except OSError as err:
            self._dead_letter_file_failed(err)
        log.info("collector stopped", extra={"received": self.ingest.counts.received,
                                             "spool_bytes_left": self.spool.pending_bytes})
