"""Fan-out of live events to server-sent-event clients.

Producers (paho's network thread, the sweep task, the alert watcher) call `publish` from any
thread; each subscriber gets its own bounded asyncio queue on the API's event loop. A subscriber
that falls `queue_max` events behind is cut off (its stream ends with an `overflow` event) rather
than letting one slow phone hold memory for everyone; its browser reconnects and reloads state.
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


class _Subscriber:
    def __init__(self, queue_max: int) -> None:
        self.queue: asyncio.Queue[tuple[int, LiveEvent] | None] = asyncio.Queue(queue_max)
        self.overflowed = False


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
            if sub.overflowed:
                continue
            try:
                sub.queue.put_nowait((event_id, event))
            except asyncio.QueueFull:
                sub.overflowed = True
                self.dropped_subscribers += 1
                # Make room for the end marker so the stream can say why it ends.
                sub.queue.get_nowait()
                sub.queue.put_nowait(None)

    async def stream(self) -> AsyncIterator[str]:
        """SSE text for one client until it disconnects or overflows; a comment line every
        `keepalive_s` keeps proxies from closing an idle connection."""
        sub = _Subscriber(self._queue_max)
        self._subscribers.add(sub)
        try:
            yield "retry: 3000\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(sub.queue.get(), self._keepalive_s)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if item is None:
                    yield LiveEvent("overflow", {"detail": "client too slow; reconnect and reload"}).to_sse(0)
                    return
                yield item[1].to_sse(item[0])
        finally:
            self._subscribers.discard(sub)
