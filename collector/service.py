"""The collector, assembled: MQTT source → ingest → spool (group commit, then ack) → writer → InfluxDB.

    message ──► ingest (decode, duplicates, state) ──► spool.append ──► … ──► spool.commit ──► MQTT ack
                   └─ reject ──► dead-letter file + `facmon_rejects` point (through the same spool)

An acknowledgement is sent only after the message's points are fsynced in the spool. When the spool
holds `max_bytes` of unconfirmed data, new messages are held in memory unacknowledged (at most the
MQTT receive window) and the broker keeps the rest: back-pressure, not loss.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections import deque

from collector.dead_letters import DeadLetterFile
from collector.device_table import DeviceTable
from collector.drain import SpoolDrain
from collector.ingest import Ingest, reject_point
from collector.mqtt_source import AckRun, InboundBatch, MqttSource
from collector.spool import Spool
from core.clock import Clock
from core.decode import DecodeLimits, Reject, RejectReason
from core.influx_write import InfluxWriteError, LineWriter
from core.known_devices import KnownDevices
from core.line_protocol import REJECTS_MEASUREMENT
from core.logs import RateLimiter
from core.reading_plans import KERNEL_BUILT
from core.settings.collector import CollectorSettings
from core.settings.mqtt import MqttSettings

log = logging.getLogger("facmon.collector")

LAG_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


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
        self.ingest = Ingest(DecodeLimits(decode.max_payload_bytes, decode.max_future_s, decode.max_age_s),
                             self.table, settings.dead_letters.payload_excerpt_bytes, known)
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
        # Besides twice its payload, the most spool one message can take: a reject's point carries
        # its detail (500), topic (300) and an escaped payload excerpt.
        self._message_spool_bytes_bound = 1024 + 2 * settings.dead_letters.payload_excerpt_bytes
        self._refused_lock = threading.Lock()
        self.acked = 0
        self.commits = 0
        self.held_peak = 0

    # -- intake ---------------------------------------------------------------------------------------
    def _on_messages(self, batch: InboundBatch) -> None:
        if not self._held and not self.spool.is_full():
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
            if self.spool.is_full():
                return batch.part(i)
            self._process(batch.part(i, i + 1))
        return None

    def _process(self, batch: InboundBatch) -> None:
        """Spool a batch's points and queue its acks."""
        received_at = self._clock.now()
        lines, rejects = self.ingest.handle_batch(batch.topics, batch.payloads, received_at)
        if lines:
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

    def _dead_letter(self, reject: Reject, received_at: float) -> None:
        self.dead_letters.record(reject, received_at)
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
            self.dead_letters.record(reject, received_at)
            self.dead_letters.flush()
            point = None if line.startswith(REJECTS_MEASUREMENT) else reject_point(
                reject, received_at, self._settings.dead_letters.payload_excerpt_bytes, 0)
        log.error("influx refused a point; dead-lettered", extra={"line": line[:300], "why": why[:300]})
        if point is not None:
            try:
                self.drain.write_direct([point])
            except InfluxWriteError as err:  # best effort: the dead-letter file already has it
                log.warning("could not store the influx refusal in facmon_rejects", extra={"error": str(err)})

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
        """fsync the spool, then acknowledge everything it now holds."""
        self.spool.commit()
        self.dead_letters.flush()
        self.commits += 1
        if self._pending_acks:
            self.acked += self.source.ack(self._pending_acks)
            self._pending_acks = []
            self._pending_count = 0
        self._pending_since = None

    def _release_held(self) -> None:
        while self._held and not self.spool.is_full():
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
        self.source.poll(self._commit_interval_s / 2 if waiting else 0.1)
        if self._held:
            self.commit()  # the writer needs committed lines to make room
            self._release_held()
        if self._pending_since is not None:
            if self._clock.monotonic() - self._pending_since >= self._commit_interval_s:
                self.commit()
        elif self.ingest.counts.received:
            self.spool.commit()  # QoS 0 input, rejects without acks: durable anyway

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
        self.commit()
        self.source.close()
        self.drain.stop(drain_timeout_s=5.0)
        self.spool.close()
        self.dead_letters.close()
        log.info("collector stopped", extra={"received": self.ingest.counts.received,
                                             "spool_bytes_left": self.spool.pending_bytes})
