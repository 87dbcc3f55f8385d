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

A full or failing disk (ENOSPC, EIO, on write, fsync or a new segment) is back-pressure, never loss:
appended lines wait in memory until `commit` has written and synced them all, so a failed commit
cuts the segment back to its last committed end (nothing half-written is ever read) and raises
`SpoolWriteError`, keeping the lines for the next attempt. Nothing of theirs was acknowledged yet.

    SpoolError              the spool directory cannot be used at start (a configuration problem)
    SpoolWriteError         a commit failed; the lines are kept; commit again later (retryable)
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SEGMENT_SUFFIX = ".lp"
log = logging.getLogger("facmon.collector.spool")

CURSOR_FILE = "cursor.json"
CURSOR_WRITE_EVERY = 20
"""Confirmed batches between cursor writes (and at every segment change and close). A crash re-sends
at most this many confirmed batches, which InfluxDB absorbs; writing the file per batch cost more."""


class SpoolError(Exception):
    """The spool directory cannot be used (permissions, disk full); the message says which path."""


class SpoolWriteError(SpoolError):
    """A commit could not write or sync its lines (disk full, I/O error). The spool is as it was at the
    last commit and still holds the lines in memory: commit again once space or the disk is back."""

    retryable = True


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
        # Unbuffered: a commit writes its lines with one call, and on failure nothing lingers in a
        # buffer to be flushed later behind the truncation.
        self._active = open(active_path, "ab", buffering=0)  # noqa: SIM115 - held open for the spool's lifetime
        self._active_size = active_path.stat().st_size
        """The active segment's committed end: what is on disk and synced."""
        self._unwritten: list[bytes] = []
        """Appended since the last successful commit; written by the next one."""
        self._rotate_next = False
        self.writable = True
        """False from a failed commit until one succeeds."""
        self.write_failures = 0
        self.cursor_write_failures = 0
        self.last_error: str | None = None
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
        self._reading: tuple[int, int] | None = None
        """(segment, descriptor) the reader reads through; the reader's thread alone uses it."""
        self.configured_max_bytes = max_bytes
        self._max_bytes = bound_by_disk(max_bytes, self.pending_bytes, shutil.disk_usage(directory).free,
                                        segment_bytes)

    def refresh_bound(self) -> int:
        """Bound the spool again by the disk's free space now (it may have been filled by others, or
        freed); returns the bound in force. An unreadable disk keeps the bound as it was."""
        try:
            free = shutil.disk_usage(self._dir).free
        except OSError:
            return self._max_bytes
        self._max_bytes = bound_by_disk(self.configured_max_bytes, self.pending_bytes - self._uncommitted_bytes,
                                        free, self._segment_bytes)
        return self._max_bytes

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
        """Buffer lines for the next `commit`, in memory. Not durable, and not visible to readers, until
        then. Never fails: the disk is only touched by `commit`."""
        data = ("\n".join(lines) + "\n").encode()
        self._unwritten.append(data)
        self._uncommitted_bytes += len(data)
        self._appended_total += len(data)

    @property
    def unwritten_bytes(self) -> int:
        """Bytes appended and not yet committed: held in memory (all of them while the disk fails)."""
        return self._uncommitted_bytes

    def commit(self, wake_reader: bool = True) -> None:
        """Write everything appended so far, fsync it and make it visible to the reader (waking a
        reader in `wait_for_data` unless `wake_reader` is False: the caller reads it itself).

        Raises `SpoolWriteError` if the disk refuses (ENOSPC, EIO): the segment is cut back to its last
        committed end, the lines stay in memory, and the next `commit` tries them again."""
        if not self._unwritten:
            return
        data = b"".join(self._unwritten)
        try:
            if self._active_size >= self._segment_bytes or self._rotate_next:
                self._rotate()
            self._write_all(data)
        except OSError as err:
            self._roll_back(err)
            raise SpoolWriteError(f"cannot write the spool in {self._dir}: {err.strerror or err} "
                                  f"({errno.errorcode.get(err.errno or 0, err.errno)}); {len(data)} bytes kept in "
                                  "memory and their messages unacknowledged until it can: free space on its "
                                  "disk or fix the disk") from None
        self._unwritten = []
        self._active_size += len(data)
        if not self.writable:
            log.warning("spool writable again", extra={"dir": str(self._dir), "failures": self.write_failures})
        self.writable = True
        with self._lock:
            self._committed = Position(self._active_id, self._active_size)
            self._sizes[self._active_id] = self._active_size
            self._uncommitted_bytes = 0
            if wake_reader:
                self._data_ready.notify_all()

    def _write_all(self, data: bytes) -> None:
        """The spool's one write edge: all of `data` at the end of the active segment, then fsync."""
        view = memoryview(data)
        while view:
            written = self._active.write(view)
            if not written:  # a raw write that takes nothing and reports no error: call it full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]
        if self._fsync:
            os.fsync(self._active.fileno())

    def _roll_back(self, err: OSError) -> None:
        """After a failed commit: cut the active segment back to its committed end, so a part written
        before the failure is never read (nor found after a crash). If even that fails, the next commit
        starts a new segment: the reader stops at the recorded end of this one."""
        self.writable = False
        self.write_failures += 1
        self.last_error = f"{errno.errorcode.get(err.errno or 0, err.errno)}: {err.strerror or err}"
        try:
            os.ftruncate(self._active.fileno(), self._active_size)
        except OSError:
            self._rotate_next = True

    def _rotate(self) -> None:
        """Close the active segment (synced by its last commit) and begin the next one. The new file
        is opened first: if that fails, nothing has changed."""
        new_id = self._active_id + 1
        new_file = open(self._segment_path(new_id), "ab", buffering=0)  # noqa: SIM115
        old = self._active
        with self._lock:
            self._sizes[self._active_id] = self._active_size
            self._committed = Position(new_id, 0)
            self._segments.append(new_id)
            self._sizes[new_id] = 0
        self._active, self._active_id, self._active_size, self._rotate_next = new_file, new_id, 0, False
        old.close()

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

    def wake_reader(self) -> None:
        """End a reader's `wait_for_data` now (the writer is stopping)."""
        with self._lock:
            self._data_ready.notify_all()

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
        data = self._read_at(cursor.segment, cursor.offset, min(max_bytes, segment_end - cursor.offset))
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

    def _read_at(self, segment: int, offset: int, size: int) -> bytes:
        """`size` bytes of `segment` from `offset`, through a descriptor kept open while the reader stays
        in that segment: at a trickle, opening the file for each small batch cost more than reading it."""
        if self._reading is None or self._reading[0] != segment:
            self._stop_reading()
            self._reading = (segment, os.open(self._segment_path(segment), os.O_RDONLY))
        return os.pread(self._reading[1], size, offset)

    def _stop_reading(self) -> None:
        if self._reading is not None:
            os.close(self._reading[1])
            self._reading = None

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
        """Record the cursor. On a full disk this may fail: the old cursor stays, and a restart only
        sends already confirmed lines again (InfluxDB overwrites them), so the writer goes on."""
        self._confirms_since_cursor_write = 0
        tmp = self._dir / (CURSOR_FILE + ".tmp")
        try:
            tmp.write_text(json.dumps({"segment": position.segment, "offset": position.offset}))
            os.replace(tmp, self._dir / CURSOR_FILE)
        except OSError as err:
            self.cursor_write_failures += 1
            if self.cursor_write_failures == 1 or self.cursor_write_failures % 1000 == 0:
                log.warning("cannot record the spool cursor; a restart will re-send lines InfluxDB already has",
                            extra={"dir": str(self._dir), "error": err.strerror or str(err),
                                   "failures": self.cursor_write_failures})

    def close(self) -> None:
        """Commit what was appended, record the cursor and close. The spool must not be used after.
        Raises `SpoolWriteError` (after closing) if the last lines could not be written: their
        messages were never acknowledged, so the broker still holds them."""
        try:
            self.commit()
        finally:
            self._active.close()
            self._stop_reading()
            with self._lock:
                cursor = self._cursor
            self._write_cursor(cursor)
