"""How every facmon client of the broker presents itself: username/password and TLS from `mqtt.*`.

The collector, the API, the rules engine, the probe and the simulators each build their own paho
client (different sessions, wills and loops), but must log in and verify the broker the same way: the
password from the environment or `mqtt.password_file`, a client certificate where the broker wants
one, and `tls.insecure_skip_verify` meaning what it says.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence

import paho.mqtt.client as mqtt

from core.settings.base import read_secret
from core.settings.mqtt import MqttSettings


def apply_credentials_and_tls(client: mqtt.Client, settings: MqttSettings) -> None:
    """Set `client`'s username/password and TLS from `settings` (before it connects)."""
    if settings.username:
        client.username_pw_set(settings.username, read_secret(settings.password, settings.password_file,
                                                              "mqtt.password"))
    tls = settings.tls
    if tls.enabled:
        client.tls_set(ca_certs=str(tls.ca_file) if tls.ca_file else None,
                       certfile=str(tls.cert_file) if tls.cert_file else None,
                       keyfile=str(tls.key_file) if tls.key_file else None,
                       cert_reqs=ssl.CERT_NONE if tls.insecure_skip_verify else ssl.CERT_REQUIRED)
        client.tls_insecure_set(tls.insecure_skip_verify)


def subscriptions_granted(reasons: Sequence[mqtt.ReasonCode], topics: Sequence[str], log: logging.Logger) -> bool:
    """Judge a SUBACK: True if the broker granted every subscription, else log which it refused.
    Until then a client is connected but receives nothing, which is why callers track it apart."""
    refused = [str(r) for r in reasons if r.is_failure]
    if refused:
        log.error("broker refused a subscription", extra={"reasons": refused, "topics": list(topics),
                                                          "hint": "check the broker's ACL for this user"})
        return False
    log.info("mqtt subscribed", extra={"topics": list(topics)})
    return True
