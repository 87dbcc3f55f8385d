"""API keys and the audit log, in one SQLite file.

A key is shown once, when it is created: ``fmk_<id>_<secret>``. Only the SHA-256 of the secret is
stored. A plain (fast) hash is enough here because the secret is 256 random bits, not a password a
person chose: there is nothing to guess, so a slow password hash would only slow every request.

Every write through the API is recorded in the audit log with the key (id and name) that did it.

    KeyStoreError                   (base)
    ├── KeyNotFound                 revoke/show of an id that does not exist
    └── BadKeyName                  create with a name that is empty or too long
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from core.clock import Clock

KEY_PREFIX = "fmk"
_KEY_RE = re.compile(r"\Afmk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})\Z")


class Role(enum.StrEnum):
    """What a key may do. Each role may do everything the roles before it may."""

    VIEWER = "viewer"
    """read state, history, alerts, rules, events"""
    OPERATOR = "operator"
    """+ acknowledge alerts, create and expire silences"""
    ADMIN = "admin"
    """+ validate rules, manage keys"""

    def allows(self, needed: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored: never the secret itself."""

    id: str
    name: str
    role: Role
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float
    key_id: str
    key_name: str
    action: str
    target: str
    detail: str


class KeyStoreError(Exception):
    """Base of the key store's errors."""


class KeyNotFound(KeyStoreError):
    pass


class BadKeyName(KeyStoreError):
    pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, secret_sha256 TEXT NOT NULL,
    created_at REAL NOT NULL, revoked_at REAL
);
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, key_id TEXT NOT NULL, key_name TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL
);
"""


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


VERIFIED_FOR_S = 1.0
"""How long a verified key is trusted from memory: a key revoked by another process (`facmon keys
revoke`) stops working within this; one revoked through this store stops at once."""
_VERIFIED_MAX = 1000


class KeyStore:
    """Thread-safe store of API keys and audit entries. `path` may be ":memory:" for tests.

    `verified(token)` answers from memory (no SQLite, safe on an event loop) for a token that
    `authenticate` accepted less than VERIFIED_FOR_S ago; the API asks it first on every request."""

    def __init__(self, path: Path | str, clock: Clock) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._clock = clock
        self._lock = threading.Lock()
        self._verified: dict[bytes, tuple[float, ApiKey]] = {}
        """sha256(token) → (clock.monotonic() when verified, key); never the token itself."""

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def ping(self) -> None:
        """Raises sqlite3.Error if the file cannot be read."""
        with self._lock:
            self._db.execute("SELECT 1 FROM api_keys LIMIT 1").fetchall()

    def create(self, name: str, role: Role) -> tuple[ApiKey, str]:
        """A new key and its token (the only time the token exists outside the caller)."""
        name = name.strip()
        if not name or len(name) > 100 or not name.isprintable():
            raise BadKeyName("a key needs a name of 1..100 printable characters saying who or what uses it")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        key = ApiKey(key_id, name, Role(role), self._clock.now())
        with self._lock:
            self._db.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)",
                             (key.id, key.name, key.role.value, _sha256(secret), key.created_at))
        return key, f"{KEY_PREFIX}_{key_id}_{secret}"

    def verified(self, token: str) -> ApiKey | None:
        """The key of `token` if `authenticate` accepted it within VERIFIED_FOR_S; else None (then ask
        `authenticate`). Pure memory: no SQLite."""
        entry = self._verified.get(hashlib.sha256(token.encode()).digest())
        if entry is None or self._clock.monotonic() - entry[0] > VERIFIED_FOR_S:
            return None
        return entry[1]

    def authenticate(self, token: str) -> ApiKey | None:
        """The live key `token` belongs to, or None (unknown, malformed, wrong secret or revoked)."""
        key = self._authenticate(token)
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            if key is None:
                self._verified.pop(digest, None)
                return None
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified.clear()
            self._verified[digest] = (self._clock.monotonic(), key)
        return key

    def _authenticate(self, token: str) -> ApiKey | None:
        match = _KEY_RE.match(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        with self._lock:
            row = self._db.execute("SELECT id, name, role, created_at, revoked_at, secret_sha256 FROM api_keys "
                                   "WHERE id = ?", (key_id,)).fetchone()
        if row is None or row[4] is not None:
            return None
        if not hmac.compare_digest(row[5], _sha256(secret)):
            return None
        return ApiKey(row[0], row[1], Role(row[2]), row[3], row[4])

    def list(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute("SELECT id, name, role, created_at, revoked_at FROM api_keys "
                                    "ORDER BY created_at, id").fetchall()
        return [ApiKey(r[0], r[1], Role(r[2]), r[3], r[4]) for r in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke `key_id` (idempotent). Raises KeyNotFound."""
        with self._lock:
            cursor = self._db.execute("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                                      (self._clock.now(), key_id))
            if cursor.rowcount == 0:
                raise KeyNotFound(f"no API key with id {key_id[:40]!r}; `facmon keys list` shows the ids")
            self._verified = {d: (at, k) for d, (at, k) in self._verified.items() if k.id != key_id}
            row = self._db.execute("SELECT id, name, role, created_at, revoked_at FROM api_keys WHERE id = ?",
                                   (key_id,)).fetchone()
        return ApiKey(row[0], row[1], Role(row[2]), row[3], row[4])

    def live_ids(self, key_ids: set[str]) -> set[str]:
        """Which of `key_ids` exist and are not revoked, as SQLite has it now (revocations by other
        processes included)."""
        ids = sorted(key_ids)
        live: set[str] = set()
        for start in range(0, len(ids), 500):  # SQLite binds at most 999 variables in older builds
            chunk = ids[start:start + 500]
            with self._lock:
                rows = self._db.execute(f"SELECT id FROM api_keys WHERE revoked_at IS NULL AND id IN "
                                        f"({', '.join('?' * len(chunk))})", chunk).fetchall()
            live.update(row[0] for row in rows)
        return live

    def record(self, key: ApiKey, action: str, target: str, detail: str = "") -> None:
        """Append one audit entry: who (`key`) did `action` to `target`."""
        with self._lock:
            self._db.execute("INSERT INTO audit_log (at, key_id, key_name, action, target, detail) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             (self._clock.now(), key.id, key.name, action, target[:500], detail[:2000]))

    def audit(self, limit: int = 100) -> list[AuditEntry]:
        """The newest `limit` entries, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT at, key_id, key_name, action, target, detail FROM audit_log "
                                    "ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
        return [AuditEntry(*row) for row in rows]
