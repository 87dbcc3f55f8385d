"""Fan-out of live events to server-sent-event clients.

Producers (paho's network thread, the sweep task, the alert watcher) call `publish` from any
thread; each subscriber gets its own bounded asyncio queue on the API's event loop. A subscriber
that falls `queue_max` events behind is cut off (its stream ends with an `overflow` event) rather
than letting one slow phone hold memory for everyone; its browser reconnects and reloads state.
A stream belongs to the key that opened it: `end_streams_of(key_ids)` ends every stream of those keys
(with a `revoked` event), which the app does when a key is revoked.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One event: `type` is the SSE event name, `data` its JSON body."""

    type: str
    data: dict[str, Any]

    def to_sse(self, event_id: int) -> str:
        body = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
        return f"id: {event_id}\nevent: {self.type}\ndata: {body}\n\n"


OVERFLOW = LiveEvent("overflow", {"detail": "client too slow; reconnect and reload"})
REVOKED = LiveEvent("revoked", {"detail": "the API key of this stream was revoked; reconnect with a valid key"})


class _Subscriber:
    def __init__(self, queue_max: int, key_id: str) -> None:
        self.queue: asyncio.Queue[tuple[int, LiveEvent]] = asyncio.Queue(queue_max)
        self.key_id = key_id
        self.ending: LiveEvent | None = None
        """The last event to send (OVERFLOW, REVOKED) once the stream must end; nothing after it."""

    def end(self, last: LiveEvent) -> None:
        """Stop taking events; the stream sends `last` next and closes (queued events are dropped)."""
        if self.ending is not None:
            return
        self.ending = last
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait((0, last))


class EventHub:
    """Bounded fan-out. Bind it to the running loop (`bind`) before subscribers arrive."""

    def __init__(self, queue_max: int, keepalive_s: float = 15.0) -> None:
        self._queue_max = queue_max
        self._keepalive_s = keepalive_s
        self._subscribers: set[_Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.published = 0
        self.dropped_subscribers = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, event: LiveEvent) -> None:
        """Deliver `event` to every subscriber; safe from any thread, never blocks."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._lock:
            event_id = next(self._ids)
            self.published += 1
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver(event_id, event)
        else:
            loop.call_soon_threadsafe(self._deliver, event_id, event)

    def _deliver(self, event_id: int, event: LiveEvent) -> None:
        for sub in list(self._subscribers):
            if sub.ending is not None:
                continue
            try:
                sub.queue.put_nowait((event_id, event))
            except asyncio.QueueFull:
                self.dropped_subscribers += 1
                sub.end(OVERFLOW)

    def key_ids(self) -> set[str]:
        """The ids of the keys that have a stream open (call on the hub's loop)."""
        return {sub.key_id for sub in self._subscribers}

    def end_streams_of(self, key_ids: set[str]) -> int:
        """End every open stream of `key_ids` with a `revoked` event; how many. Safe from any thread:
        off the hub's loop it is scheduled there and returns 0."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return 0
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:
            loop.call_soon_threadsafe(self.end_streams_of, set(key_ids))
            return 0
        ended = [sub for sub in self._subscribers if sub.key_id in key_ids and sub.ending is None]
        for sub in ended:
            sub.end(REVOKED)
        return len(ended)

    async def stream(self, key_id: str) -> AsyncIterator[str]:
        """SSE text for one client of key `key_id` until it disconnects, overflows or its key is
        revoked; a comment line every `keepalive_s` keeps proxies from closing an idle connection."""
        sub = _Subscriber(self._queue_max, key_id)
        self._subscribers.add(sub)
        try:
            yield "retry: 3000\n\n"
            while True:
                try:
                    event_id, event = await asyncio.wait_for(sub.queue.get(), self._keepalive_s)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                yield event.to_sse(event_id)
                if event is sub.ending:
                    return
        finally:
            self._subscribers.discard(sub)
