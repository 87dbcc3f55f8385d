from __future__ import annotations

from pathlib import Path

from pydantic import Field

from core.decode import DecodeLimits
from core.settings.base import Section


class SpoolSettings(Section):
    dir: Path = Path("var/spool")
    """Where the spool keeps readings not yet confirmed by InfluxDB; on a disk that survives reboots."""
    max_bytes: int = Field(512 * 1024 * 1024, ge=64 * 1024)
    """At this many unsent bytes the collector stops acknowledging; the broker holds the rest. Bounded
    at start by what the spool's disk can hold (less a segment and 16 MiB), with a warning, so a full
    disk is back-pressure too, never lost readings."""
    segment_bytes: int = Field(16 * 1024 * 1024, ge=4096)
    """Size at which a spool segment file is closed and a new one begun."""
    commit_interval_ms: float = Field(900.0, gt=0, le=5000)
    """Group commit at a park's rate (messages arriving at under 400/s): the first message of a commit
    waits in the socket (less once 64 KiB, ~200 readings, wait: a burst is read at once), then
    everything that came meanwhile is read, spooled, fsynced, acknowledged and written to InfluxDB
    together: one trip through the collector for what the interval brings instead of one per message.
    The wait is this interval less the time the last write to InfluxDB took, so InfluxDB confirms a
    commit's first reading about this long after it arrived. 900 ms: the 1 s publish→stored target less
    100 ms for the broker's hop, the fsync and a busy machine's scheduling; each commit costs the
    collector about 1.5 ms of CPU at a park, so a longer interval costs less per reading (500 ms: 411
    µs a reading at 6 readings/s, 900 ms: 2xx µs; benchmarks/README.md). A busy collector (400/s or
    more) commits after 10 ms, or at once when `commit_max_messages` wait."""
    commit_max_messages: int = Field(1000, ge=1)
    """Commit at once when this many messages wait for their ack; keep it below the broker's in-flight
    window (collector.mqtt.receive_maximum) so the broker keeps sending while the spool syncs."""
    fsync: bool = True
    """fsync before acknowledging; turning it off trades crash safety for speed."""
    write_through: bool = True
    """At a trickle (under 400 messages/s, InfluxDB up and its last write confirmed within 0.2 s,
    nothing waiting in the spool), a commit's points go straight to InfluxDB and their messages are
    acknowledged once InfluxDB confirmed them (InfluxDB has then written them to its own WAL, synced:
    1.x and 2.x answer a write after its WAL fsync) instead of after the spool's write and fsync,
    a fifth of a park's collector CPU. A write that fails or is refused as a whole is spooled and
    fsynced as usual before the ack. false: every point passes through the spool's fsync first."""


class WriterSettings(Section):
    batch_max_lines: int = Field(5000, ge=1, le=100_000)
    """Most points in one InfluxDB write."""
    batch_max_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    """Most bytes of line protocol in one InfluxDB write."""
    retry_min_s: float = Field(0.2, gt=0)
    """First wait after a failed write; doubles on each failure."""
    retry_max_s: float = Field(30.0, gt=0)
    """Longest wait between write attempts while InfluxDB is down."""
    idle_poll_s: float = Field(5.0, gt=0)
    """How long an idle writer sleeps before looking again; a commit (or a stop) wakes it at once, so
    this only bounds how often an idle collector wakes (each wake costs CPU on a battery-powered server)."""
    linger_s: float = Field(0.0, ge=0, le=5)
    """After writing a trickle (lines committed at under 400/s), wait this long before the next write.
    0 (the default): write as soon as lines are committed; at a trickle the group commit already
    gathers `collector.spool.commit_interval_ms` of readings into one commit, hence one write, and a
    linger here would only add to publish→stored. A backlog or a busy fleet is written at once."""
    concurrency: int = Field(2, ge=1, le=16)
    """Batches in flight to InfluxDB at once. InfluxDB parses a request on one core, so two keep two
    cores busy while a backlog drains. Batches are confirmed (dropped from the spool) in order, but
    InfluxDB may store two of them in either order: only two points of one series with the same
    timestamp, in different batches, could then end the other way round. 1: strictly in order."""


class DecodeSettings(Section):
    max_payload_bytes: int = Field(16_384, ge=128)
    """Larger messages are rejected (payload_too_large)."""
    max_future_s: float = Field(300.0, ge=0)
    """Readings stamped further ahead of the collector's clock are rejected (device clock wrong)."""
    max_age_s: float = Field(30 * 86_400.0, gt=0)
    """Readings older than this are rejected; raise it to backfill older history."""
    duplicate_window: int = Field(256, ge=1, le=100_000)
    """Per device, how many recent readings are remembered (seq and ts, 8 bytes each: 25 MB for 10,000
    devices at 256) to recognise redeliveries and repeats (same seq and ts), readings that would
    overwrite a stored one (same ts, another seq) and devices that started counting over. An older
    repeat is written again (the same point, idempotent) and counted as out of order."""

    def limits(self) -> DecodeLimits:
        """The front door's limits, for every stage that judges messages as the collector will."""
        return DecodeLimits(self.max_payload_bytes, self.max_future_s, self.max_age_s)


class DeadLetterSettings(Section):
    file: Path = Path("var/dead-letters.jsonl")
    """The local dead-letter record: one JSON line per rejected message."""
    max_bytes: int = Field(16 * 1024 * 1024, ge=4096)
    """The file is rotated to `<file>.1` at this size, so dead letters take at most twice this."""
    payload_excerpt_bytes: int = Field(1024, ge=0, le=16_384)
    """How much of a rejected payload is kept (dead-letter file and facmon_rejects)."""


class CollectorSessionSettings(Section):
    """The collector's own MQTT session (the broker itself is `mqtt.*`)."""

    client_id: str = Field("facmon-collector", min_length=1, max_length=128)
    """MQTT client id; the persistent session is bound to it, so keep it stable (unique per collector)."""
    session_expiry_s: int = Field(7 * 86_400, ge=60)
    """How long the broker keeps the collector's session (and queues its messages) while it is away."""
    shared_group: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """MQTT 5 shared subscription group: several collectors with the same group split the load."""
    receive_maximum: int = Field(2000, ge=1, le=65535)
    """Unacknowledged messages the broker may have in flight to the collector (MQTT 5)."""


class CollectorSettings(Section):
    mqtt: CollectorSessionSettings = CollectorSessionSettings()
    spool: SpoolSettings = SpoolSettings()
    writer: WriterSettings = WriterSettings()
    decode: DecodeSettings = DecodeSettings()
    dead_letters: DeadLetterSettings = DeadLetterSettings()
    http_listen: str | None = Field("127.0.0.1:9108", pattern=r"^[^\s:]*:\d{1,5}$")
    """Where the collector serves /metrics (Prometheus text) and /state (device state JSON); null: off."""
    log_reject_every_s: float = Field(10.0, ge=0)
    """Rejects are logged at most once per reason per this many seconds (the counters count them all)."""
