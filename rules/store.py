"""Alert state in SQLite: alerts, their transitions, silences, acknowledgements, incident (group)
state and the notification log. The engine writes through it on every change, so a restart
neither re-notifies what was already sent nor forgets a resolve, a silence or an ack.

The API reads and writes the same file from its own process: the database is in WAL mode (readers
never block the writer) and every write is one short transaction. Acks and silences written by the
API take effect in the running engine on its next tick (it re-reads them when `data_version()`
changed).

Interface (stable; used by api/):

    store = AlertStore(path, clock)                  # creates the schema if missing
    store.active_alerts(state=None, site=None, severity=None, rule=None) -> list[Alert]
    store.alert(fingerprint) -> AlertDetail | None  # alert + transitions + notifications + acks
    store.acknowledge(fingerprint, by, comment) -> Alert        # AlertNotFound if unknown
    store.create_silence(matchers, starts_at, ends_at, created_by, comment) -> Silence
    store.list_silences(include_expired=True) -> list[Silence]
    store.silence(id) -> Silence | None
    store.expire_silence(id, by) -> Silence                     # SilenceNotFound if unknown
    store.history(since=None, limit=1000) -> list[Transition]
    store.feed(after_id=0, limit=100) -> list[FeedEntry]       # the local notifications feed, newest first
    store.record_retirement(retirement); store.retirements(after_id=0) -> list[(id, Retirement)]   (rules.retire)
    store.close()

Exceptions:  StoreError ─┬─ AlertNotFound
                         └─ SilenceNotFound        (SilenceError for invalid silences, from rules.silences)

Times are epoch seconds of the injected clock. The store never reads the wall clock itself.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.clock import Clock
from rules.alerts import Alert, AlertState, Retirement, Transition
from rules.matchers import Matcher
from rules.silences import Silence, check_regex_budget

SCHEMA_VERSION = 2
# Columns added after version 1, added in place to a version-1 database on open.
_ADDED_COLUMNS = (("transitions", "summary", "TEXT NOT NULL DEFAULT ''"), ("groups", "first_notified_at", "REAL"))
_GROUP_COLUMNS = ("key, receiver, labels, first_seen_at, last_notified_at, notified, escalation_level, escalated_at, "
                  "first_notified_at")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT PRIMARY KEY, rule TEXT NOT NULL, labels TEXT NOT NULL, annotations TEXT NOT NULL,
    state TEXT NOT NULL, active_since REAL, fired_at REAL, resolved_at REAL, updated_at REAL NOT NULL,
    value REAL, muted_by TEXT NOT NULL DEFAULT '[]',
    acked_by TEXT, acked_at REAL, ack_comment TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, fingerprint TEXT NOT NULL, rule TEXT NOT NULL, at REAL NOT NULL,
    from_state TEXT NOT NULL, to_state TEXT NOT NULL, labels TEXT NOT NULL, value REAL,
    summary TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS transitions_fp ON transitions (fingerprint, at);
CREATE INDEX IF NOT EXISTS transitions_at ON transitions (at);
CREATE TABLE IF NOT EXISTS acks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, fingerprint TEXT NOT NULL, by TEXT NOT NULL,
    comment TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY, matchers TEXT NOT NULL, starts_at REAL NOT NULL, ends_at REAL NOT NULL,
    created_by TEXT NOT NULL, comment TEXT NOT NULL, created_at REAL NOT NULL, expired_by TEXT);
CREATE TABLE IF NOT EXISTS groups (
    key TEXT PRIMARY KEY, receiver TEXT NOT NULL, labels TEXT NOT NULL, first_seen_at REAL NOT NULL,
    last_notified_at REAL, notified TEXT NOT NULL DEFAULT '[]', escalation_level INTEGER NOT NULL DEFAULT 0,
    escalated_at REAL, first_notified_at REAL);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT, group_key TEXT NOT NULL, receiver TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL, sent_at REAL, last_error TEXT NOT NULL DEFAULT '',
    fingerprints TEXT NOT NULL, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS notifications_status ON notifications (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS feed (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, receiver TEXT NOT NULL, notification_id TEXT NOT NULL,
    status TEXT NOT NULL, severity TEXT NOT NULL, site TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,
    UNIQUE (notification_id, receiver));
CREATE TABLE IF NOT EXISTS deliveries (
    notification INTEGER PRIMARY KEY, target TEXT NOT NULL, at REAL NOT NULL, failover_of INTEGER);
CREATE TABLE IF NOT EXISTS retirements (
    id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, device TEXT, at REAL NOT NULL, by TEXT NOT NULL,
    reason TEXT NOT NULL);
"""
# `feed` (the local notifications feed), `deliveries` (which channel delivered an outbox row, and
# the row it stood in for when it was a failover) and `retirements` (rules.retire) came after schema 2:
# `CREATE TABLE IF NOT EXISTS` adds them to an older database on open, nothing else of it changes.
# The alert timers that must survive a restart, beside `alerts` (a table of their own, created on
# open, so a database from before them needs no migration; a missing row means no timer running).
_TIMERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_timers (fingerprint TEXT PRIMARY KEY, keep_firing_since REAL NOT NULL);
"""
_SELECT_ALERTS = ("SELECT alerts.*, alert_timers.keep_firing_since FROM alerts "
                  "LEFT JOIN alert_timers USING (fingerprint)")


class StoreError(RuntimeError):
    """The alert store cannot do what was asked."""


class AlertNotFound(StoreError, KeyError):
    """No alert has this fingerprint; list them with `active_alerts()`."""


class SilenceNotFound(StoreError, KeyError):
    """No silence has this id; list them with `list_silences()`."""


@dataclass(frozen=True, slots=True)
class Ack:
    fingerprint: str
    by: str
    comment: str
    at: float


@dataclass(frozen=True, slots=True)
class GroupState:
    """What was last notified for one incident (group) on one receiver, and its escalation."""

    key: str
    receiver: str
    labels: dict[str, str]
    first_seen_at: float
    last_notified_at: float | None = None
    notified: tuple[str, ...] = ()
    """Sorted `fingerprint:status` entries of the last notification, to tell if anything changed."""
    escalation_level: int = 0
    escalated_at: float | None = None
    first_notified_at: float | None = None
    """When the incident was first notified: escalation counts from here, not from first seen."""


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """One notification in the outbox/log. `status`: pending → sent | failed (after the last retry)."""

    id: int
    group_key: str
    receiver: str
    status: str
    attempts: int
    created_at: float
    next_attempt_at: float
    sent_at: float | None
    last_error: str
    fingerprints: tuple[str, ...]
    payload: dict


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One notification as the local feed shows it (status page, API, `facmon up`'s terminal)."""

    id: int
    at: float
    receiver: str
    notification_id: str
    status: str
    severity: str
    site: str
    title: str
    body: str


@dataclass(frozen=True, slots=True)
class AlertDetail:
    alert: Alert
    transitions: list[Transition]
    notifications: list[NotificationRecord]
    acks: list[Ack]


class AlertStore:
    """Synchronous, thread-safe access to the alert database at `path` (created if missing)."""

    def __init__(self, path: Path | str, clock: Clock) -> None:
        self.path = Path(path)
        self._clock = clock
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._own_changes = 0
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        with self._lock:
            self._db.executescript(_SCHEMA)
            self._db.executescript(_TIMERS_SCHEMA)
            for table, column, decl in _ADDED_COLUMNS:
                have = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def data_version(self) -> tuple[int, int]:
        """Changes whenever acks or silences may have changed: another connection (e.g. the API)
        committed a write (SQLite's data_version), or this one wrote an ack or silence; cheap to poll."""
        with self._lock:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0]), self._own_changes

    # ---- alerts -------------------------------------------------------------------------------

    def save_alert(self, alert: Alert, transition: Transition | None = None) -> None:
        """Insert or update the alert's current state, and append its transition, atomically. The
        stored acknowledgement is kept (cleared only when a resolved/inactive alert becomes active)."""
        with self._tx() as db:
            # Ack columns belong to whoever acknowledged (the API, another process): the engine's
            # write keeps them, except when the alert becomes active again (a new activation).
            db.execute(
                "INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (fingerprint) DO UPDATE SET "
                "rule = excluded.rule, labels = excluded.labels, annotations = excluded.annotations, "
                "active_since = excluded.active_since, fired_at = excluded.fired_at, "
                "resolved_at = excluded.resolved_at, updated_at = excluded.updated_at, value = excluded.value, "
                "muted_by = excluded.muted_by, "
                "acked_by = CASE WHEN alerts.state IN ('inactive', 'resolved') AND excluded.state IN "
                "('pending', 'firing') THEN NULL ELSE alerts.acked_by END, "
                "acked_at = CASE WHEN alerts.state IN ('inactive', 'resolved') AND excluded.state IN "
                "('pending', 'firing') THEN NULL ELSE alerts.acked_at END, "
                "ack_comment = CASE WHEN alerts.state IN ('inactive', 'resolved') AND excluded.state IN "
                "('pending', 'firing') THEN '' ELSE alerts.ack_comment END, "
                "state = excluded.state",
                (alert.fingerprint, alert.rule, _dump(alert.labels), _dump(alert.annotations), alert.state.value,
                 alert.active_since, alert.fired_at, alert.resolved_at, alert.updated_at, alert.value,
                 _dump(list(alert.muted_by)), alert.acked_by, alert.acked_at, alert.ack_comment))
            if transition is not None:
                db.execute(
                    "INSERT INTO transitions (fingerprint, rule, at, from_state, to_state, labels, value, summary) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (transition.fingerprint, transition.rule, transition.at, transition.from_state.value,
                     transition.to_state.value, _dump(transition.labels), transition.value, transition.summary))
            _save_timers(db, alert)

    def all_alerts(self) -> list[Alert]:
        """Every alert the store knows, in any state (the engine loads these on start)."""
        with self._lock:
            rows = self._db.execute(f"{_SELECT_ALERTS} ORDER BY fingerprint").fetchall()
        return [_alert(row) for row in rows]

    def active_alerts(self, state: AlertState | str | None = None, site: str | None = None,
                      severity: str | None = None, rule: str | None = None) -> list[Alert]:
        """Pending and firing alerts (or only `state`), newest activation first, optionally filtered."""
        states = [AlertState(state).value] if state else [AlertState.PENDING.value, AlertState.FIRING.value]
        sql = f"{_SELECT_ALERTS} WHERE state IN ({','.join('?' * len(states))})"
        args: list[object] = list(states)
        if rule:
            sql += " AND rule = ?"
            args.append(rule)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY active_since DESC, fingerprint", args).fetchall()
        alerts = [_alert(row) for row in rows]
        return [a for a in alerts if (site is None or a.site == site) and (severity is None or a.severity == severity)]

    def alert(self, fingerprint: str) -> AlertDetail | None:
        with self._lock:
            row = self._db.execute(f"{_SELECT_ALERTS} WHERE fingerprint = ?", (fingerprint,)).fetchone()
            if row is None:
                return None
            transitions = self._db.execute(
                "SELECT * FROM transitions WHERE fingerprint = ? ORDER BY at, id", (fingerprint,)).fetchall()
            acks = self._db.execute("SELECT * FROM acks WHERE fingerprint = ? ORDER BY at, id",
                                    (fingerprint,)).fetchall()
            notes = self._db.execute(
                "SELECT * FROM notifications WHERE fingerprints LIKE ? ORDER BY id",
                (f'%"{fingerprint}"%',)).fetchall()
        return AlertDetail(_alert(row), [_transition(t) for t in transitions], [_notification(n) for n in notes],
                           [Ack(a["fingerprint"], a["by"], a["comment"], a["at"]) for a in acks])

    def history(self, since: float | None = None, limit: int = 1000) -> list[Transition]:
        """Transitions of all alerts, oldest first, from `since` (epoch s) on."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM transitions WHERE at >= ? ORDER BY at, id LIMIT ?",
                                    (since if since is not None else float("-inf"), limit)).fetchall()
        return [_transition(row) for row in rows]

    def transitions_after(self, transition_id: int, limit: int = 500) -> list[tuple[int, Transition]]:
        """(id, transition) of the transitions recorded after `transition_id`, oldest first. Ids only
        grow, so a consumer keeps the last id it handled as its cursor (see rules.annotations)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM transitions WHERE id > ? ORDER BY id LIMIT ?",
                                    (transition_id, limit)).fetchall()
        return [(int(row["id"]), _transition(row)) for row in rows]

    def last_transition_id(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT MAX(id) FROM transitions").fetchone()
        return int(row[0] or 0)

    def meta(self, key: str) -> str | None:
        """A value kept across restarts (e.g. a consumer's cursor), or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def record_retirement(self, retirement: Retirement) -> int:
        """Record that a site or device is gone (after `rules.retire.retire_alerts` ended its alerts); its id."""
        with self._tx() as db:
            cursor = db.execute("INSERT INTO retirements (site, device, at, by, reason) VALUES (?,?,?,?,?)",
                                (retirement.site, retirement.device, retirement.at, retirement.by, retirement.reason))
        return int(cursor.lastrowid or 0)

    def retirements(self, after_id: int = 0) -> list[tuple[int, Retirement]]:
        """(id, retirement) recorded after `after_id`, oldest first (ids only grow: a reader's cursor)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM retirements WHERE id > ? ORDER BY id", (after_id,)).fetchall()
        return [(int(r["id"]), Retirement(r["site"], r["device"], r["at"], r["by"], r["reason"])) for r in rows]

    def acknowledge(self, fingerprint: str, by: str, comment: str = "") -> Alert:
        """Acknowledge the alert's current activation: repeats and escalation stop for it. Raises
        `AlertNotFound`, or `StoreError` if the alert is not pending or firing."""
        if not by.strip():
            raise StoreError("an acknowledgement needs the name of who acknowledges (by)")
        now = self._clock.now()
        with self._tx() as db:
            row = db.execute("SELECT * FROM alerts WHERE fingerprint = ?", (fingerprint,)).fetchone()
            if row is None:
                raise AlertNotFound(f"no alert with fingerprint {fingerprint!r}")
            if row["state"] not in (AlertState.PENDING.value, AlertState.FIRING.value):
                raise StoreError(f"alert {fingerprint} is {row['state']}; only pending or firing alerts "
                                 "can be acknowledged")
            db.execute("UPDATE alerts SET acked_by = ?, acked_at = ?, ack_comment = ? WHERE fingerprint = ?",
                       (by, now, comment, fingerprint))
            db.execute("INSERT INTO acks (fingerprint, by, comment, at) VALUES (?,?,?,?)",
                       (fingerprint, by, comment, now))
            self._own_changes += 1
            row = db.execute(f"{_SELECT_ALERTS} WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return _alert(row)

    def acks(self) -> dict[str, tuple[str, float, str]]:
        """Current acknowledgements of active alerts: fingerprint → (by, at, comment)."""
        with self._lock:
            rows = self._db.execute("SELECT fingerprint, acked_by, acked_at, ack_comment FROM alerts "
                                    "WHERE acked_by IS NOT NULL").fetchall()
        return {r["fingerprint"]: (r["acked_by"], r["acked_at"], r["ack_comment"]) for r in rows}

    # ---- silences -----------------------------------------------------------------------------

    def create_silence(self, matchers: Sequence[Matcher], starts_at: float, ends_at: float, created_by: str,
                       comment: str = "") -> Silence:
        """Store a new silence (validated by `Silence` and `check_regex_budget`; raises `SilenceError` if
        invalid). Silences read back are not held to the budget: one stored before it still mutes."""
        check_regex_budget(tuple(matchers))
        silence = Silence(uuid.uuid4().hex, tuple(matchers), float(starts_at), float(ends_at), created_by, comment,
                          self._clock.now())
        with self._tx() as db:
            db.execute("INSERT INTO silences VALUES (?,?,?,?,?,?,?,?)",
                       (silence.id, _dump([m.to_dict() for m in silence.matchers]), silence.starts_at,
                        silence.ends_at, silence.created_by, silence.comment, silence.created_at, None))
            self._own_changes += 1
        return silence

    def list_silences(self, include_expired: bool = True) -> list[Silence]:
        now = self._clock.now()
        with self._lock:
            rows = self._db.execute("SELECT * FROM silences ORDER BY starts_at, id").fetchall()
        silences = [_silence(row) for row in rows]
        return silences if include_expired else [s for s in silences if s.ends_at > now]

    def silence(self, silence_id: str) -> Silence | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM silences WHERE id = ?", (silence_id,)).fetchone()
        return _silence(row) if row else None

    def expire_silence(self, silence_id: str, by: str) -> Silence:
        """End the silence now (or cancel it if it has not started). Raises `SilenceNotFound`."""
        now = self._clock.now()
        with self._tx() as db:
            row = db.execute("SELECT * FROM silences WHERE id = ?", (silence_id,)).fetchone()
            if row is None:
                raise SilenceNotFound(f"no silence with id {silence_id!r}")
            if row["ends_at"] > now:
                # A not-yet-started silence is cancelled: it ends where it would have started.
                ends_at = max(now, row["starts_at"] + 1e-3)
                db.execute("UPDATE silences SET ends_at = ?, expired_by = ? WHERE id = ?",
                           (ends_at, by, silence_id))
                self._own_changes += 1
            row = db.execute("SELECT * FROM silences WHERE id = ?", (silence_id,)).fetchone()
        return _silence(row)

    # ---- incidents and notifications ------------------------------------------------------------

    def save_group(self, group: GroupState) -> None:
        with self._tx() as db:
            _save_group(db, group)

    def delete_group(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM groups WHERE key = ?", (key,))

    def groups(self) -> list[GroupState]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM groups ORDER BY key").fetchall()
        return [GroupState(r["key"], r["receiver"], json.loads(r["labels"]), r["first_seen_at"],
                           r["last_notified_at"], tuple(json.loads(r["notified"])), r["escalation_level"],
                           r["escalated_at"], r["first_notified_at"]) for r in rows]

    def enqueue_notification(self, group_key: str, receiver: str, fingerprints: Iterable[str], payload: dict,
                             at: float, group: GroupState | None = None) -> int:
        """Put a notification in the outbox (status pending), and with it the group's new state, in one
        transaction: once this returns, a restart sends it exactly as decided, never decides it again."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO notifications (group_key, receiver, status, attempts, created_at, next_attempt_at, "
                "fingerprints, payload) VALUES (?,?,?,?,?,?,?,?)",
                (group_key, receiver, "pending", 0, at, at, _dump(sorted(fingerprints)), _dump(payload)))
            if group is not None:
                _save_group(db, group)
            return int(cur.lastrowid or 0)

    def due_notifications(self, now: float, limit: int = 100,
                          receivers: Sequence[str] | None = None) -> list[NotificationRecord]:
        """Pending rows due by `now`, oldest due first; only those of `receivers` (outbox targets) if given."""
        sql = "SELECT * FROM notifications WHERE status = 'pending' AND next_attempt_at <= ?"
        args: list[object] = [now]
        if receivers is not None:
            sql += f" AND receiver IN ({','.join('?' * len(receivers))})"
            args.extend(receivers)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY next_attempt_at, id LIMIT ?", (*args, limit)).fetchall()
        return [_notification(r) for r in rows]

    def next_notification_due(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(next_attempt_at) FROM notifications WHERE status = 'pending'").fetchone()
        return row[0]

    def mark_sent(self, notification_id: int, at: float) -> None:
        with self._tx() as db:
            db.execute("UPDATE notifications SET status = 'sent', sent_at = ?, attempts = attempts + 1 WHERE id = ?",
                       (at, notification_id))

    def mark_attempt_failed(self, notification_id: int, error: str, next_attempt_at: float | None) -> None:
        """Record a failed attempt; `next_attempt_at=None` means give up (status failed)."""
        with self._tx() as db:
            if next_attempt_at is None:
                db.execute("UPDATE notifications SET status = 'failed', attempts = attempts + 1, last_error = ? "
                           "WHERE id = ?", (error[:1000], notification_id))
            else:
                db.execute("UPDATE notifications SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                           "WHERE id = ?", (error[:1000], next_attempt_at, notification_id))

    def notifications(self, group_key: str | None = None, limit: int = 1000) -> list[NotificationRecord]:
        with self._lock:
            if group_key is None:
                rows = self._db.execute("SELECT * FROM notifications ORDER BY id LIMIT ?", (limit,)).fetchall()
            else:
                rows = self._db.execute("SELECT * FROM notifications WHERE group_key = ? ORDER BY id LIMIT ?",
                                        (group_key, limit)).fetchall()
        return [_notification(r) for r in rows]

    # ---- the local feed and who delivered what ---------------------------------------------------

    def add_feed_entry(self, entry: FeedEntry) -> int:
        """Add `entry` (its `id` is ignored) and return its id; the same notification for the same
        receiver twice (a retry after a crash) keeps the first entry."""
        with self._tx() as db:
            cur = db.execute("INSERT OR IGNORE INTO feed (at, receiver, notification_id, status, severity, site, "
                             "title, body) VALUES (?,?,?,?,?,?,?,?)",
                             (entry.at, entry.receiver, entry.notification_id, entry.status, entry.severity,
                              entry.site, entry.title, entry.body))
            return int(cur.lastrowid or 0) if cur.rowcount else 0

    def feed(self, after_id: int = 0, limit: int = 100) -> list[FeedEntry]:
        """Feed entries with an id above `after_id`, newest first, at most `limit`."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM feed WHERE id > ? ORDER BY id DESC LIMIT ?",
                                    (after_id, limit)).fetchall()
        return [FeedEntry(r["id"], r["at"], r["receiver"], r["notification_id"], r["status"], r["severity"],
                          r["site"], r["title"], r["body"]) for r in rows]

    def record_delivery(self, notification: int, target: str, at: float, failover_of: int | None = None) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO deliveries VALUES (?,?,?,?)", (notification, target, at, failover_of))

    def delivered_via(self, notification: int) -> str | None:
        """The target that delivered outbox row `notification` itself or as its failover, or None."""
        with self._lock:
            row = self._db.execute("SELECT target FROM deliveries WHERE notification = ? OR failover_of = ? "
                                   "ORDER BY at LIMIT 1", (notification, notification)).fetchone()
        return None if row is None else str(row[0])

    def fail_over(self, record: NotificationRecord, targets: Sequence[str], at: float, why: str) -> list[int]:
        """Stop retrying `record` on its own channel (status `failed_over`) and enqueue the same
        payload on each of `targets`, atomically: the failing channel, once it is back, sends nothing
        again. Returns the new rows' ids (none when the row is no longer pending)."""
        ids: list[int] = []
        with self._tx() as db:
            moved = db.execute("UPDATE notifications SET status = 'failed_over', last_error = ? WHERE id = ? AND "
                               "status = 'pending'", (why[:1000], record.id)).rowcount
            if not moved:  # already failed over, sent or given up: never a second SMS
                return ids
            for target in targets:
                payload = {**record.payload, "facmon": {**record.payload.get("facmon", {}), "failover_of": record.id}}
                cur = db.execute(
                    "INSERT INTO notifications (group_key, receiver, status, attempts, created_at, next_attempt_at, "
                    "fingerprints, payload) VALUES (?,?,?,?,?,?,?,?)",
                    (record.group_key, target, "pending", 0, at, at, _dump(list(record.fingerprints)),
                     _dump(payload)))
                ids.append(int(cur.lastrowid or 0))
        return ids

    def outbox_depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM notifications WHERE status = 'pending'").fetchone()[0])


def _save_timers(db: sqlite3.Connection, alert: Alert) -> None:
    if alert.keep_firing_since is None:
        db.execute("DELETE FROM alert_timers WHERE fingerprint = ?", (alert.fingerprint,))
    else:
        db.execute("INSERT OR REPLACE INTO alert_timers VALUES (?, ?)", (alert.fingerprint, alert.keep_firing_since))


def _save_group(db: sqlite3.Connection, group: GroupState) -> None:
    db.execute(f"INSERT OR REPLACE INTO groups ({_GROUP_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
               (group.key, group.receiver, _dump(group.labels), group.first_seen_at, group.last_notified_at,
                _dump(list(group.notified)), group.escalation_level, group.escalated_at, group.first_notified_at))


def _dump(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _alert(row: sqlite3.Row) -> Alert:
    return Alert(row["fingerprint"], row["rule"], json.loads(row["labels"]), json.loads(row["annotations"]),
                 AlertState(row["state"]), row["active_since"], row["fired_at"], row["resolved_at"],
                 row["updated_at"], row["value"], tuple(json.loads(row["muted_by"])), row["acked_by"],
                 row["acked_at"], row["ack_comment"],
                 row["keep_firing_since"])


def _transition(row: sqlite3.Row) -> Transition:
    return Transition(row["fingerprint"], row["rule"], row["at"], AlertState(row["from_state"]),
                      AlertState(row["to_state"]), json.loads(row["labels"]), row["value"], row["summary"])


def _silence(row: sqlite3.Row) -> Silence:
    return Silence(row["id"], tuple(Matcher.from_dict(m) for m in json.loads(row["matchers"])), row["starts_at"],
                   row["ends_at"], row["created_by"], row["comment"], row["created_at"], row["expired_by"])


def _notification(row: sqlite3.Row) -> NotificationRecord:
    return NotificationRecord(row["id"], row["group_key"], row["receiver"], row["status"], row["attempts"],
                              row["created_at"], row["next_attempt_at"], row["sent_at"], row["last_error"],
                              tuple(json.loads(row["fingerprints"])), json.loads(row["payload"]))
