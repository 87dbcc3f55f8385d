"""The durable hand-off between MQTT and InfluxDB: an append-only log of line-protocol lines on disk.

    collector thread:  append(lines) … append(lines) → commit()   (one fsync for many messages;
                                                                    acknowledge to the broker after it)
    writer thread:     read_batch() → write to InfluxDB → confirm(batch)   (advances the cursor;
                       batches read ahead with read_batch(after=…) are confirmed in order)

Lines live in segment files `<n>.lp`; `cursor` records how far InfluxDB has confirmed. A segment is
deleted once the cursor has passed it. After a crash, everything committed is still there; a torn
last line (never committed, so never acknowledged) is cut off, and the broker redelivers its message.
A batch confirmed just before a crash may be sent again: harmless, because points are keyed by their
device timestamp and InfluxDB overwrites identical points.

`pending_bytes` counts what is not yet confirmed; at `max_bytes` the collector stops acknowledging.
Thread-safety: one appending thread and one reading thread may use a spool at once.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SEGMENT_SUFFIX = ".lp"
CURSOR_FILE = "cursor.json"
CURSOR_WRITE_EVERY = 20
"""Confirmed batches between cursor writes (and at every segment change and close). A crash re-sends
at most this many confirmed batches, which InfluxDB absorbs; writing the file per batch cost more."""


class SpoolError(Exception):
    """The spool directory cannot be used (permissions, disk full); the message says which path."""


@dataclass(frozen=True, slots=True)
class Position:
    segment: int
    offset: int


@dataclass(frozen=True, slots=True)
class Batch:
    lines: list[str]
    end: Position
    size_bytes: int


DISK_RESERVE_BYTES = 16 * 1024 * 1024
"""Left free on the spool's file system besides a segment: room for the cursor, the dead-letter file
and the log lines of the moment the spool fills."""


def bound_by_disk(max_bytes: int, pending_bytes: int, free_bytes: int, segment_bytes: int) -> int:
    """The spool's bound: `max_bytes`, or what the disk can hold beyond what is already pending less a
    reserve, if that is smaller. A full disk would turn into lost readings (a crash loop with nothing
    acknowledged can still lose what the broker drops); a full spool is back-pressure: the collector
    stops acknowledging and the broker keeps the messages."""
    room = pending_bytes + free_bytes - segment_bytes - DISK_RESERVE_BYTES
    return max(min(max_bytes, room), 0)


class Spool:
    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int, fsync: bool = True) -> None:
        self._dir = directory
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._lock = threading.Lock()
        self._data_ready = threading.Condition(self._lock)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SpoolError(f"cannot create spool directory {directory}: {err.strerror}") from None
        self._segments = self._recover_segments()
        self._cursor = self._read_cursor()
        self._drop_segments_before(self._cursor.segment)
        if not self._segments:
            self._segments = [self._cursor.segment if self._cursor.segment > 0 else 1]
            self._segment_path(self._segments[0]).touch()
        if self._cursor.segment < self._segments[0]:
            self._cursor = Position(self._segments[0], 0)
        self._active_id = self._segments[-1]
        active_path = self._segment_path(self._active_id)
        self._active = open(active_path, "ab")  # noqa: SIM115 - held open for the spool's lifetime
        self._active_size = active_path.stat().st_size
        # What the reader may see: the end of committed data, as a position.
        self._committed = Position(self._active_id, self._active_size)
        self._sizes = {seg: self._segment_path(seg).stat().st_size for seg in self._segments}
        self._uncommitted_bytes = 0
        # Each total is written by one thread only (appends: the collector; confirms: the writer), so
        # `pending_bytes`, asked for every message, needs neither a lock nor a walk over segments.
        self._appended_total = sum(size for seg, size in self._sizes.items() if seg >= self._cursor.segment) - (
            self._cursor.offset if self._cursor.segment in self._sizes else 0)
        self._confirmed_total = 0
        self._confirms_since_cursor_write = 0
        self.configured_max_bytes = max_bytes
        self._max_bytes = bound_by_disk(max_bytes, self.pending_bytes, shutil.disk_usage(directory).free,
                                        segment_bytes)

    @property
    def max_bytes(self) -> int:
        """The bound in force: `max_bytes` as configured, or less where the disk had less room at start."""
        return self._max_bytes

    # -- recovery -------------------------------------------------------------------------------
    def _segment_path(self, segment: int) -> Path:
        return self._dir / f"{segment:016d}{SEGMENT_SUFFIX}"

    def _recover_segments(self) -> list[int]:
        segments = sorted(int(p.stem) for p in self._dir.glob(f"*{SEGMENT_SUFFIX}") if p.stem.isdigit())
        if segments:
            self._truncate_torn_tail(self._segment_path(segments[-1]))
        return segments

    @staticmethod
    def _truncate_torn_tail(path: Path) -> None:
        size = path.stat().st_size
        if size == 0:
            return
        with open(path, "rb+") as handle:
            # Scan back for the last newline; what follows it was never committed.
            block = 65536
            end = size
            while end > 0:
                start = max(0, end - block)
                handle.seek(start)
                chunk = handle.read(end - start)
                newline = chunk.rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    if keep != size:
                        handle.truncate(keep)
                    return
                end = start
            handle.truncate(0)

    def _read_cursor(self) -> Position:
        try:
            raw = json.loads((self._dir / CURSOR_FILE).read_text())
            return Position(int(raw["segment"]), int(raw["offset"]))
        except FileNotFoundError:
            first = self._segments[0] if self._segments else 1
            return Position(first, 0)
        except (ValueError, KeyError, TypeError):
            # A torn cursor only means re-sending confirmed lines, which InfluxDB absorbs.
            first = self._segments[0] if self._segments else 1
            return Position(first, 0)

    def _drop_segments_before(self, segment: int) -> None:
        for old in [s for s in self._segments if s < segment]:
            self._segment_path(old).unlink(missing_ok=True)
            self._segments.remove(old)

    # -- collector side ---------------------------------------------------------------------------
    def append(self, lines: Sequence[str]) -> None:
        """Buffer lines for the next `commit`. Not durable, and not visible to readers, until then."""
        data = ("\n".join(lines) + "\n").encode()
        if self._active_size >= self._segment_bytes:
            self._rotate()
        try:
            self._active.write(data)
        except OSError as err:
            raise SpoolError(f"cannot write spool segment in {self._dir}: {err.strerror}") from None
        self._active_size += len(data)
        self._uncommitted_bytes += len(data)
        self._appended_total += len(data)

    def _rotate(self) -> None:
        self._flush_active()
        self._active.close()
        new_id = self._active_id + 1
        self._active = open(self._segment_path(new_id), "ab")  # noqa: SIM115
        with self._lock:
            self._sizes[self._active_id] = self._active_size
            self._committed = Position(new_id, 0)
            self._segments.append(new_id)
            self._sizes[new_id] = 0
        self._active_id = new_id
        self._active_size = 0

    def _flush_active(self) -> None:
        try:
            self._active.flush()
            if self._fsync:
                os.fsync(self._active.fileno())
        except OSError as err:
            raise SpoolError(f"cannot sync spool segment in {self._dir}: {err.strerror}") from None

    def commit(self) -> None:
        """Make everything appended so far durable (flush + fsync) and visible to the reader."""
        if self._uncommitted_bytes == 0 and self._committed == Position(self._active_id, self._active_size):
            return
        self._flush_active()
        with self._lock:
            self._committed = Position(self._active_id, self._active_size)
            self._sizes[self._active_id] = self._active_size
            self._uncommitted_bytes = 0
            self._data_ready.notify_all()

    @property
    def pending_bytes(self) -> int:
        """Bytes appended but not yet confirmed by InfluxDB (committed or not)."""
        return self._appended_total - self._confirmed_total

    def free_bytes(self) -> int:
        """How much may still be appended before the spool is full (negative once past the bound)."""
        return self._max_bytes - self.pending_bytes

    def is_full(self) -> bool:
        return self.pending_bytes >= self._max_bytes

    # -- writer side --------------------------------------------------------------------------------
    def wait_for_data(self, timeout_s: float) -> bool:
        """Block up to `timeout_s` until committed, unconfirmed lines exist; True if there are some."""
        with self._lock:
            if self._cursor != self._committed:
                return True
            self._data_ready.wait(timeout_s)
            return self._cursor != self._committed

    def read_batch(self, max_lines: int, max_bytes: int, after: Position | None = None) -> Batch | None:
        """The next committed lines after the cursor, or after `after` (the end of a batch read but not
        yet confirmed: a reader may keep several in flight and confirm them in order), at most
        `max_lines`/about `max_bytes`; None if there are none yet."""
        with self._lock:
            cursor, committed = after or self._cursor, self._committed
            if cursor == committed:
                return None
            segment_end = committed.offset if cursor.segment == committed.segment else self._sizes[cursor.segment]
        if cursor.offset >= segment_end:
            # This segment is exhausted and a newer one exists: move on without confirming anything.
            return Batch([], Position(cursor.segment + 1, 0), 0)
        with open(self._segment_path(cursor.segment), "rb") as handle:
            handle.seek(cursor.offset)
            data = handle.read(min(max_bytes, segment_end - cursor.offset))
        if cursor.offset + len(data) < segment_end:
            last_newline = data.rfind(b"\n")
            if last_newline < 0:  # one line longer than max_bytes: read through its end
                with open(self._segment_path(cursor.segment), "rb") as handle:
                    handle.seek(cursor.offset)
                    data = handle.readline()
            else:
                data = data[: last_newline + 1]
        lines = data.decode("utf-8", "replace").split("\n")[:-1]
        if len(lines) > max_lines:
            lines = lines[:max_lines]
            data = ("\n".join(lines) + "\n").encode()
        return Batch(lines, Position(cursor.segment, cursor.offset + len(data)), len(data))

    def confirm(self, batch: Batch) -> None:
        """InfluxDB has every line of `batch`: advance the cursor past it, drop finished segments."""
        with self._lock:
            self._cursor = batch.end
            self._confirmed_total += batch.size_bytes
            finished = [s for s in self._segments if s < batch.end.segment]
            for seg in finished:
                self._segments.remove(seg)
                self._sizes.pop(seg, None)
        for seg in finished:
            self._segment_path(seg).unlink(missing_ok=True)
        self._confirms_since_cursor_write += 1
        if finished or self._confirms_since_cursor_write >= CURSOR_WRITE_EVERY:
            self._write_cursor(batch.end)

    def _write_cursor(self, position: Position) -> None:
        self._confirms_since_cursor_write = 0
        tmp = self._dir / (CURSOR_FILE + ".tmp")
        tmp.write_text(json.dumps({"segment": position.segment, "offset": position.offset}))
        os.replace(tmp, self._dir / CURSOR_FILE)

    def close(self) -> None:
        """Commit what was appended, record the cursor and close. The spool must not be used after."""
        self.commit()
        self._active.close()
        with self._lock:
            cursor = self._cursor
        self._write_cursor(cursor)
