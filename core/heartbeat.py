"""The heartbeat between a site's rules engine and the off-site watchdog (`facmon watchdog serve`):
its wire format, signature and the checks that refuse a forged or replayed one. Both sides import
it from here, so they cannot disagree.

    POST <watchdog>/heartbeat
    X-Facmon-Signature: sha256=<hex HMAC-SHA256 of the body with the shared secret>
    {"site": "park", "sent_at": 1767607200.123, "timezone": "Asia/Karachi",
     "summary": "GridOutage inv-main; BatteryLow inv-main (18)", "firing": 2}

Replay protection: `sent_at` must be within `max_skew_s` of the watchdog's clock and later than the
last heartbeat accepted for the site, so a recorded heartbeat replayed later is refused.

    HeartbeatRefused(reason, status)   401 bad or missing signature; 409 replayed; 422 malformed or stale
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass

SIGNATURE_HEADER = "X-Facmon-Signature"
MAX_BODY_BYTES = 16_384


class HeartbeatRefused(ValueError):
    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class Heartbeat:
    site: str
    sent_at: float
    timezone: str = "UTC"
    summary: str = ""
    """What the engine last knew (the firing alerts, in a line): the watchdog's page repeats it."""
    firing: int = 0

    def body(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True).encode()


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signed: str | None, now: float, last_sent_at: float | None,
           max_skew_s: float = 120.0) -> Heartbeat:
    """The heartbeat in `body` if its signature is right, it is fresh and newer than `last_sent_at`;
    raises `HeartbeatRefused` saying why not."""
    if len(body) > MAX_BODY_BYTES:
        raise HeartbeatRefused(f"heartbeat body over {MAX_BODY_BYTES} bytes", 422)
    if not signed or not hmac.compare_digest(signed, signature(secret, body)):
        raise HeartbeatRefused(f"missing or wrong {SIGNATURE_HEADER}: both sides need the same heartbeat secret", 401)
    try:
        data = json.loads(body)
        beat = Heartbeat(str(data["site"]), float(data["sent_at"]), str(data.get("timezone", "UTC")),
                         str(data.get("summary", ""))[:1000], int(data.get("firing", 0)))
    except (ValueError, KeyError, TypeError) as err:
        raise HeartbeatRefused(f"heartbeat is not {{site, sent_at, ...}} JSON: {err}", 422) from None
    if abs(now - beat.sent_at) > max_skew_s:
        raise HeartbeatRefused(f"heartbeat sent_at is {now - beat.sent_at:+.0f} s off the watchdog's clock (more "
                               f"than {max_skew_s:g} s): a replay, or a clock to fix with NTP", 422)
    if last_sent_at is not None and beat.sent_at <= last_sent_at:
        raise HeartbeatRefused("heartbeat is not newer than the last one accepted: a replay", 409)
    return beat
