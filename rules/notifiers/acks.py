"""Acknowledging from the phone: a Telegram button press or an SMS reply `ACK <code>` names an alert
by its code (the first characters of its fingerprint, `rules.notify.ack_code`); `acknowledge_code`
acknowledges the firing alerts it names in the store, with who did it (`telegram:<user>`,
`sms:<number>`), so it lands in the alert's acknowledgement log like an ack from the API — and works
when the status page cannot be reached."""

from __future__ import annotations

import logging

from rules.store import AlertStore, StoreError

log = logging.getLogger("facmon.rules.acks")


def acknowledge_code(store: AlertStore, code: str, by: str) -> str:
    """Acknowledge every firing or pending alert whose fingerprint starts with `code` (at least 4 hex
    digits); returns what to tell the person (shown on the phone or logged)."""
    code = code.strip().lower()
    if len(code) < 4:
        return f"code {code!r} is too short; reply ACK and the code from the message"
    matches = [a for a in store.active_alerts() if a.fingerprint.startswith(code)]
    if not matches:
        return f"no active alert has code {code} (already resolved?)"
    done = []
    for alert in matches:
        try:
            store.acknowledge(alert.fingerprint, by, "acknowledged from the phone")
        except StoreError as err:  # resolved between the lookup and the ack
            log.info("phone acknowledgement not applied", extra={"code": code, "by": by, "error": str(err)})
            continue
        done.append(f"{alert.labels.get('alertname', alert.rule)} {alert.labels.get('device', '')}".strip())
    log.info("acknowledged from the phone", extra={"code": code, "by": by, "alerts": done})
    return f"acknowledged {', '.join(done)}" if done else f"no active alert has code {code}"
