"""What the API knows about each device right now: latest reading, last seen, online or offline and why.

Pure and in memory: the MQTT adapter (api/mqtt.py) feeds it decoded messages with the receive time
from the injected clock, and `sweep(now)` (called periodically) notices devices going stale. Every
change comes back as `DeviceEvent`s for the live event stream; nothing here does I/O.

Presence, in order:
  * the device announced `offline` (its retained status or its last will)  → offline, `announced_offline`
  * no reading for `stale_after_s` (or the device's longer `max_quiet`)    → offline, `stale`
  * never a reading (only a retained `online`)                             → offline, `no_reading_yet`
  * otherwise                                                              → online,  `reporting`
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from core.contract import DeviceKey, Reading
from core.decode import StatusChange


class Presence(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class PresenceReason(enum.StrEnum):
    REPORTING = "reporting"
    ANNOUNCED_OFFLINE = "announced_offline"
    STALE = "stale"
    NO_READING_YET = "no_reading_yet"


@dataclass(frozen=True, slots=True)
class DeviceState:
    device: DeviceKey
    latest: Reading | None = None
    last_seen: float | None = None
    """Receive time (epoch seconds, the API's clock) of the latest reading."""
    announced_online: bool | None = None
    """The device's own status topic: True online, False offline (last will), None never said."""
    presence: Presence = Presence.OFFLINE
    reason: PresenceReason = PresenceReason.NO_READING_YET
    since: float | None = None
    """When `presence` last changed (the API's clock)."""


class EventKind(enum.StrEnum):
    READING = "reading"
    PRESENCE = "presence"


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    kind: EventKind
    state: DeviceState


def judge_presence(state: DeviceState, now: float, stale_after_s: float) -> tuple[Presence, PresenceReason]:
    """Presence of `state` at `now` by the rules in the module docstring."""
    if state.announced_online is False:
        return Presence.OFFLINE, PresenceReason.ANNOUNCED_OFFLINE
    if state.last_seen is None:
        return Presence.OFFLINE, PresenceReason.NO_READING_YET
    if now - state.last_seen > stale_after_s:
        return Presence.OFFLINE, PresenceReason.STALE
    return Presence.ONLINE, PresenceReason.REPORTING


class DeviceStates:
    """Thread-safe map of `DeviceKey` → `DeviceState` (paho's thread writes, request handlers read)."""

    def __init__(self, stale_after_s: float, quiet: Mapping[DeviceKey, float] | None = None) -> None:
        """`quiet`: devices whose site file says how long they are quiet when healthy (`max_quiet`); each goes
        stale after the longer of that and `stale_after_s`."""
        self._stale_after_s = stale_after_s
        self._quiet = dict(quiet or {})
        self._states: dict[DeviceKey, DeviceState] = {}
        self._lock = threading.Lock()

    def observe(self, message: Reading | StatusChange, now: float) -> list[DeviceEvent]:
        """Apply one decoded message received at `now`; the events it causes (none for an older
        reading than the one held, which a redelivery or a late backfill can bring)."""
        with self._lock:
            old = self._states.get(message.device) or DeviceState(message.device)
            if isinstance(message, Reading):
                if old.latest is not None and message.ts_ms < old.latest.ts_ms:
                    return []
                new = replace(old, latest=message, last_seen=now)
            else:
                new = replace(old, announced_online=message.online)
            new, events = self._settle(old, new, now)
            if isinstance(message, Reading):
                events.insert(0, DeviceEvent(EventKind.READING, new))
            self._states[message.device] = new
            return events

    def sweep(self, now: float) -> list[DeviceEvent]:
        """Re-judge every device at `now` (devices go stale by time alone); the presence changes."""
        events: list[DeviceEvent] = []
        with self._lock:
            for key, old in list(self._states.items()):
                new, changed = self._settle(old, old, now)
                if changed:
                    self._states[key] = new
                    events.extend(changed)
        return events

    def _settle(self, old: DeviceState, new: DeviceState, now: float) -> tuple[DeviceState, list[DeviceEvent]]:
        presence, reason = judge_presence(new, now, max(self._stale_after_s, self._quiet.get(new.device, 0.0)))
        if (presence, reason) == (old.presence, old.reason) and old.since is not None:
            return replace(new, presence=presence, reason=reason), []
        since = old.since if presence is old.presence and old.since is not None else now
        settled = replace(new, presence=presence, reason=reason, since=since)
        return settled, [DeviceEvent(EventKind.PRESENCE, settled)]

    def forget(self, key: DeviceKey) -> bool:
        """Drop `key` (its retained status was cleared: the device or its site is gone); True if it was
        known. No event: a page shows the device until it reloads the site, which no longer lists it."""
        with self._lock:
            return self._states.pop(key, None) is not None

    def get(self, key: DeviceKey) -> DeviceState | None:
        with self._lock:
            return self._states.get(key)

    def all(self) -> list[DeviceState]:
        with self._lock:
            return list(self._states.values())

    def of_site(self, site: str) -> list[DeviceState]:
        with self._lock:
            return [s for k, s in self._states.items() if k.site == site]

    def load(self, states: Iterable[DeviceState]) -> None:
        """Replace everything (tests and benchmarks prime the map with this)."""
        with self._lock:
            self._states = {s.device: s for s in states}
